"""SimPy cycle model of the sparse systolic core.

Describe -> instantiate -> run:

* an :class:`OpStream` describes the work: one operation per ISA instruction (unit, ``wait``
  mask, busy cycles from :mod:`sparsa.hw.timing`, DRAM beats, layer). :func:`ops_from_program`
  builds it from a compiled :class:`~sparsa.compiler.program.Program` (the weight-stationary
  core); :mod:`sparsa.sim.dataflows` builds the same thing for the model-only
  output-/input-stationary arrays.
* :class:`CoreModel` instantiates the SimPy elements: the controller (in-order issue, at most
  one instruction per cycle, an instruction issues when its own unit accepts it and every
  unit of its ``wait`` mask is idle -- the ISA v4 rules of :mod:`sparsa.hw.isa`, slacks and
  swap wave included), the four units (LOAD and EXEC pipelined: the next instruction
  overlaps the current one's latency; PRE and STORE one at a time) and the DRAM channels
  the LOAD and STORE units move beats through.
* :meth:`CoreModel.run` runs it and returns :class:`RunStats` (issue and end cycle of every
  operation, per-unit busy/stall counters, total cycles).

Timing. A unit is busy for the formula's cycles (``hw/timing.py``, never restated here)
plus whatever the DRAM adds: a LOAD's read request leaves at issue, its beats come back after
``dram_latency_cycles`` on the read channel, a STORE's (posted) beats leave at issue on the
write channel. The channel moves one beat every ``dram_beat_cycles`` cycles (1: the
config's ``dram_bytes_per_cycle``). A beat that cannot move because the channel is busy
delays the end of its instruction by the same number of cycles. With the default options
(independent read and write channels at full rate) a beat waits only for the beats of the
LOADs before it (the RTL's in-order data), and the model equals
:func:`sparsa.hw.schedule.schedule` cycle for cycle -- the tests check that on many
programs. Options that create contention:

``dram_sharing="shared"``
    one half-duplex channel for reads and writes, arbitrated round robin between the LOAD
    and STORE units in bursts of ``burst_beats`` beats (one SimPy event per burst);
``dram_beat_cycles=k``
    a memory system that sustains only ``dram_bytes_per_cycle / k`` bytes per cycle.

Events are per array pass (the controller advances SimPy time to every COMPUTE issue; the
loads, preload and store between two computes issue at their computed cycles, exactly,
because everything they wait on is already decided), per DMA instruction and per DRAM
burst on a shared channel -- never per cycle.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import (
    FIELD_DEFAULTS,
    SLACK_BITS,
    Compute,
    Fence,
    Load,
    Preload,
    Store,
    Target,
    Unit,
)
from sparsa.hw.timing import (
    FENCE_CYCLES,
    ISSUE_CYCLES,
    LOAD_QUEUE,
    fields_timing,
    store_entry_beats,
    swap_wave_cycles,
)

from .errors import SimError

__all__ = ["ModelOptions", "OpStream", "LayerSpec", "CoreModel", "RunStats", "DramChannel",
           "UNIT_NAMES", "ACTIONS", "ops_from_program", "union_parts"]

#: The four units in report order, with their report names.
UNIT_NAMES: dict[int, str] = {int(Unit.LOAD): "load", int(Unit.PRE): "preload",
                              int(Unit.EXEC): "exec", int(Unit.STORE): "store"}
_UNITS = tuple(UNIT_NAMES)
#: for every wait mask (incl. the op's own unit bit), the units it names
_NEED = tuple(tuple(u for u in _UNITS if m & u) for m in range(16))

#: Counted actions per layer (inputs of :mod:`sparsa.sim.energy`). Bytes unless noted.
ACTIONS = (
    "pe_ops",            # PE slots that streamed an activation (rows*cols per row), count
    "nonzero_macs",      # of those, MACs with a non-zero weight, count
    "mux_selects",       # window-multiplexer selections (one per PE op), count
    "sram_act_read", "sram_act_write",
    "sram_wgt_read", "sram_wgt_write",      # weight values
    "sram_meta_read", "sram_meta_write",    # packed N:M indices next to the values
    "sram_acc_read", "sram_acc_write",
    "dram_read", "dram_write",
)


@dataclass(frozen=True)
class ModelOptions:
    """Knobs of the memory system the model assumes (defaults = the RTL's test bench).

    Parameters
    ----------
    dram_sharing : {"split", "shared"}
        ``split``: independent read and write channels (``hw/timing.py`` convention).
        ``shared``: one channel for both, arbitrated round robin per burst.
    dram_beat_cycles : int
        Cycles the channel needs per beat (>= 1).
    burst_beats : int
        Arbitration granularity of a shared channel, in beats (>= 1).
    """

    dram_sharing: str = "split"
    dram_beat_cycles: int = 1
    burst_beats: int = 16

    def __post_init__(self) -> None:
        if self.dram_sharing not in ("split", "shared"):
            raise SimError(f"options: dram_sharing={self.dram_sharing!r} is invalid; "
                           f"allowed: split, shared")
        for f in ("dram_beat_cycles", "burst_beats"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
                raise SimError(f"options: {f}={v!r} is invalid; allowed an integer 1..4096")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "options") -> ModelOptions:
        """Build from a mapping; unknown keys are an error naming the allowed ones."""
        if not data:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        for k in data:
            if k not in names:
                raise SimError(f"{source}: unknown model option {k!r}; allowed: "
                               f"{', '.join(sorted(names))}")
        return cls(**data)


@dataclass
class LayerSpec:
    """Static facts of one layer: what it computes and the actions it performs."""

    name: str
    kind: str = "gemm"
    mode: str = "dense"            # "sparse" or "dense" (array mode), "mixed" if both
    dense_macs: int = 0            # dense-equivalent MACs of its GEMM(s)
    nonzero_macs: int = 0          # MACs with a non-zero weight
    actions: dict[str, int] = field(default_factory=dict)


@dataclass
class OpStream:
    """The operations one program (or one dataflow variant) asks the core to perform.

    Parallel lists, one entry per operation in issue order. ``unit`` is a
    :class:`~sparsa.hw.isa.Unit` flag value (``0`` for FENCE); ``wait`` the units that must be
    idle before issue (a FENCE's mask 0 already widened to all units); ``cycles`` the busy
    cycles from the timing formulas; ``beats`` the DRAM beats a LOAD reads or a STORE writes;
    ``stream`` the EXEC cycles spent streaming rows (the rest is fill/drain); ``layer`` an
    index into ``layers`` (-1: none). ``read_offset`` is the cycles from issue to the first
    read beat (the DRAM latency); ``window_cycles`` EXEC cycles a dataflow variant spends
    waiting on activation-window bandwidth (0 for the real core).

    The pipelined units (``hw/isa.py``): ``accept`` the cycles until the op's unit takes its
    next op (default: ``cycles``, not pipelined), ``slack`` a STORE's ``exec_slack`` or a
    PRELOAD's/COMPUTE's ``load_slack``, ``swap`` a COMPUTE's swap flag (a PRELOAD waits for
    its wave), ``solo`` a LOAD that issues only when no LOAD is outstanding (default: a LOAD
    of no beats).
    """

    unit: list[int]
    wait: list[int]
    cycles: list[int]
    beats: list[int]
    stream: list[int]
    layer: list[int]
    layers: list[LayerSpec]
    read_offset: int
    window_cycles: list[int] | None = None
    accept: list[int] | None = None
    slack: list[int] | None = None
    swap: list[int] | None = None
    solo: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.unit)


class DramChannel:
    """One DRAM data channel: moves one beat every ``beat_cycles`` cycles.

    An exclusive channel (one client) grants a whole transfer at once with :meth:`reserve`
    (no event needed: nothing can overtake an in-order client). A shared channel runs an
    arbiter process that serves the pending transfers round robin, ``burst_beats`` at a time
    (:meth:`transfer` returns the event that fires when the last beat has moved).
    """

    def __init__(self, env: simpy.Environment, name: str, *, beat_cycles: int,
                 burst_beats: int, shared: bool) -> None:
        self.env = env
        self.name = name
        self.beat_cycles = beat_cycles
        self.burst_beats = burst_beats
        self.free_at = 0
        self.beats = 0
        self.busy_cycles = 0
        self.shared = shared
        self._pending: list[list[Any]] = []    # [client, remaining, ready_at, done]
        self._wake: simpy.Event | None = None
        self._last = -1
        if shared:
            env.process(self._arbiter())

    def reserve(self, beats: int, ready_at: int) -> int:
        """Exclusive channel: move ``beats`` beats no earlier than ``ready_at``; return the
        cycle after the last beat."""
        start = ready_at if ready_at > self.free_at else self.free_at
        dur = beats * self.beat_cycles
        self.free_at = start + dur
        self.beats += beats
        self.busy_cycles += dur
        return self.free_at

    def transfer(self, client: int, beats: int, ready_at: int) -> simpy.Event:
        """Shared channel: queue a transfer; the event fires after its last beat."""
        done = self.env.event()
        if beats == 0:
            done.succeed()
            return done
        self._pending.append([client, beats, ready_at, done])
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()
        return done

    def _arbiter(self):
        env = self.env
        while True:
            now = env.now
            ready = [p for p in self._pending if p[2] <= now]
            if not ready:
                self._wake = env.event()
                if self._pending:
                    nxt = min(p[2] for p in self._pending)
                    yield env.any_of([self._wake, env.timeout(nxt - now)])
                else:
                    yield self._wake
                continue
            # round robin: the first ready client after the one served last
            ready.sort(key=lambda p: (p[0] <= self._last, p[0]))
            p = ready[0]
            self._last = p[0]
            chunk = min(self.burst_beats, p[1])
            dur = chunk * self.beat_cycles
            yield env.timeout(dur)
            self.beats += chunk
            self.busy_cycles += dur
            p[1] -= chunk
            if p[1] == 0:
                self._pending.remove(p)
                p[3].succeed()


@dataclass
class RunStats:
    """What one run measured.

    ``issue``/``end``: issue cycle and completion (first cycle after) of every operation
    (FENCE: issue + FENCE_CYCLES). ``blocker``: the unit whose busy time last delayed an
    operation's issue (0: none / issue rate), traced back through an intermediate unit to
    LOAD/STORE when the op occupying that unit had itself waited for them. ``units``: per
    unit ``busy`` (cycles with an operation within its formula time; overlapping operations
    of the pipelined LOAD and EXEC units count once), ``dram_stall`` (further cycles with an
    operation waiting for DRAM beats), ``stall`` (cycles with nothing in flight before its
    last operation), ``idle`` (after its last operation), ``ops``; the four add up to
    ``total`` for every unit. ``busy_share``/``stall_share``: every operation's part of its
    unit's ``busy``/``dram_stall`` (:func:`union_parts`; the per-layer report sums them).
    """

    total: int
    issue: np.ndarray
    end: np.ndarray
    extra: np.ndarray
    blocker: np.ndarray
    units: dict[str, dict[str, int]]
    dram: dict[str, dict[str, int]]
    busy_share: np.ndarray
    stall_share: np.ndarray


def union_parts(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Each interval's share of the union of ``[start, stop)`` intervals given in
    nondecreasing ``start`` order (the pipelined units overlap their instructions): the
    cycles it adds beyond every earlier interval. The shares sum to the union's length."""
    if not len(start):
        return np.zeros(0, np.int64)
    before = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(stop)[:-1]))
    return np.maximum(0, stop - np.maximum(start, before))


