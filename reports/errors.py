"""User-error class of :mod:`sparsa.reports`."""

from __future__ import annotations


class ReportError(ValueError):
    """A bad sweep spec, results directory or plot request; the message is one line."""
