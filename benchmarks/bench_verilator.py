"""Verilator simulation throughput (simulated cycles per wall-clock second) of the generated
core driven by the cocotb bench, on a long compute sequence (no stalls).

Run: ``.venv/bin/python benchmarks/bench_verilator.py [--config 16x16-n2m4] [--k 2048]``
"""

from __future__ import annotations

import argparse
import time

from sparsa.compiler.executor import execute
from sparsa.hw.config import resolve_config
from sparsa.hw.rtl_runner import RtlJob, build_rtl, run_jobs

from sparsa.rtl_suite import speedup_programs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="16x16-n2m4")
    ap.add_argument("--k", type=int, default=2048, help="GEMM K (longer = more cycles)")
    args = ap.parse_args()
    cfg = resolve_config(args.config)
    t0 = time.perf_counter()
    build_rtl(cfg)
    print(f"build (or cache hit) of {cfg.name}: {time.perf_counter() - t0:.1f} s")
    prog, _ = speedup_programs(cfg, f"{cfg.n}:{cfg.m}", 128, args.k, 4 * cfg.cols)["dense"]
    ref = execute(cfg, prog.instructions, prog.dram)
    # a 1-instruction job first measures the simulator's fixed start-up cost
    t0 = time.perf_counter()
    run_jobs(cfg, [RtlJob(prog.instructions[:1], prog.dram)], name="bench-startup")
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    (res,) = run_jobs(cfg, [RtlJob(prog.instructions, prog.dram, expected=ref.dram)],
                      name="bench")
    wall = time.perf_counter() - t0 - startup
    print(f"{cfg.name}: {len(prog.instructions)} instructions, {res.sim_cycles} cycles "
          f"in {wall:.2f} s (start-up {startup:.2f} s excluded): "
          f"{res.sim_cycles / wall:,.0f} cycles/s")


if __name__ == "__main__":
    main()