def _decided(h: _UnitState):
    """Wait (SimPy) until a shared channel has decided when ``h`` is free; return that cycle."""
    yield h.done
    return h.free_at


class _UnitState:
    """One execution unit: the cycle it is idle again (``None`` while a DRAM transfer of a
    shared channel decides it) and its completion event in that case."""

    __slots__ = ("name", "free_at", "done")

    def __init__(self, name: str) -> None:
        self.name = name
        self.free_at: int | None = 0
        self.done: simpy.Event | None = None


class CoreModel:
    """The core as SimPy elements: controller, four units, DRAM channels.

    Parameters
    ----------
    cfg : AccelConfig
    ops : OpStream
    options : ModelOptions, optional
    """

    def __init__(self, cfg: AccelConfig, ops: OpStream,
                 options: ModelOptions | None = None) -> None:
        self.cfg = cfg
        self.ops = ops
        self.options = options or ModelOptions()
        self.env = simpy.Environment()
        o = self.options
        shared = o.dram_sharing == "shared"
        self.rd = DramChannel(self.env, "dram", beat_cycles=o.dram_beat_cycles,
                              burst_beats=o.burst_beats, shared=shared)
        self.wr = self.rd if shared else DramChannel(
            self.env, "dram_write", beat_cycles=o.dram_beat_cycles, burst_beats=o.burst_beats,
            shared=False)
        if not shared:
            self.rd.name = "dram_read"
        self.units = {u: _UnitState(UNIT_NAMES[u]) for u in _UNITS}
        n = len(ops)
        self._issue = [0] * n
        self._end = [0] * n
        self._extra = [0] * n
        self._blocker = [0] * n
        self._t_after = 0
        self._swap_wave = swap_wave_cycles(cfg)
        self._proc = self.env.process(self._controller())

    # ---- the DMA units on a shared channel (one process per transfer) ----------------
    def _dma(self, i: int, u: int, holder: _UnitState, ready_at: int, nominal_end: int):
        ops = self.ops
        yield self.rd.transfer(u, ops.beats[i], ready_at)
        # the formula's cycles after the last beat follow unchanged
        nominal_beats_end = ready_at + ops.beats[i]
        extra = max(0, self.env.now - nominal_beats_end)
        end = nominal_end + extra
        if end > self.env.now:
            yield self.env.timeout(end - self.env.now)
        self._end[i] = end
        self._extra[i] = extra
        holder.free_at = end

    # ---- the controller: in-order issue -----------------------------------------------
    def _controller(self):
        env = self.env
        ops = self.ops
        unit, wait, cycles, beats = ops.unit, ops.wait, ops.cycles, ops.beats
        n_ops = len(unit)
        accept = ops.accept if ops.accept is not None else cycles
        slack = ops.slack if ops.slack is not None else [0] * n_ops
        swap = ops.swap if ops.swap is not None else [0] * n_ops
        solo = ops.solo if ops.solo is not None else [b == 0 for b in beats]
        st = [None] * 9
        for u, s in self.units.items():
            st[u] = s
        issue, end_, extra_, blk = self._issue, self._end, self._extra, self._blocker
        shared = self.options.dram_sharing == "shared"
        rd, wr = self.rd, self.wr
        lat = ops.read_offset
        LOAD, PRE, STORE, EXEC = int(Unit.LOAD), int(Unit.PRE), int(Unit.STORE), int(Unit.EXEC)
        timeout = env.timeout
        wave = self._swap_wave
        # pipelined units: LOAD completions (a holder whose free_at is None while a shared
        # channel decides it) and COMPUTE ends, in issue order; the swap wave's end
        lq: deque[_UnitState] = deque(maxlen=LOAD_QUEUE)
        cends: deque[int] = deque(maxlen=1 << SLACK_BITS)
        swap_clear = 0
        # SimPy time advances at every COMPUTE issue (one event per array pass); the
        # loads, preload and store of a pass issue at their computed cycles in between,
        # which is exact because every time they depend on is already known. A shared
        # channel's transfers are decided by its arbiter, so there every DMA issue syncs.
        sync_all = shared
        t_next = 0
        prev_blk = 0
        # per unit: the DMA unit (LOAD/STORE) that held back the op it runs now, if any; an
        # op waiting for that unit is then blamed on the DMA, not on the unit in between
        dram_held = [0] * 9
        for i in range(n_ops):
            u = unit[i]
            ready = t_next
            b = prev_blk
            mask = wait[i]
            for x in _NEED[mask]:
                if x == LOAD:              # all but the `slack` most recent LOADs ended
                    k = slack[i] if u in (PRE, EXEC) else 0
                    if k >= len(lq):
                        continue
                    h = lq[-1 - k]
                    f = h.free_at
                    if f is None:
                        f = yield from _decided(h)
                elif x == EXEC:            # rows read; a STORE / FENCE: results written
                    if u == STORE or u == 0:
                        k = slack[i] if u == STORE else 0
                        f = cends[-1 - k] if k < len(cends) else 0
                    else:
                        f = st[EXEC].free_at
                else:
                    f = st[x].free_at
                    if f is None:
                        f = yield from _decided(st[x])
                if f > ready:
                    ready = f
                    b = x
            if u:                          # the own unit accepts the op
                f = st[u].free_at
                if f is None:
                    f = yield from _decided(st[u])
                if u == PRE and swap_clear > f:
                    f = swap_clear
                elif u == LOAD and lq:
                    h = lq[-1] if solo[i] else (lq[0] if len(lq) == LOAD_QUEUE else None)
                    if h is not None:
                        g = h.free_at
                        if g is None:
                            g = yield from _decided(h)
                        if g > f:
                            f = g
                if f > ready:
                    ready = f
                    b = u
            if u == EXEC or sync_all:
                now = env.now
                if ready > now:
                    yield timeout(ready - now)
            issue[i] = ready
            if b and b != u and dram_held[b]:
                b = dram_held[b]                # held by an op that itself waited on DRAM
            blk[i] = b
            prev_blk = b
            dram_held[u] = b if b in (LOAD, STORE) and b != u else 0
            if u == 0:                          # FENCE: occupies no unit
                end_[i] = ready + FENCE_CYCLES
                t_next = ready + FENCE_CYCLES
                continue
            t_next = ready + ISSUE_CYCLES
            c = cycles[i]
            if u in (LOAD, STORE):
                ready_at = ready + (lat if u == LOAD else 0)
                nb = beats[i]
                holder = _UnitState("load") if u == LOAD else st[u]
                if shared:
                    holder.free_at = None
                    holder.done = env.process(self._dma(i, u, holder, ready_at, ready + c))
                else:
                    ch = rd if u == LOAD else wr
                    x = ch.reserve(nb, ready_at) - (ready_at + nb)
                    e = ready + c + (x if x > 0 else 0)
                    extra_[i] = x if x > 0 else 0
                    end_[i] = e
                    holder.free_at = e
                if u == LOAD:
                    lq.append(holder)
                    # the issue side: free once the requests are out (load-as-sparse: at
                    # its end)
                    if accept[i] < c:
                        st[LOAD].free_at = ready + accept[i]
                    else:
                        st[LOAD].free_at = holder.free_at
                        st[LOAD].done = holder.done
                continue
            e = ready + c
            end_[i] = e
            if u == EXEC:
                cends.append(e)
                st[u].free_at = ready + accept[i]
                if swap[i]:
                    swap_clear = ready + wave
            else:
                st[u].free_at = e
        # drain: wait for transfers still in flight
        for h in (*lq, *(st[u] for u in _UNITS)):
            if h.free_at is None:
                yield h.done
        self._t_after = t_next

    def run(self) -> RunStats:
        """Run to completion and return the measured :class:`RunStats`."""
        self.env.run(until=self._proc)
        ops = self.ops
        n = len(ops)
        issue = np.asarray(self._issue, dtype=np.int64)
        end = np.asarray(self._end, dtype=np.int64)
        extra = np.asarray(self._extra, dtype=np.int64)
        blocker = np.asarray(self._blocker, dtype=np.int64)
        total = max([self._t_after if n else 0] + ([int(end.max())] if n else []))
        unit = np.asarray(ops.unit, dtype=np.int64)
        cyc = np.asarray(ops.cycles, dtype=np.int64)
        units: dict[str, dict[str, int]] = {}
        busy_share = np.zeros(n, np.int64)
        stall_share = np.zeros(n, np.int64)
        for u in _UNITS:
            idx = np.nonzero(unit == u)[0]
            if idx.size:
                busy_share[idx] = union_parts(issue[idx], issue[idx] + cyc[idx])
                stall_share[idx] = union_parts(issue[idx], end[idx]) - busy_share[idx]
                busy = int(busy_share[idx].sum())
                dstall = int(stall_share[idx].sum())
                idle = int(total - end[idx].max())
                gaps = total - busy - dstall - idle
            else:
                gaps = busy = dstall = 0
                idle = total
            units[UNIT_NAMES[u]] = {"busy": busy, "dram_stall": dstall, "stall": gaps,
                                    "idle": idle, "ops": int(idx.size)}
        chans = {self.rd.name: self.rd}
        chans[self.wr.name] = self.wr
        dram = {c.name: {"beats": c.beats, "busy_cycles": c.busy_cycles} for c in chans.values()}
        return RunStats(total=int(total), issue=issue, end=end, extra=extra, blocker=blocker,
                        busy_share=busy_share, stall_share=stall_share,
                        units=units, dram=dram)


