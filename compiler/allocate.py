"""Allocation: DRAM placement of every tensor (scratchpad addresses are fixed by the
schedule's halves and slots).

Tensors are placed in first-use order: activation inputs the host writes (``fmt`` ``act`` or
``act_dense``), compressed weight tiles (``wgt_tiles``), then outputs (``out_i8`` /
``out_i32``). Layouts (beats):

* activations: row ``p``'s K tile ``kt`` at ``p * row_beats + kt * entry_beats``; a
  convolution input read by implicit im2col (``meta["image"] = [B, Hp, Wp, C]``,
  :mod:`sparsa.compiler.imgload`) holds the padded image, one row per pixel;
* outputs: row ``p``'s column block ``qt`` at ``p * row_beats + qt * store_beats`` (a
  packed grouped GEMM's output, ``meta["groups"] = [first, count]``, holds its groups'
  columns side by side); an output
  read directly by a later GEMM (chained) shares its row stride with that GEMM's input; an
  output stored into the next convolution's zero-padded image (option ``store_image``)
  holds that image (``meta["image"] = [B, Hp, Wp, C]``, ``meta["interior"] = [top, left,
  H, W]``: row ``p`` of the output is the pixel at ``(b, top + h, left + w)``);
* weights: tile ``j`` (``qt``-major, see :mod:`sparsa.compiler.wformat`) at
  ``j * rows * entry_beats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .imgload import image_of
from .ir import CGraph

__all__ = ["Allocation", "AllocatePass", "DramTensor"]


@dataclass
class DramTensor:
    name: str
    addr: int
    beats: int
    shape: tuple[int, ...]
    dtype: str
    fmt: str
    role: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Allocation:
    tensors: dict[str, DramTensor]
    total_beats: int

    def summary(self) -> dict[str, Any]:
        by_role: dict[str, int] = {}
        for t in self.tensors.values():
            by_role[t.role] = by_role.get(t.role, 0) + t.beats
        return {"tensors": len(self.tensors), "dram_beats": self.total_beats,
                "beats_by_role": by_role}


def allocate(g: CGraph) -> Allocation:
    lays = g.sched.layouts
    produced = {op.y for op in g.ops}
    entries: list[DramTensor] = []
    seen: set[str] = set()
    # inputs
    for op in g.ops:
        lay = lays[op.name]
        if op.x not in produced and op.x not in seen:
            seen.add(op.x)
            fmt = "act_dense" if lay["act_win"] else "act"
            geo = image_of(op)
            rows, cols = (geo.pixels, geo.C) if geo else (op.P, op.kx)
            entries.append(DramTensor(op.x, 0, rows * lay["x_row"], (rows, cols), "int8", fmt,
                                      "input", {"row_beats": lay["x_row"],
                                                "entry_beats": lay["eb_a"],
                                                "kp": op.tiling.kp,
                                                "nk": -(-cols // op.tiling.kp) if geo
                                                else op.act_tiles,
                                                **({"image": [geo.B, geo.Hp, geo.Wp, geo.C]}
                                                   if geo else {})}))
    for op in g.ops:
        lay = lays[op.name]
        tm = op.tiling.tmap
        entries.append(DramTensor(
            f"{op.name}.w", 0, op.tiling.tiles * lay["tile_beats"], (op.K, op.Q), "int8",
            "wgt_tiles", "weight",
            {"mode": op.tiling.mode, "kp": tm.kp, "nk": tm.nk, "nq": tm.nq,
             "tile_beats": lay["tile_beats"], "qt_ptr": tm.qt_ptr().tolist(),
             "kt_idx": tm.kt_idx().tolist(), "nnz": int(op.nnz),
             **({"cmp": list(op.cmp)} if op.cmp else {})}))
    for op in g.ops:
        lay = lays[op.name]
        if op.y in seen:
            continue
        seen.add(op.y)
        geo = op.out_image
        entries.append(DramTensor(
            op.y, 0, (geo.pixels if geo else op.P) * lay["y_row"], (op.P, op.Q),
            "int8" if op.requant else "int32",
            "out_i8" if op.requant else "out_i32", "output",
            {"row_beats": lay["y_row"], "store_beats": lay["sb"], "nq": op.tiling.nq,
             "shift": op.shift, "relu": op.relu,
             **({"groups": [op.group, op.pack]} if op.pack > 1 else {}),
             **({"image": [geo.B, geo.Hp, geo.Wp, geo.C],
                 "interior": [geo.pt, geo.pl, geo.H, geo.W]} if geo else {})}))
    addr = 0
    out: dict[str, DramTensor] = {}
    for t in entries:
        t.addr = addr
        addr += max(t.beats, 0)
        out[t.name] = t
    return Allocation(out, max(addr, 1))


class AllocatePass:
    """Place every DRAM tensor."""

    name = "allocate"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        g.alloc = allocate(g)
        return g, True
