"""Requantisation: the per-layer right shift that maps int32 GEMM outputs onto int8.

The rule (shared by the compiler and :mod:`sparsa.compiler.reference`): the smallest shift
``s`` in ``0..31`` such that STORE's rounding shift ``(y + 2**(s-1)) >> s`` of the largest
output magnitude fits int8 (``<= 127``); with a fused ReLU only positive outputs count.
Without data the shift is a heuristic from the reduction length (it changes no
instruction's shape, only the ``shift`` field).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["choose_shift", "nominal_shift", "requant", "matmul_exact"]


def matmul_exact(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact ``x @ w`` of int8 matrices as int64 (float64 BLAS: exact below 2**53)."""
    if x.shape[1] < (1 << 30):
        return (x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    return x.astype(np.int64) @ w.astype(np.int64)


def requant(y: np.ndarray, shift: int, relu: bool) -> np.ndarray:
    """STORE's int32 -> int8 path: rounding arithmetic shift, ReLU, saturation."""
    a = np.asarray(y, np.int64)
    if shift:
        a = (a + (1 << (shift - 1))) >> shift
    if relu:
        a = np.maximum(a, 0)
    return np.clip(a, -128, 127).astype(np.int8)


def choose_shift(y32: np.ndarray, relu: bool) -> int:
    """Smallest shift that keeps the outputs inside int8 (see the module docstring)."""
    a = np.asarray(y32, np.int64)
    if a.size == 0:
        return 0
    peak = int(a.max()) if relu else int(np.abs(a).max())
    if relu and peak <= 0:
        return 0
    for s in range(32):
        v = (peak + (1 << (s - 1))) >> s if s else peak
        lo = 0 if relu else (int(a.min()) + (1 << (s - 1))) >> s if s else int(a.min())
        if v <= 127 and (relu or lo >= -128):
            return s
    return 31


def nominal_shift(k_nonzero: int) -> int:
    """Data-free shift for a reduction over ``k_nonzero`` non-zero weights per output."""
    return max(0, min(31, round(12 + 0.5 * math.log2(max(1, k_nonzero))) - 7 + 1))
