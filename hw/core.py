"""The sparse systolic core: controller, execution units, scratchpads and the array.

:class:`SparsaCore` is the top level that :mod:`sparsa.hw.verilog` turns into Verilog
(top name ``sparsa_core``) and the cocotb bench drives. It executes ISA v4
(:mod:`sparsa.hw.isa`) with the cycle timing of :mod:`sparsa.hw.timing`.

Ports (Verilog names in brackets; clock ``clk`` and synchronous reset ``rst`` come from the
``sync`` domain):

* ``instr`` [``instr__valid/ready/payload``]: In, stream of 128-bit instruction words;
* ``rd_req`` [``rd_req__*``]: Out, DRAM read requests, payload ``RD_REQ_LAYOUT``
  (``addr`` bits 0..31, ``beats`` bits 32..47);
* ``rd_data`` [``rd_data__*``]: In, DRAM read beats (``8 * beat_bytes`` bits), in request
  order;
* ``wr`` [``wr__*``]: Out, DRAM write beats, payload ``wr_layout(beat_bytes)`` (``addr``
  bits 0..31, data above);
* ``busy``: Out(1); ``cycles``: Out(32), cycles with ``busy`` high; ``retired``: Out(32),
  instructions completed (see :mod:`sparsa.hw.controller`).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .config import AccelConfig
from .controller import STATUS_BITS, Controller, ExecUnit, LoadUnit, PreloadUnit, StoreUnit
from .isa import INSTR_LAYOUT, ISA_VERSION, RD_REQ_LAYOUT, wr_layout
from .scratchpad import acc_scratchpad, act_scratchpad, wgt_scratchpad

__all__ = ["SparsaCore", "TOP_NAME"]

#: Verilog module name of the generated core.
TOP_NAME = "sparsa_core"


class SparsaCore(wiring.Component):
    """One sparse systolic core for ``config``.

    Parameters
    ----------
    config : AccelConfig
        Array shape, N:M group, scratchpad sizes and DRAM beat width.

    Attributes
    ----------
    instr : In(stream.Signature(INSTR_LAYOUT))
    rd_req : Out(stream.Signature(RD_REQ_LAYOUT))
    rd_data : In(stream.Signature(8 * config.beat_bytes))
    wr : Out(stream.Signature(wr_layout(config.beat_bytes)))
    busy : Out(1)
    cycles : Out(32)
    retired : Out(32)
    """

    def __init__(self, *, config: AccelConfig) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({
            "instr": In(stream.Signature(INSTR_LAYOUT)),
            "rd_req": Out(stream.Signature(RD_REQ_LAYOUT)),
            "rd_data": In(stream.Signature(8 * config.beat_bytes)),
            "wr": Out(stream.Signature(wr_layout(config.beat_bytes))),
            "busy": Out(1),
            "cycles": Out(STATUS_BITS),
            "retired": Out(STATUS_BITS),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    @property
    def isa_version(self) -> int:
        return ISA_VERSION

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        m.submodules.array = array = SystolicArray(config=cfg)
        m.submodules.load = load = LoadUnit(config=cfg)
        m.submodules.pre = pre = PreloadUnit(config=cfg)
        m.submodules.exec = ex = ExecUnit(config=cfg, latency=array.latency)
        m.submodules.ctrl = ctrl = Controller(outstanding_bits=len(ex.outstanding))
        m.submodules.store = store = StoreUnit(config=cfg)
        m.submodules.act_sp = act_sp = act_scratchpad(cfg)
        m.submodules.wgt_sp = wgt_sp = wgt_scratchpad(cfg)
        m.submodules.acc_sp = acc_sp = acc_scratchpad(cfg)

        wiring.connect(m, wiring.flipped(self.instr), ctrl.instr)
        wiring.connect(m, ctrl.load, load.ctrl)
        wiring.connect(m, ctrl.pre, pre.ctrl)
        wiring.connect(m, ctrl.exec, ex.ctrl)
        wiring.connect(m, ctrl.store, store.ctrl)
        m.d.comb += [self.busy.eq(ctrl.busy), self.cycles.eq(ctrl.cycles),
                     self.retired.eq(ctrl.retired)]

        wiring.connect(m, wiring.flipped(self.rd_req), load.rd_req)
        wiring.connect(m, wiring.flipped(self.rd_data), load.rd_data)
        wiring.connect(m, act_sp.write, load.act_wr)
        wiring.connect(m, wgt_sp.write, load.wgt_wr)

        wiring.connect(m, wgt_sp.read[0], pre.wgt_rd)
        m.d.comb += [array.w_in.eq(pre.w_out), array.w_shift.eq(pre.w_shift)]

        wiring.connect(m, act_sp.read[0], ex.act_rd)
        wiring.connect(m, acc_sp.read[0], ex.acc_rd)
        wiring.connect(m, acc_sp.write, ex.acc_wr)
        m.d.comb += [array.x.eq(ex.x), array.x_valid.eq(ex.x_valid), array.x_swap.eq(ex.x_swap),
                     ex.y.eq(array.y), ex.y_valid.eq(array.y_valid),
                     ctrl.exec_outstanding.eq(ex.outstanding),
                     ctrl.load_outstanding.eq(load.outstanding),
                     ctrl.exec_swapping.eq(ex.swapping)]

        wiring.connect(m, acc_sp.read[1], store.acc_rd)
        wiring.connect(m, wiring.flipped(self.wr), store.wr)
        return m
