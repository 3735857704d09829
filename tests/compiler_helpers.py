"""Shared checks for the compiler tests: an independent concurrent-hazard checker."""

from __future__ import annotations

import numpy as np
from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit
from sparsa.hw.timing import instr_entry_beats, store_entry_beats

_UNIT = {Load: Unit.LOAD, Preload: Unit.PRE, Compute: Unit.EXEC, Store: Unit.STORE}


def _accesses(cfg, ins):
    """(reads, writes) as (space, lo, hi) ranges, derived from the instruction fields."""
    r, w = [], []
    if isinstance(ins, Load):
        eb = instr_entry_beats(cfg, ins)
        r.append(("dram", ins.dram_addr, ins.dram_addr + (ins.count - 1) * ins.dram_stride + eb))
        n_sp = ins.count // ins.cmp_n * ins.cmp_m if ins.cmp_n else ins.count  # load-sparse
        w.append(("wgt" if ins.target == Target.WGT else "act", ins.sp_addr,
                  ins.sp_addr + n_sp))
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


def _read_done(ins, region, fed, swapped, end):
    """When instruction ``ins`` has done its reads of ``region``."""
    if isinstance(ins, Compute):
        return {"act": fed, "shadow": swapped}.get(region[0], end)
    return end


def concurrent_hazards(cfg, instrs, seed=0, trials=3):
    """Simulate the core's ISA v4 issue rules with random unit latencies and return the
    conflicting pairs ``(earlier, later)`` whose order the hardware would not guarantee.

    Independent of the compiler's emitter and of ``hw.schedule``: LOAD and EXEC are
    pipelined (random request/feed phases, completions in order, at most ``LOAD_QUEUE``
    LOADs outstanding), waits follow the ``load_slack``/``exec_slack`` rules, a PRELOAD
    waits for the last swap's wave. A COMPUTE has read its activation rows when its feed
    ends, its shadow registers when its swap wave has passed, its accumulators (and written
    them) when it ends; every other instruction has done everything when it ends."""
    rng = np.random.default_rng(seed)
    acc = [_accesses(cfg, i) for i in instrs]
    bad = set()
    LOAD, PRE, EXEC, STORE = Unit.LOAD, Unit.PRE, Unit.EXEC, Unit.STORE
    for _ in range(trials):
        wave = int(rng.integers(1, 40))
        free = {LOAD: 0, PRE: 0, EXEC: 0, STORE: 0}   # the unit accepts its next op
        lends: list[int] = []
        cends: list[int] = []
        swap_clear = 0
        t = -1
        start, end, fed, swapped = [], [], [], []
        for ins in instrs:
            u = _UNIT.get(type(ins))
            fence = isinstance(ins, Fence)
            mask = Unit.ALL if fence and ins.wait == 0 else Unit(ins.wait)
            need = [t + 1]
            if mask & LOAD:
                k = getattr(ins, "load_slack", 0)
                need.append(lends[-1 - k] if k < len(lends) else 0)
            if mask & EXEC:
                if isinstance(ins, Store) or fence:
                    k = ins.exec_slack if isinstance(ins, Store) else 0
                    need.append(cends[-1 - k] if k < len(cends) else 0)
                else:
                    need.append(free[EXEC])
            need += [free[x] for x in (PRE, STORE) if mask & x]
            if u is not None:
                need.append(free[u])
            if u == PRE:
                need.append(swap_clear)
            if u == LOAD and lends:
                solo = ins.count == 0 or (ins.target == Target.WGT and ins.expand)
                need.append(lends[-1] if solo else (lends[-4] if len(lends) >= 4 else 0))
            t = max(need)
            a = int(rng.integers(1, 30))                # request / feed phase
            d = a + int(rng.integers(1, 60))
            e = t + d if u is not None else t
            if u == LOAD:
                e = max(e, lends[-1] + 1) if lends else e
                lends.append(e)
                free[LOAD] = e if ins.count == 0 or (ins.target == Target.WGT and ins.expand) \
                    else t + a
            elif u == EXEC:
                e = max(e, cends[-1] + 1) if cends else e
                cends.append(e)
                free[EXEC] = t + a
                if ins.swap:
                    swap_clear = max(swap_clear, t + wave)
            elif u is not None:
                free[u] = e
            start.append(t)
            end.append(e)
            fed.append(t + a if u == EXEC else e)
            swapped.append(t + wave if u == EXEC else e)

        active: list[int] = []
        for x in range(len(instrs)):
            active = [y for y in active if end[y] > start[x]]
            rx, wx = acc[x]
            for y in active:
                if type(instrs[y]) is type(instrs[x]):
                    continue                # one unit: in order
                ry, wy = acc[y]
                raw_waw = any(_overlap(a, b) for a in wy for b in rx + wx) and end[y] > start[x]
                if raw_waw or any(_overlap(a, b) and _read_done(instrs[y], a, fed[y], swapped[y],
                                                                end[y]) > start[x]
                                  for a in ry for b in wx):
                    bad.add((y, x))
            active.append(x)
    return sorted(bad)
