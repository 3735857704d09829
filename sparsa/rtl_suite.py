"""Shared pieces of the RTL system tests (used by tests/test_rtl_*.py and `sparsa verify`).

Jobs are GEMM tile programs from :mod:`sparsa.compiler.tilegen`; the reference is the
numpy executor (final image + write-beat sequence for the in-order checker), and the
decoded outputs are additionally compared with plain ``X @ W``.
"""

from __future__ import annotations

import numpy as np

from sparsa.compiler.executor import execute
from sparsa.compiler.tilegen import (
    build_gemm_program,
    expected_output,
    random_gemm_specs,
    read_outputs,
)
from sparsa.hw.config import AccelConfig
from sparsa.hw.rtl_runner import RtlJob, run_jobs

__all__ = ["MODES", "tile_jobs", "run_tiles", "timing_cases", "run_timing",
           "SPEEDUP_GEMMS", "NARROW_SPEEDUP_GEMM", "speedup_programs", "run_speedup"]

#: Sparsity modes run on each preset of the suite (2:4 on the m = 8 core runs at window 4).
MODES = {
    "4x4-n2m4": ("dense", "2:4", "1:4"),
    "8x8-n2m8": ("dense", "2:8", "1:8", "2:4"),
    "16x16-n2m4": ("dense", "2:4", "1:4"),
}


def tile_jobs(cfg: AccelConfig, mode: str, tiles: int, seed: int, per_job: int = 8):
    """Random tile programs for ``mode`` split into jobs; returns ``(jobs, checks)``."""
    rng = np.random.default_rng(seed)
    jobs, checks = [], []
    left = tiles
    j = 0
    while left > 0:
        n = min(per_job, left)
        specs = random_gemm_specs(cfg, rng, n, mode, max_p=10 if cfg.rows >= 16 else 12)
        prog = build_gemm_program(cfg, specs, seed=seed * 1000 + j)
        ref = execute(cfg, prog.instructions, prog.dram)
        jobs.append(RtlJob(prog.instructions, prog.dram, expected=ref.dram,
                           exp_writes=(ref.write_addrs, ref.write_data)))
        checks.append((prog, specs))
        left -= n
        j += 1
    return jobs, checks


def run_tiles(cfg: AccelConfig, modes, tiles_per_mode: int, *, stalls: str, seed: int,
              reset_midway: bool = True) -> dict:
    """Run random tiles of every mode in one simulation; return a summary.

    With ``reset_midway`` the first job of the run is aborted by a reset partway through and
    must be followed by correct runs. Raises ``RtlMismatch`` on any difference.
    """
    jobs, checks = [], []
    for i, mode in enumerate(modes):
        js, cs = tile_jobs(cfg, mode, tiles_per_mode, seed + 17 * i)
        jobs += js
        checks += [(mode, *c) for c in cs]
    if reset_midway and jobs:
        aborted = RtlJob(jobs[0].instructions, jobs[0].dram, abort_at=60)
        jobs.insert(0, aborted)
        checks.insert(0, None)
    results = run_jobs(cfg, jobs, stalls=stalls, seed=seed, name=f"tiles-{stalls}")
    tiles = {m: 0 for m in modes}
    cycles = 0
    for chk, res in zip(checks, results, strict=True):
        if chk is None:
            assert res is None
            continue
        mode, prog, specs = chk
        got = read_outputs(prog, res.dram)
        for spec, y in zip(specs, got, strict=True):
            np.testing.assert_array_equal(y, expected_output(cfg, spec))
        tiles[mode] += len(specs)
        cycles += res.sim_cycles
    return {"tiles": tiles, "cycles": cycles, "jobs": len(jobs),
            "wall_s": results[-1].extra["wall_s"] if results else 0.0}


