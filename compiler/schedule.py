"""Scheduling: turn tiled GEMMs into an ordered instruction list with minimal ``wait`` masks.

Steps
-----
Every GEMM becomes a sequence of *steps* in the loop order of its tiling (see
:mod:`sparsa.compiler.tiling`): one step = one weight tile (LOAD WGT, PRELOAD) and one
COMPUTE streaming a chunk of activation rows. Activation *blocks* (the rows a run of steps
reads) and accumulator *blocks* (the partial sums a run of steps builds; a STORE follows
the last of them) are shared between steps. A GEMM in ``s`` sparse passes
(:func:`sparsa.compiler.wformat.split_passes`) has ``s`` weight tiles per activation tile:
K tile ``kt`` reads activation tile ``kt // s``, which a block holds once for all of them.

Double buffering
----------------
Activation blocks alternate between the two halves of the activation scratchpad, weight
tiles between two weight-scratchpad slots, accumulator blocks between two halves of the
accumulator; the array's shadow registers take the next tile while the current one
computes. Issue order of step ``i``: ``COMPUTE(i)``, ``PRELOAD(i+1)``, a chunk of the
next activation block's LOADs (the next block is split into chunks of at least
``MIN_CHUNK`` entries spread evenly over the current block's steps, so weight loads are
never stuck behind one long activation load and the LOAD unit works through the whole
block instead of holding up the in-order issue at its start; chunks shorter than the DRAM
latency go one per step from the first instead), the weight LOAD prefetched
at this step if any, then one STORE left over from an earlier accumulator block and the
first STORE of the block step ``i`` completes; the block's other STOREs (one per column
block) follow one per step, so a run of them never holds up the in-order issue (all are
emitted before their accumulator half is rewritten and before the GEMM ends).

Weight groups
-------------
Consecutive steps of one GEMM whose weight tiles are adjacent in DRAM (weight-reuse order)
form groups of up to ``options.weight_batch`` tiles, each such run cut into near-equal
groups (a short group would leave the next one too little time to arrive); one LOAD brings
a whole group into one of two group slots of the weight scratchpad, the group's PRELOADs
pick its tiles, and the next group's LOAD is issued from the group's first PRELOAD on, in
pieces of about one step's COMPUTE cycles, one per step, where DRAM keeps up with the array
(the load unit sends one read request per entry, and the in-order issue waits behind a LOAD
until its unit accepts it; where DRAM is the limit, pieces would only fill the LOAD queue).
``interleave`` carries this pipeline across GEMMs; without it a FENCE drains the core
between GEMMs.

Wait masks
----------
The core issues in order and an instruction issues only when its unit accepts it and every
unit in its ``wait`` mask is idle in the sense of ISA v4 (:mod:`sparsa.hw.isa`): waiting on
LOAD means every earlier LOAD has written its data, except the ``load_slack`` most recent
ones of a PRELOAD or COMPUTE; waiting on EXEC means the earlier COMPUTEs have read their rows,
or, for a STORE, written their results except the ``exec_slack`` most recent ones.
:class:`Emitter` tracks, per scratchpad half / weight slot / accumulator half / DRAM tensor /
shadow registers, the last writer and the last reader per unit, and what each issued
instruction proves complete; an instruction gets unit ``u`` in its mask exactly when it
conflicts (read-after-write, write-after-read, write-after-write) with an instruction of
``u`` not yet known complete, with the largest slack that still covers the conflict, so a
PRELOAD need not wait for an activation prefetch issued after its weight LOAD and a STORE
need not wait for the passes that follow the one it stores. The one exception is the shadow
registers: COMPUTE ``swap=1`` takes them over when it issues and the core holds a PRELOAD
until that swap has passed every PE, so a later PRELOAD needs no wait on EXEC.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import (
    LOAD_SLACK_BITS,
    SLACK_BITS,
    Compute,
    Fence,
    Load,
    Preload,
    Store,
    Target,
    Unit,
    act_load_fields,
)
from sparsa.hw.timing import act_entry_beats, compute_issue_cycles

from . import wformat
from .errors import CompileError
from .imgload import image_of
from .ir import CGraph, GemmOp

__all__ = ["ActBlock", "AccBlock", "Step", "Emitter", "Schedule", "SchedulePass", "static_end",
           "op_layout", "check_steps", "MIN_CHUNK"]

MIN_CHUNK = 64   # smallest activation LOAD chunk (entries) when splitting a block
#: Largest program the scheduler builds, in steps (one COMPUTE each; a step costs about
#: 2.5 instructions and 1 KiB of host memory while compiling): ResNet-50 at batch 1 on a
#: 16x16 array is about 140,000 steps.
MAX_STEPS = 5_000_000

_UNIT = {Load: int(Unit.LOAD), Preload: int(Unit.PRE), Compute: int(Unit.EXEC),
         Store: int(Unit.STORE)}
_UNITS = (int(Unit.LOAD), int(Unit.PRE), int(Unit.EXEC), int(Unit.STORE))
_MASK_UNITS = [tuple(u for u in _UNITS if m & u) for m in range(16)]   # units of a wait mask
_LOAD_U, _EXEC_U = int(Unit.LOAD), int(Unit.EXEC)
_MAX_LOAD_SLACK = (1 << LOAD_SLACK_BITS) - 1
_MAX_EXEC_SLACK = (1 << SLACK_BITS) - 1


@dataclass(eq=False, slots=True)
class ActBlock:
    key: tuple
    # sp_off, count, tensor, off, stride, act_win (0: full entries, else LOAD expand=1 width)
    loads: list[tuple[int, int, str, int, int, int]]
    half: int = -1
    loaded: bool = False
    need: int = -1     # last row of an input this program writes that the block reads


@dataclass(eq=False, slots=True)
class AccBlock:
    half: int = -1


@dataclass(eq=False, slots=True)
class Step:
    op: int
    layer: int
    block: ActBlock
    asp_off: int
    count: int
    w_tensor: str
    w_off: int
    acc: AccBlock
    acc_off: int
    accumulate: int
    useful: int
    stores: tuple[tuple[int, int, str, int, int, int, int, int], ...] = ()
    w_emitted: bool = False
    stored_rows: int = -1   # first output row of this step's STOREs


#: resource ids of the :class:`Emitter`: the two activation-scratchpad halves, the two
#: accumulator halves, the two weight-scratchpad group slots, the shadow registers; DRAM
#: tensors get ids from ``_R_TENSORS`` on (:meth:`Emitter.tensor`)
_R_ACT, _R_ACC, _R_WGT, _R_SHADOW, _R_TENSORS = 0, 2, 4, 6, 7


class Emitter:
    """Collects instructions (symbolic DRAM addresses) and computes minimal wait masks.

    What an issued instruction proves complete (the rules of :mod:`sparsa.hw.isa`): waiting
    on a unit, every earlier instruction of it -- except that waiting on ``LOAD`` with
    ``load_slack = k`` leaves the ``k`` most recent LOADs running, waiting on ``EXEC`` proves
    only that earlier COMPUTEs have *read* their rows unless the waiter is a STORE (its
    ``exec_slack = k`` leaves the ``k`` most recent COMPUTEs writing) or a FENCE. Issuing on
    its own unit proves the earlier PRELOADs/STOREs complete and the earlier COMPUTEs' reads
    done; the load unit is pipelined, so a LOAD's issue proves nothing.

    Resources are small integers (``_R_*``, :meth:`tensor`): per resource, the last writer
    (index and unit) and the last reader per unit since that write, in lists indexed by
    the id (this bookkeeping runs once per instruction of a whole network).
    """

    def __init__(self) -> None:
        self.instrs: list[tuple[type, dict[str, Any], int, str | None, int, int]] = []
        self._done = [-1] * (int(Unit.ALL) + 1)   # per unit bit: every instruction up to
        self._rdone = list(self._done)            # here has completed / done its reads
        self._widx = [-1] * _R_TENSORS            # per resource: its last writer's index,
        self._wunit = [0] * _R_TENSORS            # ... that writer's unit,
        self._readers: list[dict[int, int] | None] = [None] * _R_TENSORS  # {unit: index}
        self._tensors: dict[str, int] = {}
        self._loads: list[int] = []              # indices of the LOADs, in order
        self._computes: list[int] = []           # indices of the COMPUTEs, in order

    def tensor(self, name: str) -> int:
        """The resource id of DRAM tensor ``name``."""
        rid = self._tensors.get(name)
        if rid is None:
            rid = self._tensors[name] = len(self._widx)
            self._widx.append(-1)
            self._wunit.append(0)
            self._readers.append(None)
        return rid

    def _after(self, seq: list[int], idx: int) -> int:
        """How many of ``seq`` (indices, ascending) come after instruction ``idx``."""
        return len(seq) - bisect_right(seq, idx)

    def emit(self, cls: type, kw: dict[str, Any], accessed: tuple[int, ...] = (),
             reads: tuple[int, ...] = (), writes: tuple[int, ...] = (),
             tensor: str | None = None, layer: int = -1, useful: int = 0,
             wait: int = 0) -> None:
        """Append one instruction with the waits its accesses need: ``accessed``, every
        resource it reads or writes (each must be past its last write: read-after-write
        and write-after-write); ``reads``, those later writers must wait for it to have
        read (write-after-read: not a LOAD's DRAM source, whose rows are never rewritten
        after it, nor the shadow registers a COMPUTE takes over when it issues);
        ``writes``, those it writes."""
        unit = _UNIT.get(cls, 0)
        idx = len(self.instrs)
        done, widx, wunit = self._done, self._widx, self._wunit
        # the newest conflicting LOAD / COMPUTE that must have completed (for the slacks)
        need_load = need_exec = -1
        for r in accessed:
            wi = widx[r]
            if wi >= 0:
                u = wunit[r]
                if u != unit and done[u] < wi:
                    wait |= u
                    if u == _LOAD_U:
                        if wi > need_load:
                            need_load = wi
                    elif u == _EXEC_U and wi > need_exec:
                        need_exec = wi
        rdone, readers = self._rdone, self._readers
        for r in writes:
            rd = readers[r]
            if rd:
                for u, i in rd.items():
                    if u != unit and rdone[u] < i:
                        wait |= u
        if cls is Fence:
            wait = wait or int(Unit.ALL)
        load_slack = exec_slack = 0
        if need_load >= 0 and (cls is Preload or cls is Compute):
            load_slack = min(self._after(self._loads, need_load), _MAX_LOAD_SLACK)
        if need_exec >= 0:
            if cls is not Store:
                raise CompileError(f"{cls.__name__} would need COMPUTE results: only a STORE "
                                   "can wait for them")   # no such access in this scheduler
            exec_slack = min(self._after(self._computes, need_exec), _MAX_EXEC_SLACK)
        if load_slack:
            kw = {**kw, "load_slack": load_slack}
        if exec_slack:
            kw = {**kw, "exec_slack": exec_slack}
        self.instrs.append((cls, kw, 0 if cls is Fence else wait, tensor, layer, useful))
        # what this instruction's issue proves
        if wait:
            for u in _MASK_UNITS[wait]:
                if u == _LOAD_U:
                    loads = self._loads
                    upto = loads[-1 - load_slack] if load_slack < len(loads) else -1
                elif u == _EXEC_U:
                    if cls is not Store and cls is not Fence:
                        rdone[u] = idx - 1           # COMPUTEs before have read their rows
                        continue
                    comps = self._computes
                    upto = comps[-1 - exec_slack] if exec_slack < len(comps) else -1
                else:
                    upto = idx - 1
                if upto > done[u]:
                    done[u] = upto
                if upto > rdone[u]:
                    rdone[u] = upto
        if unit == _LOAD_U:
            self._loads.append(idx)
        elif unit == _EXEC_U:
            rdone[unit] = idx - 1
            self._computes.append(idx)
        elif unit:
            done[unit] = rdone[unit] = idx - 1
        for r in reads:
            rd = readers[r]
            if rd is None:
                readers[r] = {unit: idx}
            else:
                rd[unit] = idx
        for r in writes:
            widx[r] = idx
            wunit[r] = unit
            readers[r] = None

    def fence(self) -> None:
        self.emit(Fence, {})


def op_layout(cfg: AccelConfig, op: GemmOp) -> dict[str, int]:
    """DRAM layout numbers of ``op``: activation entry beats and row stride, output store
    beats per column block and row stride, weight tile beats."""
    t = op.tiling
    aw = wformat.act_window_field(cfg, t.mode, t.kp)   # 0: full entries, else window width
    eb_a = act_entry_beats(cfg, aw)
    sb = cfg.beats(cfg.cols if op.requant else cfg.acc_entry_bytes)
    cmp_n, cmp_m = op.cmp if t.mode == "load-sparse" and op.cmp else (0, 0)
    ents = cfg.rows // cmp_m * cmp_n if cmp_m else cfg.rows
    geo = image_of(op)     # X read from the padded image: its rows are pixels
    x_row = (geo.C // t.kp if geo else op.act_tiles) * eb_a
    return {"eb_a": eb_a, "act_win": aw, "x_row": x_row, "sb": sb,
            "y_row": t.nq * sb, "tile_beats": ents * cfg.beats(cfg.wgt_entry_bytes),
            "tile_entries": ents, "cmp_n": cmp_n, "cmp_m": cmp_m}


@dataclass
class Schedule:
    """The emitted instruction list (symbolic DRAM addresses) and the layouts it uses."""

    instrs: list
    layouts: dict[str, dict[str, int]]
    steps: int
    blocks: int
    reused_blocks: int
    weight_loads: int = 0

    def summary(self) -> dict[str, Any]:
        kinds = Counter(c.__name__ for c, *_ in self.instrs)
        waits = sum(1 for _, _, w, *_ in self.instrs if w)
        return {"instructions": len(self.instrs), "by_kind": dict(sorted(kinds.items())),
                "steps": self.steps, "act_blocks": self.blocks,
                "reused_act_blocks": self.reused_blocks, "weight_loads": self.weight_loads,
                "instrs_with_wait": waits}


def weight_batch(cfg: AccelConfig, opt: Any) -> int:
    """Weight tiles per weight LOAD: ``opt.weight_batch`` capped so that the two group
    slots (one without double buffering) fit in the weight scratchpad."""
    slots = 2 if opt.double_buffer else 1
    return max(1, min(opt.weight_batch, cfg.wgt_entries // (slots * cfg.rows)))


def _op_steps(cfg: AccelConfig, op: GemmOp, oi: int, layer: int, lay: dict[str, int]
              ) -> list[Step]:
    t = op.tiling
    tm = t.tmap
    eb, xr, ex, sb, yr = lay["eb_a"], lay["x_row"], lay["act_win"], lay["sb"], lay["y_row"]
    tb = lay["tile_beats"]
    # activation tiles read by kept K tiles (K tile kt reads kt // passes: a GEMM in
    # passes reads each activation tile with `passes` weight tiles, loaded once)
    ps = op.passes
    # per column block: (activation tile, DRAM offset, non-zeros) of its kept tiles in
    # DRAM order (the tiles of a column block are consecutive)
    qt_ptr = tm.qt_ptr().tolist()
    nnz = tm.nnz.tolist()
    tiles_of = [[(kt // ps, (qt_ptr[qt] + j) * tb, nnz[kt][qt])
                 for j, kt in enumerate(tm.kts(qt))] for qt in range(tm.nq)]
    kas_used = sorted({kt // ps for kt in range(tm.nk) if tm.keep[kt].any()})
    wname = f"{op.name}.w"
    st_args = (op.relu, op.requant, op.shift)
    steps: list[Step] = []

    geo = image_of(op)
    oimg = op.out_image

    def block(p0: int, c: int, kas: list[int]) -> ActBlock:
        if geo is not None:   # implicit im2col: a LOAD per output-image row (imgload)
            return ActBlock(key=(op.x, p0, c, tuple(kas), ex, eb, xr),
                            loads=[(j * c + r, n, op.x, off, stride, ex)
                                   for j, ka in enumerate(kas)
                                   for r, n, off, stride in geo.loads(p0, c, ka, t.kp, eb)],
                            need=geo.last_input_row(p0 + c - 1) if op.x_chained else -1)
        return ActBlock(key=(op.x, p0, c, tuple(kas), ex, eb, xr),
                        loads=[(j * c, c, op.x, p0 * xr + ka * eb, xr, ex)
                               for j, ka in enumerate(kas)],
                        need=p0 + c - 1 if op.x_chained else -1)

    kc = t.kc or len(kas_used)
    kchunks = [kas_used[i:i + kc] for i in range(0, len(kas_used), kc)]
    for p0 in range(0, op.P, t.pc):
        c = min(t.pc, op.P - p0)
        # one activation block per chunk of K tiles; a single chunk stays resident for
        # every column block (the same block object: loaded once even without reuse)
        blocks = [block(p0, c, ks) for ks in kchunks]
        for q0 in range(0, tm.nq, t.qb):
            qts = range(q0, min(q0 + t.qb, tm.nq))
            acc = AccBlock()
            started: set[int] = set()
            if q0 and len(blocks) > 1:
                blocks = [block(p0, c, ks) for ks in kchunks]
            for ks, blk in zip(kchunks, blocks, strict=True):
                slot = {ka: j * c for j, ka in enumerate(ks)}
                for qt in qts:
                    accumulate = int(qt in started)    # the column block's first tile: 0
                    q_off = (qt - q0) * c
                    for ka, w_off, nz in tiles_of[qt]:
                        a_off = slot.get(ka)
                        if a_off is None:
                            continue
                        steps.append(Step(oi, layer, blk, a_off, c, wname, w_off, acc, q_off,
                                          accumulate, c * nz))
                        if not accumulate:
                            started.add(qt)
                            accumulate = 1
            last = steps[-1]
            last.stored_rows = p0
            if oimg is None:
                last.stores += tuple(((qt - q0) * c, c, op.y, p0 * yr + qt * sb, yr, *st_args)
                                     for qt in qts)
            else:   # into the next convolution's padded image: a STORE per image row
                last.stores += tuple(((qt - q0) * c + r, n, op.y, pix * yr + qt * sb, yr,
                                      *st_args)
                                     for qt in qts for r, n, pix in oimg.stored_rows(p0, c))
    return steps


def _chunks(blk: ActBlock, parts: int) -> list[tuple[int, int, str, int, int, int]]:
    """Split a block's loads into about ``parts`` LOADs of at least ``MIN_CHUNK`` entries."""
    total = sum(ld[1] for ld in blk.loads)
    size = max(MIN_CHUNK, -(-total // max(1, parts)))
    out = []
    for sp, cnt, ten, off, stride, ex in blk.loads:
        for lo in range(0, cnt, size):
            n = min(size, cnt - lo)
            out.append((sp + lo, n, ten, off + lo * stride, stride, ex))
    return out


def check_steps(name: str, ops: list[GemmOp]) -> None:
    """Refuse a program of more than ``MAX_STEPS`` array steps (one COMPUTE each) for the
    tilings of ``ops``, before any work is spent on it."""
    n_steps = sum(-(-op.P // op.tiling.pc) * op.tiling.tiles for op in ops)
    if n_steps > MAX_STEPS:
        raise steps_error(name, n_steps)


def steps_error(name: str, n_steps: int, at_least: bool = False) -> CompileError:
    """The error of a program of ``n_steps`` (``at_least``: a lower bound) array steps,
    more than ``MAX_STEPS``."""
    return CompileError(f"{name}: {'at least ' if at_least else ''}{n_steps:,} array steps "
                        f"exceed the scheduler's limit of {MAX_STEPS:,} (about "
                        f"{MAX_STEPS * 5 // 2:,} instructions); use a smaller --batch/--seq "
                        f"or a larger array")


def schedule(g: CGraph) -> Schedule:
    """Build the instruction list of every GEMM op of ``g`` (see the module docstring)."""
    cfg, opt = g.config, g.options
    dbl = opt.double_buffer
    act_half, acc_half = cfg.act_entries // 2, cfg.acc_entries // 2
    layouts = {op.name: op_layout(cfg, op) for op in g.ops}
    producer = {op.y: op for op in g.ops}
    for _ in range(2):   # a chained input shares its row stride with its producer's output
        for op in g.ops:
            if op.x_chained:
                lp, lc = layouts[producer[op.x].name], layouts[op.name]
                lp["y_row"] = lc["x_row"] = max(lp["y_row"], lc["x_row"])
    check_steps(getattr(g, "name", "program"), g.ops)
    steps: list[Step] = []
    for oi, op in enumerate(g.ops):
        steps += _op_steps(cfg, op, oi, op.node, layouts[op.name])

    # activation blocks: merge consecutive equal blocks (reuse), assign halves
    seq: list[ActBlock] = []
    reused = 0
    for st in steps:
        if seq and st.block is not seq[-1] and opt.reuse_schedule \
                and st.block.key == seq[-1].key:
            st.block = seq[-1]
            reused += 1
            continue
        if not seq or st.block is not seq[-1]:
            seq.append(st.block)
    for i, b in enumerate(seq):
        b.half = i % 2 if dbl else 0
    # accumulator blocks alternate halves
    acc_seen: dict[int, AccBlock] = {}
    for st in steps:
        if id(st.acc) not in acc_seen:
            st.acc.half = len(acc_seen) % 2 if dbl else 0
            acc_seen[id(st.acc)] = st.acc

    # prefetch plan: chunks of block b+1 issued after the steps of block b
    chunks_after: dict[int, list] = {}
    if dbl:
        first_step: dict[int, int] = {}
        # per tensor written by STOREs: (first row, step) in step order, and the running
        # maximum of the rows' first steps: an input block is ready after the last step
        # storing a row it reads (whole tensor: after the last STORE to it)
        stored: dict[str, list[tuple[int, int]]] = {}
        for i, st in enumerate(steps):
            if st.stores:
                stored.setdefault(st.stores[0][2], []).append((st.stored_rows, i))
        by_row: dict[str, tuple[list[int], list[int]]] = {}
        for ten, lst in stored.items():
            lst.sort()
            by_row[ten] = ([r for r, _ in lst],
                           list(itertools.accumulate((s for _, s in lst), max)))

        def ready_at(b: ActBlock) -> int:
            rec = by_row.get(b.loads[0][2]) if b.loads else None
            if rec is None:
                return -1
            rows, upto = rec
            if b.need < 0:
                return upto[-1]
            j = bisect_right(rows, b.need)
            return upto[j - 1] if j else -1
        runs: dict[int, list[int]] = {}
        for i, st in enumerate(steps):
            runs.setdefault(id(st.block), []).append(i)
            first_step.setdefault(id(st.block), i)
        for a, b in zip(seq, seq[1:], strict=False):
            ia, ib = runs[id(a)], first_step[id(b)]
            if not opt.interleave and steps[ia[-1]].op != steps[ib].op:
                continue
            # an input written by this program's STOREs is fetched only after the last one
            ready = ready_at(b)
            own = [i for i in ia if ready < i < ib]
            if not own:
                continue
            parts = _chunks(b, len(own))
            # chunks whose beats outlast the DRAM latency are spread evenly (queued
            # together they would hold up the in-order issue); latency-bound ones (a row or
            # two per K tile, as in decoding) go one per step from the first, so the next
            # block is ready early
            eb = {aw: act_entry_beats(cfg, aw) for aw in {ld[5] for ld in b.loads}}
            beats = sum(ld[1] * eb[ld[5]] for ld in b.loads)
            spread = beats >= len(parts) * max(1, cfg.dram_latency_cycles) or \
                len(parts) > len(own)
            for j, ch in enumerate(parts):
                at = j * len(own) // len(parts) if spread else min(j, len(own) - 1)
                chunks_after.setdefault(own[at], []).append((ch, b))
            b.loaded = True

    # weight groups: each run of steps of one op whose tiles are consecutive in DRAM is cut
    # into near-equal groups of at most ``weight_batch`` tiles (a short group would leave
    # the next one little time to arrive); a group shares one LOAD into a group slot (two
    # slots alternate)
    gmax = weight_batch(cfg, opt)
    op_tb = [layouts[op.name]["tile_beats"] for op in g.ops]
    grp = [0] * len(steps)
    gpos = [0] * len(steps)
    gsteps: list[list[int]] = []
    run: list[int] = []
    for i, st in enumerate(steps):
        pv = steps[i - 1] if i else None
        if pv is not None and pv.op == st.op and st.w_off == pv.w_off + op_tb[st.op]:
            run.append(i)
        else:
            run = [i]
        if i + 1 < len(steps) and steps[i + 1].op == st.op and \
                steps[i + 1].w_off == st.w_off + op_tb[st.op]:
            continue
        parts = -(-len(run) // gmax)
        bounds = [len(run) * j // parts for j in range(parts + 1)]
        for a, b in zip(bounds, bounds[1:], strict=False):
            for j, k in enumerate(run[a:b]):
                grp[k], gpos[k] = len(gsteps), j
            gsteps.append(run[a:b])
    g_loaded = [False] * len(gsteps)
    # a prefetched group's LOAD is split into pieces of about one step's COMPUTE cycles,
    # issued one per step of the group before: one long LOAD holds up the in-order issue of
    # everything behind it while the load unit sends its read requests. Only where DRAM
    # keeps up with the array: where it is the limit, pieces only fill the LOAD queue, and
    # a full queue holds up the issue as well. Load-as-sparse LOADs stay whole.
    g_split = [1] * len(gsteps)
    g_next = [0] * len(gsteps)      # entries of the group already loaded
    if dbl and len(gsteps) > 1:
        # running sums over the steps (a group's steps are consecutive) of the activation
        # beats loaded after each step and of the steps' COMPUTE issue cycles
        eb = {aw: act_entry_beats(cfg, aw) for aw in {ch[5] for lst in chunks_after.values()
                                                      for ch, _ in lst}}
        after = [0] * len(steps)
        for j, lst in chunks_after.items():
            after[j] = sum(ch[1] * eb[ch[5]] for ch, _ in lst)
        beats_upto = [0, *itertools.accumulate(after)]
        cycles_upto = [0, *itertools.accumulate(compute_issue_cycles(st.count)
                                                for st in steps)]
    for gi in range(1, len(gsteps) if dbl else 0):
        members, before = gsteps[gi], gsteps[gi - 1]
        lay = layouts[g.ops[steps[members[0]].op].name]
        ne = lay["tile_entries"]
        if lay["cmp_m"] or len(before) < 2:
            continue
        total = ne * len(members)
        lo, hi = before[0], before[-1] + 1
        assert hi - lo == len(before), "a weight group's steps are consecutive"
        beats = total * (lay["tile_beats"] // ne) + beats_upto[hi] - beats_upto[lo]
        if beats > cycles_upto[hi] - cycles_upto[lo]:
            continue
        step_cycles = compute_issue_cycles(steps[before[0]].count)
        g_split[gi] = min(len(before) - 1, -(-total // max(ne, step_cycles)))

    em = Emitter()
    prefetch: list[int] = []
    rows = cfg.rows

    act_fields: dict[int, dict[str, int]] = {}
    # a COMPUTE's (accessed, reads, writes) by activation half, accumulator half, accumulate
    comp_res = [[[((_R_ACT + a, _R_ACC + c, _R_SHADOW), (_R_ACT + a,) + ((_R_ACC + c,) if acc
                                                                        else ()), (_R_ACC + c,))
                  for acc in (0, 1)] for c in (0, 1)] for a in (0, 1)]

    def emit_load(ch: tuple, blk: ActBlock, layer: int) -> None:
        sp, cnt, ten, off, stride, aw = ch
        fields = act_fields.get(aw)
        if fields is None:
            fields = act_fields[aw] = act_load_fields(cfg, aw)
        # the rows an activation LOAD reads are final (an input, or output rows whose
        # STOREs came before; later STOREs to the tensor write other rows): no WAR waits
        em.emit(Load, {"target": Target.ACT, "sp_addr": blk.half * act_half + sp,
                       "count": cnt, "dram_addr": off, "dram_stride": stride, **fields},
                (em.tensor(ten), _R_ACT + blk.half), (), (_R_ACT + blk.half,), ten, layer)

    def emit_wload(gi: int, piece: bool = False) -> None:
        """The rest of group ``gi``'s LOAD; ``piece``: only its next piece."""
        members = gsteps[gi]
        st = steps[members[0]]
        slot = gi % 2 if dbl else 0
        lay = layouts[g.ops[st.op].name]
        ne = lay["tile_entries"]
        total = ne * len(members)
        start = g_next[gi]
        k = g_split[gi]
        stop = total if not piece else min(total, start + -(-total // k))
        eb = lay["tile_beats"] // ne
        kw = {"target": Target.WGT, "sp_addr": slot * gmax * rows + start,
              "count": stop - start, "dram_addr": st.w_off + start * eb, "dram_stride": eb}
        if lay["cmp_m"]:   # load-as-sparse: the LOAD expands compressed entries
            kw.update(expand=1, cmp_n=lay["cmp_n"], cmp_m=lay["cmp_m"])
        ten = em.tensor(st.w_tensor)
        em.emit(Load, kw, (ten, _R_WGT + slot), (ten,), (_R_WGT + slot,), st.w_tensor,
                st.layer)
        g_next[gi] = stop
        g_loaded[gi] = stop == total

    def emit_w(i: int) -> None:
        st = steps[i]
        gi = grp[i]
        if not g_loaded[gi]:
            emit_wload(gi)
        slot = gi % 2 if dbl else 0
        em.emit(Preload, {"wsp_addr": (slot * gmax + gpos[i]) * rows},
                (_R_WGT + slot, _R_SHADOW), (_R_WGT + slot,), (_R_SHADOW,), None, st.layer)
        st.w_emitted = True
        # prefetch the next group (its next piece) into the other slot, free now that
        # this group's first PRELOAD follows every PRELOAD of the group before; issued
        # after the activation LOADs of the current step, which are needed sooner
        nx = gi + 1
        if dbl and nx < len(gsteps) and not g_loaded[nx] and (gpos[i] == 0 or g_next[nx]) \
                and (opt.interleave or steps[gsteps[nx][0]].op == st.op):
            prefetch.append(nx)

    pending: list[tuple[Step, tuple]] = []    # STOREs not yet emitted, in order
    due = 0                                    # step before which pending[0] must issue

    def deadline(i: int) -> int:
        """The step before which step ``i``'s STOREs must issue: the next one of another op
        or the next one rewriting its accumulator half."""
        st = steps[i]
        for j in range(i + 1, len(steps)):
            s2 = steps[j]
            if s2.op != st.op or (s2.acc.half == st.acc.half and s2.acc is not st.acc):
                return j
        return len(steps)

    def emit_store(st: Step, sto: tuple) -> None:
        acc_off, cnt, ten, off, stride, relu, rq, sh = sto
        tid = em.tensor(ten)
        em.emit(Store, {"acc_addr": st.acc.half * acc_half + acc_off, "count": cnt,
                        "dram_addr": off, "dram_stride": stride, "relu": relu,
                        "requant": rq, "shift": sh},
                (_R_ACC + st.acc.half, tid), (_R_ACC + st.acc.half,), (tid,), ten, st.layer)

    for i, st in enumerate(steps):
        if not st.block.loaded:
            for ch in _chunks(st.block, 1):
                emit_load(ch, st.block, st.layer)
            st.block.loaded = True
        if not st.w_emitted:
            emit_w(i)
        # reads its activation half (and accumulator half when accumulating), writes the
        # accumulator half, takes over the shadow registers on issue (no reader record)
        em.emit(Compute, {"asp_addr": st.block.half * act_half + st.asp_off,
                          "acc_addr": st.acc.half * acc_half + st.acc_off, "count": st.count,
                          "accumulate": st.accumulate, "swap": 1},
                *comp_res[st.block.half][st.acc.half][st.accumulate], None, st.layer,
                st.useful)
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        same = nxt is not None and nxt.op == st.op
        if nxt is not None and dbl and (opt.interleave or same):
            emit_w(i + 1)
        for ch, blk in chunks_after.get(i, ()):
            if pending and any(sto[2] == ch[2] for _, sto in pending):
                while pending:    # rows it reads may still be in STOREs not yet issued
                    emit_store(*pending.pop(0))
            emit_load(ch, blk, st.layer)
        for gi in prefetch:
            if not g_loaded[gi]:
                emit_wload(gi, piece=True)
        prefetch.clear()
        # STOREs: the first of an accumulator block right away, the rest spread over the
        # later steps, one per step or as many as reach the deadline (a run of STOREs
        # would hold up the in-order issue while the store unit works through them); all
        # before the half is rewritten and before the op ends
        if pending:
            for _ in range(min(len(pending), -(-len(pending) // max(1, due - i)))):
                emit_store(*pending.pop(0))
        if st.stores:
            emit_store(st, st.stores[0])
            if not pending and len(st.stores) > 1:
                due = deadline(i)
            pending.extend((st, sto) for sto in st.stores[1:])
        if nxt is None or not same or pending and any(
                p.acc.half == nxt.acc.half and p.acc is not nxt.acc for p, _ in pending):
            while pending:
                emit_store(*pending.pop(0))
        if nxt is not None and not same and not opt.interleave:
            em.fence()
    return Schedule(em.instrs, layouts, len(steps), len(seq), reused, len(gsteps))


class SchedulePass:
    """Order every GEMM's steps, double-buffer, and compute wait masks."""

    name = "schedule"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        g.sched = schedule(g)
        switched = [op for op in g.ops if op.tiling.fallback is not None]
        if switched:
            _keep_faster_program(g, switched)
        return g, True


def static_end(cfg: AccelConfig, sched: Schedule) -> list[int]:
    """The cycle each instruction of ``sched`` ends on ``cfg``'s core by the static issue
    schedule (:func:`sparsa.hw.schedule.schedule`; the model with its default memory
    system and the RTL give the same)."""
    from sparsa.hw.schedule import schedule_fields
    return schedule_fields(cfg, [t[:3] for t in sched.instrs]).end


_MIXED: list = []    # (graph, schedule) timed by a forked worker of _keep_faster_program


def _cycles(g: CGraph, sched: Schedule) -> int:
    return max(static_end(g.config, sched), default=0)


def _mixed_cycles(_: int) -> int:
    return _cycles(*_MIXED[0])


def _keep_faster_program(g: CGraph, switched: list) -> None:
    """``dataflow="auto"`` chose act-reuse for the GEMMs ``switched``, each timed alone;
    the whole program is timed with those choices and with weight-reuse for them instead,
    and the faster is kept, so ``auto`` is never slower than weight-reuse on a program
    (a GEMM timed alone misses its overlap with its neighbours). Where the tile pass's
    timings run in worker processes (:func:`sparsa.compiler.tiling.timing_jobs`), a forked
    worker times the first program while this process schedules the second."""
    from .tiling import timing_jobs
    mixed = g.sched
    pool = pending = None
    if timing_jobs() > 1:
        import multiprocessing
        _MIXED[:] = [(g, mixed)]
        pool = multiprocessing.get_context("fork").Pool(1)
        pending = pool.apply_async(_mixed_cycles, (0,))
    try:
        chosen = [op.tiling for op in switched]
        for op in switched:
            op.tiling = op.tiling.fallback
        plain = schedule(g)
        c_wr = _cycles(g, plain)
        c_mix = pending.get() if pending is not None else _cycles(g, mixed)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _MIXED.clear()
    keep = c_mix < c_wr
    n = len(switched)
    note = (f"auto: whole program {c_mix} cycles with act-reuse for the {n} GEMM"
            f"{'s' if n > 1 else ''} it won alone, {c_wr} with weight-reuse: "
            f"{'act-reuse' if keep else 'weight-reuse'} kept")
    for op, ar in zip(switched, chosen, strict=True):
        wr = ar.fallback
        if keep:
            op.tiling = ar
        else:
            wr.notes[:0] = op.mode_notes
            wr.notes += [n for n in ar.notes if n.startswith("auto:")]
        op.tiling.notes.append(note)
        ar.fallback = None
    g.sched = mixed if keep else plain
