"""Encoding: resolve DRAM addresses, build the DRAM image and the manifest -> :class:`Program`.

With data, the image holds the host-written activation inputs (packed entries), the
compressed weight tiles, and seeded random bytes in output regions (so a missing STORE
shows in the final image; an output stored into a padded image has zero borders). Without
data the image is empty and its size is ``meta["dram_beats"]``.
"""

from __future__ import annotations

import numpy as np
from sparsa.hw import layout
from sparsa.hw.isa import FIELD_DEFAULTS, Compute, Instr, Load, Store, _field_offsets

from . import loadsparse, wformat
from .errors import CompileError
from .imgload import image_tensor, stored_interior
from .ir import CGraph
from .program import InstrNote, LayerInfo, Program, TensorInfo

__all__ = ["EncodePass", "ScheduledInstrs", "encode_program", "pack_activations"]


#: the instruction fields :meth:`ScheduledInstrs.check` range-checks, per format
CHECKED_FIELDS: dict[type, tuple[str, ...]] = {
    Load: ("count", "dram_addr", "dram_stride", "cmp_n", "cmp_m"),
    Compute: ("count",),
    Store: ("count", "dram_addr", "dram_stride", "shift"),
}


class ScheduledInstrs:
    """A program's instructions as the scheduler left them: ``raw`` holds one
    ``(cls, fields, wait, tensor, layer, useful_macs)`` tuple per instruction
    (:attr:`sparsa.compiler.schedule.Schedule.instrs`), whose ``dram_addr`` is relative to
    ``tensor``'s base address in ``base``; fields left out take their defaults
    (:data:`~sparsa.hw.isa.FIELD_DEFAULTS`). :meth:`check` range-checks the fields that
    grow with the workload; :meth:`build` gives the :class:`~sparsa.hw.isa.Instr` and
    :class:`~sparsa.compiler.program.InstrNote` lists. A program compiled without data
    keeps this (:meth:`Program.defer`) and the model reads ``raw`` directly."""

    __slots__ = ("raw", "base")

    def __init__(self, raw: list, base: dict[str, int]) -> None:
        self.raw, self.base = raw, base

    def __len__(self) -> int:
        return len(self.raw)

    def check(self) -> None:
        """One-line :class:`CompileError` for the first field that does not fit its
        instruction format (a program too large for the ISA). Checked are the fields that
        grow with the workload (:data:`CHECKED_FIELDS`); the others are scratchpad
        addresses (bounded by the config's sizes, at most 65535 entries), slacks (clipped
        to their widths by the scheduler) and one-bit flags."""
        base = self.base
        limits = {cls: tuple((k, 1 << _field_offsets(cls.FIELDS)[k][1], FIELD_DEFAULTS[cls][k])
                             for k in keys) for cls, keys in CHECKED_FIELDS.items()}
        for pc, (cls, kw, _, tensor, *_) in enumerate(self.raw):
            for k, lim, dflt in limits.get(cls, ()):
                v = kw.get(k, dflt)
                if tensor is not None and k == "dram_addr":
                    v += base[tensor]
                if not 0 <= v < lim:
                    raise CompileError(f"instruction {pc} ({cls.__name__}): {k}={v} does not "
                                       f"fit in {lim.bit_length() - 1} bits (program too "
                                       f"large for the ISA)")

    def build(self) -> tuple[list[Instr], list[InstrNote]]:
        """The instruction objects (DRAM addresses resolved) and the notes. The objects are
        filled from the formats' defaults without the dataclass constructor's per-field
        validation (it dominates compile time for whole networks): the fields are the
        scheduler's, checked by :meth:`check` where they can grow with the workload."""
        base = self.base
        instrs: list[Instr] = []
        notes: list[InstrNote] = []
        add_instr, add_note = instrs.append, notes.append
        new = object.__new__
        for cls, kw, wait, tensor, layer, useful in self.raw:
            obj = new(cls)
            d = obj.__dict__
            d.update(FIELD_DEFAULTS[cls])
            d.update(kw)
            d["wait"] = int(wait)
            if tensor is not None:
                d["dram_addr"] += base[tensor]
            add_instr(obj)
            add_note(InstrNote(layer, useful))
        return instrs, notes

    def layers(self) -> np.ndarray:
        """The layer index of every instruction."""
        return np.fromiter((t[4] for t in self.raw), np.int64, len(self.raw))


def pack_activations(cfg, x: np.ndarray, mode: str, nk: int, kp: int) -> np.ndarray:
    """Host layout of activations ``x[P, K]``: ``uint8[P, nk * entry_beats * beat_bytes]``."""
    P, K = x.shape
    xp = np.zeros((P, nk * kp), np.int8)
    xp[:, :K] = x
    rows = xp.reshape(P * nk, kp)
    aw = wformat.act_window_field(cfg, mode, kp)
    ent = layout.pack_act_dense(cfg, rows, aw) if aw else layout.pack_act_entries(cfg, rows)
    return layout.to_beats(cfg, ent).reshape(P, -1)


