"""sparsa.hw."""
