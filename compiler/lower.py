"""Lowering: GEMM nodes -> :class:`GemmOp` per group (or per pack of groups,
:mod:`sparsa.compiler.grouppack`), with mode, ReLU fusion, chaining and requantisation.

* **Mode** per node: ``sparse`` when every group's stationary operand fits the array's
  ``n:m`` (on data; analytically from the spec without), else ``dense`` (noted); also
  ``dense`` (noted) under ``sparse_mode="auto"`` when ``K <= rows``: one tile either way,
  and sparse mode's activation entries are ``m/n`` times larger;
  ``load-sparse`` (option or per-layer ``layer_modes``): the weights are stored compressed
  with the window of :func:`sparsa.compiler.loadsparse.choose_window` and computed densely.
* **ReLU fusion**: a ``relu`` node whose only input is a GEMM node (that has no other
  consumer) is applied by that GEMM's STOREs and becomes a host node of zero cost
  (``fused``).
* **Chaining**: a GEMM reads its producer's output directly from DRAM when im2col is the
  identity (one group, same ``P``, ``K`` equal to the producer's ``Q``: linear layers, 1x1
  convolutions, MLP chains) and the rows are beat aligned. Otherwise the core has no im2col
  or relayout unit: the host writes the GEMM's input (``<layer>.im2col`` host node, element
  count ``P * K`` per group) — with data the compiler fills it with seeded int8 values.
  GEMMs reading one tensor as stored (linear layers, 1x1 stride-1 convolutions) share that
  input; what the host layers cost is :mod:`sparsa.compiler.hostwork`'s accounting.
* **Backward weights**: the backward-data GEMM's ``W^T`` (own mask, Bi-Mask permutation
  applied to its rows) is stored compressed in the DRAM image; with ``pregenerate_bwd``
  it is generated ahead of time (with the weight update), without it a
  ``<layer>.wt_gen`` host node prunes it on the fly every step (``K * Q`` elements).
* **Requantisation**: int8 outputs with the per-op shift of :mod:`sparsa.compiler.quant`
  (one per layer for a grouped convolution, packed or not); weight gradients stay int32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import hostwork, loadsparse, wformat
from .errors import CompileError
from .gemms import chainable
from .grouppack import pack_inputs, packable
from .imgload import geometry_of, image_tensor
from .ir import CGraph, GemmOp, Node
from .quant import choose_shift, matmul_exact, nominal_shift, requant

if TYPE_CHECKING:
    from sparsa.workloads.sparsity import SparsitySpec

__all__ = ["LowerPass"]


def _nz_mask(g: CGraph, n: Node) -> np.ndarray:
    """Non-zero mask ``[K, Q * ops]`` of a node's stationary operand (all its GEMMs)."""
    P, K, Q, groups = n.op_gemm
    if g.with_data:
        return np.concatenate([n.w[gi] != 0 for gi in range(groups)], axis=1)
    if n.structure is not None:
        return np.asarray(n.structure, bool)
    kv = n.attrs.get("_kvec")
    return (np.ones(K, bool) if kv is None else np.asarray(kv, bool))[:, None]


def _load_sparse_mode(g: CGraph, n: Node) -> tuple[str, list[str], tuple[int, int] | None]:
    cmp = loadsparse.choose_window(g.config, _nz_mask(g, n))
    if cmp[0] >= cmp[1]:
        return "dense", ["load-sparse: no window compresses these weights; dense"], None
    return "load-sparse", [f"load-sparse: {cmp[0]} of every {cmp[1]} rows stored"], cmp


