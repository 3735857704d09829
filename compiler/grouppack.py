"""Group packing: several groups of a grouped (e.g. depthwise) convolution in one GEMM.

A grouped convolution is ``groups`` independent GEMMs ``Y_g[P, Qg] = X_g[P, Kg] @ W_g[Kg,
Qg]``. Run one by one, a depthwise layer (``Kg = 9``, ``Qg = 1``) uses one column of the
array and ``9`` of its rows: every output row costs a full tile pass for one useful column,
and every output element is stored as a whole column block. :class:`GroupPackPass` puts
``gp`` groups side by side in one GEMM whose weight is block-diagonal::

    Y[P, gp*Qg] = X[P, gp*Kg] @ W[gp*Kg, gp*Qg],   W[rows_j, j*Qg:(j+1)*Qg] = W_j

with ``gp`` the largest divisor of ``groups`` such that ``gp * Qg <= cols`` (one column
block). The packed ``K`` axis is ordered ``(tap, group, channel)``: group ``j``'s row
``t * cg + c`` (tap ``t``, input channel ``c`` of ``cg`` per group, the im2col order
``(dy, dx, c)``) sits at ``t * gp * cg + j * cg + c`` (:func:`group_rows`). The host lays
out ``X`` in that order: it is simply the im2col of the pack's ``gp * cg`` input channels.

Why the order matters: in a depthwise pack every aligned window of the packed ``K`` holds
one channel per group of one tap, so each column has at most one non-zero per window, a
``1:m`` pattern that the sparse array runs at ``m/n`` rows per PE row. A 3x3 depthwise
pack of 16 channels (``K = 144``) needs 9 dense tiles, 5 sparse tiles on an ``n2m4``
array, 3 on ``n2m8`` and 1 on ``n1m16``, where the groups one by one needed 16 tiles.

When a sparse pattern's windows of ``m`` rows would straddle two groups (``cg > 1`` and
not a multiple of ``m``), each group's run of ``cg`` rows is padded with zero rows to a
multiple of ``m`` (:func:`pack_run`), so a group's pattern stays in its own windows.
Without padding, packing never adds weight tiles (``ceil(gp*Kg/kp) <= gp*ceil(Kg/kp)``);
a padded pack is only made when it has no more tiles than its groups (else the unpadded
one, else none). Packing moves fewer bytes (one output column block instead of ``gp``,
no per-group padding of ``K``); the mode chooser then sees the packed weights like any
other.

Where a group alone has more columns than a pack allows (a depthwise backward-data GEMM:
``Kg = 1``, ``Qg = 9``), the groups go side by side along ``K`` instead: the largest
``gp`` with ``gp * Kg <= rows``, so the pack's ``K`` is one tile and every column tile
meets only its own groups' rows (9 tiles for 16 depthwise groups instead of 16).

The weight-gradient GEMM of a grouped convolution (``dW_g = X_g^T dY_g``, stationary
``dY_g[P, Qg]``) packs like a forward GEMM with ``K`` ordered (position, group): a
depthwise pack's ``dY`` has one non-zero per window of ``gp`` positions and runs in sparse
mode, ``m/n`` times fewer passes than group by group (it still computes every MAC of the
dense weight gradient; the zeros skipped are the block-diagonal's).

Packing is semantic-free: requantisation of a grouped convolution uses one shift per layer
(:mod:`sparsa.compiler.reference` does the same), so the outputs do not depend on ``gp``;
:func:`sparsa.compiler.gemms.read_output` reads one group's columns by the group's own
name (``<layer>/g<i>.y``) from the packed output ``<layer>/g<lo>-<hi>.y``.
``CompileOptions(pack_groups=False)`` turns packing off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import CGraph, Node

__all__ = ["GroupPackPass", "pack_size", "pack_run", "group_rows", "pack_weights",
           "pack_inputs", "group_channels", "packable"]


def group_channels(n: Node) -> int:
    """Input channels per group ``cg`` (the innermost run of the im2col ``K`` order
    ``(tap, channel)``) of a grouped convolution node; ``Kg`` (one run) when the layer does
    not say. A weight-gradient GEMM's ``K`` is the output positions ``P`` of the forward
    convolution, one per "tap": ``cg = 1``, so a pack interleaves the groups' positions."""
    K = n.gemm[1]
    if n.phase == "wgrad":
        return 1
    cg = 0
    ws = getattr(n.layer, "weight", None)
    if isinstance(ws, tuple) and len(ws) == 4:      # conv weight [Cout, Cin/g, KH, KW]
        cg = int(ws[1])
    elif "cin" in n.attrs:
        cg = int(n.attrs["cin"]) // max(1, int(n.attrs.get("groups", n.gemm[3])))
    return cg if cg > 0 and K % cg == 0 else K


def packable(n: Node) -> bool:
    """Whether ``n`` is a GEMM of a convolution with more than one group: forward (or
    inference) and backward-data GEMMs with stationary weights, the weight-gradient GEMM
    with stationary ``dY``."""
    return n.is_gemm and n.kind.lower() in ("conv", "conv2d") and n.gemm[3] > 1 and \
        ((n.stationary == "weight" and n.phase in ("inf", "fwd", "bwd_data"))
         or n.phase == "wgrad")


