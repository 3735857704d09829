"""The ``rows x cols`` weight-stationary sparse systolic array.

Rows are grouped by ``n``: the ``n`` PE rows of group ``g`` share one activation window
(``m`` int8) that moves one column to the right per cycle. Inside a group the partial sum
passes the ``n`` PEs combinationally and is registered once per group, so it moves one group
down per cycle, in step with the windows:

* group ``g``'s window is delayed by ``g`` cycles (input skew) and enters column 0 in a
  window register; window register ``W[g][c]`` holds row ``p``'s window in cycle
  ``D + g + c + 1`` when the row entered ``x`` in cycle ``D``;
* partial-sum register ``P[g][c]`` (the sum over groups ``0..g``) holds row ``p`` in cycle
  ``D + g + c + 2``;
* column ``c``'s result is delayed ``cols - 1 - c`` more cycles (output de-skew), so the
  whole row leaves on ``y`` in cycle ``D + groups + cols`` (:attr:`SystolicArray.latency`).

Weights are preloaded through a shift chain down every column into the PEs' shadow
registers: an entry on ``w_in`` with ``w_shift`` high moves into row 0 while every row's
shadow moves one row down; after ``rows`` shifts the first entry sits in row ``rows - 1``.
Column ``c`` sees ``w_in``/``w_shift`` ``c`` cycles late (preload skew), so its last shift
comes ``c`` cycles after column 0's.

The swap of active and shadow registers travels through the array as a wave, with the rows:
``x_swap`` marks the first row of a new weight tile (it may also travel without a row), and
the PEs of group ``g``, column ``c`` swap at the edge that moves the marked window into
``W[g][c]`` (the end of cycle ``D + g + c``, ``D``: the cycle ``x_swap`` was high). Every
row therefore meets exactly the weights of its own tile, so a new tile's rows follow the
previous tile's rows without a gap. With the preload skew a column's swaps and shifts
travel together: the next preload may start shifting in cycle ``D + groups`` (column ``c``
shifts first at the end of ``D + groups + c``, after its last group swapped), and a swap
may follow the last shift on ``w_shift`` by ``rows`` cycles.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig
from .pe import ProcessingElement, weight_layout, window_layout

__all__ = ["SystolicArray", "act_layout", "row_weights_layout", "psum_row_layout"]


def act_layout(cfg: AccelConfig) -> data.ArrayLayout:
    """One activation entry: ``groups`` windows of ``m`` int8 (bit-identical to the entry
    bytes: byte ``j`` is window ``j // m``, position ``j % m``)."""
    return data.ArrayLayout(window_layout(cfg), cfg.groups)


def row_weights_layout(cfg: AccelConfig) -> data.ArrayLayout:
    """One array row of stationary weights: ``cols`` (value, index) pairs."""
    return data.ArrayLayout(weight_layout(cfg), cfg.cols)


def psum_row_layout(cfg: AccelConfig) -> data.ArrayLayout:
    """One output row: ``cols`` int32 partial sums (bit-identical to an accumulator entry)."""
    return data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)


class SystolicArray(wiring.Component):
    """Sparse systolic array with input skew and output de-skew inside.

    Parameters
    ----------
    config : AccelConfig
        Array shape (``rows``, ``cols``), group size ``n`` and window ``m``.

    Attributes
    ----------
    x : In(act_layout(config))
        Row-aligned activation entry (``groups`` windows of ``m`` int8).
    x_valid : In(1)
        ``x`` carries a row this cycle; travels with the row to ``y_valid``.
    y : Out(psum_row_layout(config))
        Row-aligned results ``y[c] = sum_r v[r, c] * x[r // n][i[r, c]]`` (int32,
        wrapping), :attr:`latency` cycles after the row entered ``x``.
    y_valid : Out(1)
        ``y`` carries a row this cycle.
    w_in : In(row_weights_layout(config))
        Weights entering the top of the preload shift chain.
    w_shift : In(1)
        Shift the shadow registers one row down, ``w_in`` into row 0.
    x_swap : In(1)
        The row on ``x`` (if any) is the first of a new weight tile: each PE exchanges its
        active and shadow weights just before this row reaches it.
    """

    def __init__(self, *, config: AccelConfig) -> None:
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({
            "x": In(act_layout(config)),
            "x_valid": In(1),
            "y": Out(psum_row_layout(config)),
            "y_valid": Out(1),
            "w_in": In(row_weights_layout(config)),
            "w_shift": In(1),
            "x_swap": In(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from a row on ``x`` to its results on ``y`` (``groups + cols``)."""
        return self._config.groups + self._config.cols

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        G, C, N = cfg.groups, cfg.cols, cfg.n
        acc = signed(cfg.acc_bits)

        # PEs; a shift chain down each column, column c's shifts c cycles after column 0's
        # (in step with the swap wave, which also reaches column c c cycles later)
        pes = [[ProcessingElement(config=cfg) for _ in range(C)] for _ in range(cfg.rows)]
        for c in range(C):
            shift, w_in = self.w_shift, self.w_in[c]
            for k in range(c):
                s_reg = Signal(name=f"wshift_{c}_{k}")
                w_reg = Signal(weight_layout(cfg), name=f"wpre_{c}_{k}")
                m.d.sync += [s_reg.eq(shift), w_reg.eq(w_in)]
                shift, w_in = s_reg, w_reg
            for r in range(cfg.rows):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.shift.eq(shift),
                             pe.w_in.eq(w_in if r == 0 else pes[r - 1][c].w_out)]

        psum_above = [None] * C
        for g in range(G):
            src = self.x[g]
            flag = self.x_swap
            for k in range(g):                       # input skew: g cycles for group g
                reg = Signal(window_layout(cfg), name=f"skew_{g}_{k}")
                freg = Signal(name=f"skew_swap_{g}_{k}")
                m.d.sync += [reg.eq(src), freg.eq(flag)]
                src, flag = reg, freg
            for c in range(C):
                win = Signal(window_layout(cfg), name=f"win_{g}_{c}")
                wflag = Signal(name=f"win_swap_{g}_{c}")
                m.d.sync += [win.eq(src), wflag.eq(flag)]
                chain = psum_above[c]
                for j in range(N):
                    pe = pes[g * N + j][c]
                    m.d.comb += [pe.window.eq(win), pe.swap.eq(flag),
                                 pe.psum_in.eq(0 if chain is None else chain)]
                    chain = pe.psum_out
                src, flag = win, wflag
                psum = Signal(acc, name=f"psum_{g}_{c}")
                m.d.sync += psum.eq(chain)
                psum_above[c] = psum

        for c in range(C):                           # output de-skew: cols-1-c cycles
            src = psum_above[c]
            for k in range(C - 1 - c):
                reg = Signal(acc, name=f"deskew_{c}_{k}")
                m.d.sync += reg.eq(src)
                src = reg
            m.d.comb += self.y[c].eq(src)

        valid = self.x_valid
        for k in range(self.latency):
            reg = Signal(name=f"valid_{k}")
            m.d.sync += reg.eq(valid)
            valid = reg
        m.d.comb += self.y_valid.eq(valid)
        return m
