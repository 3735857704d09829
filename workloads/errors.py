"""User-error class of :mod:`sparsa.workloads`."""

from __future__ import annotations


class WorkloadError(ValueError):
    """Bad user input to a workload, model-zoo entry, importer or sparsity spec."""
