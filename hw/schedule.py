"""Static in-order issue schedule of a program from the timing formulas (no DRAM stalls).

The ISA's execution model (``hw/isa.py``) with the busy times of ``hw/timing.py``: at most
one instruction issues per cycle, in order; an instruction issues in the first cycle in
which its unit is idle and every unit of its ``wait`` mask is idle (``FENCE``: the units of
its mask, all units for mask 0; it occupies no unit), with the rules of the pipelined LOAD
and EXEC units (``load_slack``, ``exec_slack``, the LOAD queue, the swap wave before a
PRELOAD; see :mod:`sparsa.hw.isa`). The RTL timing tests compare measured cycles with
:func:`schedule`; the SimPy model must agree with it on stall-free programs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import AccelConfig
from .isa import FIELD_DEFAULTS, SLACK_BITS, Compute, Fence, Instr, Load, Preload, Store, Unit
from .timing import FENCE_CYCLES, ISSUE_CYCLES, LOAD_QUEUE, fields_timing, swap_wave_cycles

__all__ = ["Schedule", "schedule", "schedule_fields"]


@dataclass
class Schedule:
    issue: list[int]     # issue cycle of each instruction (first issue = 0)
    end: list[int]       # first cycle after the instruction's unit is busy
    total: int           # first cycle in which every unit is idle again


def schedule(cfg: AccelConfig, instructions: Sequence[Instr]) -> Schedule:
    """Issue and completion cycles of every instruction, relative to the first issue.

    ``end`` of a COMPUTE is the cycle after its last accumulator write; the pipelined EXEC
    unit accepts the next COMPUTE earlier (:func:`~sparsa.hw.timing.issue_cycles`)."""
    return schedule_fields(cfg, [(type(i), i.__dict__, i.wait) for i in instructions])


def schedule_fields(cfg: AccelConfig,
                    instructions: Sequence[tuple[type, dict[str, Any], int]]) -> Schedule:
    """:func:`schedule` of instructions given as ``(class, fields, wait)``; fields left out
    take the format's defaults (the compiler times its schedule's tuples this way without
    building instruction objects)."""
    units = tuple(int(u) for u in (Unit.LOAD, Unit.PRE, Unit.EXEC, Unit.STORE))
    EXEC, LOAD = int(Unit.EXEC), int(Unit.LOAD)
    ALL = int(Unit.ALL)
    free = dict.fromkeys(units, 0)     # LOAD/EXEC: the cycle it accepts the next LOAD/COMPUTE
    ends: deque[int] = deque(maxlen=1 << SLACK_BITS)   # COMPUTE ends, in issue order
    lends: deque[int] = deque(maxlen=LOAD_QUEUE)        # LOAD ends, in issue order
    swap_clear = 0
    swap_wave = swap_wave_cycles(cfg)
    cache: dict = {}
    load_count, swap_default = FIELD_DEFAULTS[Load]["count"], FIELD_DEFAULTS[Compute]["swap"]
    exec_slack_default = FIELD_DEFAULTS[Store]["exec_slack"]
    load_slack_default = {c: d["load_slack"] for c, d in FIELD_DEFAULTS.items()
                          if "load_slack" in d}
    t = 0
    issue: list[int] = []
    end: list[int] = []
    for cls, fields, mask in instructions:
        get = fields.get
        fence = cls is Fence
        if fence and mask == 0:
            mask = ALL
        busy, issue_busy, eb, solo = fields_timing(cfg, cls, fields, cache)
        ready = t
        if mask:
            for u in units:                # the wait mask: units as waiters see them
                if not mask & u:
                    continue
                if u == EXEC:              # reads done; a STORE/FENCE: writes done
                    f = free[u]
                    if ends and (fence or cls is Store):
                        k = 0 if fence else get("exec_slack", exec_slack_default)
                        f = ends[-1 - k] if k < len(ends) else 0
                elif u == LOAD:            # all but the load_slack most recent LOADs ended
                    k = get("load_slack", load_slack_default.get(cls, 0))   # 0: no field
                    f = lends[-1 - k] if k < len(lends) else 0
                else:
                    f = free[u]
                if f > ready:
                    ready = f
        if fence:
            end.append(ready + FENCE_CYCLES)
        else:                              # the own unit accepts the instruction
            u = int(cls.UNIT)
            f = free[u]
            if cls is Preload:
                if swap_clear > f:
                    f = swap_clear
            elif cls is Load and lends:
                # fewer than LOAD_QUEUE LOADs outstanding (load-as-sparse or empty: none)
                g = lends[-1] if solo else (lends[0] if len(lends) == LOAD_QUEUE else 0)
                if g > f:
                    f = g
            if f > ready:
                ready = f
            done = ready + busy
            free[u] = ready + issue_busy
            if cls is Load:
                if lends and not solo:     # data in order, after the previous
                    done = max(done, lends[-1] + get("count", load_count) * eb)
                lends.append(done)
            elif cls is Compute:
                ends.append(done)
                if get("swap", swap_default):
                    swap_clear = ready + swap_wave
            end.append(done)
        issue.append(ready)
        t = ready + (FENCE_CYCLES if fence else ISSUE_CYCLES)
    total = max([t if instructions else 0] + list(free.values()) + end)
    return Schedule(issue, end, total)
