"""sparsa.compiler."""