# ---- timing ------------------------------------------------------------------------------
def timing_cases(cfg: AccelConfig) -> list[tuple[str, list, np.ndarray]]:
    """Programs whose measured cycles must equal :func:`sparsa.hw.schedule.schedule`:
    every instruction kind alone at several sizes, and dependent chains."""
    from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit

    bb = cfg.beat_bytes
    rng = np.random.default_rng(5)
    dram = rng.integers(0, 256, size=4096 * bb, dtype=np.uint8)
    r = cfg.rows
    cases: list[tuple[str, list]] = []
    for n in (1, 5, 16):
        cases.append((f"LOAD act count={n}", [Load(target=Target.ACT, count=n, dram_addr=8,
                                                   dram_stride=load_beats(cfg, 0))]))
    for n in (1, 7):
        cases.append((f"LOAD act expand count={n}", [Load(target=Target.ACT, count=n, expand=1,
                                                          dram_stride=3)]))
    for w in cfg.windows:
        if cfg.n < w < cfg.m:     # narrow sparse windows: compact rows of groups*w bytes
            cases.append((f"LOAD act expand window={w} count=6",
                          [Load(target=Target.ACT, count=6, expand=1, cmp_m=w,
                                dram_stride=load_beats(cfg, 1, w))]))
    for n in (3, r):
        cases.append((f"LOAD wgt count={n}", [Load(target=Target.WGT, count=n, dram_addr=100,
                                                   dram_stride=4)]))
    for cn, cm, w in sparse_windows(cfg):
        cases.append((f"LOAD wgt load-sparse {cn}:{cm} windows={w}",
                      [Load(target=Target.WGT, count=w * cn, dram_addr=40, dram_stride=3,
                            expand=1, cmp_n=cn, cmp_m=cm)]))
    cases.append(("PRELOAD", [Preload(wsp_addr=r)]))
    for n in (1, 8, 33):
        cases.append((f"COMPUTE count={n}", [Compute(count=n, accumulate=int(n > 1))]))
    for n, rq in ((1, 0), (6, 0), (1, 1), (9, 1)):
        cases.append((f"STORE count={n} requant={rq}",
                      [Store(count=n, dram_addr=2000, dram_stride=5, requant=rq, shift=3)]))
    cases.append(("FENCE", [Fence()]))
    cases.append(("chain LOAD>PRE>COMPUTE>STORE", [
        Load(target=Target.WGT, count=r, dram_addr=100),
        Preload(wait=Unit.LOAD), Compute(count=4, wait=Unit.PRE),
        Store(count=4, dram_addr=2000, wait=Unit.EXEC)]))
    cases.append(("overlap PRELOAD || COMPUTE", [
        Preload(), Compute(count=20, wait=Unit.PRE), Preload(wsp_addr=r),
        Compute(count=3, wait=Unit.PRE | Unit.EXEC), Fence(), Store(count=2, dram_addr=2000)]))
    # the pipelined units (ISA v4)
    cases.append(("COMPUTE back to back (one row apart)", [
        Compute(count=5), Compute(count=1, swap=0, acc_addr=0, accumulate=1),
        Compute(count=0, swap=0), Compute(count=3, swap=0, accumulate=1)]))
    cases.append(("PRELOAD after the swap wave", [
        Compute(count=2), Preload(wsp_addr=r), Compute(count=1, wait=Unit.PRE)]))
    for k in (0, 1, 2):
        cases.append((f"STORE exec_slack={k}", [
            Compute(count=6), Compute(count=4, swap=0, acc_addr=8), Compute(count=2, swap=0),
            Store(count=3, dram_addr=2000, wait=Unit.EXEC, exec_slack=k),
            Compute(count=2, swap=0)]))
    cases.append(("LOADs back to back (data in order)", [
        Load(target=Target.ACT, count=3, dram_addr=8), Load(target=Target.WGT, count=2),
        Load(target=Target.ACT, count=1, expand=1), Load(target=Target.ACT, count=0),
        Load(target=Target.WGT, count=r, dram_addr=64), Load(target=Target.ACT, count=2)]))
    cases.append(("LOAD queue full", [Load(target=Target.ACT, count=1, dram_addr=8 * i)
                                      for i in range(7)]))
    for k in (0, 1, 2):
        cases.append((f"PRELOAD/COMPUTE load_slack={k}", [
            Load(target=Target.WGT, count=r), Load(target=Target.ACT, count=9),
            Load(target=Target.ACT, count=4, dram_addr=40),
            Preload(wait=Unit.LOAD, load_slack=k), Compute(count=3, wait=Unit.PRE | Unit.LOAD,
                                                           load_slack=k)]))
    return [(label, prog, dram) for label, prog in cases]


