"""The processing element (PE) of the sparse systolic array.

A PE holds a stationary weight, an int8 value and (sparse PEs) a ``log2 m``-bit index,
double-buffered: the *active* pair multiplies while the *shadow* pair is being preloaded
through a shift chain that runs down each array column. ``swap`` exchanges the two pairs in
one cycle (the ISA's ``COMPUTE swap=1``).

The multiply-accumulate path is combinational: ``psum_out = psum_in + value * window[index]``
(int32, wrapping). The array (:mod:`sparsa.hw.array`) puts the pipeline registers around it:
one activation-window register per row group and column, one partial-sum register per row
group and column. Keeping the PE free of pipeline registers makes the ``n`` PEs of a group
share one window register instead of each holding a delayed copy.

A *dense* PE (``sparse=False``) is the same PE without the index register and window
multiplexer: it multiplies a single int8 activation. It exists to measure the sparse PE's
area overhead (``sparsa area``); the array always uses sparse PEs.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig

__all__ = ["ProcessingElement", "weight_layout", "window_layout"]


def weight_layout(cfg: AccelConfig, *, sparse: bool = True) -> data.StructLayout:
    """Layout of one stationary weight: ``value`` (signed 8) and, if sparse, ``index``."""
    fields: dict[str, Shape] = {"value": signed(cfg.operand_bits)}
    if sparse:
        fields["index"] = unsigned(cfg.idx_bits)
    return data.StructLayout(fields)


def window_layout(cfg: AccelConfig) -> data.ArrayLayout:
    """Layout of one activation window: ``m`` signed 8-bit values, element ``j`` = position j."""
    return data.ArrayLayout(signed(cfg.operand_bits), cfg.m)


class ProcessingElement(wiring.Component):
    """One weight-stationary PE with double-buffered (value, index) registers.

    Parameters
    ----------
    config : AccelConfig
        Supplies ``m`` (window width), ``idx_bits``, ``operand_bits`` and ``acc_bits``.
    sparse : bool
        ``True`` (default): the PE selects ``window[index]`` from an ``m``-wide window.
        ``False``: a dense PE, one int8 activation in and no index (area comparison only).

    Attributes
    ----------
    window : In(window_layout(config)) or In(signed(8))
        The activation window passing this PE (sparse) or the single activation (dense).
    psum_in : In(signed(acc_bits))
        Partial sum from the PE above.
    psum_out : Out(signed(acc_bits))
        ``psum_in + active.value * window[active.index]``, wrapping, combinational.
    w_in : In(weight_layout(config, sparse=sparse))
        Shadow-register input of the preload shift chain (from the PE above).
    w_out : Out(weight_layout(config, sparse=sparse))
        The shadow register (feeds ``w_in`` of the PE below).
    shift : In(1)
        Load ``w_in`` into the shadow register at the next clock edge.
    swap : In(1)
        Exchange the active and shadow registers at the next clock edge (wins over
        ``shift``).
    """

    def __init__(self, *, config: AccelConfig, sparse: bool = True) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config).__name__}")
        self._config = config
        self._sparse = bool(sparse)
        wl = weight_layout(config, sparse=self._sparse)
        act = window_layout(config) if self._sparse else signed(config.operand_bits)
        super().__init__({
            "window": In(act),
            "psum_in": In(signed(config.acc_bits)),
            "psum_out": Out(signed(config.acc_bits)),
            "w_in": In(wl),
            "w_out": Out(wl),
            "shift": In(1),
            "swap": In(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    @property
    def sparse(self) -> bool:
        return self._sparse

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        wl = weight_layout(cfg, sparse=self._sparse)
        active = Signal(wl)
        shadow = Signal(wl)

        with m.If(self.swap):
            m.d.sync += [active.eq(shadow), shadow.eq(active)]
        with m.Elif(self.shift):
            m.d.sync += shadow.eq(self.w_in)
        m.d.comb += self.w_out.eq(shadow)

        operand = self.window[active.index] if self._sparse else self.window
        product = Signal(signed(2 * cfg.operand_bits))
        m.d.comb += product.eq(active.value * operand)
        acc = cfg.acc_bits
        m.d.comb += self.psum_out.eq((self.psum_in + product)[:acc].as_signed())
        return m
