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


# ---- layer-shape workloads (the workload layer protocol from GEMM shapes) ----------------
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
    in sparse mode (``groups * window`` at a narrower window) and ``rows`` in dense mode."""
    cfg = prog.config
    issued = 0
    for ly in prog.layers:
        if ly.kind == "host":
            continue
        m = ly.meta
        kp = cfg.act_row_bytes(m["window"][0]) if m["mode"] == ["sparse"] else cfg.rows
        tiles = -(-m["K"] // kp) * -(-m["Q"] // cfg.cols) * m["groups"]
        issued += m["P"] * tiles * cfg.rows * cfg.cols
    return issued - sum(ly.nonzero_macs for ly in prog.layers)