def encode_program(g: CGraph) -> Program:
    cfg = g.config
    al = g.alloc
    scheduled = ScheduledInstrs(g.sched.instrs, {n: t.addr for n, t in al.tensors.items()})
    scheduled.check()
    bb = cfg.beat_bytes
    if g.with_data:
        img = np.random.default_rng(g.seed + 1).integers(0, 256, al.total_beats * bb,
                                                         dtype=np.uint8)
        ops_by_x = {}
        for op in g.ops:
            ops_by_x.setdefault(op.x, op)
        for name, t in al.tensors.items():
            lo = t.addr * bb
            if t.role == "input":
                op = ops_by_x[name]
                data = g.data[image_tensor(name)] if "image" in t.meta else g.data[name]
                rows = pack_activations(cfg, data, op.tiling.mode, t.meta["nk"],
                                        op.tiling.kp)
                img[lo:lo + rows.size] = rows.reshape(-1)
            elif t.role == "weight":
                op = next(o for o in g.ops if f"{o.name}.w" == name)
                tiles = loadsparse.pack_tiles(cfg, op.w, op.tiling.tmap, op.cmp) \
                    if op.tiling.mode == "load-sparse" else \
                    wformat.pack_tiles(cfg, op.w, op.tiling.tmap)
                img[lo:lo + tiles.size] = tiles.reshape(-1)
            elif "image" in t.meta:   # stored into a padded image: zero borders
                shape, inside = stored_interior(t.meta)
                border = np.ones(shape, bool)
                border[inside] = False
                img[lo:lo + t.beats * bb].reshape(*shape, -1)[border] = 0
        dram = img
    else:
        dram = np.zeros(0, np.uint8)
    tensors = {n: TensorInfo(t.name, t.addr, t.beats, tuple(t.shape), t.dtype, t.fmt, t.role,
                             dict(t.meta)) for n, t in al.tensors.items()}
    # layers: instruction ranges
    lay = scheduled.layers()
    ids, at = np.unique(lay, return_index=True)
    first = dict(zip(ids.tolist(), at.tolist(), strict=True))
    ids, at = np.unique(lay[::-1], return_index=True)
    last = dict(zip(ids.tolist(), (lay.size - 1 - at).tolist(), strict=True))
    layers = []
    for ni, node in enumerate(g.nodes):
        if node.is_gemm:
            P, K, Q, groups = node.gemm
            ops = [op for op in g.ops if op.node == ni]
            meta = {"phase": node.phase, "source": node.source or node.name,
                    "P": P, "K": K, "Q": Q, "groups": groups, "spec": str(node.spec),
                    "stationary": node.stationary,
                    "ops": [op.name for op in ops],
                    "mode": sorted({op.tiling.mode for op in ops}),
                    "window": sorted({wformat.tile_window(cfg, op.tiling.kp) for op in ops}),
                    "order": sorted({op.tiling.order for op in ops}),
                    "shift": [op.shift for op in ops], "relu": bool(node.relu),
                    "tiles": sum(op.tiling.tiles for op in ops),
                    "macs_issued": sum(op.P * op.tiling.tiles * cfg.rows * cfg.cols
                                       for op in ops)}
            if node.pack > 1:   # groups per GEMM and its K (grouppack)
                meta["pack"], meta["pack_k"] = node.pack, node.pack_k
            passes = max((op.passes for op in ops), default=1)
            if passes > 1:   # weight tiles per activation tile (wformat.split_passes)
                meta["passes"] = passes
            why = list(dict.fromkeys(x for op in ops for x in op.mode_notes))
            if why:   # why the mode is not the plain one (dense fallback, narrower window)
                meta["notes"] = why
            kind = node.phase if node.phase in ("fwd", "bwd_data", "wgrad") else "gemm"
            layers.append(LayerInfo(node.name, first.get(ni, 0), last.get(ni, -1) + 1, kind,
                                    P * K * Q * groups, int(node.nnz or 0) * P, meta))
        else:
            layers.append(LayerInfo(node.name, 0, 0, "host", 0, 0,
                                    {"op": node.kind, "phase": node.phase,
                                     "elements": int(node.out_elements),
                                     **node.attrs.get("host_meta", {})}))
    meta = {"generator": "sparsa.compiler", "workload": g.name, "seed": g.seed,
            "options": g.options.to_dict(), "with_data": g.with_data,
            "dram_beats": al.total_beats, **g.meta}
    if g.with_data:      # run by the executor and the RTL: built now
        instrs, notes = scheduled.build()
        return Program(cfg, instrs, dram, tensors, layers, notes, meta)
    prog = Program(cfg, [], dram, tensors, layers, [], meta)
    prog.defer(scheduled)   # timed by the model: built if asked for
    return prog


class EncodePass:
    """Build the :class:`Program`."""

    name = "encode"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        g.program = encode_program(g)
        return g, True
