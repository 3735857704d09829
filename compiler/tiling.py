"""Tiling: mode, tile sizes and loop order of every GEMM against the array and scratchpads.

Capacities: the activation and accumulator scratchpads are split into two halves (double
buffering), the weight scratchpad holds two tiles of ``rows`` entries; one COMPUTE streams
one chunk of ``pc`` rows of ``P``.

* ``weight-reuse``: ``pc = min(P, acc_half)``; the chunk's activations for all ``K`` tiles
  stay resident if ``pc * nk <= act_half`` (shrinking ``pc`` down to 64 rows to make them
  fit, or further when a rough cycle estimate says smaller resident chunks beat reloading
  the activations per weight tile), otherwise they are streamed (reloaded per weight tile,
  ``pc <= act_half``).
* ``act-reuse``: ``pc = min(P, acc_half // nq, act_half)``; falls back to weight-reuse when
  that leaves fewer than 16 rows (too many column blocks for the accumulator).

Mode: ``sparse`` when the weights fit the array's ``n:m`` (checked on the masked weights,
or analytically from the spec without data), else ``dense`` (noted).
"""

from __future__ import annotations

import numpy as np
from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Target
from sparsa.hw.timing import compute_cycles, load_entry_beats

from . import wformat
from .errors import CompileError
from .ir import CGraph, GemmOp, Tiling

__all__ = ["choose_tiling", "TilePass", "MIN_RESIDENT_ROWS", "MIN_ACT_REUSE_ROWS"]

MIN_RESIDENT_ROWS = 64
MIN_ACT_REUSE_ROWS = 16
MAX_COUNT = 65535


def _tile_map(cfg: AccelConfig, op: GemmOp, mode: str) -> wformat.TileMap:
    if op.w is not None:
        return wformat.tile_map_from_weights(cfg, op.w, mode)
    kp = wformat.tile_k(cfg, mode)
    nk, nq = -(-op.K // kp), -(-op.Q // cfg.cols)
    if op.structure is not None:
        return wformat.tile_map_from_weights(cfg, op.structure, mode)
    # no data: rows kept per column (N:M structure) or everything (dense)
    kv = np.ones(op.K, np.int64) if op.kvec is None else op.kvec.astype(np.int64)
    kk = np.zeros(nk * kp, np.int64)
    kk[:op.K] = kv
    qq = np.minimum(cfg.cols, op.Q - np.arange(nq) * cfg.cols)
    return wformat.TileMap.from_nnz(mode, kp, kk.reshape(nk, kp).sum(axis=1)[:, None] * qq)


def _costs(cfg: AccelConfig, op: GemmOp, tmap: wformat.TileMap) -> tuple[int, int, int]:
    """(activation beats per row per K tile, weight beats per tile, fill/drain cycles)."""
    eb_a = load_entry_beats(cfg, Target.ACT, int(tmap.mode != "sparse"))
    wb = cfg.rows * load_entry_beats(cfg, Target.WGT, 0)
    return eb_a, wb, compute_cycles(cfg, 0)   # a pass's cycles beyond its rows


def _resident_cost(cfg: AccelConfig, op: GemmOp, tmap: wformat.TileMap, pc: int,
                   nk_used: int) -> int:
    """Rough cycles of weight-reuse with ``pc``-row resident chunks: the larger of the
    array's time and the DRAM time (activations once, weights once per chunk)."""
    eb_a, wb, fill = _costs(cfg, op, tmap)
    chunks = -(-op.P // pc)
    compute = tmap.tiles * (op.P + chunks * fill)
    dram = op.P * nk_used * eb_a + chunks * tmap.tiles * wb
    return max(compute, dram)


def _streamed_cost(cfg: AccelConfig, op: GemmOp, tmap: wformat.TileMap, pc: int) -> int:
    """Rough cycles of weight-reuse with streamed activations (reloaded per weight tile)."""
    eb_a, wb, fill = _costs(cfg, op, tmap)
    chunks = -(-op.P // pc)
    compute = tmap.tiles * (op.P + chunks * fill)
    dram = tmap.tiles * (op.P * eb_a + chunks * wb)
    return max(compute, dram)


def choose_tiling(cfg: AccelConfig, op: GemmOp, *, mode: str, dataflow: str) -> Tiling:
    """Tile sizes and loop order of ``op`` in ``mode`` (see the module docstring)."""
    tmap = _tile_map(cfg, op, mode)
    acc_half = cfg.acc_entries // 2
    act_half = cfg.act_entries // 2
    notes: list[str] = []
    nk_used = int(tmap.keep.any(axis=1).sum())
    order = dataflow
    pc = 0
    if order == "act-reuse":
        pc = min(op.P, acc_half // tmap.nq, act_half, MAX_COUNT)
        if pc < min(op.P, MIN_ACT_REUSE_ROWS):
            notes.append(f"act-reuse needs {tmap.nq} column blocks x {MIN_ACT_REUSE_ROWS} rows "
                         f"of accumulator; fell back to weight-reuse")
            order = "weight-reuse"
    resident = False
    if order == "weight-reuse":
        pc = min(op.P, acc_half, MAX_COUNT)
        if pc * nk_used <= act_half:
            resident = True
        elif act_half // nk_used >= min(op.P, MIN_RESIDENT_ROWS) or (
                act_half // nk_used >= 1 and
                _resident_cost(cfg, op, tmap, act_half // nk_used, nk_used) <
                _streamed_cost(cfg, op, tmap, min(pc, act_half))):
            pc = act_half // nk_used
            resident = True
        else:
            pc = min(pc, act_half)
            notes.append("activations streamed (K strip does not fit the scratchpad half)")
    if pc < 1:
        raise CompileError(f"{op.name}: scratchpads of {cfg.name} too small for a tile")
    return Tiling(mode=mode, kp=tmap.kp, nk=tmap.nk, nq=tmap.nq, order=order, pc=pc,
                  resident=resident, tiles=tmap.tiles, tmap=tmap, notes=notes)


class TilePass:
    """Choose mode, tile sizes and loop order for every GEMM op."""

    name = "tile"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        cfg = g.config
        for op in g.ops:
            op.tiling = choose_tiling(cfg, op, mode=op.mode, dataflow=g.options.dataflow)
            op.tiling.notes[:0] = op.mode_notes
        return g, True
