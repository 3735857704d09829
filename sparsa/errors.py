"""User-facing error classes gathered from every floor, for the CLI's one-line handler.

Each package defines its own error class (ground floors cannot import each other); add it
here so that ``sparsa`` reports it as ``error: <one line>`` with exit code 2.
"""

from __future__ import annotations

from sparsa.hw.config import ConfigError
from sparsa.hw.isa import ISAError

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, ISAError)


def _extend() -> None:
    global USER_ERRORS
    extra = []
    for mod, name in (("sparsa.workloads.errors", "WorkloadError"),
                      ("sparsa.compiler.errors", "CompileError"),
                      ("sparsa.sim.errors", "SimError"),
                      ("sparsa.reports.errors", "ReportError")):
        try:
            module = __import__(mod, fromlist=[name])
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        extra.append(getattr(module, name))
    USER_ERRORS = USER_ERRORS + tuple(extra)


_extend()
