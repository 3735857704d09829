"""The error class of :mod:`sparsa.sim`."""

from __future__ import annotations

__all__ = ["SimError"]


class SimError(ValueError):
    """A user-facing simulation error; its message is one line naming the input, the field
    and what is allowed."""
