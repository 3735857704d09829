"""Direct numpy evaluation of small graphs, independent of tiling and of the ISA.

:class:`RefGraph` is a tiny graph of int8 layers (``conv`` NHWC with stride, padding and
groups; ``linear``; attention ``matmul`` per head; ``relu``, ``add``, ``softmax``) that

* evaluates itself directly (convolution as a sum of shifted slices — not im2col —, dense
  masked weights, int32 accumulation, requantisation to int8 with the rule of
  :mod:`sparsa.compiler.quant`, one shift per GEMM — per attention head, per layer for
  a grouped convolution —; a ReLU that follows a GEMM is applied in its requantisation,
  as on the core), and
* speaks the workload layer protocol (``layers()``, ``Layer.gemm()``,
  ``Layer.gemm_weight()``) so :func:`sparsa.compiler.compile_workload` compiles it; its
  ``host_input`` gives the compiler what the host would write for a GEMM input (the im2col
  of the reference activations), so ``executor(program)`` can be compared output by output
  with :meth:`RefGraph.evaluate`.

Host-op semantics (the host computes them in numpy): ``add`` saturates to int8; ``softmax``
over the last axis of ``x / 16`` scaled to ``0..127``.

:meth:`RefGraph.training` builds an MLP training step: forward GEMMs, then per layer (last
first) the backward-data GEMM ``dX = dY (W * bwd)^T`` and the weight-gradient GEMM
``dW = X^T dY`` (int32), with a seeded int8 loss gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .quant import choose_shift, matmul_exact, requant

__all__ = ["RefLayer", "RefGraph", "im2col", "conv_direct", "GemmDims"]


@dataclass(frozen=True)
class GemmDims:
    P: int
    K: int
    Q: int
    groups: int = 1
    stationary: str = "weight"


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int) -> np.ndarray:
    """NHWC ``x`` -> ``[N*OH*OW, kh*kw*C]`` (columns ordered ``(dy, dx, c)``; the general
    form, with dilation and asymmetric pads, is :meth:`~sparsa.compiler.imgload.ConvGeom.
    im2col`). The convolutions here are evaluated directly (:func:`conv_direct`), not by
    this."""
    from .imgload import ConvGeom
    n, h, w, c = x.shape
    return ConvGeom(n, h, w, c, kh, kw, stride, stride, 1, 1, pad, pad, pad, pad).im2col(x)


def conv_direct(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    """Direct grouped convolution, int64: ``x`` NHWC, ``w[kh, kw, cin/groups, cout]``."""
    n, h, wd, c = x.shape
    kh, kw, cg, cout = w.shape
    og = cout // groups
    xp = np.pad(x.astype(np.int64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, oh, ow, cout), np.int64)
    for dy in range(kh):
        for dx in range(kw):
            sl = xp[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride, :]
            for g in range(groups):
                y[..., g * og:(g + 1) * og] += np.einsum(
                    "nhwc,co->nhwo", sl[..., g * cg:(g + 1) * cg],
                    w[dy, dx, :, g * og:(g + 1) * og].astype(np.int64))
    return y


def _fwd_mask(w: np.ndarray, spec: Any, seed: int) -> np.ndarray:
    """Forward mask of ``w`` under ``spec``; a spec that does not apply to a layer this small
    (block larger than the layer) leaves it dense, as the compiler does."""
    from sparsa.workloads.sparsity import SparsityError, make_masks
    try:
        return make_masks(w, spec, seed=seed).fwd
    except SparsityError:
        return np.ones(w.shape, bool)


def _wrap32(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, np.int64).astype(np.uint32).view(np.int32)


@dataclass
class RefLayer:
    """One layer; ``graph`` is set by :class:`RefGraph`."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    graph: Any = None

    @property
    def is_gemm(self) -> bool:
        return self.kind in ("conv", "linear", "matmul", "gemm")

    @property
    def out_elements(self) -> int:
        return int(np.prod(self.graph.shape_of(self.name)))

    def gemm(self) -> GemmDims:
        return self.graph.dims[self.name]

    def gemm_weight(self) -> np.ndarray | None:
        return self.graph.stationary_values(self.name)

    def host_input(self, group: int) -> np.ndarray:
        return self.graph.host_x[self.name][group]

    def host_image(self) -> np.ndarray:
        """A convolution's NHWC input (what the host pads for implicit im2col)."""
        return self.graph.values[self.inputs[0]]

    def conv_geometry(self) -> Any:
        """:class:`sparsa.compiler.imgload.ConvGeom` of a convolution (``None`` for the
        explicit GEMMs of a training-step graph, whose host inputs are given)."""
        from .imgload import ConvGeom
        if "k" not in self.attrs or self.inputs[0] not in self.graph.values:
            return None
        n, h, w, c = self.graph.shape_of(self.inputs[0])
        k, s, p = self.attrs["k"], self.attrs["stride"], self.attrs["pad"]
        return ConvGeom(n, h, w, c, k, k, s, s, 1, 1, p, p, p, p)


