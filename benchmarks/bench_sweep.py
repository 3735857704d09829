"""Sweep throughput: a >= 200-point design space over ResNet-50 and BERT-base.

Runs the same sweep (configs x sparsity x dataflow x workload, with area) twice, on the
local process pool and on a Dask ``LocalCluster`` with the same number of worker processes,
prints points/second of each, and checks that both give identical result tables (wall-time
columns aside). Usage::

    python benchmarks/bench_sweep.py [--workers 2] [--out build/bench-sweep] [--quick]

``--quick`` runs a 24-point subset (a smoke test of the script, not the benchmark).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from sparsa.reports.spec import parse_spec
from sparsa.reports.store import ResultStore
from sparsa.reports.sweep import VOLATILE_COLUMNS, run_sweep

SPEC = {
    "name": "bench",
    "workloads": ["resnet50", "bert-base"],
    "configs": {"base": ["32x32-n2m4"], "rows": [32, 64], "cols": [32, 64], "m": [4, 8],
                "dram_bytes_per_cycle": [32, 64]},
    "sparsity": ["dense", "2:4", "2:8"],
    "dataflows": ["ws", "os", "is"],
    "area": True,
}
QUICK = {**SPEC, "configs": {"base": ["32x32-n2m4"], "rows": [32], "cols": [32, 64],
                             "m": [4, 8]}, "sparsity": ["dense", "2:4", "2:8"],
         "dataflows": ["ws"]}


def stable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE_COLUMNS} for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="build/bench-sweep")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    spec = parse_spec(QUICK if args.quick else SPEC, "bench_sweep")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    print(f"{len(spec)} design points: {', '.join(SPEC['workloads'])} x "
          f"{len({p.config.key for p in spec.points})} configs x "
          f"{len(set(p.sparsity for p in spec.points))} sparsity x "
          f"{len(set(p.dataflow for p in spec.points))} dataflows")
    figures = {}
    for name, kw in (("process pool", {}), ("dask LocalCluster", {"dask": True})):
        t0 = time.perf_counter()
        res = run_sweep(spec, out / name.split()[0], workers=args.workers, **kw)
        wall = time.perf_counter() - t0
        figures[name] = res
        print(f"{name:<18} {res.evaluated} points, {res.errors} errors, "
              f"{res.seconds:.1f} s evaluating ({wall:.1f} s with start-up): "
              f"{res.points_per_s:.3f} points/s")
    a = stable(ResultStore(out / "process").rows())
    b = stable(ResultStore(out / "dask").rows())
    same = a == b
    print(f"identical results (pool vs Dask, {len(a)} rows): {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
