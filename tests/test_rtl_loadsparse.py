"""Load-as-sparse on the generated core: ``LOAD WGT expand=1`` expands compressed weight
entries on chip (issue 8). Random compressed weights (colliding indices included, so the
"values of one window add" rule is exercised) are expanded by one or two load-as-sparse
LOADs, then every expanded entry is pulled through PRELOAD / COMPUTE (one-hot activation
rows read back each weight, random rows mix them) / STORE. The final DRAM image and the
write-beat order must equal the reference executor bit for bit, with and without stalls
(the unit back-pressures ``rd_data`` while a window bank drains), and without stalls the
measured cycles must equal :func:`sparsa.hw.schedule.schedule` (the
:func:`sparsa.hw.timing.load_cycles` load-as-sparse formula). A compiled
``sparse_mode="load-sparse"`` linear layer runs bit-exact as well.

Each configuration's tests share the ``xdist_group`` of ``tests/test_rtl_system.py`` so the
Verilator build is made once per configuration and run.
"""

from __future__ import annotations

import numpy as np
import pytest
from sparsa.compiler import compile_workload, read_output
from sparsa.compiler.executor import execute
from sparsa.compiler.options import CompileOptions
from sparsa.compiler.reference import RefGraph
from sparsa.hw import layout
from sparsa.hw.config import PRESETS, AccelConfig
from sparsa.hw.isa import Compute, Load, Preload, Store, Target, Unit
from sparsa.hw.rtl_runner import RtlJob, rtl_available, run_jobs, run_on_rtl
from sparsa.hw.schedule import schedule
from sparsa.hw.timing import instr_cycles, load_entry_beats, store_entry_beats

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not rtl_available(), reason="the core's Verilog generator "
                                 "(sparsa.hw.verilog) is not in this checkout yet")]


def _cfg(name: str):
    return pytest.param(PRESETS[name], id=name, marks=pytest.mark.xdist_group(name))


#: (cmp_n, cmp_m) windows per config: the array's n:m, the sparser 1:m whose drain is slower
#: than the arrivals (cmp_m > cmp_n * entry_beats), a dense window and small ones
WINDOWS = {
    "4x4-n2m4": ((2, 4), (1, 4), (4, 4), (1, 2), (2, 2)),
    "16x16-n2m4": ((2, 4), (1, 4), (3, 4), (1, 2)),
    "8x8-n2m8": ((1, 8), (2, 8), (8, 8), (3, 4)),
}