def sparse_windows(cfg: AccelConfig) -> list[tuple[int, int, int]]:
    """``(cmp_n, cmp_m, windows)`` of the load-as-sparse LOAD timing cases: a window drained
    slower than it arrives (``1:m``), the array's own ``n:m``, a dense ``m:m`` window and
    ``1:2`` (the formula's two regimes on every config)."""
    out = [(1, cfg.m, 3), (cfg.n, cfg.m, 2), (cfg.m, cfg.m, 2), (1, 2, 5)]
    return list(dict.fromkeys(out))


def load_beats(cfg: AccelConfig, expand: int, win: int = 0) -> int:
    from sparsa.hw.isa import Target
    from sparsa.hw.timing import load_entry_beats
    return load_entry_beats(cfg, Target.ACT, expand, win)


def run_timing(cfg: AccelConfig) -> list[dict]:
    """Run :func:`timing_cases` without stalls; rows of label, measured and formula cycles."""
    from sparsa.hw.schedule import schedule

    cases = timing_cases(cfg)
    # timing only: scratchpads keep state across jobs in the RTL, so no image check here
    jobs = [RtlJob(prog, dram) for _, prog, dram in cases]
    results = run_jobs(cfg, jobs, stalls="none", name="timing")
    return [{"label": label, "measured": res.cycles, "formula": schedule(cfg, prog).total,
             "sim_cycles": res.sim_cycles}
            for (label, prog, _), res in zip(cases, results, strict=True)]


# ---- sparse speed-up ---------------------------------------------------------------------
SPEEDUP_GEMMS = {"16x16-n2m4": ("2:4", 128, 1024, 64, 0.52),
                 "8x8-n2m8": ("2:8", 64, 512, 32, 0.27)}


def speedup_programs(cfg: AccelConfig, mode: str, P: int, K: int, Q: int, seed: int = 0):
    """The same K-long GEMM compiled sparse (``mode``) and dense; returns both programs."""
    from sparsa.compiler.tilegen import GemmSpec, random_nm_weights
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (P, K)).astype(np.int8)
    n, m = (int(v) for v in mode.split(":"))
    w = random_nm_weights(rng, K, Q, n, m)
    progs = {}
    for md in (mode, "dense"):
        spec = GemmSpec(x=x, w=w, mode=md, requant=1, shift=10)
        progs[md] = (build_gemm_program(cfg, [spec], seed=seed), spec)
    return progs


#: A narrow window: 2:4 on the m = 8 core runs at window 4, its ideal 0.5x of dense.
NARROW_SPEEDUP_GEMM = ("2:4", 64, 512, 32, 0.52)


def run_speedup(cfg: AccelConfig, gemm: tuple | None = None) -> dict:
    """Measure sparse vs dense cycles of :data:`SPEEDUP_GEMMS` for ``cfg`` (or ``gemm``:
    ``(mode, P, K, Q, bound)``) on the RTL."""
    mode, P, K, Q, bound = gemm or SPEEDUP_GEMMS[cfg.name]
    progs = speedup_programs(cfg, mode, P, K, Q)
    jobs = []
    for prog, _ in progs.values():
        ref = execute(cfg, prog.instructions, prog.dram)
        jobs.append(RtlJob(prog.instructions, prog.dram, expected=ref.dram,
                           exp_writes=(ref.write_addrs, ref.write_data)))
    res = run_jobs(cfg, jobs, stalls="none", name="speedup")
    out = {}
    for (md, (prog, spec)), r in zip(progs.items(), res, strict=True):
        np.testing.assert_array_equal(read_outputs(prog, r.dram)[0], expected_output(cfg, spec))
        out[md] = r.cycles
    return {"mode": mode, "sparse": out[mode], "dense": out["dense"],
            "ratio": out[mode] / out["dense"], "bound": bound,
            "wall_s": res[0].extra["wall_s"]}
