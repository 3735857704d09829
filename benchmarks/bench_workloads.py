"""Time the workload front end: zoo builds, training expansion, ONNX export/import, SCALE-Sim
import and synthetic weight generation (prints figures).

Run: ``.venv/bin/python benchmarks/bench_workloads.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sparsa.workloads import ZOO_NAMES, load_workload
from sparsa.workloads.onnx_export import export_onnx

ROOT = Path(__file__).resolve().parents[1]


def _t(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def main() -> None:
    print(f"{'workload':<14}{'build s':>9}{'train s':>9}{'onnx out s':>12}{'onnx in s':>11}"
          f"{'onnx KB':>9}{'GMAC':>9}")
    with tempfile.TemporaryDirectory() as d:
        for name in ZOO_NAMES:
            wl, tb = _t(load_workload, name)
            _, tt = _t(wl.expand_training)
            p = Path(d) / f"{name}.onnx"
            _, te = _t(export_onnx, wl, p)
            back, ti = _t(load_workload, str(p))
            assert back.total_macs == wl.total_macs
            print(f"{name:<14}{tb:>9.3f}{tt:>9.3f}{te:>12.3f}{ti:>11.3f}"
                  f"{p.stat().st_size / 1024:>9.1f}{wl.total_macs / 1e9:>9.3f}")
    for topo in sorted((ROOT / "tests" / "data" / "scalesim").glob("*.csv")):
        wl, t = _t(load_workload, str(topo))
        print(f"SCALE-Sim {topo.name:<14} {len(wl.layers()):>3} layers  {t:.3f} s  "
              f"{wl.total_macs / 1e9:.3f} GMAC")
    wl = load_workload("resnet50")
    t0 = time.perf_counter()
    n = sum(ly.gemm_weight(stacked=True).size for ly in wl.gemm_layers())
    print(f"synthetic int8 weights of resnet50: {n / 1e6:.1f} M values in "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
