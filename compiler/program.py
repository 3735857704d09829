"""The compiled :class:`Program`: instructions + DRAM image + manifest.

This is the contract between the compiler (which builds it), the reference executor and the
RTL bench (which run it) and the SimPy model (which times it).

* ``instructions`` — :class:`sparsa.hw.isa.Instr` objects in issue order.
* ``dram`` — the initial DRAM image, ``uint8``, length a multiple of ``config.beat_bytes``;
  DRAM addresses in instructions are beat addresses into it.
* ``tensors`` — every tensor's placement (:class:`TensorInfo`), by name.
* ``layers`` — per-layer bookkeeping (:class:`LayerInfo`): the instruction index range and
  MAC counts, so the model and reports can break results down per layer.
* ``notes`` — per-instruction annotations (same length as ``instructions``): the layer index
  and, for COMPUTE, the useful (non-padding, non-zero-weight) MACs it performs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Instr

__all__ = ["Program", "TensorInfo", "LayerInfo", "InstrNote"]


@dataclass
class TensorInfo:
    """Where a tensor lives in DRAM and how it is laid out.

    ``fmt`` names the layout, e.g. ``"act"`` (activation entries), ``"act_dense"`` (compact
    rows for LOAD expand), ``"wgt"`` (weight entries: values + packed indices),
    ``"out_i8"`` / ``"out_i32"`` (STORE rows). ``role`` is ``input``, ``weight``,
    ``output`` or ``scratch``.
    """

    name: str
    addr: int            # beat address
    beats: int           # beats occupied
    shape: tuple[int, ...]
    dtype: str           # "int8" | "int32"
    fmt: str
    role: str = "scratch"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LayerInfo:
    name: str
    first_instr: int
    end_instr: int       # exclusive
    kind: str = "gemm"   # gemm | fwd | bwd_data | wgrad | host
    dense_macs: int = 0  # MACs of the dense GEMM(s)
    nonzero_macs: int = 0  # MACs with a non-zero weight
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class InstrNote:
    layer: int = -1
    useful_macs: int = 0


@dataclass
class Program:
    config: AccelConfig
    instructions: list[Instr]
    dram: np.ndarray
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    layers: list[LayerInfo] = field(default_factory=list)
    notes: list[InstrNote] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
