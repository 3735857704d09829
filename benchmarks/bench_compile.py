"""Compile time of ResNet-50 inference at 2:4 on the 16x16 n2m4 core (target < 10 s).

Run: ``.venv/bin/python benchmarks/bench_compile.py``. Uses the zoo's ``resnet50`` when
:func:`sparsa.workloads.load_workload` provides it, else ResNet-50's im2col GEMM shapes.
Prints compile time without data (instruction stream + manifest) and with data (weights,
masks, packed DRAM image), and the instruction counts; then VGG-16 (1.35 M instructions)
and the ``--dataflow auto`` loop-order search on ResNet-50 and VGG-16.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sparsa.compiler import compile_workload
from sparsa.hw.config import PRESETS


def _workload():
    try:
        from sparsa.workloads import load_workload
        return load_workload("resnet50"), "zoo resnet50"
    except Exception:   # zoo not available: the same network from its GEMM shapes
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from compiler_helpers import resnet50_shapes
        return resnet50_shapes(), "resnet50 GEMM shapes"


def main() -> None:
    cfg = PRESETS["16x16-n2m4"]
    wl, label = _workload()
    for with_data in (False, True):
        t0 = time.perf_counter()
        prog = compile_workload(wl, cfg, sparsity="2:4", with_data=with_data)
        secs = time.perf_counter() - t0
        s = prog.summary()
        print(f"{label} 2:4 on {cfg.name} with_data={with_data}: {secs:.2f} s; "
              f"{s['instructions']} instructions {s['by_kind']}; MACs issued "
              f"{s['macs_issued']}, non-zero {s['nonzero_macs']}, dense {s['dense_macs']}; "
              f"DRAM read {s['dram_read_bytes']} B")
        print("  pass seconds:", prog.pass_seconds)
    # larger programs and the per-GEMM loop-order search (without data)
    for name, df in (("vgg16", "weight-reuse"), ("resnet50", "auto"), ("vgg16", "auto")):
        t0 = time.perf_counter()
        prog = compile_workload(name, cfg, sparsity="2:4", with_data=False, dataflow=df)
        print(f"{name} 2:4 on {cfg.name} --dataflow {df}: {time.perf_counter() - t0:.2f} s; "
              f"{len(prog.instructions)} instructions; tile pass "
              f"{prog.pass_seconds['tile']:.2f} s")


if __name__ == "__main__":
    main()
