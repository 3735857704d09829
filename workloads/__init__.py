"""sparsa.workloads."""
