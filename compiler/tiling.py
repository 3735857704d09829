"""Tiling: mode, tile sizes and loop order of every GEMM against the array and scratchpads.

Capacities: the activation and accumulator scratchpads are split into two halves (double
buffering), the weight scratchpad holds two tiles of ``rows`` entries; one COMPUTE streams
one chunk of ``pc`` rows of ``P``.

* ``weight-reuse``: a loop nest over chunks of ``pc`` rows, accumulator blocks of ``qb``
  column blocks (``pc * qb <= acc_half``) and activation blocks of ``kc`` K tiles
  (``pc * kc <= act_half``); inside a block pair, every weight tile of the block's
  columns and K tiles in DRAM order, one COMPUTE each. When one block holds every used K
  tile (``resident``) the chunk's activations are loaded once and stay for every column
  block (``qb = 1``); otherwise they are reloaded once per accumulator block. ``pc`` is
  the chunk size with the lowest rough cycle estimate (:func:`_blocked_cost`: the array's
  passes and fill/drain against the DRAM reads of activations and weights), with the
  largest ``kc`` and ``qb`` that fit beside it, all three split evenly.
* ``act-reuse``: the same nest with one K tile per activation block and every column
  block in one accumulator block: ``pc = min(P, acc_half // nq, act_half)``; falls back
  to weight-reuse when that leaves fewer than 16 rows (too many column blocks for the
  accumulator).
* ``auto``: both, per GEMM; each is scheduled alone (:mod:`sparsa.compiler.schedule`) and
  timed with the core's static issue schedule (:func:`sparsa.hw.schedule.schedule`, which
  the model and the RTL match), and act-reuse is kept when it is at least
  ``AUTO_MARGIN`` (2%) faster; the schedule pass then times the whole program with
  those choices and with weight-reuse for them and keeps the faster (a GEMM timed alone
  misses its overlap with its neighbours).

Timings are independent of each other: on a machine with two cores they run in forked
worker processes before the choices are made (:func:`prefetch_timings`,
:func:`timing_jobs`), which halves the tile pass of a whole network; the program is the
same.

Mode: lowering picks it (sparse at the widest window the weights fit, passes, or dense);
:func:`choose_mode` then times a narrower window or dense mode where their estimates are
better (a ``K`` far from a multiple of the sparse tile streams padding).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Target
from sparsa.hw.timing import (
    act_entry_beats,
    compute_cycles,
    load_entry_beats,
    preload_cycles,
)

from . import hostwork, imgload, wformat
from .errors import CompileError
from .ir import CGraph, GemmOp, Tiling

__all__ = ["choose_tiling", "choose_order", "choose_mode", "pair_cycles", "TilePass",
           "MIN_ACT_REUSE_ROWS"]

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
#: (:func:`_blocked_cost`) put act-reuse this much slower (timing only pays off where the
#: estimates are close: weight-reuse's blocking includes act-reuse's shape).
AUTO_PREFILTER = 1.15
#: weight-reuse blockings whose rough estimates are within this factor of the best are
#: timed (at most ``TIME_TOP`` of them; see :func:`choose_tiling`)
TIME_WITHIN = 1.25
TIME_TOP = 3
#: ... and only when a timing schedules at most this many array steps per copy (the
#: GEMMs with many tiles and few rows have few blockings to choose from anyway)
TIME_MAX_STEPS = 4000


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


def _blocked_cost(cfg: AccelConfig, op: GemmOp, tmap: wformat.TileMap, pc: int, kc: int,
                  qb: int, nk_used: int) -> int:
    """Rough cycles of the blocked loop nest with ``pc``-row chunks, activation blocks of
    ``kc`` K tiles and accumulator blocks of ``qb`` column blocks: the larger of the
    array's time (a pass per weight tile and chunk, at least one PRELOAD long) and the
    DRAM read time (activations once per chunk of rows when one block holds every used
    K tile, else once per accumulator block; weights once per chunk of rows). It ignores
    how well the two overlap in the in-order issue, which matters most when they are
    close: :func:`choose_tiling` times the close candidates."""
    eb_a, wb, fill = _costs(cfg, op, tmap)
    pre = preload_cycles(cfg) + 1
    full, rest = divmod(op.P, pc)
    chunks = full + (rest > 0)
    per_tile = full * max(pc + fill, pre) + (max(rest + fill, pre) if rest else 0)
    dram = op.P * nk_used * eb_a * _reloads(tmap, kc, qb, nk_used) + chunks * tmap.tiles * wb
    return max(tmap.tiles * per_tile, dram)


def _reloads(tmap: wformat.TileMap, kc: int, qb: int, nk_used: int) -> int:
    """Times a chunk's activations are loaded: once when one block holds every used K
    tile, else once per accumulator block of ``qb`` column blocks."""
    return 1 if kc >= nk_used else -(-tmap.nq // qb)


def _balanced(total: int, most: int) -> int:
    """The smallest block size that splits ``total`` into as few blocks as blocks of
    ``most`` would (equal blocks: no short last block)."""
    most = max(1, min(total, most))
    return -(-total // -(-total // most))


def _weight_reuse(cfg: AccelConfig, op: GemmOp, tmap: wformat.TileMap, nk_used: int
                  ) -> list[tuple[int, int, int, int]]:
    """``(cost, pc, kc, qb)`` of the weight-reuse blockings, cheapest first by
    :func:`_blocked_cost` (ties: the larger chunk, fewer instructions): every chunk size
    the scratchpad halves suggest (one per possible ``kc`` and ``qb``), with the largest
    ``kc`` and ``qb`` that fit beside it; all three balanced (:func:`_balanced`: equal
    blocks, so the loads of every block hide behind about as many passes)."""
    acc_half, act_half = cfg.acc_entries // 2, cfg.act_entries // 2
    cap = min(op.P, acc_half, act_half, MAX_COUNT)
    sizes = {cap} | {acc_half // q for q in range(1, tmap.nq + 1)} | \
        {act_half // k for k in range(1, nk_used + 1)}
    out: dict[tuple[int, int, int], int] = {}
    for size in sizes:
        if not 1 <= size <= cap:
            continue
        pc = _balanced(op.P, size)
        kc = _balanced(nk_used, act_half // pc)
        qb = 1 if kc >= nk_used else _balanced(tmap.nq, acc_half // pc)
        out[pc, kc, qb] = _blocked_cost(cfg, op, tmap, pc, kc, qb, nk_used)
    if not out:
        raise CompileError(f"{op.name}: scratchpads of {cfg.name} too small for a tile")
    return sorted(((c, *k) for k, c in out.items()), key=lambda t: (t[0], -t[1]))


def choose_tiling(cfg: AccelConfig, op: GemmOp, *, mode: str, dataflow: str,
                  timer: Callable[[Tiling, int], float] | None = None,
                  tmap: wformat.TileMap | None = None) -> Tiling:
    """Tile sizes and loop order of ``op`` in ``mode`` (see the module docstring).

    ``timer(tiling, rows)`` (cycles of ``op`` with ``tiling``, timed on its first ``rows``
    rows and scaled to all of them) picks among weight-reuse blockings: the best estimate
    for each number of activation reloads, those within ``TIME_WITHIN`` of the best
    estimate, at most ``TIME_TOP``, when a timing takes at most ``TIME_MAX_STEPS`` steps;
    otherwise (and without a timer) the best estimate is taken. ``tmap``: the tile map of
    ``op`` in ``mode`` when already built (it does not depend on the loop order)."""
    tmap = _tile_map(cfg, op, mode) if tmap is None else tmap
    acc_half = cfg.acc_entries // 2
    act_half = cfg.act_entries // 2
    notes: list[str] = []
    nk_used = _act_tiles_used(op, tmap)

    def tiling(order: str, pc: int, kc: int, qb: int, notes: list[str]) -> Tiling:
        resident = order == "weight-reuse" and kc >= nk_used
        if order == "weight-reuse" and not resident:
            notes = notes + [f"activations in blocks of {kc} of {nk_used} K tiles, reloaded "
                             f"per {qb} column blocks (the K strip does not fit the "
                             f"scratchpad half)"]
        return Tiling(mode=mode, kp=tmap.kp, nk=tmap.nk, nq=tmap.nq, order=order, pc=pc,
                      resident=resident, tiles=tmap.tiles, tmap=tmap, notes=notes,
                      kc=0 if resident else kc, qb=1 if resident else qb)

    if dataflow == "act-reuse":
        pc = min(op.P, acc_half // tmap.nq, act_half, MAX_COUNT)
        if pc >= min(op.P, MIN_ACT_REUSE_ROWS):
            return tiling("act-reuse", pc, 1, tmap.nq, notes)
        notes.append(f"act-reuse needs {tmap.nq} column blocks x {MIN_ACT_REUSE_ROWS} rows "
                     f"of accumulator; fell back to weight-reuse")
    cands = _weight_reuse(cfg, op, tmap, nk_used)
    # the best estimate per number of activation reloads (the estimate is most optimistic
    # where DRAM time approaches array time), then the closest of those
    per_reload: dict[int, tuple[int, int, int, int]] = {}
    for c in cands:
        per_reload.setdefault(_reloads(tmap, c[2], c[3], nk_used), c)
    close = sorted(c for c in per_reload.values()
                   if c[0] <= cands[0][0] * TIME_WITHIN)[:TIME_TOP]
    rows = min(op.P, AUTO_SAMPLE_CHUNKS * max(c[1] for c in close))
    steps = max(-(-rows // c[1]) for c in close) * tmap.tiles
    if timer is None or len(close) == 1 or steps > TIME_MAX_STEPS:
        return tiling("weight-reuse", *cands[0][1:], notes)
    timed = []
    for est, pc, kc, qb in close:
        t = tiling("weight-reuse", pc, kc, qb, notes)
        timed.append((timer(t, rows), est, t))
    cyc, _, best = min(timed, key=lambda x: (x[0], x[1]))
    best.notes.append("blocking timed: " + ", ".join(
        f"pc={t.pc} kc={t.kc or nk_used} qb={t.qb} {c:.0f}" for c, _, t in timed)
        + ("" if rows == op.P else f" (marginal, {rows} of {op.P} rows)"))
    return best


def pair_cycles(g: CGraph, op: GemmOp, tiling: Tiling) -> tuple[int, int]:
    """Two back-to-back copies of ``op`` with ``tiling``, scheduled alone on ``g``'s core
    and timed with the static issue schedule (no DRAM contention: what the model gives
    with its default memory system): ``(cycle the first copy's last instruction ends,
    cycle the second copy's last instruction ends)``. The copies read and write tensors
    of their own."""
    from .schedule import schedule, static_end
    ops = []
    for i in range(2):
        one = copy.copy(op)
        one.tiling, one.x_chained, one.node = tiling, False, i
        one.name, one.x, one.y = f"{op.name}#{i}", f"{op.x}#{i}", f"{op.y}#{i}"
        ops.append(one)
    sched = schedule(SimpleNamespace(config=g.config, options=g.options, ops=ops))
    end = static_end(g.config, sched)
    first = max((e for e, ins in zip(end, sched.instrs, strict=True) if ins[4] == 0),
                default=0)
    return first, max(end, default=0)


def _timing_key(op: GemmOp, rows: int, t: Tiling) -> tuple:
    """Everything :func:`pair_cycles` depends on (repeated layers share their timing; the
    non-zero counts of the tiles only count useful MACs, so only which tiles are kept)."""
    return (rows, op.K, op.Q, op.passes, op.cmp, op.relu, op.requant, op.phase, t.mode, t.kp,
            t.nk, t.nq, t.order, t.pc, t.resident, t.kc, t.qb, t.tmap.keep.tobytes())


def _marginal(g: CGraph, sample: GemmOp, tiling: Tiling) -> int:
    """Cycles the second of :func:`pair_cycles`' two copies adds (what the cache holds)."""
    first, both = pair_cycles(g, sample, tiling)
    return both - first


def marginal_cycles(g: CGraph, op: GemmOp, tiling: Tiling, rows: int, cache: dict,
                    on_miss: Callable[[tuple, GemmOp], None] | None = None) -> float:
    """Cycles a second copy of ``op`` with ``tiling`` adds after a first one (the GEMM
    inside a pipeline that is already running, as in a whole network; timed alone, the
    pipeline's ramp would count), timed on the first ``rows`` rows with
    :func:`pair_cycles` and scaled to all of ``op.P``. ``cache`` (kept across the GEMMs
    of one compile) times a repeated GEMM once. ``on_miss(key, sample)``: instead of
    timing a GEMM not in ``cache``, hand its key and row sample over and return 0."""
    key = _timing_key(op, rows, tiling)
    if key not in cache:
        sample = op if rows == op.P else dataclasses.replace(op, P=rows)
        if on_miss is not None:
            on_miss(key, sample)
            return 0.0
        cache[key] = _marginal(g, sample, tiling)
    return cache[key] * op.P / rows


def _act_tiles_used(op: GemmOp, tmap: wformat.TileMap) -> int:
    """Activation tiles read by the kept K tiles (a GEMM in passes reads activation tile
    ``kt // passes`` with K tile ``kt``): what activation blocks hold, in entries per row."""
    return len({kt // op.passes for kt in np.nonzero(tmap.keep.any(axis=1))[0]})


def _estimate(cfg: AccelConfig, op: GemmOp, t: Tiling) -> int:
    """:func:`_blocked_cost` of ``op`` with tiling ``t``."""
    nk_used = _act_tiles_used(op, t.tmap)
    return _blocked_cost(cfg, op, t.tmap, t.pc, t.kc or nk_used, t.qb, nk_used)


def choose_mode(g: CGraph, op: GemmOp, cache: dict, spare_steps: int | None = None) -> int:
    """Under ``sparse_mode="auto"``, replace the widest-window sparse mode lowering chose
    by sparse mode at a narrower window or by dense mode when that is faster: a sparse
    K tile is ``rows * w / n`` entries wide, so a GEMM whose ``K`` is far from a multiple
    of it streams padding, which costs more than the passes it saves where DRAM is the
    limit (e.g. a depthwise pack of ``K = 144`` on ``n1m16``: one tile of 256). Modes
    whose rough estimates (:func:`_blocked_cost`) beat the current one are timed like
    the loop orders (:func:`marginal_cycles`) and taken when ``AUTO_MARGIN`` faster.
    Only GEMMs whose host writes their input change mode (not chained; a GEMM sharing its
    input with others gets its own copy in the new layout), and only within
    ``spare_steps`` more array steps (the scheduler's limit); returns the steps added."""
    cfg = g.config
    node = g.nodes[op.node] if op.node < len(g.nodes) else None
    if op.mode != "sparse" or op.passes != 1 or op.x_chained or \
            (op.x != f"{op.name}.x" and not op.x_shared) \
            or node is None or g.options.mode_for(node.source, node.name) != "auto":
        return 0
    win = op.win or cfg.m
    order = g.options.dataflow if g.options.dataflow != "auto" else "weight-reuse"
    cur = op.tiling
    e_cur = _estimate(cfg, op, cur)
    alts = []
    for mode, w in [("sparse", w) for w in cfg.windows if cfg.n < w < win] + [("dense", 0)]:
        o = dataclasses.replace(op, mode=mode, win=w, tiling=None)
        t = choose_tiling(cfg, o, mode=mode, dataflow=order)
        e = _estimate(cfg, o, t)
        extra = _steps(o, t) - _steps(op, cur)
        if e < e_cur and (spare_steps is None or extra <= spare_steps):
            alts.append((e, mode, w, extra, o, t))
    if not alts:
        return 0
    rows = min(op.P, AUTO_SAMPLE_CHUNKS * max([cur.pc] + [a[-1].pc for a in alts]))
    c_cur = marginal_cycles(g, op, cur, rows, cache)
    c, _, mode, w, added, o, t = min((marginal_cycles(g, a[-2], a[-1], rows, cache), *a)
                                     for a in alts)
    if c >= c_cur * (1 - AUTO_MARGIN):
        return 0
    name = f"sparse mode at window {w}" if mode == "sparse" else "dense mode"
    note = (f"{name}: {c / c_cur:.2f}x the cycles of sparse mode at window {win} (timed; "
            f"K={op.K} pads {-op.K % cur.kp} entries of its {cur.kp}-entry tiles)")
    op.mode, op.win, op.tiling = mode, w, t
    op.mode_notes.append(note)
    if op.x_shared:   # its own input tensor, in the new mode's layout
        if op.x in g.data:
            g.data[f"{op.name}.x"] = g.data[op.x]
        op.x, op.x_shared = f"{op.name}.x", False
    return added


def _steps(op: GemmOp, t: Tiling) -> int:
    """Array steps (COMPUTEs) of ``op`` with tiling ``t`` (as :func:`check_steps` counts)."""
    return -(-op.P // t.pc) * t.tiles


def choose_order(g: CGraph, op: GemmOp, cache: dict | None = None,
                 timer: Callable[[Tiling, int], float] | None = None) -> Tiling:
    """``dataflow="auto"``: the faster of the two loop orders for ``op``, each timed with
    :func:`marginal_cycles`. GEMMs of more than ``AUTO_SAMPLE_CHUNKS`` chunks are timed on
    a prefix of their rows of that many chunks (both orders on the same rows) and scaled;
    GEMMs whose rough estimates put act-reuse ``AUTO_PREFILTER`` times slower, and GEMMs
    whose rows fit one chunk in both orders (the same loads and passes), are not timed."""
    cfg = g.config
    cache = {} if cache is None else cache
    if timer is None:
        def timer(t: Tiling, rows: int) -> float:
            return marginal_cycles(g, op, t, rows, cache)
    wr = choose_tiling(cfg, op, mode=op.mode, dataflow="weight-reuse", timer=timer,
                       tmap=op.tiling.tmap if op.tiling else None)
    ar = choose_tiling(cfg, op, mode=op.mode, dataflow="act-reuse", tmap=wr.tmap)
    if ar.order != "act-reuse":          # act-reuse does not fit: nothing to choose
        return wr
    if min(wr.pc, ar.pc) >= op.P and wr.resident:
        # one chunk in both orders, activations loaded once: the same loads and passes,
        # only in another order (act-reuse stores every column block at the end)
        wr.notes.append("auto: one chunk of rows in both orders; weight-reuse")
        return wr
    est_wr, est_ar = _estimate(cfg, op, wr), _estimate(cfg, op, ar)
    if est_ar >= AUTO_PREFILTER * est_wr:     # clearly slower: not worth timing
        wr.notes.append(f"auto: act-reuse estimated {est_ar / est_wr:.2f}x weight-reuse")
        return wr
    rows = min(op.P, AUTO_SAMPLE_CHUNKS * max(wr.pc, ar.pc))
    c_wr, c_ar = (timer(t, rows) for t in (wr, ar))
    best = ar if c_ar < c_wr * (1 - AUTO_MARGIN) else wr
    if best is ar:     # the whole program is timed once more with it (SchedulePass)
        ar.fallback = wr
    best.notes.append(f"auto: weight-reuse {c_wr:.0f} cycles, act-reuse {c_ar:.0f} cycles "
                      f"(marginal{'' if rows == op.P else f', {rows} of {op.P} rows'})")
    return best


#: :func:`prefetch_timings` runs the timings of a compile in worker processes only when
#: there are at least ``PARALLEL_MIN_TIMINGS`` of them scheduling at least this many array
#: steps in all (a fork and a pool cost ~20 ms; a step of a convolution reading its image
#: in place carries a LOAD per output-image row, so steps undercount the work)
PARALLEL_MIN_STEPS = 1000
PARALLEL_MIN_TIMINGS = 4


def timing_jobs() -> int:
    """Worker processes for the timings of one compile: ``SPARSA_COMPILE_JOBS`` when set,
    else 2 where the machine has two cores, ``fork`` exists and this is a top-level process
    with no child process and no other thread running (a sweep's or ``--vs-dense``'s
    worker, or a process whose sibling compiles beside it, times alone instead of crowding
    the cores)."""
    import multiprocessing
    import os
    import threading
    env = os.environ.get("SPARSA_COMPILE_JOBS", "")
    if env.isdigit() and int(env) >= 1:
        jobs = int(env)
    elif multiprocessing.parent_process() is not None or multiprocessing.active_children() \
            or threading.active_count() > 1:     # forking beside other threads is unsafe
        return 1
    else:
        jobs = min(2, os.cpu_count() or 1)
    if jobs > 1 and "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return jobs


_PENDING: list[tuple[CGraph, GemmOp, Tiling]] = []   # read by forked timing workers


def _pending_pair(i: int) -> int:
    return _marginal(*_PENDING[i])


def prefetch_timings(g: CGraph, cache: dict, jobs: int) -> int:
    """Time, in ``jobs`` forked worker processes, the weight-reuse blockings (and under
    ``auto`` the loop orders) that :class:`TilePass` will time for every GEMM in its
    present mode, into ``cache`` (what :func:`marginal_cycles` reads): the choices and
    the program are the same as timed one after the other, only sooner. Under ``auto`` a
    second round times the loop orders with the blockings the first round's timings
    chose. Returns how many were timed (0 when too few to pay for the workers)."""
    import multiprocessing
    done = 0
    for _ in range(2 if g.options.dataflow == "auto" else 1):
        work: dict[tuple, tuple[int, GemmOp, Tiling]] = {}

        def record(op: GemmOp, work: dict = work) -> Callable[[Tiling, int], float]:
            def timer(t: Tiling, rows: int) -> float:
                return marginal_cycles(g, op, t, rows, cache, on_miss=lambda key, sample:
                                       work.setdefault(key, (2 * _steps(sample, t),
                                                             sample, t)))
            return timer

        for op in g.ops:
            if g.options.dataflow == "auto":
                choose_order(g, op, {}, timer=record(op))
            else:
                choose_tiling(g.config, op, mode=op.mode, dataflow=g.options.dataflow,
                              tmap=op.tiling.tmap, timer=record(op))
        if len(work) < PARALLEL_MIN_TIMINGS or \
                sum(w[0] for w in work.values()) < PARALLEL_MIN_STEPS:
            break
        keys = sorted(work, key=lambda k: -work[k][0])   # longest first: balanced workers
        _PENDING[:] = [(g, work[k][1], work[k][2]) for k in keys]
        try:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for k, v in zip(keys, pool.imap(_pending_pair, range(len(keys))),
                                strict=True):
                    cache[k] = v
        finally:
            _PENDING.clear()
        done += len(keys)
    return done


class TilePass:
    """Choose mode, tile sizes and loop order for every GEMM op (weight-reuse blockings
    with close estimates are timed, :func:`choose_tiling`; in worker processes where
    :func:`timing_jobs` allows, :func:`prefetch_timings`)."""

    name = "tile"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        from .schedule import MAX_STEPS, check_steps
        cfg = g.config
        for op in g.ops:           # untimed first: refuse an oversized program cheaply
            op.tiling = choose_tiling(cfg, op, mode=op.mode, dataflow=g.options.dataflow
                                      if g.options.dataflow != "auto" else "weight-reuse")
        check_steps(g.name, g.ops)
        timed: dict = {}
        jobs = timing_jobs()
        if jobs > 1:
            prefetch_timings(g, timed, jobs)
        spare = MAX_STEPS - sum(_steps(op, op.tiling) for op in g.ops)
        for op in g.ops:
            spare -= choose_mode(g, op, timed, spare)
            if g.options.dataflow == "auto":
                op.tiling = choose_order(g, op, timed)
            else:
                op.tiling = choose_tiling(
                    cfg, op, mode=op.mode, dataflow=g.options.dataflow, tmap=op.tiling.tmap,
                    timer=lambda t, rows, op=op: marginal_cycles(g, op, t, rows, timed))
            op.tiling.notes[:0] = op.mode_notes
        imgload.finalise(g)
        hostwork.written_in_place(g)
        return g, True
