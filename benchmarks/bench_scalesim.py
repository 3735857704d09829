"""SCALE-Sim 3.0.0 vs sparsa's SCALE-Sim parity preset on the same topology files.

Run: ``.venv/bin/python benchmarks/bench_scalesim.py [--rows 32 --cols 32 --dataflow ws]
[--topology FILE ...]``. Creates its own virtual environment ``build/scalesim-venv`` with
``scalesim==3.0.0`` and ``numpy<2`` on first use, runs SCALE-Sim (ideal-bandwidth ``CALC``
mode, traces off; SCALE-Sim needs a layout file even with custom layouts off, so the
topology file itself is passed) on ResNet-18 and the NCF GEMM topology, runs
:func:`sparsa.sim.scalesim_parity.simulate_topology` on the same files, and prints
per-layer cycles side by side, the largest relative error and the wall-time ratio (SCALE-Sim's
ResNet-18 time goes to ``build/scalesim-resnet18-seconds.txt`` for ``bench_sim.py``). When
:func:`sparsa.workloads.load_workload` imports SCALE-Sim topologies, it also times the full
sparsa model (compile without data + SimPy) on the same file.

SCALE-Sim takes minutes and several GB on ResNet-18; this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sparsa.sim.scalesim_parity import read_topology, simulate_topology

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / "scalesim-venv"
REF = Path("/work/shared/ref/scalesim/topologies")

CFG = """[general]
run_name = sparsa_parity

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    6144
FilterSramSzkB:   6144
OfmapSramSzkB:    2048
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : {df}
Bandwidth : 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

RUNNER = """
import sys
from scalesim.scale_sim import scalesim
cfg, topo, out, gemm = sys.argv[1:5]
s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=topo,
             input_type_gemm=gemm == "1")
s.run_scale(top_path=out)
"""


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import scalesim"],
                                        capture_output=True).returncode == 0
    if not ok:
        print(f"creating {VENV} with scalesim==3.0.0 ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "scalesim==3.0.0",
                        "numpy<2"], check=True)
    return py


def run_scalesim(py: Path, topo: Path, rows: int, cols: int, df: str,
                 fresh: bool = False) -> tuple[list[int], float]:
    """SCALE-Sim's per-layer ``Total Cycles`` and wall time; cached in ``build/scalesim-cache``
    by topology content and array (``fresh`` re-runs)."""
    text = topo.read_text()
    key = hashlib.sha1(f"{text}|{rows}|{cols}|{df}|3.0.0".encode()).hexdigest()[:16]
    cache = ROOT / "build" / "scalesim-cache" / f"{topo.stem}-{key}.json"
    if cache.exists() and not fresh:
        d = json.loads(cache.read_text())
        print(f"(SCALE-Sim results from {cache.relative_to(ROOT)}, measured {d['date']}; "
              f"--fresh re-runs)")
        return d["cycles"], d["seconds"]
    cycles, secs = _run_scalesim(py, topo, rows, cols, df)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"cycles": cycles, "seconds": secs,
                                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}))
    return cycles, secs


def _run_scalesim(py: Path, topo: Path, rows: int, cols: int, df: str) -> tuple[list[int], float]:
    head = topo.read_text().splitlines()[0].replace(" ", "").lower()
    gemm = "1" if head.startswith("layer,m,n,k") else "0"
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        cfg = Path(tmp) / "scale.cfg"
        cfg.write_text(CFG.format(rows=rows, cols=cols, df=df))
        t0 = time.perf_counter()
        subprocess.run([str(py), "-c", RUNNER, str(cfg), str(topo), tmp, gemm], check=True,
                       stdout=subprocess.DEVNULL)
        secs = time.perf_counter() - t0
        (report,) = Path(tmp).glob("*/COMPUTE_REPORT.csv")
        with open(report) as f:
            rows_ = list(csv.reader(f))[1:]
        return [int(r[2]) for r in rows_ if r], secs


def full_model_seconds(topo: Path, rows: int, cols: int) -> float | None:
    """Wall time of the full sparsa model (compile without data + SimPy) on the file."""
    try:
        from sparsa.hw.config import PRESETS, AccelConfig
        from sparsa.sim.api import run_point
        cfg = next((c for c in PRESETS.values() if (c.rows, c.cols) == (rows, cols)), None)
        if cfg is None:
            cfg = AccelConfig(name=f"{rows}x{cols}", rows=rows, cols=cols)
        t0 = time.perf_counter()
        run_point(str(topo), cfg, "dense", options={"baseline": False})
        return time.perf_counter() - t0
    except Exception as e:   # the importer may not have landed: say so, do not fail
        print(f"  (full sparsa model not timed: {type(e).__name__}: {e})")
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--dataflow", default="ws", choices=["ws", "os", "is"])
    ap.add_argument("--topology", action="append", default=None)
    ap.add_argument("--fresh", action="store_true", help="Ignore cached SCALE-Sim results.")
    a = ap.parse_args()
    topos = [Path(t) for t in (a.topology or [REF / "Resnet18.csv", REF / "NCF.csv"])]
    os.makedirs(ROOT / "build", exist_ok=True)
    py = ensure_venv()
    for topo in topos:
        print(f"\n== {topo.name} on {a.rows}x{a.cols} {a.dataflow.upper()}")
        ss, ss_s = run_scalesim(py, topo, a.rows, a.cols, a.dataflow, a.fresh)
        t0 = time.perf_counter()
        ours = simulate_topology(topo, a.rows, a.cols, a.dataflow)
        ours_s = time.perf_counter() - t0
        if len(ours) != len(ss):
            raise SystemExit(f"{topo}: SCALE-Sim reported {len(ss)} layers, "
                             f"sparsa read {len(ours)}")
        print(f"{'layer':<16}{'SCALE-Sim':>12}{'sparsa':>12}{'error':>10}")
        worst = 0.0
        for r, c in zip(ours, ss, strict=True):
            err = (r["cycles"] - c) / c
            worst = max(worst, abs(err))
            print(f"{r['layer']:<16}{c:>12}{r['cycles']:>12}{err:>10.3%}")
        print(f"total             {sum(ss):>10}{sum(r['cycles'] for r in ours):>12}")
        if topo.name.lower() == "resnet18.csv" and (a.rows, a.cols, a.dataflow) == (32, 32, "ws"):
            (ROOT / "build" / "scalesim-resnet18-seconds.txt").write_text(f"{ss_s:.1f}\n")
        print(f"max |error| {worst:.4%}; SCALE-Sim {ss_s:.1f} s, sparsa parity preset "
              f"{ours_s:.3f} s: {ss_s / max(ours_s, 1e-9):.0f}x faster")
        full = full_model_seconds(topo, a.rows, a.cols)
        if full is not None:
            print(f"full sparsa model (compile + SimPy, {len(read_topology(topo))} layers) "
                  f"{full:.2f} s: {ss_s / full:.0f}x faster than SCALE-Sim")


if __name__ == "__main__":
    main()