# ---- the weight-stationary core: one op per instruction ------------------------------
_LOAD, _PRE, _EXEC, _STORE = int(Unit.LOAD), int(Unit.PRE), int(Unit.EXEC), int(Unit.STORE)


def ops_from_program(program: Any, cfg: AccelConfig | None = None) -> OpStream:
    """The :class:`OpStream` of a compiled program on its (weight-stationary) core.

    Busy cycles come from :func:`sparsa.hw.timing.instr_cycles`, DRAM beats from the entry
    formats (:func:`~sparsa.hw.timing.load_entry_beats`, :func:`store_entry_beats`). Layers
    come from the program's ``layers`` (host layers, which run no instruction, are dropped)
    and ``notes`` (the layer of every instruction); a program without them is one layer
    named after its generator.
    """
    cfg = cfg or program.config
    # (class, fields, wait) of every instruction: a program compiled without data keeps
    # the scheduler's tuples (fields it leaves out take the formats' defaults), which are
    # read directly rather than built into instruction objects first
    scheduled = getattr(program, "scheduled", None)
    items: Sequence[tuple]      # (class, fields, wait, ...)
    if scheduled is not None:
        items = scheduled.raw
    else:
        items = [(type(i), i.__dict__, i.wait, 0, 0, 0) for i in program.instructions]
    n = len(items)
    memo: dict[tuple, tuple[int, int, int, int, bool]] = {}
    timing_cache: dict = {}
    unit = [0] * n
    wait = [0] * n
    cycles = [0] * n
    beats = [0] * n
    stream = [0] * n
    accept = [0] * n
    slack = [0] * n
    swap = [0] * n
    solo = [False] * n
    code = [0] * n          # 0 fence 1 load-act 2 load-wgt 3 pre 4 exec 5 store
    count = [0] * n
    accum = [0] * n
    WGT = Target.WGT
    pre_key = (3, 0)
    fence_key = (0, 0)
    cd, ld, pd, sd = (FIELD_DEFAULTS[c] for c in (Compute, Load, Preload, Store))
    for i, (t, d, w, _, _, _) in enumerate(items):
        get = d.get
        if t is Compute:
            c = get("count", cd["count"])
            key = (4, c)
            accum[i] = get("accumulate", cd["accumulate"])
            stream[i] = c
            swap[i] = get("swap", cd["swap"])
            slack[i] = get("load_slack", cd["load_slack"])
        elif t is Load:
            # cmp_n/cmp_m: a load-as-sparse weight LOAD has its own busy time, an expanding
            # activation LOAD's cmp_m (window width) its own entry size
            key = (2 if get("target", ld["target"]) is WGT else 1, get("count", ld["count"]),
                   get("expand", ld["expand"]), get("cmp_n", ld["cmp_n"]),
                   get("cmp_m", ld["cmp_m"]))
        elif t is Preload:
            key = pre_key
            slack[i] = get("load_slack", pd["load_slack"])
        elif t is Store:
            key = (5, get("count", sd["count"]), get("requant", sd["requant"]))
            slack[i] = get("exec_slack", sd["exec_slack"])
        elif t is Fence:
            key = fence_key
        else:
            raise SimError(f"instruction {i}: {t.__name__} has no timing")
        r = memo.get(key)
        if r is None:
            if t is Fence:                  # occupies no unit
                r = (0, 0, 0, 0, False)
            else:   # busy and accept cycles, LOAD entry beats: as the static schedule
                busy, accept_c, eb, solo_c = fields_timing(cfg, t, d, timing_cache)
                nb = key[1] * (eb if t is Load else
                               store_entry_beats(cfg, key[2]) if t is Store else 0)
                r = (int(t.UNIT), busy, nb, accept_c, solo_c)
            memo[key] = r
        unit[i], cycles[i], beats[i], accept[i], solo[i] = r
        wait[i] = 15 if (w == 0 and t is Fence) else w
        code[i] = key[0]
        count[i] = key[1]
    code = np.asarray(code, np.int8)
    count = np.asarray(count, np.int64)
    accum = np.asarray(accum, np.int8)
    # layers
    notes = (getattr(program, "notes", None) or []) if scheduled is None else []
    players = list(getattr(program, "layers", None) or [])
    if scheduled is not None and players:
        raw_layer = scheduled.layers()
        useful = np.fromiter((t[5] for t in scheduled.raw), np.int64, n)
    elif notes and len(notes) == n and players:
        raw_layer = np.fromiter((nt.layer for nt in notes), np.int64, n)
        useful = np.fromiter((nt.useful_macs for nt in notes), np.int64, n)
    else:
        raw_layer = np.zeros(n, np.int64)
        useful = None
        players = []
    keep = [j for j, ly in enumerate(players) if ly.kind != "host"]
    specs: list[LayerSpec] = []
    remap = np.full(max(len(players), 1) + 1, -1, np.int64)
    if players:
        for j in keep:
            ly = players[j]
            modes = sorted(set(ly.meta.get("mode", []) or ["dense"]))
            remap[j] = len(specs)
            specs.append(LayerSpec(name=ly.name, kind=ly.kind,
                                   mode=modes[0] if len(modes) == 1 else "mixed",
                                   dense_macs=int(ly.dense_macs),
                                   nonzero_macs=int(ly.nonzero_macs)))
        # instructions of host layers (none expected) or unannotated ones: nearest previous
        lay = np.where(raw_layer >= 0, remap[np.clip(raw_layer, 0, len(players))], -1)
        if (lay < 0).any() and specs:
            lay = _fill_forward(lay)
    else:
        gen = (getattr(program, "meta", {}) or {}).get("generator", "program")
        issued = int((count[code == 4]).sum()) * cfg.rows * cfg.cols
        specs.append(LayerSpec(name=str(gen), kind="gemm", mode="unknown",
                               dense_macs=issued, nonzero_macs=issued))
        lay = np.zeros(n, np.int64)
    nl = max(len(specs), 1)
    acts = _actions(cfg, code, count, accum, np.asarray(beats, np.int64), lay, nl, useful)
    for j, sp in enumerate(specs):
        sp.actions = {k: int(v[j]) for k, v in acts.items()}
        if useful is None:
            sp.actions["nonzero_macs"] = sp.nonzero_macs
    return OpStream(unit=unit, wait=wait, cycles=cycles, beats=beats, stream=stream,
                    layer=lay.tolist(), layers=specs, read_offset=cfg.dram_latency_cycles,
                    accept=accept, slack=slack, swap=swap, solo=solo)


