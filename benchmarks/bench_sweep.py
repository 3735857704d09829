"""Sweep throughput: a >= 200-point design space over ResNet-50 and BERT-base.

The space: 64/128-row x 64/128-column arrays, windows 4 and 8, 32 and 64 DRAM bytes/cycle
(16 configs) x dense/2:4/2:8 x ws/os/is x the two networks = 288 points. (Smaller arrays
cost the model more per point: a 16x16 ResNet-50 point takes ~8 s of CPU, a 64x64 one <1 s.)

Runs the same sweep (configs x sparsity x dataflow x workload, with area) twice, on the
local process pool and on a Dask ``LocalCluster`` with the same number of worker processes,
prints points/second of each, and checks that both give identical result tables (wall-time
columns aside). Usage::

    python benchmarks/bench_sweep.py [--workers 2] [--out build/bench-sweep] [--quick]
                                     [--dask-points N]

``--quick`` runs a 24-point subset (a smoke test of the script, not the benchmark);
``--dask-points N`` runs only every k-th point (N in all) through Dask, to save time on a busy
machine (the pool's rows for those points are compared).
"""

from __future__ import annotations

import argparse
import dataclasses
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
    "configs": {"base": ["32x32-n2m4"], "rows": [64, 128], "cols": [64, 128], "m": [4, 8],
                "dram_bytes_per_cycle": [32, 64]},
    "sparsity": ["dense", "2:4", "2:8"],
    "dataflows": ["ws", "os", "is"],
    "area": True,
}
QUICK = {**SPEC, "configs": {"base": ["32x32-n2m4"], "rows": [64], "cols": [64, 128],
                             "m": [4, 8]}, "sparsity": ["dense", "2:4", "2:8"],
         "dataflows": ["ws"]}


def stable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE_COLUMNS} for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="build/bench-sweep")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dask-points", type=int, default=0, help="0: all points")
    args = ap.parse_args()
    spec = parse_spec(QUICK if args.quick else SPEC, "bench_sweep")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    print(f"{len(spec)} design points: {', '.join(SPEC['workloads'])} x "
          f"{len({p.config.key for p in spec.points})} configs x "
          f"{len(set(p.sparsity for p in spec.points))} sparsity x "
          f"{len(set(p.dataflow for p in spec.points))} dataflows")
    t0 = time.perf_counter()
    res = run_sweep(spec, out / "pool", workers=args.workers)
    print(f"process pool       {res.evaluated} points, {res.errors} errors, "
          f"{res.seconds:.1f} s ({time.perf_counter() - t0:.1f} s with start-up): "
          f"{res.points_per_s:.3f} points/s")
    sub = spec
    if args.dask_points and args.dask_points < len(spec):
        step = len(spec) / args.dask_points
        pts = tuple(spec.points[int(i * step)] for i in range(args.dask_points))
        sub = dataclasses.replace(spec, points=pts)
    t0 = time.perf_counter()
    res = run_sweep(sub, out / "dask", workers=args.workers, dask=True)
    print(f"dask LocalCluster  {res.evaluated} points, {res.errors} errors, "
          f"{res.seconds:.1f} s ({time.perf_counter() - t0:.1f} s with start-up): "
          f"{res.points_per_s:.3f} points/s")
    keys = {p.key for p in sub.points}
    a = stable([r for r in ResultStore(out / "pool").rows() if r["hash"] in keys])
    b = stable(ResultStore(out / "dask").rows())
    same = a == b
    print(f"identical results (pool vs Dask, {len(b)} rows): {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
