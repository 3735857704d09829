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
* ``auto``: both, per GEMM; each is scheduled alone (:mod:`sparsa.compiler.schedule`) and
  timed with the core's static issue schedule (:func:`sparsa.hw.schedule.schedule`, which
  the model and the RTL match), and act-reuse is kept when it is at least
  ``AUTO_MARGIN`` (2%) faster.

Mode: ``sparse`` when the weights fit the array's ``n:m`` (checked on the masked weights,
or analytically from the spec without data), else ``dense`` (noted).
"""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace

import numpy as np
from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Target
from sparsa.hw.timing import act_entry_beats, compute_cycles, load_entry_beats

from . import wformat
from .errors import CompileError
from .ir import CGraph, GemmOp, Tiling

__all__ = ["choose_tiling", "choose_order", "pair_cycles", "TilePass", "MIN_RESIDENT_ROWS",
           "MIN_ACT_REUSE_ROWS"]

MIN_RESIDENT_ROWS = 64
MIN_ACT_REUSE_ROWS = 16
MAX_COUNT = 65535
#: ``dataflow="auto"`` switches a GEMM to act-reuse only when that is at least this much
#: faster alone: timed alone, a GEMM misses its overlap with its neighbours, and a switch
#: for a smaller gain measured slightly slower on whole networks (BERT-base 2:4: +0.2%).
AUTO_MARGIN = 0.02
#: ``dataflow="auto"`` times a GEMM on at most this many chunks of rows of the larger
#: chunk size of the two orders (the chunks repeat; the prefix keeps timing cheap).
AUTO_SAMPLE_CHUNKS = 4
#: ``dataflow="auto"`` keeps weight-reuse without timing when the rough cycle estimates
#: (:func:`_resident_cost`, :func:`_streamed_cost`) put act-reuse this much slower. On
#: ResNet-18/50 and BERT-base every GEMM that timing moved to act-reuse had an estimate
#: ratio of at most 1.0, while most dense ResNet GEMMs are above 1.3.
AUTO_PREFILTER = 1.15


def _tile_map(cfg: AccelConfig, op: GemmOp, mode: str) -> wformat.TileMap:
    if op.w is not None:
        return wformat.tile_map_from_weights(cfg, op.w, mode, op.win)
    kp = wformat.tile_k(cfg, mode, op.win)
    nk, nq = -(-op.K // kp), -(-op.Q // cfg.cols)
    if op.structure is not None:
        return wformat.tile_map_from_weights(cfg, op.structure, mode, op.win)
    # no data: rows kept per column (N:M structure) or everything (dense)
    kv = np.ones(op.K, np.int64) if op.kvec is None else op.kvec.astype(np.int64)
    kk = np.zeros(nk * kp, np.int64)
    kk[:op.K] = kv
    qq = np.minimum(cfg.cols, op.Q - np.arange(nq) * cfg.cols)
    return wformat.TileMap.from_nnz(mode, kp, kk.reshape(nk, kp).sum(axis=1)[:, None] * qq)


def _costs(cfg: AccelConfig, op: GemmOp, tmap: wformat.TileMap) -> tuple[int, int, int]:
    """(activation beats per row per K tile, weight beats per tile, fill/drain cycles)."""
    aw = wformat.act_window_field(cfg, tmap.mode, tmap.kp)
    eb_a = act_entry_beats(cfg, aw)
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


def pair_cycles(g: CGraph, op: GemmOp, tiling: Tiling) -> tuple[int, int]:
    """Two back-to-back copies of ``op`` with ``tiling``, scheduled alone on ``g``'s core
    and timed with the static issue schedule (no DRAM contention: what the model gives
    with its default memory system): ``(cycle the first copy's last instruction ends,
    cycle the second copy's last instruction ends)``. The copies read and write tensors
    of their own."""
    from sparsa.hw.schedule import schedule as static_schedule

    from .encode import InstrFactory
    from .schedule import schedule
    ops = []
    for i in range(2):
        one = copy.copy(op)
        one.tiling, one.x_chained, one.node = tiling, False, i
        one.name, one.x, one.y = f"{op.name}#{i}", f"{op.x}#{i}", f"{op.y}#{i}"
        ops.append(one)
    sched = schedule(SimpleNamespace(config=g.config, options=g.options, ops=ops))
    make = InstrFactory()
    instrs = [make(pc, cls, wait, kw) for pc, (cls, kw, wait, *_) in enumerate(sched.instrs)]
    end = static_schedule(g.config, instrs).end
    first = max((e for e, ins in zip(end, sched.instrs, strict=True) if ins[4] == 0),
                default=0)
    return first, max(end, default=0)


def _timing_key(op: GemmOp, rows: int, t: Tiling) -> tuple:
    """Everything :func:`pair_cycles` depends on (repeated layers share their timing)."""
    return (rows, op.K, op.Q, op.cmp, op.relu, op.requant, op.phase, t.mode, t.kp, t.nk, t.nq,
            t.order, t.pc, t.resident, t.tmap.keep.tobytes(), t.tmap.nnz.tobytes())


def choose_order(g: CGraph, op: GemmOp, cache: dict | None = None) -> Tiling:
    """``dataflow="auto"``: the faster of the two loop orders for ``op``, each timed as
    the cycles a second copy of ``op`` adds after a first one (the GEMM inside a pipeline
    that is already running, as in a whole network; timed alone, the pipeline's ramp would
    count). GEMMs of more than ``AUTO_SAMPLE_CHUNKS`` chunks are timed on a prefix of
    their rows of that many chunks (both orders on the same rows) and scaled; GEMMs whose
    rough estimates put act-reuse ``AUTO_PREFILTER`` times slower, and GEMMs whose rows
    fit one chunk in both orders (the same loads and passes), are not timed. ``cache``
    (a dict kept across the GEMMs of one compile) times a repeated GEMM once."""
    cfg = g.config
    wr = choose_tiling(cfg, op, mode=op.mode, dataflow="weight-reuse")
    ar = choose_tiling(cfg, op, mode=op.mode, dataflow="act-reuse")
    if ar.order != "act-reuse":          # act-reuse does not fit: nothing to choose
        return ar
    if min(wr.pc, ar.pc) >= op.P and wr.resident:
        # one chunk in both orders, activations loaded once: the same loads and passes,
        # only in another order (act-reuse stores every column block at the end)
        wr.notes.append("auto: one chunk of rows in both orders; weight-reuse")
        return wr
    nk_used = int(wr.tmap.keep.any(axis=1).sum())
    est_wr = _resident_cost(cfg, op, wr.tmap, wr.pc, nk_used) if wr.resident else \
        _streamed_cost(cfg, op, wr.tmap, wr.pc)
    est_ar = _resident_cost(cfg, op, ar.tmap, ar.pc, nk_used)
    if est_ar >= AUTO_PREFILTER * est_wr:     # clearly slower: not worth timing
        wr.notes.append(f"auto: act-reuse estimated {est_ar / est_wr:.2f}x weight-reuse")
        return wr
    rows = min(op.P, AUTO_SAMPLE_CHUNKS * max(wr.pc, ar.pc))
    sample = op if rows == op.P else dataclasses.replace(op, P=rows)
    cache = {} if cache is None else cache
    cost = []
    for t in (wr, ar):
        key = _timing_key(op, rows, t)
        if key not in cache:
            first, both = pair_cycles(g, sample, t)
            cache[key] = both - first
        cost.append(cache[key] * op.P / rows)
    c_wr, c_ar = cost
    best = ar if c_ar < c_wr * (1 - AUTO_MARGIN) else wr
    best.notes.append(f"auto: weight-reuse {c_wr:.0f} cycles, act-reuse {c_ar:.0f} cycles "
                      f"(marginal{'' if rows == op.P else f', {rows} of {op.P} rows'})")
    return best


class TilePass:
    """Choose mode, tile sizes and loop order for every GEMM op."""

    name = "tile"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        cfg = g.config
        timed: dict = {}
        for op in g.ops:
            op.tiling = choose_order(g, op, timed) if g.options.dataflow == "auto" else \
                choose_tiling(cfg, op, mode=op.mode, dataflow=g.options.dataflow)
            op.tiling.notes[:0] = op.mode_notes
        return g, True