def _node_mode(g: CGraph, n: Node) -> tuple[str, int, int, list[str]]:
    """``(mode, window width, passes, notes)`` of a GEMM node: sparse mode at the widest of
    the array's windows its pattern fits (:func:`wformat.sparse_window`), else sparse mode
    in several passes when that beats dense mode (:func:`wformat.pass_plan`), else dense."""
    cfg = g.config
    opt = g.options.mode_for(n.source, n.name)
    if opt == "dense":
        return "dense", 0, 1, []
    if opt == "load-sparse":
        mode, notes, cmp = _load_sparse_mode(g, n)
        n.attrs["_cmp"] = cmp
        return mode, 0, 1, notes
    spec = n.spec
    kv = n.attrs.get("_kvec")
    data = g.with_data or n.structure is not None
    if data:
        win = wformat.sparse_window(cfg, _nz_mask(g, n))
    elif kv is not None and spec.n is not None:
        win = wformat.spec_window(cfg, spec.n, spec.m)
    else:
        win = cfg.m if cfg.n >= cfg.m else 0
    kdim = n.op_gemm[1]
    full = n.nnz == kdim * n.op_gemm[2] * n.op_gemm[3]
    k_dense = wformat.tile_k(cfg, "dense")
    if win and not full:
        if opt == "auto" and kdim <= k_dense:
            # K fits one tile in either mode: sparse mode saves no pass but streams m/n x
            # the activation bytes (e.g. depthwise 3x3, K = 9)
            return "dense", 0, 1, [f"dense mode: K={kdim} fits one {k_dense}-row tile "
                                   f"either way; sparse mode would only move more activations"]
        return "sparse", win, 1, [] if win == cfg.m else \
            [f"sparse mode at window {win}: {n.spec or 'the pattern'} has more than "
             f"{_nonzeros(cfg.n)} in some aligned {cfg.m}-window"]
    if win:   # dense weights on an n == m array: dense mode is the same rate, fewer bytes
        return "dense", 0, 1, []
    narrow = min(cfg.windows[1:], default=cfg.m)
    sparse_spec = n.spec is not None and n.spec.kind != "dense"
    too_dense = f"{n.spec} has more than {_nonzeros(cfg.n)} in some aligned {narrow}-window"
    pw, ps, better, upto = 0, 0, False, ""
    # only a declared pattern is split: the zeros of a dense spec's data (a weight-gradient
    # GEMM's activations) are not known when the program is compiled
    if sparse_spec and not full and data:
        # the known weights: count the pass tiles each window's split keeps
        mask, groups = _nz_mask(g, n), n.op_gemm[3]
        best = None
        for w in cfg.windows:
            if w > cfg.n:
                s, tiles = wformat.pass_tiles(cfg, mask, w)
                c = _split_cost(cfg, n, w, s, tiles / groups)
                if best is None or (c, s) < best[:2]:
                    best = (c, s, w, tiles)
        if best is not None:
            c, ps, pw, tiles = best
            full_tiles = ps * -(-kdim // wformat.tile_k(cfg, "sparse", pw)) * \
                -(-mask.shape[1] // cfg.cols)
            upto = "at most " if tiles < full_tiles else ""
            better = c < _split_cost(cfg, n, 0, 1, wformat.dense_tiles(cfg, mask) / groups)
            if not (better or ps * cfg.n < pw):
                pw = ps = 0
    elif sparse_spec and not full and kv is not None and spec.n is not None:
        pw, ps = wformat.spec_passes(cfg, spec.n, spec.m)
        better = bool(pw) and _split_cost(cfg, n, pw, ps) < _split_cost(cfg, n, 0, 1)
    if pw and (opt == "sparse" or better):
        return "sparse", pw, ps, [
            f"sparse mode in {ps} passes of {_nonzeros(cfg.n)} per {pw}-window: "
            f"{too_dense}; every activation tile is read by {upto}{ps} weight tiles"
            + _core_hint(n.spec)]
    if opt == "sparse" and sparse_spec:
        raise CompileError(f"{n.name}: pattern {n.spec} does not fit the array's "
                           f"{cfg.n}:{narrow} or wider windows, not even in passes; use "
                           f"sparse_mode=auto or dense")
    if not sparse_spec:
        return "dense", 0, 1, []
    if pw:
        return "dense", 0, 1, [f"dense mode: {too_dense}; here a {ps}-pass split would "
                               f"save no time" + _core_hint(n.spec)]
    return "dense", 0, 1, [f"dense mode: {too_dense}" + _core_hint(n.spec)]


def _split_cost(cfg, n: Node, win: int, passes: int, tiles: float | None = None) -> float:
    """Rough cycles of a GEMM node in ``passes`` sparse passes at window ``win`` (``win =
    0``: dense mode) with ``tiles`` weight tiles per group (default: every tile): the larger
    of the array's time (``P`` rows through every weight tile) and the DRAM time of its
    activations and weight tiles, each read once."""
    P, K, Q = n.op_gemm[:3]
    kp = wformat.tile_k(cfg, "sparse" if win else "dense", win)
    nk = -(-K // kp)
    if tiles is None:
        tiles = passes * nk * -(-Q // cfg.cols)
    wbytes = tiles * cfg.rows * cfg.beats(cfg.wgt_entry_bytes) * cfg.beat_bytes
    return max(P * tiles, (P * nk * kp + wbytes) / cfg.dram_bytes_per_cycle)


def _host_x(n: Node, group: int) -> np.ndarray:
    """What the host writes as group ``group``'s GEMM input (the layer's ``host_input``);
    Bi-Mask: ``dY`` permuted by the group's own permutation."""
    x = np.asarray(n.layer.host_input(group), np.int8)
    return x if n.perm is None else x[:, n.perm[group]]


def _nonzeros(k: int) -> str:
    return f"{k} non-zero{'s' if k != 1 else ''}"


def _core_hint(spec: SparsitySpec) -> str:
    """The co-design answer to an N:M pattern the array cannot run sparse: the core
    parameters that would (``""`` when the spec has no N:M of its own)."""
    if spec.n is None or spec.n >= spec.m:
        return ""
    return f" (a core with n = {spec.n} and m = {spec.m} runs it at {spec.m / spec.n:.3g}x)"


class LowerPass:
    """GEMM nodes -> GemmOps (see the module docstring)."""

    name = "lower"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        cfg = g.config
        rng = np.random.default_rng(g.seed + 7)
        by_name = {n.name: i for i, n in enumerate(g.nodes)}
        consumers: dict[str, list[int]] = {}
        for i, n in enumerate(g.nodes):
            for inp in n.inputs:
                consumers.setdefault(inp, []).append(i)
        alias: dict[str, str] = {}

        def sole_writer(src: str) -> Node | None:
            """The node writing ``src`` when nothing else reads it."""
            pi = by_name.get(src)
            return g.nodes[pi] if pi is not None and len(consumers.get(src, [])) == 1 \
                else None

        def absorb(n: Node, into: Node, key: str, note: str) -> None:
            """Host node ``n`` costs nothing: its output is ``into``'s."""
            n.attrs["host_meta"] = {key: into.name}
            n.out_elements = 0
            n.notes.append(note)
            alias[n.name] = into.name

        # batch-norm folding (inference) and ReLU fusion, in graph order: a ReLU after a
        # folded norm fuses into the GEMM before the norm
        for n in g.nodes:
            kind = n.kind.lower()
            if len(n.inputs) != 1:
                continue
            if kind == "batchnorm" and g.options.fold_bn and n.phase == "inf":
                p = sole_writer(n.inputs[0])     # its own input: never across a ReLU
                if p is not None and p.is_gemm and p.stationary == "weight":
                    absorb(n, p, "folded_into", f"folded into {p.name}'s weights")
                    consumers[p.name] = consumers.get(n.name, [])
            elif kind == "relu" and g.options.fuse_relu:
                p = sole_writer(alias.get(n.inputs[0], n.inputs[0]))
                if p is not None and p.is_gemm and p.phase != "wgrad":
                    p.relu = True
                    absorb(n, p, "fused_into", f"fused into {p.name}'s STORE")
            if kind in ("relu", "gelu", "clip") and n.phase == "inf" and n.out_elements and \
                    g.options.fuse_relu:
                # inference: an activation alone after a host op (a residual add) is applied
                # as that op writes its output (training keeps both: the backward pass reads
                # the activation's input and output)
                h = sole_writer(n.inputs[0])
                if h is not None and not h.is_gemm and h.phase == n.phase and \
                        h.out_elements == n.out_elements:
                    absorb(n, h, "fused_into", f"applied by {h.name} as it writes")
        new_nodes: list[Node] = []
        ops: list[GemmOp] = []
        outputs: dict[str, GemmOp] = {}      # node name -> op writing it (one group only)
        results: dict[str, np.ndarray] = {}
        for n in g.nodes:
            if not n.is_gemm:
                new_nodes.append(n)
                continue
            P, K, Q, groups = n.op_gemm
            gp = n.pack
            mode, win, passes, notes = _node_mode(g, n)
            # passes > 1: K tile t holds pass t % passes of activation tile t // passes
            # (wformat.split_passes)
            kp = wformat.tile_k(cfg, mode, win)
            k_op = passes * -(-K // kp) * kp if passes > 1 else K
            if n.phase == "bwd_data" and not g.options.pregenerate_bwd:
                # pruning on the fly: the compressed W^T is not generated ahead of time with
                # the weight update; every step the host reads W, transposes it, keeps the
                # backward mask's n of every m and writes the compressed tiles before the
                # backward-data GEMM (which runs as before)
                new_nodes.append(Node(f"{n.name}.wt_gen", "transpose_prune", n.phase,
                                      (n.source,), out_elements=K * Q * groups,
                                      source=n.source,
                                      notes=["host prunes W^T on the fly (not pre-generated)"]))
            n.notes += notes
            if gp > 1:   # shown with the mode: why a dense layer's packs run in sparse mode
                notes = [f"{gp} groups per GEMM (block-diagonal)"] + notes
            wgrad = n.phase == "wgrad"
            # chaining: the GEMM op writing this node's input reads as X directly
            prod = outputs.get(alias.get(n.inputs[0], n.inputs[0])) \
                if len(n.inputs) == 1 else None
            src = None
            if prod is not None and groups == 1 and n.stationary == "weight" and \
                    prod.P == P and prod.Q == K and prod.requant and \
                    chainable(cfg, mode, win) and n.perm is None:
                src = prod
            # GEMMs reading the same tensor as stored (linear layers, 1x1 convolutions)
            # share one host-written input
            identity = src is None and hostwork.identity_input(n, P, K)
            # implicit im2col: the core reads X from the padded image (imgload); final
            # once the tiling's kp is known (TilePass)
            geom = None
            if g.options.implicit_im2col and src is None and groups == 1 and gp == 1 and \
                    n.stationary == "weight" and n.perm is None and \
                    n.phase in ("inf", "fwd"):
                geom = geometry_of(n.layer)
                if geom is not None and ((geom.P, geom.K) != (P, K) or not geom.worth_it()):
                    geom = None
            # ... and the GEMM before it stores its output straight into that image
            stored = None
            if geom is not None and prod is not None and g.options.store_image and \
                    n.phase == "inf" and passes == 1 and \
                    len(consumers.get(n.inputs[0], [])) == 1 and prod.out_image is None and \
                    prod.requant and (prod.P, prod.Q) == (geom.B * geom.H * geom.W, geom.C) \
                    and geom.C % kp == 0 and chainable(cfg, mode, win):
                stored = prod
                prod.out_image = geom
            narrow = f"w{win}" if win and win != cfg.m else ""
            x_shared = f"{n.inputs[0]}.x.{mode}{narrow}.k{K}" \
                if identity and g.options.reuse_schedule else None
            if src is None and stored is None:
                new_nodes.append(Node(f"{n.name}.im2col", "im2col", n.phase, n.inputs,
                                      out_elements=P * K * groups, source=n.source,
                                      notes=["host lays out the GEMM input"],
                                      attrs={"identity": identity, "gemm": n.name}))
            ni = len(new_nodes)
            new_nodes.append(n)
            # grouped convolution: one shift per layer (the weight gradient stays int32)
            shared_shift = packable(n) and not wgrad
            node_ops: list[tuple[GemmOp, np.ndarray]] = []
            for gi in range(groups):
                name = n.name if n.gemm[3] == 1 else f"{n.name}/g{gi}" if gp == 1 else \
                    f"{n.name}/g{gi * gp}-{gi * gp + gp - 1}"
                w = w_ref = n.w[gi] if n.w is not None else None
                kvec, structure = n.attrs.get("_kvec"), n.structure
                if passes > 1:
                    w = None if w is None else wformat.split_passes(w, win, passes, cfg.n, kp)
                    kvec = None if kvec is None else wformat.split_passes(
                        np.asarray(kvec, bool)[:, None], win, passes, cfg.n, kp)[:, 0]
                    structure = None if structure is None else wformat.split_passes(
                        np.asarray(structure, bool), win, passes, cfg.n, kp)
                xname = x_shared or f"{name}.x"
                op = GemmOp(name, ni, gi * gp, P, k_op, Q,
                            x=src.y if src else stored.y if stored else xname,
                            y=f"{name}.y", w=w, kvec=kvec, structure=structure,
                            passes=passes, k_act=K if passes > 1 else 0,
                            nnz=int(np.count_nonzero(w)) if w is not None else n.nnz // groups,
                            relu=int(n.relu), requant=int(not wgrad),
                            x_chained=src is not None or stored is not None,
                            x_shared=x_shared is not None,
                            mode=mode, win=win, mode_notes=list(notes), phase=n.phase,
                            cmp=n.attrs.get("_cmp") if mode == "load-sparse" else None,
                            pack=gp, image=geom)
                if g.with_data:
                    if src is not None:
                        x = results[src.y]
                    elif stored is not None:   # the producer's output, as the image
                        x = geom.im2col(results[stored.y])
                    elif op.x in g.data:
                        x = g.data[op.x]
                    elif geom is not None:   # an image, and the im2col the core reads
                        img = n.layer.host_image() if hasattr(n.layer, "host_image") else \
                            rng.integers(-128, 128, size=(geom.B, geom.H, geom.W, geom.C),
                                         dtype=np.int8)
                        x = geom.im2col(img)
                        g.data[op.x] = x
                        g.data[image_tensor(op.x)] = geom.padded(img)
                    else:
                        if getattr(n.layer, "host_input", None) is None:
                            x = rng.integers(-128, 128, size=(P, K)).astype(np.int8)
                        elif gp > 1:
                            x = pack_inputs([_host_x(n, j) for j in range(gi * gp, gi * gp + gp)],
                                            *n.attrs["_pack"])
                        else:
                            x = _host_x(n, gi)
                        g.data[op.x] = x
                    y32 = matmul_exact(x, w_ref).astype(np.uint32) \
                        .view(np.int32)
                    node_ops.append((op, y32))
                elif op.requant:
                    op.shift = nominal_shift(max(1, op.nnz // max(1, Q)))
                ops.append(op)
                if groups == 1:
                    outputs[n.name] = op
            if node_ops:
                shared = choose_shift(np.concatenate([y for _, y in node_ops], axis=1),
                                      bool(n.relu)) if shared_shift else None
                for op, y32 in node_ops:
                    if op.requant:
                        op.shift = shared if shared is not None else \
                            choose_shift(y32, bool(op.relu))
                        results[op.y] = requant(y32, op.shift, bool(op.relu))
                    else:
                        results[op.y] = y32
        g.nodes = new_nodes
        g.ops = ops
        g.meta["expected_outputs"] = sorted(results) if g.with_data else []
        g.results = results if g.with_data else {}
        return g, True
