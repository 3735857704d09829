"""The controller: in-order issue of ISA v3 instructions to four execution units.

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
* :class:`ExecUnit` (``COMPUTE``) swaps the array's banks at the issue edge, streams
  activation rows (reads at ``T0+1+p``) through the array (latency ``groups + cols``),
  registers each result row, and writes (or adds into) the accumulator. Busy
  ``count + groups + cols + 3``.
* :class:`StoreUnit` (``STORE``) reads accumulator rows ahead of the write stream, applies
  ReLU / requantisation combinationally and emits one DRAM write beat per cycle from
  ``T0+2``. Busy ``count * entry_beats + 2``.

These are the formulas of :mod:`sparsa.hw.timing` (valid without valid/ready back-pressure).
Status: ``busy`` is high while an instruction waits in the issue register or any unit is
busy; ``cycles`` counts the cycles with ``busy`` high; ``retired`` counts instructions
completed (a unit's instruction in its last busy cycle, visible the cycle after).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
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
    busy : Out(1)
        An instruction is waiting to issue or a unit is busy.
    cycles : Out(32)
        Cycles with ``busy`` high since reset (wraps).
    retired : Out(32)
        Instructions completed since reset, ``FENCE`` included (wraps).
    """

    def __init__(self) -> None:
        super().__init__({
            "instr": In(stream.Signature(INSTR_LAYOUT)),
            **{name: Out(UNIT_CONTROL) for name, _, _ in _UNITS},
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
        need = Signal(4)
        is_fence_all = (ibuf.op == Op.FENCE) & (ibuf.wait == 0)
        m.d.comb += need.eq(Mux(is_fence_all, int(Unit.ALL), ibuf.wait | own))
        issue = Signal()
        m.d.comb += issue.eq(ibuf_valid & ((unit_busy & need) == 0))

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
        m.d.comb += self.busy.eq(ibuf_valid | unit_busy.any())
        m.d.sync += self.cycles.eq(self.cycles + self.busy)
        return m


class LoadUnit(wiring.Component):
    """``LOAD``: DRAM -> activation or weight scratchpad.

    Plain LOADs write each entry in the cycle its last beat arrives and accept every
    returning beat while busy. A weight LOAD with ``expand=1`` (*load-as-sparse*) feeds the
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

    Attributes
    ----------
    ctrl : In(UNIT_CONTROL)
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

        busy = Signal()
        wgt = Signal()
        expand = Signal()
        sparse = Signal()                 # WGT expand=1: load-as-sparse
        eb = Signal(range(ebmax + 1))
        stride = Signal(16)
        req_left = Signal(COUNT_BITS)
        req_addr = Signal(DRAM_ADDR_BITS)
        ents_left = Signal(COUNT_BITS)
        wptr = Signal(ADDR_BITS)
        bi = Signal(range(max(2, ebmax)))
        buf = [Signal(bb8, name=f"beat_{k}") for k in range(ebmax - 1)]

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

        m.d.comb += [self.ctrl.busy.eq(busy)]
        win = Signal(CMP_BITS)            # ACT expand=1: window width (cmp_m; 0 means n)
        with m.If(self.ctrl.start):
            is_wgt = p.target == Target.WGT
            eb_exp = self._eb_win[n]
            for w in cfg.windows:
                if w != n:
                    eb_exp = Mux(p.cmp_m == w, self._eb_win[w], eb_exp)
            m.d.sync += [
                busy.eq(1), wgt.eq(is_wgt), expand.eq(p.expand), sparse.eq(is_wgt & p.expand),
                eb.eq(Mux(is_wgt, self._eb_wgt, Mux(p.expand, eb_exp, self._eb_act))),
                win.eq(p.cmp_m),
                stride.eq(p.dram_stride), req_left.eq(p.count), req_addr.eq(p.dram_addr),
                ents_left.eq(p.count), wptr.eq(p.sp_addr), bi.eq(0),
                cmp_n.eq(p.cmp_n), cmp_m.eq(p.cmp_m), slot.eq(0), fb.eq(0), db.eq(0),
                full[0].eq(0), full[1].eq(0), dj.eq(0),
            ]
            if n & (n - 1) == 0:
                m.d.sync += nidx.eq(p.sp_addr[:max(1, ceil_log2(n))] if n > 1 else 0)
            else:
                m.d.sync += nidx.eq(p.sp_addr % n)

        # requests: one per entry, back to back
        m.d.comb += [self.rd_req.valid.eq(busy & (req_left != 0)),
                     self.rd_req.payload.addr.eq(req_addr),
                     self.rd_req.payload.beats.eq(eb)]
        with m.If(self.rd_req.valid & self.rd_req.ready):
            m.d.sync += [req_left.eq(req_left - 1), req_addr.eq(req_addr + stride)]

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
        m.d.comb += self.rd_data.ready.eq(busy & ~blocked)
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
        finish = busy & Mux(sparse, sparse_done, plain_done)
        m.d.comb += self.ctrl.done.eq(finish)
        with m.If(finish):
            m.d.sync += busy.eq(0)
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
    """``COMPUTE``: activation scratchpad -> array -> accumulator scratchpad.

    Attributes
    ----------
    ctrl : In(UNIT_CONTROL)
    act_rd : In(ReadPort.Signature(...))
        Activation scratchpad read port.
    acc_rd : In(ReadPort.Signature(...))
        Accumulator read port (old values for ``accumulate``).
    acc_wr : In(WritePort.Signature(...))
        Accumulator write port.
    x, x_valid : Out(act_layout(config)), Out(1)
        Rows into the array.
    y, y_valid : In(psum_row_layout(config)), In(1)
        Result rows from the array, ``latency`` cycles later.
    swap : Out(1)
        Exchange the array's weight banks (in the issue cycle of a ``swap=1`` COMPUTE).
    """

    def __init__(self, *, config: AccelConfig, latency: int) -> None:
        cfg = self._config = _check_config(config)
        self._latency = latency
        acc_aw = ceil_log2(cfg.acc_entries)
        super().__init__({
            "ctrl": In(UNIT_CONTROL),
            "act_rd": In(ReadPort.Signature(addr_width=ceil_log2(cfg.act_entries),
                                            shape=act_layout(cfg))),
            "acc_rd": In(ReadPort.Signature(addr_width=acc_aw, shape=psum_row_layout(cfg))),
            "acc_wr": In(WritePort.Signature(addr_width=acc_aw, shape=psum_row_layout(cfg))),
            "x": Out(act_layout(cfg)),
            "x_valid": Out(1),
            "y": In(psum_row_layout(cfg)),
            "y_valid": In(1),
            "swap": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        p = self.ctrl.instr.payload.compute
        busy = Signal()
        remaining = Signal(COUNT_BITS + 1 + ceil_log2(self._latency + 3))
        rd_left = Signal(COUNT_BITS)
        rd_addr = Signal(ADDR_BITS)
        acc_ptr = Signal(ADDR_BITS)
        accumulate = Signal()
        xv = Signal()
        y_reg = Signal(psum_row_layout(cfg))
        yv_reg = Signal()
        wa = Signal(ADDR_BITS)

        m.d.comb += [self.ctrl.busy.eq(busy), self.swap.eq(self.ctrl.start & p.swap)]
        with m.If(self.ctrl.start):
            m.d.sync += [busy.eq(1), remaining.eq(p.count + self._latency + 2),
                         rd_left.eq(p.count), rd_addr.eq(p.asp_addr), acc_ptr.eq(p.acc_addr),
                         accumulate.eq(p.accumulate)]

        reading = busy & (rd_left != 0)
        m.d.comb += [self.act_rd.addr.eq(rd_addr), self.act_rd.en.eq(1)]
        m.d.sync += xv.eq(reading)
        with m.If(reading):
            m.d.sync += [rd_addr.eq(rd_addr + 1), rd_left.eq(rd_left - 1)]
        m.d.comb += [self.x.eq(self.act_rd.data), self.x_valid.eq(xv)]

        # result rows: register, fetch the old accumulator row alongside, write next cycle
        m.d.comb += [self.acc_rd.addr.eq(acc_ptr), self.acc_rd.en.eq(self.y_valid)]
        m.d.sync += [y_reg.eq(self.y), yv_reg.eq(self.y_valid)]
        with m.If(self.y_valid):
            m.d.sync += [wa.eq(acc_ptr), acc_ptr.eq(acc_ptr + 1)]
        old = self.acc_rd.data
        total = Cat(*[(y_reg[c] + Mux(accumulate, old[c], 0))[:cfg.acc_bits]
                      for c in range(cfg.cols)])
        m.d.comb += [self.acc_wr.addr.eq(wa), self.acc_wr.data.eq(total),
                     self.acc_wr.en.eq(yv_reg)]

        finish = busy & (remaining == 1)
        m.d.comb += self.ctrl.done.eq(finish)
        with m.If(busy):
            m.d.sync += remaining.eq(remaining - 1)
        with m.If(finish):
            m.d.sync += busy.eq(0)
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
