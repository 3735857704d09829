"""Programs from explicit GEMMs (no workload graph): ``Y_i = X_i @ W_i``.

:func:`compile_gemms` runs the back half of the pipeline (tile -> schedule -> allocate ->
encode) on a list of :class:`Gemm`; GEMM ``i``'s output is tensor ``g{i}.y``. A GEMM may
read an earlier GEMM's output directly (``x="g0.y"``), which chains them on the core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sparsa.hw.config import AccelConfig

from . import loadsparse, wformat
from .allocate import AllocatePass
from .encode import EncodePass
from .errors import CompileError
from .imgload import stored_interior
from .ir import CGraph, GemmOp, Node
from .options import CompileOptions
from .pipeline import Pipeline
from .program import Program
from .quant import choose_shift, matmul_exact, requant
from .schedule import SchedulePass
from .tiling import TilePass

__all__ = ["Gemm", "compile_gemms", "read_output", "chainable"]


@dataclass
class Gemm:
    """One GEMM. ``x`` is int8 ``[P, K]`` or the name of an earlier GEMM's output
    (``"g0.y"``); ``w`` int8 ``[K, Q]`` (zeros are pruned weights). ``shift=None`` picks the
    requantisation shift from the data (:func:`sparsa.compiler.quant.choose_shift`)."""

    x: np.ndarray | str
    w: np.ndarray
    relu: bool = False
    requant: bool = True
    shift: int | None = None


def chainable(cfg: AccelConfig, mode: str, win: int = 0) -> bool:
    """Whether an int8 output can be read directly as the next GEMM's activations: STORE
    rows and activation rows must both be whole beats."""
    ent = cfg.act_row_bytes(wformat.window(cfg, mode, win))
    return cfg.cols % cfg.beat_bytes == 0 and ent % cfg.beat_bytes == 0


def choose_mode(cfg: AccelConfig, w: np.ndarray, sparse_mode: str, name: str
                ) -> tuple[str, int, int, list[str]]:
    """``(mode, window width, passes, notes)`` of weights ``w`` (see
    :func:`wformat.sparse_window`; weights denser than the array's ``n`` run in sparse
    passes, :func:`wformat.pass_plan`, when that needs fewer weight tiles than dense mode)."""
    if sparse_mode == "dense":
        return "dense", 0, 1, ["dense mode (option)"]
    win = wformat.sparse_window(cfg, w)
    if win:
        if np.count_nonzero(w) == w.size and cfg.n == cfg.m:
            return "dense", 0, 1, []
        return "sparse", win, 1, [] if win == cfg.m else \
            [f"sparse mode at window {win} (more than {cfg.n} non-zeros in some {cfg.m}-window)"]
    narrow = min(cfg.windows[1:], default=cfg.m)      # the narrowest sparse window
    pw, ps = wformat.weight_passes(cfg, w)
    k = w.shape[0]
    if pw and ps * -(-k // wformat.tile_k(cfg, "sparse", pw)) < \
            -(-k // wformat.tile_k(cfg, "dense")):
        return "sparse", pw, ps, [f"sparse mode in {ps} passes of {cfg.n} per {pw}-window "
                                  f"(more than {cfg.n} non-zeros in some {narrow}-window)"]
    if sparse_mode == "sparse":
        raise CompileError(f"{name}: weights have more than n={cfg.n} non-zeros in an "
                           f"aligned window of {narrow}; use sparse_mode=auto or dense")
    return "dense", 0, 1, [f"dense mode: more than {cfg.n} non-zeros in some {narrow}-window"]


def compile_gemms(cfg: AccelConfig, gemms: list[Gemm], *,
                  options: CompileOptions | None = None, seed: int = 0) -> Program:
    """One program running every GEMM in order (see the module docstring)."""
    opt = options or CompileOptions()
    g = CGraph(cfg, opt, name="gemms", seed=seed)
    results: dict[str, np.ndarray] = {}
    for i, gm in enumerate(gemms):
        w = np.asarray(gm.w)
        if w.ndim != 2:
            raise CompileError(f"gemm {i}: w must be 2-D [K, Q], got shape {w.shape}")
        w = w.astype(np.int8)
        cmp, win, passes = None, 0, 1
        if opt.mode_for(f"g{i}") == "load-sparse":
            cmp = loadsparse.choose_window(cfg, w != 0)
            mode, notes = ("load-sparse", []) if cmp[0] < cmp[1] else \
                ("dense", ["load-sparse: no window compresses these weights; dense"])
        else:
            mode, win, passes, notes = choose_mode(cfg, w, opt.mode_for(f"g{i}"), f"gemm {i}")
        if isinstance(gm.x, str):
            if gm.x not in results:
                raise CompileError(f"gemm {i}: x={gm.x!r} is not an earlier GEMM's output")
            x = results[gm.x]
            src = next(op for op in g.ops if op.y == gm.x)
            if not (chainable(cfg, mode, win) and src.requant):
                raise CompileError(f"gemm {i}: cannot read {gm.x} directly on {cfg.name} "
                                   f"(needs int8 output and beat-aligned rows)")
            xname, chained = gm.x, True
        else:
            x = np.asarray(gm.x).astype(np.int8)
            xname, chained = f"g{i}.x", False
            g.data[xname] = x
        P, K = x.shape
        if w.shape[0] != K:
            raise CompileError(f"gemm {i}: x has K={K} columns but w has {w.shape[0]} rows")
        y32 = matmul_exact(x, w).astype(np.uint32).view(np.int32)
        shift = gm.shift if gm.shift is not None else (
            choose_shift(y32, gm.relu) if gm.requant else 0)
        results[f"g{i}.y"] = requant(y32, shift, gm.relu) if gm.requant else y32
        g.nodes.append(Node(f"g{i}", "gemm", gemm=(P, K, w.shape[1], 1),
                            nnz=int(np.count_nonzero(w)), relu=gm.relu))
        w_op = w if passes == 1 else wformat.split_passes(
            w, win, passes, cfg.n, wformat.tile_k(cfg, mode, win))
        g.ops.append(GemmOp(f"g{i}", i, 0, P, w_op.shape[0], w.shape[1], xname, f"g{i}.y",
                            w=w_op, passes=passes, k_act=K if passes > 1 else 0,
                            nnz=int(np.count_nonzero(w)), relu=int(gm.relu),
                            requant=int(gm.requant), shift=shift, x_chained=chained,
                            mode=mode, win=win, mode_notes=notes,
                            cmp=cmp if mode == "load-sparse" else None))
    Pipeline([TilePass(), SchedulePass(), AllocatePass(), EncodePass()]).run(g)
    g.program.expected = dict(results)
    return g.program


def read_output(program: Program, dram: np.ndarray, name: str) -> np.ndarray:
    """Decode output tensor ``name`` (``out_i8`` / ``out_i32``) from a DRAM image.

    ``<layer>/g<i>.y`` of a grouped layer whose groups were packed
    (:mod:`sparsa.compiler.grouppack`) reads group ``i``'s columns of the packed output
    ``<layer>/g<lo>-<hi>.y``."""
    from sparsa.hw import layout
    cfg = program.config
    if name not in program.tensors:
        mo = re.fullmatch(r"(.*)/g(\d+)\.y", name)
        i = int(mo.group(2)) if mo else -1
        for t in program.tensors.values() if mo else ():
            lo, gp = t.meta.get("groups", (0, 0))
            if t.name.startswith(f"{mo.group(1)}/g") and lo <= i < lo + gp:
                q = t.shape[1] // gp
                return read_output(program, dram, t.name)[:, (i - lo) * q:(i - lo + 1) * q]
        raise KeyError(f"{name!r} is not an output tensor of this program")
    t = program.tensors[name]
    bb = cfg.beat_bytes
    P, Q = t.shape
    rb, sb, nq = t.meta["row_beats"], t.meta["store_beats"], t.meta["nq"]
    img = stored_interior(t.meta) if "image" in t.meta else None   # its interior pixels
    rows = int(np.prod(img[0])) if img else P
    raw = np.asarray(dram)[t.addr * bb:(t.addr + rows * rb) * bb].reshape(rows, rb * bb)
    blocks = [layout.decode_store_rows(cfg, raw[:, qt * sb * bb:(qt + 1) * sb * bb],
                                       requant=int(t.fmt == "out_i8")) for qt in range(nq)]
    y = np.concatenate(blocks, axis=1)[:, :Q]
    if img:
        y = y.reshape(*img[0], Q)[img[1]].reshape(P, Q)
    return y
