"""sparsa.reports."""
