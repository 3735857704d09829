"""sparsa.sim."""
