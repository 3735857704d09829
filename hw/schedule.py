"""Static in-order issue schedule of a program from the timing formulas (no DRAM stalls).

The ISA's execution model (``hw/isa.py``) with the busy times of ``hw/timing.py``: at most
one instruction issues per cycle, in order; an instruction issues in the first cycle in
which its unit is idle and every unit of its ``wait`` mask is idle (``FENCE``: the units of
its mask, all units for mask 0; it occupies no unit). The RTL timing tests compare measured
cycles with :func:`schedule`; the SimPy model must agree with it on stall-free programs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import AccelConfig
from .isa import Fence, Instr, Unit
from .timing import FENCE_CYCLES, ISSUE_CYCLES, instr_cycles

__all__ = ["Schedule", "schedule"]


@dataclass
class Schedule:
    issue: list[int]     # issue cycle of each instruction (first issue = 0)
    end: list[int]       # first cycle after the instruction's unit is busy
    total: int           # first cycle in which every unit is idle again


def schedule(cfg: AccelConfig, instructions: Sequence[Instr]) -> Schedule:
    """Issue and completion cycles of every instruction, relative to the first issue."""
    units = tuple(int(u) for u in (Unit.LOAD, Unit.PRE, Unit.EXEC, Unit.STORE))
    free = dict.fromkeys(units, 0)
    t = 0
    issue: list[int] = []
    end: list[int] = []
    for ins in instructions:
        mask = int(ins.wait)
        fence = isinstance(ins, Fence)
        if fence and mask == 0:
            mask = int(Unit.ALL)
        ready = t
        for u in units:
            if mask & u and free[u] > ready:
                ready = free[u]
        unit = ins.UNIT
        if unit is not None:
            u = int(unit)
            if free[u] > ready:
                ready = free[u]
            free[u] = done = ready + instr_cycles(cfg, ins)
            end.append(done)
        else:
            end.append(ready + FENCE_CYCLES)
        issue.append(ready)
        t = ready + (FENCE_CYCLES if fence else ISSUE_CYCLES)
    total = max([t if instructions else 0] + list(free.values()) + end)
    return Schedule(issue, end, total)