class RefGraph:
    """A small graph with a direct numpy evaluation (see the module docstring).

    Parameters
    ----------
    x : numpy.ndarray
        The int8 network input (NHWC for convolutions, ``[P, features]`` otherwise).
    seed : int
        Seed of the weights.
    """

    def __init__(self, name: str, x: np.ndarray, seed: int = 0) -> None:
        self.name = name
        self.x = np.asarray(x, np.int8)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self._layers: list[RefLayer] = []
        self.weights: dict[str, np.ndarray] = {}
        self.dims: dict[str, GemmDims] = {}
        self.values: dict[str, np.ndarray] = {"x": self.x}
        self.host_x: dict[str, list[np.ndarray]] = {}
        self.stat: dict[str, np.ndarray] = {}
        self.gemm_out: dict[str, list[np.ndarray]] = {}   # per group, [P, Q] int8/int32
        self.shifts: dict[str, int] = {}
        self.evaluated = False

    # ---- building --------------------------------------------------------------------
    def _w(self, shape: tuple[int, ...]) -> np.ndarray:
        w = self.rng.integers(-127, 128, size=shape)
        w[w == 0] = 1
        return w.astype(np.int8)

    def add_layer(self, name: str, kind: str, inputs: tuple[str, ...], **attrs: Any) -> str:
        ly = RefLayer(name, kind, tuple(inputs), attrs, self)
        self._layers.append(ly)
        if kind == "conv":
            self.weights[name] = self._w((attrs["k"], attrs["k"],
                                          attrs["cin"] // attrs.get("groups", 1),
                                          attrs["cout"]))
        elif kind == "linear":
            self.weights[name] = self._w((attrs["cin"], attrs["cout"]))
        return name

    def conv(self, name: str, inp: str, cin: int, cout: int, k: int, stride: int = 1,
             pad: int | None = None, groups: int = 1) -> str:
        return self.add_layer(name, "conv", (inp,), cin=cin, cout=cout, k=k, stride=stride,
                              pad=k // 2 if pad is None else pad, groups=groups)

    def linear(self, name: str, inp: str, cin: int, cout: int) -> str:
        return self.add_layer(name, "linear", (inp,), cin=cin, cout=cout)

    def relu(self, name: str, inp: str) -> str:
        return self.add_layer(name, "relu", (inp,))

    def add(self, name: str, a: str, b: str) -> str:
        return self.add_layer(name, "add", (a, b))

    def softmax(self, name: str, inp: str) -> str:
        return self.add_layer(name, "softmax", (inp,))

    def matmul(self, name: str, a: str, b: str, heads: int, transpose_b: bool) -> str:
        """Per-head ``a_h @ b_h^T`` (``transpose_b``) or ``a_h @ b_h``; ``a``, ``b`` are
        ``[seq, heads*d]`` (or ``[heads, seq, seq]`` for ``a`` when not transposing)."""
        return self.add_layer(name, "matmul", (a, b), heads=heads, transpose_b=transpose_b)

    def layers(self) -> list[RefLayer]:
        return list(self._layers)

    def shape_of(self, name: str) -> tuple[int, ...]:
        return self.values[name].shape

    # ---- evaluation ------------------------------------------------------------------
    def stationary_values(self, name: str) -> np.ndarray | None:
        return self.stat.get(name)

    def evaluate(self, sparsity: str = "dense") -> dict[str, np.ndarray]:
        """Evaluate every layer with weights masked by ``sparsity`` (a plan); returns the
        values by layer name. Fills the host inputs and stationary operands used when the
        graph is compiled."""
        from sparsa.workloads.sparsity import SparsityPlan
        plan = SparsityPlan.parse(sparsity)
        consumers: dict[str, list[str]] = {}
        for ly in self._layers:
            for i in ly.inputs:
                consumers.setdefault(i, []).append(ly.name)
        by = {ly.name: ly for ly in self._layers}

        def relu_follows(name: str) -> bool:
            c = consumers.get(name, [])
            return len(c) == 1 and by[c[0]].kind == "relu"

        v = self.values
        for ly in self._layers:
            a = ly.attrs
            if ly.kind == "conv":
                x = v[ly.inputs[0]]
                g = a["groups"]
                w = self.weights[ly.name]
                kk, cg, cout = a["k"], a["cin"] // g, a["cout"]
                og = cout // g
                wm = np.empty_like(w)
                for gi in range(g):   # mask each group's W[K, Q] (K ordered dy, dx, c)
                    wg = w[..., gi * og:(gi + 1) * og].reshape(kk * kk * cg, og)
                    fm = _fwd_mask(wg, plan.spec_for(ly.name).forward, self.seed)
                    wm[..., gi * og:(gi + 1) * og] = np.where(fm, wg, 0).reshape(
                        kk, kk, cg, og)
                y = _wrap32(conv_direct(x, wm, a["stride"], a["pad"], g))
                n, oh, ow, _ = y.shape
                P = n * oh * ow
                self.dims[ly.name] = GemmDims(P, kk * kk * cg, og, g)
                self.stat[ly.name] = np.stack([w[..., gi * og:(gi + 1) * og].reshape(
                    kk * kk * cg, og) for gi in range(g)])
                cols = im2col(x, kk, kk, a["stride"], a["pad"])
                self.host_x[ly.name] = [np.ascontiguousarray(cols.reshape(
                    P, kk * kk, a["cin"])[:, :, gi * cg:(gi + 1) * cg].reshape(P, -1))
                    for gi in range(g)]
                ys = y.reshape(P, cout)
                self._requant(ly.name, [ys[:, gi * og:(gi + 1) * og] for gi in range(g)],
                              relu_follows(ly.name), shared=g > 1)
                v[ly.name] = np.concatenate(self.gemm_out[ly.name], axis=1).reshape(
                    n, oh, ow, cout)
            elif ly.kind == "linear":
                x = v[ly.inputs[0]]
                w = self.weights[ly.name]
                wm = np.where(_fwd_mask(w, plan.spec_for(ly.name).forward, self.seed), w,
                              0).astype(np.int8)
                y = _wrap32(np.einsum("pk,kq->pq", x.astype(np.int64), wm.astype(np.int64)))
                self.dims[ly.name] = GemmDims(x.shape[0], w.shape[0], w.shape[1], 1)
                self.stat[ly.name] = w[None]
                self.host_x[ly.name] = [x]
                self._requant(ly.name, [y], relu_follows(ly.name))
                v[ly.name] = self.gemm_out[ly.name][0]
            elif ly.kind == "matmul":
                h = a["heads"]
                A, B = v[ly.inputs[0]], v[ly.inputs[1]]
                if a["transpose_b"]:
                    seq, dm = A.shape
                    d = dm // h
                    xs = [A[:, i * d:(i + 1) * d] for i in range(h)]
                    bs = [B[:, i * d:(i + 1) * d].T for i in range(h)]
                else:
                    seq, dm = B.shape
                    d = dm // h
                    xs = [A[i] for i in range(h)]
                    bs = [B[:, i * d:(i + 1) * d] for i in range(h)]
                ys = [_wrap32(np.einsum("pk,kq->pq", xi.astype(np.int64), bi.astype(np.int64)))
                      for xi, bi in zip(xs, bs, strict=True)]
                self.dims[ly.name] = GemmDims(xs[0].shape[0], xs[0].shape[1], bs[0].shape[1],
                                              h, "act_b")
                self.stat[ly.name] = np.stack(bs).astype(np.int8)
                self.host_x[ly.name] = [np.ascontiguousarray(xi) for xi in xs]
                self._requant(ly.name, ys, relu_follows(ly.name))
                out = self.gemm_out[ly.name]
                v[ly.name] = np.stack(out) if a["transpose_b"] else np.concatenate(out, 1)
            elif ly.kind == "relu":
                v[ly.name] = np.maximum(v[ly.inputs[0]], 0).astype(np.int8)
            elif ly.kind == "add":
                s = v[ly.inputs[0]].astype(np.int64) + v[ly.inputs[1]]
                v[ly.name] = np.clip(s, -128, 127).astype(np.int8)
            elif ly.kind == "softmax":
                x = v[ly.inputs[0]].astype(np.float64) / 16
                e = np.exp(x - x.max(axis=-1, keepdims=True))
                v[ly.name] = np.round(127 * e / e.sum(axis=-1, keepdims=True)).astype(np.int8)
            else:
                raise ValueError(f"reference: unknown layer kind {ly.kind!r}")
        self.evaluated = True
        return v

    def _requant(self, name: str, ys: list[np.ndarray], relu: bool,
                 shared: bool = False) -> None:
        # one shift per GEMM group (attention heads), as the compiler picks per op; one per
        # layer for a grouped convolution (``shared``), whose groups the compiler packs
        outs, shifts = [], []
        one = choose_shift(np.concatenate(ys, axis=1), relu) if shared else None
        for y in ys:
            sg = one if one is not None else choose_shift(y, relu)
            outs.append(requant(y, sg, relu))
            shifts.append(sg)
        self.gemm_out[name] = outs
        self.shifts[name] = shifts

    # ---- training --------------------------------------------------------------------
    @classmethod
    def mlp_training(cls, x: np.ndarray, widths: list[int], sparsity: str, seed: int = 0
                     ) -> TrainGraph:
        """An MLP (linear + ReLU, last layer linear) training step; see :class:`TrainGraph`."""
        return TrainGraph(x, widths, sparsity, seed)


class TrainStepGraph:
    """Bookkeeping shared by the training-step reference graphs: explicit GEMM layers with
    their stationary operands, host inputs and expected outputs; already expanded."""

    _layers: list[RefLayer]
    dims: dict[str, GemmDims]
    stat: dict[str, np.ndarray]
    host_x: dict[str, list[np.ndarray]]
    gemm_out: dict[str, list[np.ndarray]]
    values: dict[str, np.ndarray]

    def _init_step(self, name: str, seed: int) -> None:
        """The empty tables every training-step graph fills."""
        self.name = name
        self.seed = seed
        self._layers = []
        self.dims = {}
        self.stat = {}
        self.host_x = {}
        self.gemm_out = {}
        self.values = {}
        self.masks: dict[str, Any] = {}

    def _kind(self, phase: str) -> str:
        raise NotImplementedError

    def _add(self, name: str, phase: str, source: str, dims: GemmDims, stat: np.ndarray,
             x: np.ndarray, out: np.ndarray, inputs: tuple[str, ...] = ("host",)) -> None:
        ly = RefLayer(name, self._kind(phase), inputs, {"phase": phase, "source": source},
                      self)
        self._layers.append(ly)
        self.dims[name] = dims
        self.stat[name] = stat
        self.host_x[name] = [x]
        self.gemm_out[name] = [out]

    def layers(self) -> list[RefLayer]:
        return list(self._layers)

    def stationary_values(self, name: str) -> np.ndarray:
        return self.stat[name]

    def shape_of(self, name: str) -> tuple[int, ...]:
        if name in self.values:
            return self.values[name].shape
        return self.gemm_out[name][0].shape

    def expand_training(self) -> TrainStepGraph:
        return self


class TrainGraph(TrainStepGraph):
    """An MLP training step as explicit GEMM layers (``phase`` ``fwd``/``bwd_data``/
    ``wgrad``), evaluated directly.

    Forward: ``h_{i+1} = relu(requant(h_i W_i))`` (no ReLU after the last layer). Backward,
    last layer first, with a seeded int8 loss gradient ``g``: ``dW_i = h_i^T g`` (int32)
    and ``g <- requant(g (W_i * bwd_i)^T)`` masked by ReLU'(``h_i``) (the host applies the
    ReLU derivative between GEMMs).
    """

    def __init__(self, x: np.ndarray, widths: list[int], sparsity: str, seed: int = 0) -> None:
        from sparsa.workloads.sparsity import SparsityPlan, make_masks
        self._init_step("mlp-train", seed)
        rng = np.random.default_rng(seed)
        plan = SparsityPlan.parse(sparsity)
        h = [np.asarray(x, np.int8)]
        ws = []
        for i, (k, q) in enumerate(zip(widths, widths[1:], strict=False)):
            w = rng.integers(-127, 128, size=(k, q))
            w[w == 0] = 1
            w = w.astype(np.int8)
            ws.append(w)
            name = f"fc{i}"
            mr = make_masks(w, plan.spec_for(name), seed=seed)
            self.masks[name] = mr
            wf = np.where(mr.fwd, w, 0)
            y = _wrap32(matmul_exact(h[-1], wf))
            relu = i < len(widths) - 2
            out = requant(y, choose_shift(y, relu), relu)
            prev = self._layers[-1].name if self._layers else "x"
            self._add(f"{name}.fwd", "fwd", name, GemmDims(h[-1].shape[0], k, q), w[None],
                      h[-1], out, (prev,))
            if relu:
                rl = RefLayer(f"{name}.relu", "relu", (f"{name}.fwd",), {"phase": "fwd"}, self)
                self._layers.append(rl)
                self.values[rl.name] = out
            h.append(out)
        g = rng.integers(-128, 128, size=h[-1].shape).astype(np.int8)
        for i in reversed(range(len(ws))):
            name = f"fc{i}"
            w, mr = ws[i], self.masks[name]
            P = g.shape[0]
            k, q = w.shape
            dw = _wrap32(matmul_exact(h[i].T, g))
            self._add(f"{name}.wgrad", "wgrad", name, GemmDims(k, P, q, 1, "act_b"),
                      g[None], np.ascontiguousarray(h[i].T), dw)
            if i > 0:
                wb = np.where(mr.bwd_or_dense(), w, 0)
                y = _wrap32(matmul_exact(g, wb.T))
                dx = requant(y, choose_shift(y, False), False)
                self._add(f"{name}.bwd_data", "bwd_data", name, GemmDims(P, q, k),
                          w.T[None].copy(), g, dx)
                g = np.where(h[i] > 0, dx, 0).astype(np.int8)   # host: ReLU derivative

    def _kind(self, phase: str) -> str:
        return "linear"
