"""The controller: in-order issue of ISA v4 instructions to four execution units.

:class:`Controller` takes instruction words from a stream into a one-entry issue register,
decodes them with :data:`~sparsa.hw.isa.INSTR_LAYOUT` and issues at most one per cycle: an
instruction issues in the first cycle in which its own unit is idle and every unit of its
``wait`` mask is idle (``FENCE``: the units of its mask, all units for mask 0; ``FENCE``,
``NOP`` and unknown opcodes occupy no unit and retire when they issue). The issue register
refills in the cycle it issues, so a stall-free instruction stream issues back to back.

The units (all start in the cycle after the issue cycle ``T0``, which counts as their first
busy cycle; a unit is idle again in the cycle after its last busy cycle):

* :class:`LoadUnit` (``LOAD``) sends one DRAM read request of ``entry_beats`` beats per
  entry (cycles ``T0+1 ..``), assembles the returning beats and writes each entry into the
  activation (optionally expanded: compact rows of ``groups * w`` bytes spread into the
  ``m``-wide windows at window width ``w = cmp_m``, ``n`` when 0) or weight scratchpad in the
  cycle its last beat arrives.
  Busy ``L + count * entry_beats + 1`` cycles for DRAM latency ``L >= 1`` (2 for count 0).
  A weight LOAD with ``expand=1`` (load-as-sparse) adds each compressed entry into a
  double-buffered window buffer and drains every full window as ``cmp_m`` dense-mode
  entries, one per cycle, while the next window arrives (busy time:
  :func:`sparsa.hw.timing.load_cycles` with ``cmp_n``/``cmp_m``).
* :class:`PreloadUnit` (``PRELOAD``) reads weight entries ``wsp_addr + rows - 1`` down to
  ``wsp_addr`` (cycles ``T0+1 .. T0+rows``) and shifts each into the array's shadow chain
  the next cycle. Busy ``rows + 2``.
* :class:`ExecUnit` (``COMPUTE``, pipelined) streams activation rows (reads at ``T0+1+p``)
  through the array (latency ``groups + cols``), registers each result row, and writes (or
  adds into) the accumulator; a ``swap=1`` COMPUTE's first row carries the weight swap
  through the array. It accepts the next COMPUTE after ``max(1, count)`` cycles; the
  COMPUTE retires ``max(1, count) + groups + cols + 3`` cycles after its issue.
* :class:`StoreUnit` (``STORE``) reads accumulator rows ahead of the write stream, applies
  ReLU / requantisation combinationally and emits one DRAM write beat per cycle from
  ``T0+2``. Busy ``count * entry_beats + 2``.

These are the formulas of :mod:`sparsa.hw.timing` (valid without valid/ready back-pressure).
Issue rules for the pipelined EXEC unit (``exec_slack`` of a STORE, FENCE, the swap wave
before a PRELOAD) are those of :mod:`sparsa.hw.isa`. Status: ``busy`` is high while an
instruction waits in the issue register, any unit is busy or a COMPUTE is in flight; ``cycles`` counts the cycles with ``busy`` high; ``retired`` counts instructions
completed (a unit's instruction in its last busy cycle, visible the cycle after).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .array import act_layout, psum_row_layout, row_weights_layout
from .config import AccelConfig
from .isa import (
    ADDR_BITS,
    CMP_BITS,
    COUNT_BITS,
    DRAM_ADDR_BITS,
    INSTR_LAYOUT,
    RD_REQ_LAYOUT,
    Op,
    Target,
    Unit,
    wr_layout,
)
from .timing import LOAD_QUEUE, swap_wave_cycles

__all__ = ["UNIT_CONTROL", "Controller", "LoadUnit", "PreloadUnit", "ExecUnit", "StoreUnit",
           "STATUS_BITS"]

STATUS_BITS = 32

#: Controller <-> unit handshake (controller's view): ``start`` pulses in the issue cycle
#: with ``instr`` holding the issued word; the unit answers ``busy`` (from the next cycle
#: until its last busy cycle) and pulses ``done`` in its last busy cycle.
UNIT_CONTROL = wiring.Signature({
    "start": Out(1),
    "instr": Out(INSTR_LAYOUT),
    "busy": In(1),
    "done": In(1),
})

_UNITS = (("load", Unit.LOAD, Op.LOAD), ("pre", Unit.PRE, Op.PRELOAD),
          ("exec", Unit.EXEC, Op.COMPUTE), ("store", Unit.STORE, Op.STORE))


def _check_config(config: object) -> AccelConfig:
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config).__name__}")
    return config


class Controller(wiring.Component):
    """Instruction issue register, decoder, dependency check and status counters.

    Attributes
    ----------
    instr : In(stream.Signature(INSTR_LAYOUT))
        Instruction words.
    load, pre, exec, store : Out(UNIT_CONTROL)
        One handshake per execution unit.
    load_outstanding : In(range(LOAD_QUEUE + 2))
        LOADs still in flight (:attr:`LoadUnit.outstanding`).
    exec_outstanding : In(outstanding_bits)
        COMPUTEs still in flight (:attr:`ExecUnit.outstanding`).
    exec_swapping : In(1)
        A weight swap is still travelling through the array (:attr:`ExecUnit.swapping`).
    busy : Out(1)
        An instruction is waiting to issue, a unit is busy or a COMPUTE is in flight.
    cycles : Out(32)
        Cycles with ``busy`` high since reset (wraps).
    retired : Out(32)
        Instructions completed since reset, ``FENCE`` included (wraps).
    """

    def __init__(self, *, outstanding_bits: int = 8) -> None:
        super().__init__({
            "instr": In(stream.Signature(INSTR_LAYOUT)),
            **{name: Out(UNIT_CONTROL) for name, _, _ in _UNITS},
            "load_outstanding": In(range(LOAD_QUEUE + 2)),
            "exec_outstanding": In(outstanding_bits),
            "exec_swapping": In(1),
            "busy": Out(1),
            "cycles": Out(STATUS_BITS),
            "retired": Out(STATUS_BITS),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        ibuf = Signal(INSTR_LAYOUT)
        ibuf_valid = Signal()
        units = [getattr(self, name) for name, _, _ in _UNITS]
        unit_busy = Signal(4)
        m.d.comb += unit_busy.eq(Cat(u.busy for u in units))

        own = Signal(4)                       # the unit bit of the decoded opcode
        with m.Switch(ibuf.op):
            for _, bit, op in _UNITS:
                with m.Case(op):
                    m.d.comb += own.eq(int(bit))
        is_fence = ibuf.op == Op.FENCE
        is_fence_all = is_fence & (ibuf.wait == 0)
        # the pipelined units as the waiting instruction sees them. LOAD: done when at most
        # load_slack (PRELOAD, COMPUTE; else 0) LOADs are outstanding. EXEC: a STORE waits until at most exec_slack COMPUTEs are in
        # flight, a FENCE until none is, every other instruction while it reads rows.
        bit = {u: int(u).bit_length() - 1 for u in (Unit.LOAD, Unit.PRE, Unit.EXEC, Unit.STORE)}
        is_store = ibuf.op == Op.STORE
        exec_seen = Mux(is_store, self.exec_outstanding > ibuf.payload.store.exec_slack,
                        Mux(is_fence, self.exec_outstanding != 0, unit_busy[bit[Unit.EXEC]]))
        load_slack = Mux(ibuf.op == Op.PRELOAD, ibuf.payload.preload.load_slack,
                         Mux(ibuf.op == Op.COMPUTE, ibuf.payload.compute.load_slack, 0))
        seen = Signal(4)
        m.d.comb += [seen.eq(unit_busy), seen[bit[Unit.EXEC]].eq(exec_seen),
                     seen[bit[Unit.LOAD]].eq(self.load_outstanding > load_slack)]
        wait = Signal(4)
        m.d.comb += wait.eq(Mux(is_fence_all, int(Unit.ALL), ibuf.wait))
        # the own unit: accepts its next instruction (LOAD: the issue side is free and fewer
        # than LOAD_QUEUE LOADs are outstanding; a load-as-sparse LOAD or one of no entries
        # only when none is; PRELOAD: also the swap wave has passed)
        lp = ibuf.payload.load
        solo = ((lp.target == Target.WGT) & lp.expand) | (lp.count == 0)
        load_block = (unit_busy[bit[Unit.LOAD]] | (self.load_outstanding >= LOAD_QUEUE)
                      | (solo & (self.load_outstanding != 0)))
        own_block = Signal()
        with m.Switch(ibuf.op):
            with m.Case(Op.LOAD):
                m.d.comb += own_block.eq(load_block)
            with m.Case(Op.PRELOAD):
                m.d.comb += own_block.eq(unit_busy[bit[Unit.PRE]] | self.exec_swapping)
            with m.Case(Op.COMPUTE):
                m.d.comb += own_block.eq(unit_busy[bit[Unit.EXEC]])
            with m.Case(Op.STORE):
                m.d.comb += own_block.eq(unit_busy[bit[Unit.STORE]])
        issue = Signal()
        m.d.comb += issue.eq(ibuf_valid & ((seen & wait) == 0) & ~own_block)

        m.d.comb += self.instr.ready.eq(~ibuf_valid | issue)
        with m.If(self.instr.valid & self.instr.ready):
            m.d.sync += [ibuf.eq(self.instr.payload), ibuf_valid.eq(1)]
        with m.Elif(issue):
            m.d.sync += ibuf_valid.eq(0)

        for i, u in enumerate(units):
            m.d.comb += [u.start.eq(issue & own[i]), u.instr.eq(ibuf)]

        retire_now = Signal(3)
        m.d.comb += retire_now.eq((issue & (own == 0)) + sum(u.done for u in units))
        m.d.sync += self.retired.eq(self.retired + retire_now)
        m.d.comb += self.busy.eq(ibuf_valid | unit_busy.any() | (self.exec_outstanding != 0)
                                 | (self.load_outstanding != 0))
        m.d.sync += self.cycles.eq(self.cycles + self.busy)
        return m


class LoadUnit(wiring.Component):
    """``LOAD``: DRAM -> activation or weight scratchpad, pipelined.

    The issue side sends one read request per entry (``T0+1 ..``) and accepts the next LOAD
    in the cycle its last request goes out, so the DRAM latency of consecutive LOADs
    overlaps. Each LOAD with entries joins a queue of ``LOAD_QUEUE`` descriptors; the data
    side takes them in order (the next one in the cycle the current one ends) and writes
    each entry in the cycle its last beat arrives. A LOAD of no entries retires the cycle
    after its issue. Plain LOADs accept every returning beat while the data side works. A weight LOAD with ``expand=1`` (*load-as-sparse*) feeds the
    compressed entries into a double-buffered window buffer instead: two banks of ``m``
    dense rows (``cols`` int8 each); compressed entry ``i`` adds column ``c``'s value into
    row ``idx[c]`` of the bank being filled (slot 0 of a window first zeroes the bank), and
    when the ``cmp_n``-th entry of a window has been added the bank is *full*. A full bank is
    drained to the weight scratchpad one dense-mode entry per cycle (rows ``0 .. cmp_m-1``,
    index field ``address % n`` in every column), starting the cycle after it filled or the
    cycle after the previous window's drain, whichever is later; the next window fills the
    other bank meanwhile. An entry-completing beat whose bank is still full waits
    (``rd_data.ready`` low) until the cycle the bank's last row drains. See
    :func:`sparsa.hw.timing.load_cycles` for the resulting busy time.

    A load-as-sparse LOAD holds the issue side until its end (``ctrl.busy``); the
    controller issues it, and a LOAD of no entries, only when no LOAD is outstanding.

    Attributes
    ----------
    ctrl : In(UNIT_CONTROL)
        ``busy``: the issue side cannot take the next LOAD; ``done``: a LOAD's last write.
    outstanding : Out(range(LOAD_QUEUE + 2))
        LOADs issued and not yet finished.
    rd_req : Out(stream.Signature(RD_REQ_LAYOUT))
        One request (``addr``, ``beats = entry_beats``) per entry.
    rd_data : In(stream.Signature(8 * beat_bytes))
        Returning beats, in request order (accepted while busy, except when a load-as-sparse
        window bank is not yet free).
    act_wr, wgt_wr : In(WritePort.Signature(...))
        Write ports of the activation and weight scratchpads.
    """

    def __init__(self, *, config: AccelConfig) -> None:
        cfg = self._config = _check_config(config)
        self._eb_wgt = cfg.beats(cfg.wgt_entry_bytes)
        self._eb_act = cfg.beats(cfg.act_entry_bytes)
        # beats of a compact activation row per window width (LOAD ACT expand=1, cmp_m;
        # width n is dense mode)
        self._eb_win = {w: cfg.beats(cfg.act_row_bytes(w)) for w in cfg.windows}
        super().__init__({
            "ctrl": In(UNIT_CONTROL),
            "outstanding": Out(range(LOAD_QUEUE + 2)),
            "rd_req": Out(stream.Signature(RD_REQ_LAYOUT)),
            "rd_data": In(stream.Signature(8 * cfg.beat_bytes)),
            "act_wr": In(WritePort.Signature(addr_width=ceil_log2(cfg.act_entries),
                                             shape=act_layout(cfg))),
            "wgt_wr": In(WritePort.Signature(addr_width=ceil_log2(cfg.wgt_entries),
                                             shape=unsigned(8 * cfg.wgt_entry_bytes))),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        bb8 = 8 * cfg.beat_bytes
        ebmax = max(self._eb_wgt, self._eb_act, *self._eb_win.values())
        p = self.ctrl.instr.payload.load

        wgt = Signal()
        expand = Signal()
        sparse = Signal()                 # WGT expand=1: load-as-sparse
        eb = Signal(range(ebmax + 1))
        stride = Signal(16)
        req_left = Signal(COUNT_BITS)
        req_addr = Signal(DRAM_ADDR_BITS)
        req_eb = Signal(range(ebmax + 1))
        ents_left = Signal(COUNT_BITS)
        wptr = Signal(ADDR_BITS)
        bi = Signal(range(max(2, ebmax)))
        buf = [Signal(bb8, name=f"beat_{k}") for k in range(ebmax - 1)]
        active = Signal()                 # the data side works on a LOAD
        hold = Signal()                   # a load-as-sparse LOAD occupies the unit to its end
        zero_done = Signal()              # a LOAD of no entries retires one cycle on

        # load-as-sparse state: window buffer banks, fill and drain pointers
        n, mm, cols, ib = cfg.n, cfg.m, cfg.cols, cfg.idx_bits
        cmp_n = Signal(CMP_BITS)
        cmp_m = Signal(CMP_BITS)
        slot = Signal(CMP_BITS)           # slot of the next compressed entry in its window
        fb = Signal()                     # bank being filled
        db = Signal()                     # bank drained next
        full = [Signal(name=f"win_full_{b}") for b in range(2)]
        dj = Signal(CMP_BITS)             # row of the draining bank written this cycle
        nidx = Signal(range(max(2, n)))   # wptr % n
        banks = [[Signal(8 * cols, name=f"win{b}_row{j}") for j in range(mm)]
                 for b in range(2)]
        win = Signal(CMP_BITS)            # ACT expand=1: window width (cmp_m; 0 means n)

        def entry_beats(target_wgt: Value, exp: Value, w: Value) -> Value:
            eb_exp = self._eb_win[n]
            for ww in cfg.windows:
                if ww != n:
                    eb_exp = Mux(w == ww, self._eb_win[ww], eb_exp)
            return Mux(target_wgt, self._eb_wgt, Mux(exp, eb_exp, self._eb_act))

        # issue side: one read request per entry from T0+1; the unit accepts the next LOAD
        # in the cycle its last request goes out (a load-as-sparse LOAD: after its end)
        is_wgt = p.target == Target.WGT
        m.d.comb += self.ctrl.busy.eq((req_left > 1) | ((req_left == 1) & ~self.rd_req.ready)
                                      | hold)
        m.d.comb += [self.rd_req.valid.eq(req_left != 0),
                     self.rd_req.payload.addr.eq(req_addr),
                     self.rd_req.payload.beats.eq(req_eb)]
        with m.If(self.rd_req.valid & self.rd_req.ready):
            m.d.sync += [req_left.eq(req_left - 1), req_addr.eq(req_addr + stride)]
        m.d.sync += zero_done.eq(self.ctrl.start & (p.count == 0))
        with m.If(self.ctrl.start):
            m.d.sync += [stride.eq(p.dram_stride), req_left.eq(p.count),
                         req_addr.eq(p.dram_addr),
                         req_eb.eq(entry_beats(is_wgt, p.expand, p.cmp_m)),
                         hold.eq(is_wgt & p.expand & (p.count != 0))]

        # the LOADs whose data is still owed, in order (the data side takes the head)
        desc = data.StructLayout({"wgt": 1, "expand": 1, "count": COUNT_BITS,
                                  "sp_addr": ADDR_BITS, "cmp_n": CMP_BITS, "cmp_m": CMP_BITS})
        m.submodules.queue = queue = SyncFIFO(width=desc.size, depth=LOAD_QUEUE)
        m.d.comb += [queue.w_en.eq(self.ctrl.start & (p.count != 0)),
                     queue.w_data.eq(Cat(is_wgt, p.expand, p.count, p.sp_addr, p.cmp_n,
                                         p.cmp_m))]
        head = data.View(desc, queue.r_data)
        finish = Signal()
        take = queue.r_rdy & (~active | finish)
        m.d.comb += queue.r_en.eq(take)
        # drain: one dense-mode row of the full bank `db` per cycle
        db_full = Mux(db, full[1], full[0])
        draining = sparse & db_full
        dr_last = draining & ((dj + 1)[:CMP_BITS] == cmp_m)
        fb_full = Mux(fb, full[1], full[0])

        # data: assemble beats, write the entry with its last beat
        beat = self.rd_data.payload
        last = bi == eb - 1
        # an entry-completing beat waits while its bank is full (unless it drains its last
        # row this very cycle: the fill then overwrites the bank at the same edge)
        blocked = sparse & last & fb_full & ~((db == fb) & dr_last)
        m.d.comb += self.rd_data.ready.eq(active & ~blocked)
        got = self.rd_data.valid & self.rd_data.ready
        parts = [Mux(bi == k, beat, buf[k]) for k in range(ebmax - 1)] + [beat]
        entry = Cat(*parts)
        dense_bytes = [entry[8 * k:8 * k + 8] for k in range(cfg.act_entry_bytes)]

        def spread(w: int) -> Value:
            # compact value k -> window k // w, position k % w; other positions zero
            return Cat(*[dense_bytes[g * w + j] if j < w else Const(0, 8)
                         for g in range(cfg.groups) for j in range(mm)])

        expanded = spread(n)
        for w in cfg.windows:
            if w != n:
                expanded = Mux(win == w, spread(w), expanded)
        act_bits = 8 * cfg.act_entry_bytes
        wbits = 8 * cfg.wgt_entry_bytes
        drain_row = Mux(db, Cat(*banks[1]), Cat(*banks[0])).word_select(dj, 8 * cols)
        nidx_f = Signal(ib)
        m.d.comb += nidx_f.eq(nidx)
        drain_entry = Cat(drain_row, *[nidx_f for _ in range(cols)])
        m.d.comb += [
            self.act_wr.addr.eq(wptr), self.wgt_wr.addr.eq(wptr),
            self.act_wr.data.eq(Mux(expand, expanded, entry[:act_bits])),
            self.wgt_wr.data.eq(Mux(sparse, drain_entry, entry[:wbits])),
            self.act_wr.en.eq(got & last & ~wgt),
            self.wgt_wr.en.eq(Mux(sparse, draining, got & last & wgt)),
        ]
        with m.If(got):
            with m.If(last):
                m.d.sync += [bi.eq(0), ents_left.eq(ents_left - 1)]
                with m.If(~sparse):
                    m.d.sync += wptr.eq(wptr + 1)
            with m.Else():
                m.d.sync += bi.eq(bi + 1)
                for k in range(ebmax - 1):
                    with m.If(bi == k):
                        m.d.sync += buf[k].eq(beat)

        with m.If(draining):
            m.d.sync += [wptr.eq(wptr + 1), nidx.eq(Mux(nidx == n - 1, 0, nidx + 1)),
                         dj.eq(dj + 1)]
            with m.If(dr_last):
                m.d.sync += [dj.eq(0), db.eq(~db)]
                for b in range(2):
                    with m.If(db == b):
                        m.d.sync += full[b].eq(0)

        # fill: add the completed compressed entry into the bank `fb` (after the drain's
        # statements, so a window completing into the bank that drains its last row this
        # cycle marks it full again)
        vals = [entry[8 * c:8 * c + 8] for c in range(cols)]
        idx0 = 8 * cols
        idxs = [entry[idx0 + c * ib:idx0 + (c + 1) * ib] for c in range(cols)]
        with m.If(sparse & got & last):
            first = slot == 0
            for j in range(mm):
                cur = Mux(fb, banks[1][j], banks[0][j])
                new = Cat(*[(Mux(first, 0, cur[8 * c:8 * c + 8])
                             + Mux(idxs[c] == j, vals[c], 0))[:8] for c in range(cols)])
                for b in range(2):
                    with m.If(fb == b):
                        m.d.sync += banks[b][j].eq(new)
            with m.If((slot + 1)[:CMP_BITS] == cmp_n):
                m.d.sync += [slot.eq(0), fb.eq(~fb)]
                for b in range(2):
                    with m.If(fb == b):
                        m.d.sync += full[b].eq(1)
            with m.Else():
                m.d.sync += slot.eq(slot + 1)

        other_full = Mux(db, full[0], full[1])
        plain_done = (ents_left == 0) | ((ents_left == 1) & got & last)
        sparse_done = (ents_left == 0) & ((~full[0] & ~full[1]) | (dr_last & ~other_full))
        m.d.comb += finish.eq(active & Mux(sparse, sparse_done, plain_done))
        m.d.comb += self.ctrl.done.eq(finish | zero_done)
        m.d.sync += self.outstanding.eq(self.outstanding + self.ctrl.start - self.ctrl.done)
        with m.If(finish & ~take):
            m.d.sync += active.eq(0)
        with m.If(finish & sparse):
            m.d.sync += hold.eq(0)
        # take the next descriptor (last: its values win over the data side's updates)
        with m.If(take):
            m.d.sync += [
                active.eq(1), wgt.eq(head.wgt), expand.eq(head.expand),
                sparse.eq(head.wgt & head.expand),
                eb.eq(entry_beats(head.wgt, head.expand, head.cmp_m)), win.eq(head.cmp_m),
                ents_left.eq(head.count), wptr.eq(head.sp_addr), bi.eq(0),
                cmp_n.eq(head.cmp_n), cmp_m.eq(head.cmp_m), slot.eq(0), fb.eq(0), db.eq(0),
                full[0].eq(0), full[1].eq(0), dj.eq(0),
            ]
            if n & (n - 1) == 0:
                m.d.sync += nidx.eq(head.sp_addr[:max(1, ceil_log2(n))] if n > 1 else 0)
            else:
                m.d.sync += nidx.eq(head.sp_addr % n)
        return m


class PreloadUnit(wiring.Component):
    """``PRELOAD``: weight scratchpad -> the array's shadow registers (shift chain).

    Attributes
    ----------
    ctrl : In(UNIT_CONTROL)
    wgt_rd : In(ReadPort.Signature(...))
        Read port of the weight scratchpad.
    w_out : Out(row_weights_layout(config))
        The entry being shifted in, unpacked into (value, index) pairs.
    w_shift : Out(1)
        Shift the array's shadow chain this cycle.
    """

    def __init__(self, *, config: AccelConfig) -> None:
        cfg = self._config = _check_config(config)
        super().__init__({
            "ctrl": In(UNIT_CONTROL),
            "wgt_rd": In(ReadPort.Signature(addr_width=ceil_log2(cfg.wgt_entries),
                                            shape=unsigned(8 * cfg.wgt_entry_bytes))),
            "w_out": Out(row_weights_layout(cfg)),
            "w_shift": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        p = self.ctrl.instr.payload.preload
        busy = Signal()
        rd_left = Signal(range(cfg.rows + 1))
        rd_addr = Signal(ADDR_BITS)
        shift = Signal()

        m.d.comb += self.ctrl.busy.eq(busy)
        with m.If(self.ctrl.start):
            m.d.sync += [busy.eq(1), rd_left.eq(cfg.rows), rd_addr.eq(p.wsp_addr + cfg.rows - 1)]
        reading = busy & (rd_left != 0)
        m.d.comb += [self.wgt_rd.addr.eq(rd_addr), self.wgt_rd.en.eq(1)]
        m.d.sync += shift.eq(reading)
        with m.If(reading):
            m.d.sync += [rd_addr.eq(rd_addr - 1), rd_left.eq(rd_left - 1)]

        # unpack: values in bytes 0..cols-1, index c at bit c*idx_bits of the index field
        raw = self.wgt_rd.data
        ib = cfg.idx_bits
        idx0 = 8 * cfg.cols
        for c in range(cfg.cols):
            m.d.comb += [self.w_out[c].value.eq(raw[8 * c:8 * c + 8]),
                         self.w_out[c].index.eq(raw[idx0 + c * ib:idx0 + (c + 1) * ib])]
        m.d.comb += self.w_shift.eq(shift)

        finish = busy & shift & (rd_left == 0)
        m.d.comb += self.ctrl.done.eq(finish)
        with m.If(finish):
            m.d.sync += busy.eq(0)
        return m


class ExecUnit(wiring.Component):
    """``COMPUTE``: activation scratchpad -> array -> accumulator scratchpad, pipelined.

    The unit reads one activation row per cycle (``T0+1 .. T0+count``) and accepts the next
    COMPUTE in the cycle of its last read, so consecutive COMPUTEs stream rows back to back
    while earlier rows are still in the array. Every row carries its own accumulator address
    and ``accumulate`` flag down a delay line as long as the array's latency, and every
    COMPUTE a completion token (behind its last row; one cycle behind the issue for a COMPUTE
    of no rows) that retires it in the cycle its last accumulator row is written. A
    ``swap=1`` COMPUTE marks its first row (``x_swap``); the array swaps each PE's weights
    just before that row reaches it. The accumulator read port must be transparent for the
    write port: a row may accumulate into the row the previous COMPUTE writes that cycle.

    Attributes
    ----------
    ctrl : In(UNIT_CONTROL)
        ``busy``: reading activation rows (the next COMPUTE waits); ``done``: a COMPUTE's
        last accumulator write.
    outstanding : Out(ceil_log2(latency + 6))
        COMPUTEs issued and not yet finished.
    swapping : Out(1)
        A swap is still travelling through the array (a PRELOAD must not shift yet).
    act_rd : In(ReadPort.Signature(...))
        Activation scratchpad read port.
    acc_rd : In(ReadPort.Signature(...))
        Accumulator read port (old values for ``accumulate``).
    acc_wr : In(WritePort.Signature(...))
        Accumulator write port.
    x, x_valid, x_swap : Out(act_layout(config)), Out(1), Out(1)
        Rows into the array; ``x_swap`` marks the first row of a ``swap=1`` COMPUTE.
    y, y_valid : In(psum_row_layout(config)), In(1)
        Result rows from the array, ``latency`` cycles later.
    """

    def __init__(self, *, config: AccelConfig, latency: int) -> None:
        cfg = self._config = _check_config(config)
        self._latency = latency
        acc_aw = ceil_log2(cfg.acc_entries)
        super().__init__({
            "ctrl": In(UNIT_CONTROL),
            "outstanding": Out(ceil_log2(latency + 6)),
            "swapping": Out(1),
            "act_rd": In(ReadPort.Signature(addr_width=ceil_log2(cfg.act_entries),
                                            shape=act_layout(cfg))),
            "acc_rd": In(ReadPort.Signature(addr_width=acc_aw, shape=psum_row_layout(cfg))),
            "acc_wr": In(WritePort.Signature(addr_width=acc_aw, shape=psum_row_layout(cfg))),
            "x": Out(act_layout(cfg)),
            "x_valid": Out(1),
            "x_swap": Out(1),
            "y": In(psum_row_layout(cfg)),
            "y_valid": In(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        lat = self._latency
        p = self.ctrl.instr.payload.compute
        rd_left = Signal(COUNT_BITS)
        rd_addr = Signal(ADDR_BITS)
        acc_ptr = Signal(ADDR_BITS)
        accumulate = Signal()
        tag = data.StructLayout({"addr": ADDR_BITS, "accumulate": 1, "last": 1})

        # feed: reads in T0+1 .. T0+count; busy (for the next COMPUTE) while more than one
        # read is left, so the next COMPUTE issues in the cycle of the last read
        reading = rd_left != 0
        m.d.comb += [self.ctrl.busy.eq(rd_left > 1),
                     self.act_rd.addr.eq(rd_addr), self.act_rd.en.eq(1)]
        # x-aligned stage (the read data arrives one cycle after the read)
        xv = Signal()
        xt = Signal(tag)
        s1 = Signal()                  # swap flag, one cycle after issue
        zero1 = Signal()               # a COMPUTE of no rows: its token follows one cycle on
        xs = Signal()
        m.d.sync += [xv.eq(reading), xt.addr.eq(acc_ptr), xt.accumulate.eq(accumulate),
                     xt.last.eq((reading & (rd_left == 1)) | zero1),
                     s1.eq(self.ctrl.start & p.swap), xs.eq(s1),
                     zero1.eq(self.ctrl.start & (p.count == 0))]
        with m.If(reading):
            m.d.sync += [rd_addr.eq(rd_addr + 1), rd_left.eq(rd_left - 1),
                         acc_ptr.eq(acc_ptr + 1)]
        with m.If(self.ctrl.start):
            m.d.sync += [rd_left.eq(p.count), rd_addr.eq(p.asp_addr), acc_ptr.eq(p.acc_addr),
                         accumulate.eq(p.accumulate)]
        m.d.comb += [self.x.eq(self.act_rd.data), self.x_valid.eq(xv), self.x_swap.eq(xs)]

        # each row's tag (and each COMPUTE's token) waits the array's latency beside it
        yt = xt
        for k in range(lat):
            reg = Signal(tag, name=f"tag_{k}")
            m.d.sync += reg.eq(yt)
            yt = reg

        # result rows: register, fetch the old accumulator row alongside, write next cycle
        y_reg = Signal(psum_row_layout(cfg))
        yv_reg = Signal()
        wt = Signal(tag)
        m.d.comb += [self.acc_rd.addr.eq(yt.addr), self.acc_rd.en.eq(self.y_valid)]
        m.d.sync += [y_reg.eq(self.y), yv_reg.eq(self.y_valid), wt.eq(yt)]
        old = self.acc_rd.data
        total = Cat(*[(y_reg[c] + Mux(wt.accumulate, old[c], 0))[:cfg.acc_bits]
                      for c in range(cfg.cols)])
        m.d.comb += [self.acc_wr.addr.eq(wt.addr), self.acc_wr.data.eq(total),
                     self.acc_wr.en.eq(yv_reg)]
        m.d.comb += self.ctrl.done.eq(wt.last)

        # COMPUTEs in flight; the swap wave's remaining cycles
        m.d.sync += self.outstanding.eq(self.outstanding + self.ctrl.start - wt.last)
        wave = Signal(range(max(2, swap_wave_cycles(cfg))))
        m.d.comb += self.swapping.eq(wave != 0)
        with m.If(self.ctrl.start & p.swap):
            m.d.sync += wave.eq(swap_wave_cycles(cfg) - 1)
        with m.Elif(wave != 0):
            m.d.sync += wave.eq(wave - 1)
        return m


class StoreUnit(wiring.Component):
    """``STORE``: accumulator scratchpad -> ReLU / requantisation -> DRAM write beats.

    Attributes
    ----------
    ctrl : In(UNIT_CONTROL)
    acc_rd : In(ReadPort.Signature(...))
        Accumulator read port (read one entry ahead of the write stream).
    wr : Out(stream.Signature(wr_layout(beat_bytes)))
        Write beats: DRAM beat ``addr`` and ``data``.
    """

    def __init__(self, *, config: AccelConfig) -> None:
        cfg = self._config = _check_config(config)
        self._eb_i8 = cfg.beats(cfg.cols)
        self._eb_i32 = cfg.beats(cfg.acc_entry_bytes)
        super().__init__({
            "ctrl": In(UNIT_CONTROL),
            "acc_rd": In(ReadPort.Signature(addr_width=ceil_log2(cfg.acc_entries),
                                            shape=psum_row_layout(cfg))),
            "wr": Out(stream.Signature(wr_layout(cfg.beat_bytes))),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        bb8 = 8 * cfg.beat_bytes
        ebmax = self._eb_i32
        p = self.ctrl.instr.payload.store
        busy = Signal()
        eb = Signal(range(ebmax + 1))
        rd_left = Signal(COUNT_BITS)
        rd_addr = Signal(ADDR_BITS)
        ents_left = Signal(COUNT_BITS)
        ent_base = Signal(DRAM_ADDR_BITS)
        stride = Signal(16)
        bi = Signal(range(max(2, ebmax)))
        relu = Signal()
        requant = Signal()
        shift = Signal(5)
        r_valid = Signal()

        m.d.comb += self.ctrl.busy.eq(busy)
        with m.If(self.ctrl.start):
            m.d.sync += [busy.eq(1), eb.eq(Mux(p.requant, self._eb_i8, self._eb_i32)),
                         rd_left.eq(p.count), rd_addr.eq(p.acc_addr), ents_left.eq(p.count),
                         ent_base.eq(p.dram_addr), stride.eq(p.dram_stride), bi.eq(0),
                         relu.eq(p.relu), requant.eq(p.requant), shift.eq(p.shift)]

        xfer = self.wr.valid & self.wr.ready
        last = bi == eb - 1
        fetch = busy & (rd_left != 0) & (~r_valid | (xfer & last))
        m.d.comb += [self.acc_rd.addr.eq(rd_addr), self.acc_rd.en.eq(fetch)]
        with m.If(fetch):
            m.d.sync += [rd_addr.eq(rd_addr + 1), rd_left.eq(rd_left - 1), r_valid.eq(1)]
        with m.Elif(xfer & last):
            m.d.sync += r_valid.eq(0)

        # conversion of the row held on the read port's output
        acc_bits = cfg.acc_bits
        rnd = Signal(acc_bits)                             # 2**(shift-1); 0 for shift 0
        m.d.comb += rnd.eq((Const(1, acc_bits + 1) << shift)[1:])
        i8, i32 = [], []
        for c in range(cfg.cols):
            a = self.acc_rd.data[c]
            rectified = Mux(relu & a[-1], 0, a)
            i32.append(rectified[:acc_bits])
            summed = Signal(signed(acc_bits + 1), name=f"summed_{c}")
            scaled = Signal(signed(acc_bits + 1), name=f"scaled_{c}")
            m.d.comb += [summed.eq(a + rnd), scaled.eq(summed >> shift)]
            clipped = Signal(signed(8), name=f"sat_{c}")
            with m.If(relu & scaled[-1]):
                m.d.comb += clipped.eq(0)
            with m.Elif(scaled > 127):
                m.d.comb += clipped.eq(127)
            with m.Elif(scaled < -128):
                m.d.comb += clipped.eq(-128)
            with m.Else():
                m.d.comb += clipped.eq(scaled)
            i8.append(clipped)
        width = ebmax * bb8
        row_i8 = Cat(*i8)
        row_i32 = Cat(*i32)
        row = Signal(width)
        m.d.comb += row.eq(Mux(requant, row_i8, row_i32))

        m.d.comb += [self.wr.valid.eq(r_valid),
                     self.wr.payload.addr.eq(ent_base + bi),
                     self.wr.payload.data.eq(row.word_select(bi, bb8))]
        with m.If(xfer):
            with m.If(last):
                m.d.sync += [bi.eq(0), ent_base.eq(ent_base + stride),
                             ents_left.eq(ents_left - 1)]
            with m.Else():
                m.d.sync += bi.eq(bi + 1)

        finish = busy & ((ents_left == 0) | ((ents_left == 1) & xfer & last))
        m.d.comb += self.ctrl.done.eq(finish)
        with m.If(finish):
            m.d.sync += busy.eq(0)
        return m
