"""Shared checks for the compiler tests: an independent concurrent-hazard checker."""

from __future__ import annotations

import numpy as np
from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit, load_sp_entries
from sparsa.hw.timing import instr_entry_beats, load_solo, store_entry_beats

_UNIT = {Load: Unit.LOAD, Preload: Unit.PRE, Compute: Unit.EXEC, Store: Unit.STORE}


def _accesses(cfg, ins):
    """(reads, writes) as (space, lo, hi) ranges, derived from the instruction fields."""
    r, w = [], []
    if isinstance(ins, Load):
        eb = instr_entry_beats(cfg, ins)
        r.append(("dram", ins.dram_addr, ins.dram_addr + (ins.count - 1) * ins.dram_stride + eb))
        w.append(("wgt" if ins.target == Target.WGT else "act", ins.sp_addr,
                  ins.sp_addr + load_sp_entries(ins)))
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
                need.append(lends[-1] if load_solo(ins) else
                            (lends[-4] if len(lends) >= 4 else 0))
            t = max(need)
            a = int(rng.integers(1, 30))                # request / feed phase
            d = a + int(rng.integers(1, 60))
            e = t + d if u is not None else t
            if u == LOAD:
                e = max(e, lends[-1] + 1) if lends else e
                lends.append(e)
                free[LOAD] = e if load_solo(ins) else t + a
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


class ShapeLayer:
    """A layer known only by its GEMM shape (``dims`` = (P, K, Q[, groups]))."""

    def __init__(self, name, kind, inputs, dims=None, out_elements=0, stationary="weight"):
        self.name, self.kind, self.inputs = name, kind, tuple(inputs)
        self.dims, self.out_elements, self.stationary = dims, out_elements, stationary
        self.attrs = {}

    @property
    def is_gemm(self):
        return self.dims is not None

    def gemm(self):
        from sparsa.compiler.reference import GemmDims
        return GemmDims(*self.dims, stationary=self.stationary)

    def gemm_weight(self):
        return None


class ShapeWorkload:
    def __init__(self, name, layers):
        self.name, self._layers = name, layers

    def layers(self):
        return list(self._layers)


def resnet50_shapes(batch=1):
    """ResNet-50 (224x224) as im2col GEMM shapes with ReLU and add host layers."""
    ls = []
    prev = ["x"]

    def conv(name, h, cin, cout, k, s, relu=True):
        ho = h // s
        ls.append(ShapeLayer(name, "conv", (prev[0],), (batch * ho * ho, cin * k * k, cout)))
        prev[0] = name
        if relu:
            ls.append(ShapeLayer(name + ".relu", "relu", (name,), out_elements=ho * ho * cout))
            prev[0] = name + ".relu"
        return ho

    h = conv("conv1", 224, 3, 64, 7, 2) // 2
    ls.append(ShapeLayer("pool", "maxpool", (prev[0],), out_elements=56 * 56 * 64))
    prev[0] = "pool"
    cin = 64
    for st, (n, mid, s) in enumerate([(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)]):
        for b in range(n):
            blk_in = prev[0]
            ss = s if b == 0 else 1
            conv(f"l{st}b{b}c1", h, cin, mid, 1, 1)
            h2 = conv(f"l{st}b{b}c2", h, mid, mid, 3, ss)
            conv(f"l{st}b{b}c3", h2, mid, mid * 4, 1, 1, relu=False)
            main = prev[0]
            if b == 0:
                prev[0] = blk_in
                conv(f"l{st}b{b}ds", h, cin, mid * 4, 1, ss, relu=False)
            ls.append(ShapeLayer(f"l{st}b{b}.add", "add", (main, prev[0]),
                                 out_elements=h2 * h2 * mid * 4))
            ls.append(ShapeLayer(f"l{st}b{b}.relu", "relu", (f"l{st}b{b}.add",),
                                 out_elements=h2 * h2 * mid * 4))
            prev[0] = f"l{st}b{b}.relu"
            h, cin = h2, mid * 4
    ls.append(ShapeLayer("avgpool", "avgpool", (prev[0],), out_elements=2048))
    ls.append(ShapeLayer("fc", "linear", ("avgpool",), (batch, 2048, 1000)))
    return ShapeWorkload("resnet50-shapes", ls)


def expected_padding_macs(prog):
    """``macs_issued - nonzero_macs`` predicted from the shapes alone (dense and N:M
    patterns, where no tile is skipped): every op streams its ``P`` rows once through each of
    its ``ceil(K/kp) * ceil(Q/cols)`` tiles, ``rows*cols`` MACs per row, so padding is
    ``sum_ops P * (tiles * rows * cols) - sum_layers nonzero_macs``, with ``kp = k_per_pass``
    in sparse mode (``groups * window`` at a narrower window) and ``rows`` in dense mode; a
    GEMM in ``s`` sparse passes has ``s`` weight tiles per K tile; a grouped layer whose
    groups are packed ``pack`` to a GEMM (block-diagonal) has ``groups / pack`` GEMMs of
    ``K = pack_k`` and ``Q * pack``."""
    cfg = prog.config
    issued = 0
    for ly in prog.layers:
        if ly.kind == "host":
            continue
        m = ly.meta
        kp = cfg.act_row_bytes(m["window"][0]) if m["mode"] == ["sparse"] else cfg.rows
        pk = m.get("pack", 1)
        tiles = m.get("passes", 1) * -(-m.get("pack_k", m["K"]) // kp) * \
            -(-m["Q"] * pk // cfg.cols) * m["groups"] // pk
        issued += m["P"] * tiles * cfg.rows * cfg.cols
    return issued - sum(ly.nonzero_macs for ly in prog.layers)


def two_layer_mlp(name, x, hidden, out, spec, seed):
    """``fc1 -> relu -> fc2`` on activations ``x[P, K]`` as a :class:`RefGraph`, evaluated
    at ``spec`` (the small network the RTL tests compile)."""
    from sparsa.compiler.reference import RefGraph
    g = RefGraph(name, x, seed=seed)
    g.linear("fc1", "x", x.shape[1], hidden)
    g.relu("r1", "fc1")
    g.linear("fc2", "r1", hidden, out)
    g.evaluate(spec)
    return g