def sparse_job(cfg: AccelConfig, windows: list[tuple[int, int, int]], seed: int
               ) -> tuple[list, np.ndarray]:
    """One program: a load-as-sparse LOAD per ``(cmp_n, cmp_m, W)`` (back to back, each
    expanding to a whole number of ``rows``-entry tiles), then PRELOAD / COMPUTE / STORE of
    every expanded tile against one-hot and random activation rows."""
    rng = np.random.default_rng(seed)
    bb, R = cfg.beat_bytes, cfg.rows
    eb = load_entry_beats(cfg, Target.WGT, 1)
    eb_act = load_entry_beats(cfg, Target.ACT, 0)
    eb_st = store_entry_beats(cfg, 0)
    beats: list[np.ndarray] = []
    nbeats = 0

    def put(entries: np.ndarray, entry_beats: int, gap: int) -> tuple[int, int]:
        nonlocal nbeats
        per = layout.to_beats(cfg, entries).reshape(len(entries), -1, bb)
        assert per.shape[1] == entry_beats
        stride = entry_beats + gap
        blk = np.zeros((len(entries), stride, bb), np.uint8)
        blk[:, :entry_beats] = per
        blk[:, entry_beats:] = rng.integers(0, 256, (len(entries), gap, bb))
        addr = nbeats
        beats.append(blk.reshape(-1, bb))
        nbeats += len(entries) * stride
        return addr, stride

    prog: list = []
    tiles: list[int] = []
    sp = int(rng.integers(0, 3))
    for cn, cm, w in windows:
        count = w * cn
        vals = rng.integers(-128, 128, (count, cfg.cols)).astype(np.int8)
        idx = rng.integers(0, cm, (count, cfg.cols)).astype(np.uint8)   # collisions add
        addr, stride = put(layout.pack_wgt_entries(cfg, vals, idx), eb, int(rng.integers(0, 2)))
        prog.append(Load(target=Target.WGT, sp_addr=sp, count=count, dram_addr=addr,
                         dram_stride=stride, expand=1, cmp_n=cn, cmp_m=cm,
                         wait=int(Unit.LOAD) if prog else 0))
        nout = w * cm
        assert nout % R == 0, (cn, cm, w)
        tiles += [sp + k * R for k in range(nout // R)]
        sp += nout + int(rng.integers(0, 2))
    # activation rows: one-hot (window r // n, position r % n) reads back weight row r
    act = np.zeros((R + 3, cfg.act_entry_bytes), np.uint8)
    for r in range(R):
        act[r, (r // cfg.n) * cfg.m + r % cfg.n] = 1
    act[R:] = rng.integers(0, 256, (3, cfg.act_entry_bytes))
    p = len(act)
    a_addr, a_stride = put(act, eb_act, 0)
    prog.append(Load(target=Target.ACT, sp_addr=0, count=p, dram_addr=a_addr,
                     dram_stride=a_stride))
    out = nbeats
    nbeats += len(tiles) * p * eb_st
    beats.append(np.zeros((len(tiles) * p * eb_st + 4, bb), np.uint8))
    for k, t in enumerate(tiles):
        acc = (k % 2) * p
        prog += [Preload(wsp_addr=t, wait=int(Unit.LOAD)),
                 Compute(asp_addr=0, acc_addr=acc, count=p, wait=int(Unit.PRE | Unit.STORE)),
                 Store(acc_addr=acc, count=p, dram_addr=out + k * p * eb_st,
                       dram_stride=eb_st, wait=int(Unit.EXEC))]
    return prog, np.concatenate(beats).reshape(-1)


def _jobs(cfg: AccelConfig, seed: int) -> list[tuple[list, np.ndarray]]:
    """Jobs covering every window of :data:`WINDOWS` alone and in pairs of LOADs."""
    rng = np.random.default_rng(seed)
    R = cfg.rows
    wins = WINDOWS[cfg.name]
    out = []
    for i, (cn, cm) in enumerate(wins):
        w1 = R // cm * int(rng.integers(1, 3)) if cm <= R else R
        cn2, cm2 = wins[(i + 1) % len(wins)]
        w2 = R // cm2
        out.append(sparse_job(cfg, [(cn, cm, w1)], seed * 100 + i))
        out.append(sparse_job(cfg, [(cn, cm, w1), (cn2, cm2, w2)], seed * 100 + 50 + i))
    return out


CONFIGS = [_cfg(n) for n in WINDOWS]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_load_sparse_bit_exact_and_cycles(cfg):
    cases = _jobs(cfg, 7)
    refs = [execute(cfg, prog, dram) for prog, dram in cases]
    # the reference really expands: every tile's one-hot rows read back non-zero weights
    assert all(r.stats.sp_entries["wgt"] > 0 for r in refs)
    for stalls in ("none", "random"):
        jobs = [RtlJob(prog, dram, expected=ref.dram,
                       exp_writes=(ref.write_addrs, ref.write_data))
                for (prog, dram), ref in zip(cases, refs, strict=True)]
        res = run_jobs(cfg, jobs, stalls=stalls, seed=3, name=f"loadsparse-{stalls}")
        for (prog, _), ref, r in zip(cases, refs, res, strict=True):
            np.testing.assert_array_equal(r.dram, ref.dram)
            if stalls == "none":
                assert r.cycles == schedule(cfg, prog).total, [
                    (i, instr_cycles(cfg, i)) for i in prog if isinstance(i, Load)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_load_sparse_load_cycles_alone(cfg):
    """Single load-as-sparse LOADs: measured busy cycles == the formula + the issue cycle
    accounting of :func:`schedule` (both regimes: drain faster and slower than arrival)."""
    jobs, want = [], []
    for cn, cm in WINDOWS[cfg.name]:
        for w in (1, 4):
            prog, dram = sparse_job(cfg, [(cn, cm, w * cfg.rows // cm if cm <= cfg.rows
                                           else w)], 1)
            prog = prog[:1]
            jobs.append(RtlJob(prog, dram))
            want.append((f"{cn}:{cm} count={prog[0].count}", schedule(cfg, prog).total,
                         instr_cycles(cfg, prog[0])))
    res = run_jobs(cfg, jobs, stalls="none", name="loadsparse-timing")
    bad = [(lbl, r.cycles, s) for (lbl, s, _), r in zip(want, res, strict=True)
           if r.cycles != s]
    assert not bad, bad
    assert any(cm > cn * load_entry_beats(cfg, Target.WGT, 1)
               for cn, cm in WINDOWS[cfg.name])


@pytest.mark.parametrize("cfg", [_cfg("4x4-n2m4"), _cfg("16x16-n2m4")])
def test_compiled_load_sparse_linear(cfg):
    """A compiled ``sparse_mode="load-sparse"`` linear layer (2:4 weights): bit-exact."""
    rng = np.random.default_rng(8)
    g = RefGraph("ls-linear", rng.integers(-128, 128, (6, 64)).astype(np.int8), seed=8)
    g.linear("fc", "x", 64, 32)
    g.evaluate("2:4")
    prog = compile_workload(g, cfg, sparsity="2:4", seed=8,
                            options=CompileOptions(sparse_mode="load-sparse"))
    assert any(isinstance(i, Load) and i.target == Target.WGT and i.expand
               for i in prog.instructions)
    ex = execute(cfg, prog.instructions, prog.dram)
    res = run_on_rtl(prog, expected=ex.dram, exp_writes=(ex.write_addrs, ex.write_data))
    np.testing.assert_array_equal(res.dram, ex.dram)
    np.testing.assert_array_equal(read_output(prog, res.dram, "fc.y"), g.gemm_out["fc"][0])
    assert res.cycles == schedule(cfg, prog.instructions).total
    print(f"{cfg.name}: {len(prog.instructions)} instructions, {res.cycles} cycles")
