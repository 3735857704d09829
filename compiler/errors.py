"""User-facing errors of :mod:`sparsa.compiler`."""

from __future__ import annotations

__all__ = ["CompileError"]


class CompileError(ValueError):
    """A program or graph the compiler (or the reference executor) cannot handle.

    The message is one line naming the offending instruction, tensor or field and what is
    allowed; the CLI prints it as ``error: <message>`` and exits with code 2.
    """