def pack_size(groups: int, q: int, cols: int) -> int:
    """Groups per packed GEMM: the largest divisor of ``groups`` with ``gp * q <= cols``
    (``1``: no packing)."""
    best = 1
    for gp in range(1, min(groups, cols // max(1, q)) + 1):
        if groups % gp == 0:
            best = gp
    return best


def pack_run(cg: int, m: int, sparse: bool) -> int:
    """Rows one group takes per tap in a pack: ``cg``, rounded up to a multiple of the
    array's window ``m`` when a sparse pattern's windows would otherwise straddle two
    groups (``cg > 1`` and not a multiple of ``m``); a depthwise group (``cg = 1``) never
    needs it."""
    if sparse and cg > 1 and cg % m:
        return -(-cg // m) * m
    return cg


def group_rows(k: int, cg: int, gp: int, j: int, run: int = 0) -> np.ndarray:
    """Rows of the packed ``K`` axis holding group ``j``'s rows ``0..k-1`` (``cg`` channels
    per tap, ``gp`` groups per pack, ``run >= cg`` rows per group and tap; default
    ``cg``)."""
    run = run or cg
    r = np.arange(k)
    return (r // cg) * (gp * run) + j * run + r % cg


def pack_weights(w: np.ndarray, cg: int, run: int = 0) -> np.ndarray:
    """Block-diagonal packed weight ``[taps*gp*run, gp*Qg]`` of ``w[gp, Kg, Qg]`` (any
    dtype; padding rows are zero)."""
    gp, k, q = w.shape
    run = run or cg
    out = np.zeros((k // cg * gp * run, gp * q), w.dtype)
    for j in range(gp):
        out[group_rows(k, cg, gp, j, run), j * q:(j + 1) * q] = w[j]
    return out


def pack_inputs(xs: list[np.ndarray], cg: int, run: int = 0) -> np.ndarray:
    """Packed GEMM input ``[P, taps*gp*run]`` of the groups' inputs ``xs[j][P, Kg]``
    (padding columns are zero)."""
    gp = len(xs)
    P, k = xs[0].shape
    run = run or cg
    out = np.zeros((P, k // cg * gp * run), xs[0].dtype)
    for j, x in enumerate(xs):
        out[:, group_rows(k, cg, gp, j, run)] = x
    return out


class GroupPackPass:
    """Pack the groups of grouped convolutions (see the module docstring): sets
    ``Node.pack`` and replaces the node's stationary operand (``w``: ``[groups/gp, gp*Kg,
    gp*Qg]``; without data the structure of one pack) by the packed one."""

    name = "pack"

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        if not g.options.pack_groups:
            return g, False
        changed = False
        for n in g.nodes:
            if not packable(n):
                continue
            P, K, Q, groups = n.gemm
            sparse = n.spec is not None and n.spec.kind != "dense"
            gp = pack_size(groups, Q, g.config.cols)
            cg = group_channels(n)
            along = "K ordered tap, group, channel"
            if gp == 1:
                # too many columns per group: side by side along K instead, when the
                # pack's K fits one tile (e.g. a depthwise backward-data GEMM, K = 1)
                cg = K
                gp = pack_size(groups, pack_run(cg, g.config.m, sparse), g.config.rows)
                along = "side by side in one K tile"
            if gp == 1:
                continue
            run = _cheapest_run(g.config, K, Q, cg, gp, sparse)
            if run == 0:
                continue
            n.pack, n.pack_k = gp, K // cg * gp * run
            n.attrs["_pack"] = (cg, run)
            if n.w is not None:
                n.w = np.stack([pack_weights(n.w[i:i + gp], cg, run)
                                for i in range(0, groups, gp)])
            else:
                n.structure = pack_weights(np.stack([_group_structure(n, K, Q, j)
                                                     for j in range(gp)]), cg, run)
                n.attrs["_kvec"] = None
            pad = f", {run - cg} zero rows after every {cg}" if run > cg else ""
            n.notes.append(f"{gp} groups per GEMM (block-diagonal, {along}{pad}): "
                           f"{groups // gp} GEMMs of K={n.pack_k} Q={gp * Q} instead of "
                           f"{groups} of K={K} Q={Q}")
            changed = True
        return g, changed


def _cheapest_run(cfg: Any, K: int, Q: int, cg: int, gp: int, sparse: bool) -> int:
    """Rows per group and tap of a pack that has no more weight tiles than its ``gp``
    groups one by one (``0``: none, do not pack). A sparse pattern's groups run in sparse
    mode, so the padded run (:func:`pack_run`, which keeps the pattern in its windows) is
    counted in sparse tiles; without padding the pattern may straddle windows, so it is
    counted in dense tiles (its worst case)."""
    from .wformat import tile_k
    kp_group = tile_k(cfg, "sparse") if sparse else cfg.rows

    def tiles(k: int, q: int, kp: int) -> int:
        return -(-k // kp) * -(-q // cfg.cols)

    alone = gp * tiles(K, Q, kp_group)
    for run, kp in ((pack_run(cg, cfg.m, sparse), kp_group), (cg, cfg.rows)):
        if tiles(K // cg * gp * run, gp * Q, kp) <= alone:
            return run
    return 0


def _group_structure(n: Node, K: int, Q: int, j: int) -> Any:
    """Non-zero structure ``[K, Q]`` of group ``j`` of a pack without data: the node's
    structure, or its N:M rows kept (``_kvec``: the first ``n`` of every window) rotated
    by ``j`` within every window — the groups of real weights keep different rows, so a
    pack has no all-zero rows that only the data-free stand-in would have."""
    if n.structure is not None:
        return np.asarray(n.structure, bool)
    kv = n.attrs.get("_kvec")
    if kv is None:
        return np.ones((K, Q), bool)
    kv = np.asarray(kv, bool)
    m = n.spec.m if n.spec is not None and n.spec.m else K
    col = np.empty(K, bool)
    for w0 in range(0, K, m):
        win = kv[w0:w0 + m]
        col[w0:w0 + m] = np.roll(win, j % len(win))
    return np.broadcast_to(col[:, None], (K, Q))
