"""SCALE-Sim parity preset: SCALE-Sim v3's dense compute-cycle conventions, ideal memory.

Users who know SCALE-Sim can check sparsa's model against it on the same topology files.
The preset times every layer the way SCALE-Sim's compute modules lay out their demand
matrices (``scalesim/compute/systolic_compute_{ws,os,is}.py``, version 3.0.0), on an
``rows x cols`` array with no memory stalls:

========  ===========================  ================================================
dataflow  operand mapping              cycles per fold
========  ===========================  ================================================
ws        Sr = K, Sc = N, T = M        ``2*rows + cols + T - 2`` (weights load for
                                       ``rows`` cycles, the ifmap streams ``T`` rows,
                                       outputs drain ``cols - 1``, skew ``rows - 1``)
is        Sr = K, Sc = M, T = N        ``2*rows + cols + T - 2``
os        Sr = M, Sc = N, T = K        ``rows + cols + T - 2``
========  ===========================  ================================================

Folds: ``ceil(Sr / rows) * ceil(Sc / cols)`` (a partial fold costs a full one). ``M`` is
the number of output pixels (``OH * OW`` of a convolution; SCALE-Sim does not pad and rounds up:
``OH = ceil((H - FH + stride) / stride)``), ``K`` the window (``FH * FW * C``), ``N`` the filters. A
layer's reported ``Total Cycles`` is the index of the cycle in which its last output is
written, i.e. the sum over folds minus one (a 512x512x512 GEMM on 32x32 WS: 256 folds of
606 cycles, reported as 155,135).

The folds run through :class:`~sparsa.sim.model.CoreModel` as EXEC operations (one per
fold, back to back: ideal memory has no loads to wait for).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsa.hw.config import DEFAULT, AccelConfig, ConfigError
from sparsa.hw.isa import Unit

from .errors import SimError
from .model import CoreModel, LayerSpec, OpStream

__all__ = ["ScaleSimLayer", "fold_cycles", "layer_cycles", "read_topology",
           "simulate_topology", "parity_config"]

_EXEC = int(Unit.EXEC)


@dataclass(frozen=True)
class ScaleSimLayer:
    """One topology row as SCALE-Sim sees it: ``M`` output pixels, ``N`` filters,
    ``K`` window size."""

    name: str
    M: int
    N: int
    K: int


def fold_cycles(rows: int, cols: int, dataflow: str, T: int) -> int:
    """Cycles of one fold (see the module table)."""
    if dataflow in ("ws", "is"):
        return 2 * rows + cols + T - 2
    if dataflow == "os":
        return rows + cols + T - 2
    raise SimError(f"dataflow={dataflow!r} is invalid; allowed: ws, os, is")


def _mapping(layer: ScaleSimLayer, dataflow: str) -> tuple[int, int, int]:
    if dataflow == "ws":
        return layer.K, layer.N, layer.M
    if dataflow == "is":
        return layer.K, layer.M, layer.N
    if dataflow == "os":
        return layer.M, layer.N, layer.K
    raise SimError(f"dataflow={dataflow!r} is invalid; allowed: ws, os, is")


def layer_folds(rows: int, cols: int, dataflow: str, layer: ScaleSimLayer) -> tuple[int, int]:
    """``(folds, cycles per fold)`` of one layer."""
    sr, sc, t = _mapping(layer, dataflow)
    return math.ceil(sr / rows) * math.ceil(sc / cols), fold_cycles(rows, cols, dataflow, t)


def layer_cycles(rows: int, cols: int, dataflow: str, layer: ScaleSimLayer) -> int:
    """SCALE-Sim's reported compute cycles of one layer (closed form)."""
    folds, per = layer_folds(rows, cols, dataflow, layer)
    return folds * per - 1


def _int(v: str, path: str, line: int, col: str) -> int:
    try:
        x = int(v.strip())
    except ValueError:
        raise SimError(f"{path}:{line}: {col}={v.strip()!r} is not an integer") from None
    if x < 1:
        raise SimError(f"{path}:{line}: {col}={x} must be >= 1")
    return x


