"""The compiler's graph: workload layers plus the GEMM operations the passes attach to them.

:class:`CGraph` starts as a list of :class:`Node` (one per workload layer, topological order;
after training expansion, one per forward / backward-data / weight-gradient operation).
Sparsify attaches masked weights, lowering turns GEMM nodes into :class:`GemmOp` (one per
group), tiling attaches a :class:`Tiling`, scheduling an instruction list, allocation DRAM
addresses. :meth:`CGraph.dump` prints what every pass decided (text or JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sparsa.hw.config import AccelConfig

from .options import CompileOptions
from .wformat import tile_window

__all__ = ["Node", "GemmOp", "Tiling", "CGraph"]


@dataclass
class Node:
    """One layer (or one training phase of a layer) of the workload.

    ``kind`` is the workload layer kind; ``phase`` is ``"inf"`` for inference or
    ``"fwd" | "bwd_data" | "wgrad"`` after training expansion. ``gemm`` is the per-group
    GEMM shape ``(P, K, Q, groups)`` of GEMM nodes, ``None`` for host nodes. ``w`` (and
    without data ``structure``) is the stationary operand per GEMM the node lowers to: per
    group, or per pack of ``pack`` groups (:mod:`sparsa.compiler.grouppack`).
    """

    name: str
    kind: str
    phase: str = "inf"
    inputs: tuple[str, ...] = ()
    gemm: tuple[int, int, int, int] | None = None
    stationary: str = "weight"
    source: str = ""             # original layer name
    out_elements: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    layer: Any = None            # the workloads Layer, when there is one
    spec: Any = None             # SparsitySpec of this node's stationary operand
    w: np.ndarray | None = None  # int8 [ops, K, Q] masked weights (op_gemm; with data)
    perm: np.ndarray | None = None  # [groups, K] Bi-Mask permutations of K (bwd_data)
    nnz: int | None = None       # non-zeros of the stationary operand (all groups)
    structure: np.ndarray | None = None  # bool [K, Q] structural mask without data
    relu: bool = False
    notes: list[str] = field(default_factory=list)
    pack: int = 1                # groups per GemmOp (grouppack: block-diagonal packing)
    pack_k: int = 0              # K of a packed GemmOp (pack > 1)

    @property
    def is_gemm(self) -> bool:
        return self.gemm is not None

    @property
    def op_gemm(self) -> tuple[int, int, int, int]:
        """``(P, K, Q, ops)`` of the GEMMs the node lowers to: ``gemm`` unless ``pack``
        groups share one (``K`` becomes ``pack_k``, ``Q`` times ``pack``, ``groups / pack``
        of them)."""
        P, K, Q, groups = self.gemm
        gp = self.pack
        return (P, self.pack_k, Q * gp, groups // gp) if gp > 1 else self.gemm


@dataclass
class Tiling:
    """Tiling and loop order chosen for one :class:`GemmOp` (visible in the dump)."""

    mode: str            # sparse | dense
    kp: int
    nk: int
    nq: int
    order: str           # weight-reuse | act-reuse
    pc: int              # P rows per chunk (one COMPUTE streams pc rows)
    resident: bool       # weight-reuse: the chunk's activations stay for every column block
    tiles: int           # stored weight tiles
    tmap: Any = None     # wformat.TileMap
    notes: list[str] = field(default_factory=list)
    kc: int = 0          # weight-reuse: activation K tiles per block (0: every used one)
    qb: int = 1          # weight-reuse: column blocks per accumulator block
    fallback: Any = None  # dataflow="auto" chose act-reuse: the weight-reuse tiling it beat


@dataclass
class GemmOp:
    """One GEMM ``Y[P, Q] = X[P, K] @ W[K, Q]`` (one group of a layer)."""

    name: str
    node: int            # index into CGraph.nodes
    group: int           # first group it computes
    P: int
    K: int
    Q: int
    x: str               # DRAM tensor holding X
    y: str               # DRAM tensor receiving Y
    w: np.ndarray | None = None    # int8 [K, Q] masked (with data)
    kvec: np.ndarray | None = None        # without data: bool [K], rows kept per column
    structure: np.ndarray | None = None   # without data: bool [K, Q] (block patterns)
    nnz: int = 0
    mode: str = "sparse"           # sparse | dense | load-sparse (chosen by lowering)
    win: int = 0                   # sparse mode: window width (0 = the array's m)
    passes: int = 1                # K tile t: pass t % passes of activation tile t // passes
    k_act: int = 0                 # columns of X when passes > 1 (K counts the passes)
    cmp: tuple[int, int] | None = None   # load-sparse window (cmp_n, cmp_m)
    mode_notes: list[str] = field(default_factory=list)
    relu: int = 0
    requant: int = 1
    shift: int = 0
    x_chained: bool = False        # X is written by an earlier STORE of this program
    x_shared: bool = False         # X is one host-written tensor read by several GEMMs
    tiling: Tiling | None = None
    phase: str = "inf"
    pack: int = 1                  # groups side by side (block-diagonal W), see grouppack
    image: Any = None              # imgload.ConvGeom: X read from the padded input image
    out_image: Any = None          # imgload.ConvGeom: Y stored into the next GEMM's image

    @property
    def kx(self) -> int:
        """Columns of ``X`` (``K`` unless the GEMM runs in passes)."""
        return self.k_act or self.K

    @property
    def act_tiles(self) -> int:
        """K tiles of ``X`` (the tiling's ``nk`` over the passes that share each)."""
        return self.tiling.nk // self.passes


@dataclass
class CGraph:
    """The graph the passes transform."""

    config: AccelConfig
    options: CompileOptions
    nodes: list[Node] = field(default_factory=list)
    ops: list[GemmOp] = field(default_factory=list)
    name: str = "workload"
    with_data: bool = True
    seed: int = 0
    data: dict[str, np.ndarray] = field(default_factory=dict)   # host-side tensors (with data)
    sched: Any = None        # schedule.Schedule
    alloc: Any = None        # allocate.Allocation
    program: Any = None      # program.Program (after encode)
    results: dict[str, np.ndarray] = field(default_factory=dict)  # expected op outputs
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- dump ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "config": self.config.name,
                               "options": self.options.to_dict(), "nodes": [], "ops": []}
        for n in self.nodes:
            d: dict[str, Any] = {"name": n.name, "kind": n.kind, "phase": n.phase,
                                 "inputs": list(n.inputs)}
            if n.gemm:
                d.update(gemm=dict(zip(("P", "K", "Q", "groups"), n.gemm, strict=True)),
                         pack=n.pack,
                         stationary=n.stationary, spec=str(n.spec) if n.spec else None,
                         nnz=n.nnz, relu=n.relu)
            else:
                d["out_elements"] = n.out_elements
            if n.notes:
                d["notes"] = list(n.notes)
            out["nodes"].append(d)
        for op in self.ops:
            d = {"name": op.name, "P": op.P, "K": op.K, "Q": op.Q, "x": op.x, "y": op.y,
                 "nnz": op.nnz, "relu": op.relu, "requant": op.requant, "shift": op.shift,
                 "x_chained": op.x_chained}
            if op.passes > 1:
                d["passes"] = op.passes
            if op.tiling:
                t = op.tiling
                d["tiling"] = {"mode": t.mode, "kp": t.kp,
                               "window": tile_window(self.config, t.kp), "nk": t.nk,
                               "nq": t.nq,
                               "order": t.order, "pc": t.pc, "resident": t.resident,
                               "kc": t.kc, "qb": t.qb,
                               "tiles": t.tiles, "notes": list(t.notes)}
                if op.cmp is not None:
                    d["tiling"]["cmp"] = list(op.cmp)
            out["ops"].append(d)
        if self.sched is not None:
            out["schedule"] = self.sched.summary()
        if self.alloc is not None:
            out["allocation"] = self.alloc.summary()
        return out

    def dump(self, fmt: str = "text") -> str:
        """The graph as text (one line per node / op) or JSON."""
        if fmt == "json":
            return json.dumps(self.to_json(), indent=1, default=str)
        lines = [f"# {self.name} on {self.config.name}  options: "
                 + " ".join(f"{k}={v}" for k, v in self.options.to_dict().items())]
        for n in self.nodes:
            if n.gemm:
                P, K, Q, g = n.gemm
                s = (f"{n.name:<28} {n.kind:<10} {n.phase:<8} gemm P={P} K={K} Q={Q} "
                     f"groups={g}" + (f" pack={n.pack}" if n.pack > 1 else "")
                     + f" stationary={n.stationary} spec={n.spec} nnz={n.nnz}"
                     + (" relu" if n.relu else ""))
            else:
                s = f"{n.name:<28} {n.kind:<10} {n.phase:<8} host elements={n.out_elements}"
            if n.notes:
                s += "  # " + "; ".join(n.notes)
            lines.append(s)
        for op in self.ops:
            s = (f"  op {op.name:<30} P={op.P} K={op.K}"
                 f"{f' ({op.passes} passes)' if op.passes > 1 else ''} Q={op.Q} x={op.x}"
                 f"{'(chained)' if op.x_chained else ''} y={op.y} shift={op.shift}"
                 f"{' relu' if op.relu else ''}")
            if op.tiling:
                t = op.tiling
                cmp = f" cmp={op.cmp[0]}:{op.cmp[1]}" if op.cmp else ""
                s += (f" | {t.mode}{cmp} kp={t.kp} w={tile_window(self.config, t.kp)} "
                      f"nk={t.nk} nq={t.nq} tiles={t.tiles} "
                      f"order={t.order} pc={t.pc}{' resident' if t.resident else ''}"
                      + (f" kc={t.kc} qb={t.qb}" if t.order == "weight-reuse" and not t.resident
                         else ""))
                if t.notes:
                    s += "  # " + "; ".join(t.notes)
            lines.append(s)
        if self.sched is not None:
            lines.append("schedule: " + json.dumps(self.sched.summary()))
        if self.alloc is not None:
            lines.append("allocation: " + json.dumps(self.alloc.summary()))
        return "\n".join(lines)
