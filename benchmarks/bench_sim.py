"""Speed of the SimPy model on whole networks (targets from issue 5).

Run: ``.venv/bin/python benchmarks/bench_sim.py [--repeat N]``. Prints, for

* ``sparsa simulate resnet50`` on 16x16-n2m4 at 2:4 (target < 5 s in total), and
* ResNet-18 on 32x32-n2m4, weight-stationary, dense (target < 2 s in total),

the compile time (without data), the time to build the op stream, the SimPy run, the
per-layer/energy breakdown, the total, the simulated cycles and SimPy events per second;
the best of ``--repeat`` runs, with the process CPU time next to the wall time (wall well
above CPU means the machine was busy). Then the same two runs end to end through the CLI
in a fresh process (``sparsa simulate ...``: interpreter start-up, imports and the printed
tables included). When ``benchmarks/bench_scalesim.py`` has run, the ratio to SCALE-Sim's
wall time on its ResNet-18 topology is printed too. Next to every figure, and last, a
machine reference: the best of a few runs of a fixed pure-Python loop (``reference_loop``),
so that figures taken on machines of different speed -- or on one machine whose speed
drifts, as this 2-core one does by up to 3x within minutes -- can be compared (the
compiler and the model are pure Python and scale with it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from sparsa.compiler import compile_workload
from sparsa.hw.config import PRESETS
from sparsa.sim.api import _breakdown
from sparsa.sim.energy import resolve_energy_table
from sparsa.sim.model import CoreModel, ops_from_program

ROOT = Path(__file__).resolve().parents[1]
CASES = [("resnet50", "16x16-n2m4", "2:4", 5.0), ("resnet18", "32x32-n2m4", "dense", 2.0)]


def one(workload: str, preset: str, spec: str) -> dict[str, float]:
    cfg = PRESETS[preset]
    c0 = time.process_time()
    t0 = time.perf_counter()
    prog = compile_workload(workload, cfg, sparsity=spec, with_data=False)
    t1 = time.perf_counter()
    ops = ops_from_program(prog)
    t2 = time.perf_counter()
    model = CoreModel(cfg, ops)
    st = model.run()
    t3 = time.perf_counter()
    _breakdown(cfg, ops, st, resolve_energy_table(cfg.energy_table))
    t4 = time.perf_counter()
    return {"cpu": time.process_time() - c0, "compile": t1 - t0, "ops": t2 - t1, "simpy": t3 - t2, "report": t4 - t3,
            "total": t4 - t0, "cycles": st.total, "instructions": len(ops),
            "events": next(model.env._eid)}   # SimPy numbers every scheduled event


def reference_loop() -> float:
    """Seconds for a fixed pure-Python workload (10 M additions in a loop): how fast this
    machine runs the interpreter today."""
    t0 = time.perf_counter()
    x = 0
    for i in range(10_000_000):
        x += i
    return time.perf_counter() - t0


def _ref(runs: int = 2) -> float:
    return min(reference_loop() for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    ss_file = ROOT / "build" / "scalesim-resnet18-seconds.txt"
    for workload, preset, spec, target in CASES:
        ref = _ref()
        best = min((one(workload, preset, spec) for _ in range(a.repeat)),
                   key=lambda r: r["total"])
        sim_s = best["ops"] + best["simpy"] + best["report"]
        print(f"{workload} {spec} on {preset}: total {best['total']:.2f} s "
              f"(target < {target:g} s: {'met' if best['total'] < target else 'MISSED'}) = "
              f"compile {best['compile']:.2f} + ops {best['ops']:.2f} + SimPy "
              f"{best['simpy']:.2f} + report {best['report']:.2f}; {best['instructions']} "
              f"instructions, {best['events']} SimPy events "
              f"({best['cpu']:.2f} s CPU) "
              f"({best['events'] / best['simpy'] / 1e3:.0f} k/s), {best['cycles']} cycles; "
              f"machine reference just before: {ref:.2f} s")
        if workload == "resnet18" and not ss_file.exists():
            print("  (the ratio to SCALE-Sim's wall time on its ResNet-18 topology is printed "
                  "here once benchmarks/bench_scalesim.py has run: it installs scalesim "
                  "3.0.0 into build/scalesim-venv and times it, a few minutes)")
        elif workload == "resnet18":
            ss = float(ss_file.read_text())
            print(f"  SCALE-Sim 3.0.0 on Resnet18.csv (32x32 WS): {ss:.0f} s -> sparsa "
                  f"{ss / best['total']:.0f}x faster in total, {ss / sim_s:.0f}x for the "
                  f"model alone")
    for workload, preset, spec, target in CASES:
        cmd = [sys.executable, "-m", "sparsa", "simulate", workload, "--config", preset,
               "--sparsity", spec]
        walls = []
        ref = _ref()
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
        print(f"CLI end to end: sparsa simulate {workload} --config {preset} --sparsity "
              f"{spec}: {min(walls):.2f} s (best of {a.repeat}; target < {target:g} s: "
              f"{'met' if min(walls) < target else 'MISSED'}; machine reference just "
              f"before: {ref:.2f} s)")
    print(f"machine reference: {_ref(3):.2f} s for 10 M "
          f"pure-Python loop additions (compare with the reference next to figures taken "
          f"elsewhere)")


if __name__ == "__main__":
    main()
