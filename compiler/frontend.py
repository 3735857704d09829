"""Front-end passes: import a workload, expand training, apply sparsity.

* :class:`ImportPass` turns a :class:`sparsa.workloads.Workload` into graph nodes: GEMM
  layers (``Layer.is_gemm``; conv by im2col, grouped/depthwise as ``groups`` per-group
  GEMMs, attention matmuls with both operands activations) and host layers (everything
  else: pooling, softmax, norms, adds...), which the core does not run.
* :class:`TrainingExpandPass` (``--train``) replaces the graph by
  :func:`sparsa.workloads.training.expand_training`'s: every weight layer becomes a forward,
  a backward-data (``dX = dY W^T``) and a weight-gradient (``dW = X^T dY``) GEMM.
* :class:`SparsifyPass` gives every GEMM's stationary operand its masked int8 values (with
  data: the layer's weights, or seeded synthetic weights, masked by
  :func:`sparsa.workloads.sparsity.make_masks`) or, without data, an analytic structure:
  N:M keeps the first ``n`` rows of every window (exactly ``n`` per full window, as masks
  of dense weights do), block patterns keep ``round(density * blocks)`` blocks chosen by
  seeded scores, Bi-Mask backward masks are counted at their nominal ``n`` per window.
  Forward GEMMs use the spec's forward mask, backward-data GEMMs ``W^T`` with the backward
  mask (N:M along the reduction axis; the Bi-Mask permutation is applied to ``W^T``'s rows
  and to the host layout of ``dY``), weight-gradient GEMMs are dense. Attention matmuls are
  sparse only when the user's spec names them.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import numpy as np

from .errors import CompileError
from .ir import CGraph, Node

__all__ = ["ImportPass", "TrainingExpandPass", "SparsifyPass", "nodata_structure"]


def _gemm_dims(layer: Any) -> tuple[tuple[int, int, int, int], str]:
    d = layer.gemm()
    return (int(d.P), int(d.K), int(d.Q), int(getattr(d, "groups", 1))), \
        str(getattr(d, "stationary", "weight"))


def _nodes_from_layers(layers: list[Any]) -> list[Node]:
    nodes = []
    for ly in layers:
        attrs = dict(getattr(ly, "attrs", {}) or {})
        phase = str(attrs.get("phase", "inf"))
        if ly.is_gemm:
            dims, stat = _gemm_dims(ly)
            nodes.append(Node(ly.name, ly.kind, phase, tuple(ly.inputs), dims, stat,
                              str(attrs.get("source", ly.name)),
                              int(getattr(ly, "out_elements", 0)), attrs, ly))
        else:
            nodes.append(Node(ly.name, ly.kind, phase, tuple(ly.inputs), None,
                              source=str(attrs.get("source", ly.name)),
                              out_elements=int(getattr(ly, "out_elements", 0)),
                              attrs=attrs, layer=ly))
    return nodes


class ImportPass:
    """Workload layers -> graph nodes."""

    name = "import"

    def __init__(self, workload: Any) -> None:
        self.workload = workload

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        g.name = str(getattr(self.workload, "name", g.name))
        g.nodes = _nodes_from_layers(list(self.workload.layers()))
        if not any(n.is_gemm for n in g.nodes):
            raise CompileError(f"workload {g.name!r} has no GEMM layers to compile")
        return g, True


class TrainingExpandPass:
    """Forward, backward-data and weight-gradient GEMMs for every weight layer."""

    name = "train"

    def __init__(self, workload: Any, enabled: bool) -> None:
        self.workload = workload
        self.enabled = enabled

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        if not self.enabled:
            return g, False
        if hasattr(self.workload, "expand_training"):
            tw = self.workload.expand_training()
        else:
            from sparsa.workloads.training import expand_training
            tw = expand_training(self.workload)
        g.nodes = _nodes_from_layers(list(tw.layers()))
        return g, True


# ---- sparsity -----------------------------------------------------------------------------
def _nm_kvec(k: int, n: int, m: int) -> np.ndarray:
    """Rows kept per column by an ``n:m`` pattern along K (the first ``n`` of each window)."""
    return (np.arange(k) % m) < n


def nodata_structure(K: int, Q: int, spec: Any, rng: np.random.Generator
                     ) -> tuple[np.ndarray | None, np.ndarray | None, int, list[str]]:
    """Data-free structure of ``W[K, Q]`` under a (non-bidirectional) spec:
    ``(kvec, structure, nnz, notes)`` (see the module docstring)."""
    notes: list[str] = []
    kvec = structure = None
    nm = (spec.n, spec.m) if spec.n is not None else None
    if spec.block is not None:
        bk, bq = spec.block
        if not spec.block_fits(K, Q):
            notes.append(f"block {bk}x{bq} larger than W[{K},{Q}]: block pattern skipped")
        else:
            nbk, nbq = -(-K // bk), -(-Q // bq)
            total = nbk * nbq
            keep_n = max(1, min(total, math.floor(spec.block_density * total + 0.5)))
            keep = np.zeros(total, bool)
            keep[np.argsort(rng.random(total), kind="stable")[:keep_n]] = True
            structure = np.repeat(np.repeat(keep.reshape(nbk, nbq), bk, 0), bq, 1)[:K, :Q]
    if nm is not None:
        if spec.axis == "k":
            kvec = _nm_kvec(K, *nm)
        else:
            qv = _nm_kvec(Q, *nm)
            structure = (structure if structure is not None else np.ones((K, Q), bool)) \
                & qv[None, :]
    if structure is not None and kvec is not None:
        structure = structure & kvec[:, None]
        kvec = None
    if structure is not None:
        nnz = int(structure.sum())
    elif kvec is not None:
        nnz = int(kvec.sum()) * Q
    else:
        nnz = K * Q
    return kvec, structure, nnz, notes


def _phase_spec(spec: Any, phase: str, stationary: str, user_names_it: bool) -> Any:
    from sparsa.workloads.sparsity import DENSE
    if stationary != "weight" and not user_names_it:
        return DENSE
    if phase == "wgrad":
        return DENSE
    if phase == "bwd_data":
        b = spec.backward
        if b.n is not None and b.axis == "q":
            # along Q of W = along the reduction axis (rows) of W^T
            from sparsa.workloads.sparsity import SparsitySpec
            return SparsitySpec(n=b.n, m=b.m, axis="k", block=b.block,
                                block_density=b.block_density)
        return b
    return spec.forward


def _synthetic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.integers(-127, 128, size=shape)
    w[w == 0] = 1
    return w.astype(np.int8)


def _refuse_oversized(g: CGraph) -> None:
    """Refuse a program the scheduler would refuse (``MAX_STEPS``) before masks of its
    size are built (a weight gradient's ``K`` is the batch's pixels): a weight-gradient
    GEMM, dense by construction, takes at least one step per chunk of rows (half the
    activation scratchpad) per K tile at the widest window per column block."""
    from .schedule import MAX_STEPS, steps_error
    cfg = g.config
    half, kp = max(1, cfg.act_entries // 2), cfg.rows * max(cfg.windows) // cfg.n
    steps = sum(n.gemm[3] * -(-n.gemm[0] // half) * -(-n.gemm[1] // kp) * -(-n.gemm[2] //
                cfg.cols) for n in g.nodes
                if n.is_gemm and n.phase == "wgrad")
    if steps > MAX_STEPS:
        raise steps_error(g.name, steps, at_least=True)


class SparsifyPass:
    """Masked stationary operands (with data) or their analytic structure (without)."""

    name = "sparsify"

    def __init__(self, plan: Any) -> None:
        self.plan = plan

    def run(self, g: CGraph) -> tuple[CGraph, bool]:
        from sparsa.workloads.sparsity import BlockFit, SparsityError, make_masks
        _refuse_oversized(g)
        rng = np.random.default_rng(g.seed)
        mask_cache: dict[str, Any] = {}
        explicit = {p for p, _ in self.plan.rules if p != "*"}
        block_fit = BlockFit()
        sources: list[str] = []
        for n in g.nodes:
            if not n.is_gemm:
                continue
            P, K, Q, groups = n.gemm
            src = n.source or n.name
            sources.append(src)
            user_spec = self.plan.spec_for(src)
            named = any(fnmatch.fnmatchcase(src, p) for p in explicit)
            spec = _phase_spec(user_spec, n.phase, n.stationary,
                               named or n.stationary == "weight")
            n.spec = spec
            block_fit.add(spec, K, Q)
            if g.options.sparse_mode == "dense" and spec.kind != "dense":
                n.notes.append("dense mode (option)")
            if not g.with_data:
                kvec, structure, nnz, notes = nodata_structure(K, Q, spec, rng)
                n.attrs["_kvec"], n.structure = kvec, structure
                n.nnz = nnz * groups
                n.notes += notes
                continue
            # with data: the stationary operand's values
            w = None
            if n.layer is not None:
                try:
                    w = n.layer.gemm_weight()
                except (AttributeError, NotImplementedError):
                    w = None
            if w is None:
                w = _synthetic(rng, (groups, K, Q))
            w = np.asarray(w)
            if w.shape != (groups, K, Q):
                w = w.reshape(groups, K, Q)
            w = np.clip(np.round(w), -127, 127).astype(np.int8) if w.dtype.kind == "f" \
                else w.astype(np.int8)
            out = np.empty_like(w)
            perms: list[np.ndarray | None] = [None] * groups
            for gi in range(groups):
                key = f"{src}/{gi}"
                if n.phase == "bwd_data":
                    # masks come from the forward weights W[K_fwd, Q_fwd] = w[gi].T
                    wf = w[gi].T
                    mr = mask_cache.get(key) or self._masks(make_masks, SparsityError, wf,
                                                            user_spec, g.seed, n)
                    mask_cache[key] = mr
                    bwd = mr.bwd_or_dense()
                    wt = np.where(bwd, wf, 0).T
                    if mr.perm is not None:
                        wt = wt[mr.perm]
                        perms[gi] = mr.perm
                    out[gi] = wt
                else:
                    if spec.kind == "dense":
                        out[gi] = w[gi]
                        continue
                    mr = self._masks(make_masks, SparsityError, w[gi], user_spec
                                     if n.phase == "fwd" else spec, g.seed, n)
                    mask_cache[key] = mr
                    out[gi] = np.where(mr.fwd, w[gi], 0)
            n.w = out
            n.nnz = int(np.count_nonzero(out))
            if any(p is not None for p in perms):     # each group's own permutation
                n.perm = np.stack([np.arange(K) if p is None else np.asarray(p)
                                   for p in perms])
        try:
            # a block that fits some layers is skipped (with a note) on the smaller ones
            block_fit.check()
            self.plan.check_matches(sources)
        except SparsityError as e:
            raise CompileError(str(e)) from None
        return g, True

    @staticmethod
    def _masks(make_masks: Any, err: type, w: np.ndarray, spec: Any, seed: int, n: Node) -> Any:
        try:
            return make_masks(w, spec, seed=seed)
        except err as e:
            from sparsa.workloads.sparsity import DENSE
            n.notes.append(f"{spec} not applicable ({e}); dense")
            return make_masks(w, DENSE, seed=seed)