def _fill_forward(lay: np.ndarray) -> np.ndarray:
    """Replace -1 entries by the previous valid entry (the first valid one at the start)."""
    idx = np.where(lay >= 0, np.arange(lay.size), -1)
    np.maximum.accumulate(idx, out=idx)
    first = int(np.argmax(lay >= 0))
    idx[idx < 0] = first
    return lay[idx]


def _actions(cfg: AccelConfig, code: np.ndarray, count: np.ndarray, accum: np.ndarray,
             beats: np.ndarray, lay: np.ndarray, nl: int,
             useful: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-layer action counts (see :data:`ACTIONS`) from the instruction arrays."""
    bb = cfg.beat_bytes
    lay = np.where(lay < 0, 0, lay)

    def per_layer(mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.bincount(lay[mask], weights=weights[mask].astype(np.float64),
                           minlength=nl).astype(np.int64)[:nl]

    la, lw, pre, ex, st = code == 1, code == 2, code == 3, code == 4, code == 5
    ones = np.ones_like(count)
    pe = cfg.rows * cfg.cols
    out = {k: np.zeros(nl, np.int64) for k in ACTIONS}
    out["pe_ops"] = per_layer(ex, count * pe)
    out["mux_selects"] = out["pe_ops"].copy()
    out["nonzero_macs"] = (per_layer(ex, useful) if useful is not None else out["pe_ops"].copy())
    out["sram_act_read"] = per_layer(ex, count * cfg.act_entry_bytes)
    out["sram_act_write"] = per_layer(la, count * cfg.act_entry_bytes)
    out["sram_wgt_write"] = per_layer(lw, count * cfg.cols)
    out["sram_meta_write"] = per_layer(lw, count * cfg.wgt_idx_bytes)
    out["sram_wgt_read"] = per_layer(pre, ones * cfg.rows * cfg.cols)
    out["sram_meta_read"] = per_layer(pre, ones * cfg.rows * cfg.wgt_idx_bytes)
    acc_b = cfg.acc_entry_bytes
    out["sram_acc_write"] = per_layer(ex, count * acc_b)
    out["sram_acc_read"] = (per_layer(ex & (accum == 1), count * acc_b)
                            + per_layer(st, count * acc_b))
    # DRAM bytes from the beats (entries are padded to whole beats)
    out["dram_read"] = per_layer(la | lw, beats * bb)
    out["dram_write"] = per_layer(st, beats * bb)
    return out
