"""Shared checks for the compiler tests: an independent concurrent-hazard checker."""

from __future__ import annotations

import numpy as np
from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit
from sparsa.hw.timing import load_entry_beats, store_entry_beats

_UNIT = {Load: Unit.LOAD, Preload: Unit.PRE, Compute: Unit.EXEC, Store: Unit.STORE}


def _accesses(cfg, ins):
    """(reads, writes) as (space, lo, hi) ranges, derived from the instruction fields."""
    r, w = [], []
    if isinstance(ins, Load):
        eb = load_entry_beats(cfg, ins.target, ins.expand)
        r.append(("dram", ins.dram_addr, ins.dram_addr + (ins.count - 1) * ins.dram_stride + eb))
        w.append(("wgt" if ins.target == Target.WGT else "act", ins.sp_addr,
                  ins.sp_addr + ins.count))
    elif isinstance(ins, Preload):
        r.append(("wgt", ins.wsp_addr, ins.wsp_addr + cfg.rows))
        w.append(("shadow", 0, 1))
    elif isinstance(ins, Compute):
        r.append(("act", ins.asp_addr, ins.asp_addr + ins.count))
        if ins.swap:
            r.append(("shadow", 0, 1))
        if ins.accumulate:
            r.append(("acc", ins.acc_addr, ins.acc_addr + ins.count))
        w.append(("acc", ins.acc_addr, ins.acc_addr + ins.count))
    elif isinstance(ins, Store):
        eb = store_entry_beats(cfg, ins.requant)
        r.append(("acc", ins.acc_addr, ins.acc_addr + ins.count))
        w.append(("dram", ins.dram_addr, ins.dram_addr + (ins.count - 1) * ins.dram_stride + eb))
    return r, w


def _overlap(a, b):
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def concurrent_hazards(cfg, instrs, seed=0, trials=3):
    """Simulate the core's issue rules with random unit busy times and return the conflicting
    pairs ``(earlier, later)`` whose order the hardware would not guarantee."""
    rng = np.random.default_rng(seed)
    acc = [_accesses(cfg, i) for i in instrs]
    bad = set()
    for _ in range(trials):
        free = {u: 0 for u in (Unit.LOAD, Unit.PRE, Unit.EXEC, Unit.STORE)}
        t = -1
        start, end = [], []
        for ins in instrs:
            u = _UNIT.get(type(ins))
            mask = ins.wait if not (isinstance(ins, Fence) and ins.wait == 0) else Unit.ALL
            t = max([t + 1] + [free[x] for x in free if mask & x]
                    + ([free[u]] if u is not None else []))
            d = int(rng.integers(1, 60))
            start.append(t)
            end.append(t + d if u is not None else t)
            if u is not None:
                free[u] = t + d
        for x in range(len(instrs)):
            rx, wx = acc[x]
            for y in range(x):
                if type(instrs[y]) is type(instrs[x]):
                    continue
                ry, wy = acc[y]
                conflict = any(_overlap(a, b) for a in wy for b in rx + wx) or \
                    any(_overlap(a, b) for a in ry for b in wx)
                if not conflict:
                    continue
                # a swap COMPUTE takes the shadow registers at issue
                if isinstance(instrs[y], Compute) and isinstance(instrs[x], Preload) and \
                        not any(_overlap(a, b) for a in ry + wy for b in wx if a[0] != "shadow"):
                    continue
                if isinstance(instrs[x], Compute) and isinstance(instrs[y], Preload):
                    if end[y] > start[x]:
                        bad.add((y, x))
                    continue
                if end[y] > start[x]:
                    bad.add((y, x))
    return sorted(bad)
