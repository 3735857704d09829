"""Time the mask generators on layer shapes of real networks (prints figures).

Run: ``.venv/bin/python benchmarks/bench_masks.py``
"""

from __future__ import annotations

import time

import numpy as np
from sparsa.workloads.sparsity import make_masks

SHAPES = {
    "resnet50 conv 3x3x512 (4608x512)": (4608, 512),
    "resnet50 conv 1x1 2048->512 (2048x512)": (2048, 512),
    "bert ffn1 (768x3072)": (768, 3072),
    "bert ffn2 (3072x768)": (3072, 768),
}
SPECS = (
    "2:8",
    "block16x16:0.5+1:16",
    "fwd=2:8,bwd=2:8,method=transposable,solver=greedy",
    "fwd=2:8,bwd=2:8,method=transposable,solver=exact",
    "fwd=2:8,bwd=2:8,method=bimask,candidates=100",
    "fwd=2:4,bwd=2:4,method=transposable,solver=exact",
    "fwd=2:4,bwd=2:4,method=bimask,candidates=100",
)


def main() -> None:
    """Print the best of three wall times per (layer, spec)."""
    for label, (k, q) in SHAPES.items():
        w = np.random.default_rng(0).standard_normal((k, q)).astype(np.float32)
        print(label)
        for spec in SPECS:
            best = min(_timed(w, spec) for _ in range(3))
            print(f"  {spec:<52} {best:7.3f} s")


def _timed(w: np.ndarray, spec: str) -> float:
    t0 = time.perf_counter()
    make_masks(w, spec, seed=0)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
