"""The pass pipeline: runs passes in order and can dump the graph after any of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from .errors import CompileError
from .ir import CGraph

__all__ = ["Pass", "Pipeline"]


class Pass(Protocol):
    """A pass: ``name`` and ``run(graph) -> (graph, changed)``."""

    name: str

    def run(self, g: CGraph) -> tuple[CGraph, bool]: ...


class Pipeline:
    """Run ``passes`` in order.

    Parameters
    ----------
    passes : sequence of Pass
    dump_after : str or None
        Name of a pass after which ``dump(text)`` is called with the graph's dump.
    dump : callable
        Receives the dump text (default: ignore).
    dump_format : {"text", "json"}
    """

    def __init__(self, passes: Sequence[Pass], *, dump_after: str | None = None,
                 dump: Callable[[str], None] | None = None, dump_format: str = "text") -> None:
        self.passes = list(passes)
        names = [p.name for p in self.passes]
        if dump_after is not None and dump_after not in names:
            raise CompileError(f"--dump-after {dump_after!r} is not a pass; allowed: "
                               f"{', '.join(names)}")
        if dump_format not in ("text", "json"):
            raise CompileError(f"dump format {dump_format!r} is invalid; allowed: text, json")
        self.dump_after = dump_after
        self.dump = dump or (lambda s: None)
        self.dump_format = dump_format
        self.times: dict[str, float] = {}

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    def run(self, g: CGraph) -> CGraph:
        for p in self.passes:
            t0 = time.perf_counter()
            g, _ = p.run(g)
            self.times[p.name] = time.perf_counter() - t0
            if p.name == self.dump_after:
                self.dump(g.dump(self.dump_format))
        return g