def read_topology(path: str | Path) -> list[ScaleSimLayer]:
    """The layers of a SCALE-Sim topology CSV, in SCALE-Sim's own terms (M, N, K).

    Convolution format (``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter
    Width, Channels, Num Filter, Strides,`` and an optional ``Stride width``) or GEMM format (``Layer, M, N, K,``), told
    apart by the header. This reads the file exactly as SCALE-Sim does (no padding; a
    layer whose name contains ``DP`` becomes one single-channel layer per channel, named
    ``<name>Channel_<i>``); sparsa's workload
    importer (:mod:`sparsa.workloads.scalesim`) turns the same file into a graph.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SimError(f"{path}: cannot read topology ({e.strerror})") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise SimError(f"{path}: empty topology file")
    head = [c.strip().lower() for c in rows[0]]
    gemm = len(head) >= 4 and head[1:4] == ["m", "n", "k"]
    two_strides = not gemm and len(head) > 8 and "stride" in head[8]
    out = []
    for i, r in enumerate(rows[1:], start=2):
        if gemm:
            if len(r) < 4:
                raise SimError(f"{path}:{i}: a GEMM row needs Layer, M, N, K")
            out.append(ScaleSimLayer(r[0].strip(), _int(r[1], str(path), i, "M"),
                                     _int(r[2], str(path), i, "N"),
                                     _int(r[3], str(path), i, "K")))
            continue
        if len(r) < 8:
            raise SimError(f"{path}:{i}: a convolution row needs 8 fields (Layer name, "
                           f"IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                           f"Num Filter, Strides)")
        names = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
                 "Num Filter", "Strides")
        h, w, fh, fw, c, nf, s = (_int(r[j + 1], str(path), i, names[j]) for j in range(7))
        sw = s
        if two_strides and len(r) > 8 and r[8].strip():
            sw = _int(r[8], str(path), i, "Stride width")
        if fh > h or fw > w:
            raise SimError(f"{path}:{i}: filter {fh}x{fw} larger than the {h}x{w} IFMAP")
        # SCALE-Sim's output size: ceil((H - FH + S) / S), which rounds up when S does
        # not divide H - FH (a 56-wide map, 3x3, stride 2 -> 28, not 27)
        oh, ow = -(-(h - fh + s) // s), -(-(w - fw + sw) // sw)
        name = r[0].strip()
        if "DP" in name:     # SCALE-Sim: one single-channel layer per channel
            out += [ScaleSimLayer(f"{name}Channel_{j}", oh * ow, nf, fh * fw) for j in range(c)]
        else:
            out.append(ScaleSimLayer(name, oh * ow, nf, fh * fw * c))
    return out


def parity_config(rows: int, cols: int) -> AccelConfig:
    """A dense ``rows x cols`` config for the parity preset (``n = 1``, ``m = 2``: the
    array's dense mode; scratchpads sized generously, they are not modelled)."""
    try:
        return AccelConfig(name=f"scalesim-{rows}x{cols}", rows=rows, cols=cols, n=1, m=2,
                           wgt_sp_kib=max(DEFAULT.wgt_sp_kib, rows * 4),
                           act_sp_kib=max(DEFAULT.act_sp_kib, rows * 4),
                           acc_sp_kib=max(DEFAULT.acc_sp_kib, cols * 16))
    except ConfigError as e:
        raise SimError(f"SCALE-Sim parity array {rows}x{cols}: {e}") from None


def simulate_topology(topology: str | Path | list[ScaleSimLayer], rows: int, cols: int,
                      dataflow: str = "ws") -> list[dict[str, Any]]:
    """Per-layer SCALE-Sim-convention compute cycles, run through the SimPy model.

    Returns rows ``{"layer", "M", "N", "K", "folds", "fold_cycles", "cycles"}`` where
    ``cycles`` is comparable to the ``Total Cycles`` column of SCALE-Sim's
    ``COMPUTE_REPORT.csv``.
    """
    layers = read_topology(topology) if not isinstance(topology, list) else topology
    cfg = parity_config(rows, cols)
    out = []
    for ly in layers:
        folds, per = layer_folds(rows, cols, dataflow, ly)
        ops = OpStream(unit=[_EXEC] * folds, wait=[0] * folds, cycles=[per] * folds,
                       beats=[0] * folds, stream=[0] * folds, layer=[0] * folds,
                       layers=[LayerSpec(ly.name)], read_offset=0)
        st = CoreModel(cfg, ops).run()
        out.append({"layer": ly.name, "M": ly.M, "N": ly.N, "K": ly.K, "folds": folds,
                    "fold_cycles": per, "cycles": st.total - 1})
    return out
