"""The workload graph IR: typed layers in a networkx DiGraph, with shapes and GEMM dims.

A :class:`Workload` is a validated DAG of :class:`Layer` objects (build it with
:class:`GraphBuilder`, :mod:`sparsa.workloads.zoo` or an importer). Graph inputs are nodes
of kind ``"input"``; every other node is a layer whose ``inputs`` name its producers (layers
or graph inputs). Shapes are inferred by :mod:`sparsa.workloads.ops` when a layer is added
and checked again by :meth:`Workload.validate`.

Weights (``Layer.gemm_weight``) are int8 ``W[K, Q]`` per GEMM group:

* an initializer (ONNX) is quantised symmetric per tensor: ``round(w / (max|w| / 127))``;
  convolution weights ``[Cout, Cin/g, KH, KW]`` become ``W_g[K, Q]`` with ``K`` ordered
  ``(kh, kw, cin)`` (the NHWC im2col order of :mod:`sparsa.compiler.reference`);
* otherwise seeded synthetic weights: ``clip(round(32 * N(0, 1)), -127, 127)`` from a
  generator seeded by ``crc32(layer name)`` - the same layer name always gets the same
  values;
* attention matmuls (both operands activations) return seeded synthetic int8 activations
  of the stationary operand's shape, drawn the same way.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from .errors import WorkloadError
from .ops import GEMM_KINDS, gemm_dims, infer_shape, weight_shape

__all__ = ["GemmDims", "Layer", "Workload", "GraphBuilder", "quantise_int8",
           "synthetic_int8"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class GemmDims:
    """GEMM dimensions of a layer: ``Y[P, Q] = X[P, K] @ W[K, Q]``, ``groups`` independent
    GEMMs; ``stationary`` names the operand held in the array: ``"weight"`` (trained weights)
    or ``"act"`` (an activation, e.g. attention ``K^T``/``V``, or ``dY`` of a weight
    gradient)."""

    P: int
    K: int
    Q: int
    groups: int = 1
    stationary: str = "weight"

    @property
    def macs(self) -> int:
        """``groups * P * K * Q``."""
        return self.groups * self.P * self.K * self.Q


def synthetic_int8(key: str, shape: Sequence[int]) -> np.ndarray:
    """Seeded synthetic int8 values (``round(32 * N(0, 1))`` clipped to ``+-127``) for
    ``key``: deterministic across runs and platforms."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return np.clip(np.round(rng.standard_normal(tuple(shape)) * 32.0), -127, 127) \
        .astype(np.int8)


def quantise_int8(w: np.ndarray) -> np.ndarray:
    """Symmetric per-tensor int8 quantisation: ``round(w * 127 / max|w|)``."""
    w = np.asarray(w, np.float64)
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    if amax == 0.0 or not np.isfinite(amax):
        return np.zeros(w.shape, np.int8)
    return np.clip(np.round(w * (127.0 / amax)), -127, 127).astype(np.int8)


@dataclass(eq=False)
class Layer:
    """One typed op of a workload.

    Attributes
    ----------
    name : str
    kind : str
        An op kind of :data:`sparsa.workloads.ops.OPS` (``conv``, ``linear``, ``matmul``,
        ``relu``, ``add``, ...), or ``<kind>_bwd`` in a training graph.
    inputs : tuple of str
        Producer layer (or graph input) names, in operand order.
    in_shapes : tuple of shapes
    out_shape : tuple of int
    attrs : dict
        Op attributes; training graphs add ``phase`` (``fwd``/``bwd_data``/``wgrad``/
        ``bwd``) and ``source`` (the forward layer's name).
    weight : tuple of int or None
        Shape of the trained weight (see :func:`sparsa.workloads.ops.weight_shape`).
    data : numpy.ndarray or None
        The weight's values when an importer had them (float, ``weight``'s layout).
    dims : GemmDims or None
        GEMM dims; computed from the op for forward layers, given for training GEMMs.
    weight_fn : callable or None
        Produces the stationary operand ``[groups, K, Q]`` (training GEMMs).
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    attrs: dict[str, Any] = field(default_factory=dict)
    weight: Shape | None = None
    data: np.ndarray | None = field(default=None, repr=False)
    dims: GemmDims | None = field(default=None, repr=False)
    weight_fn: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.dims is None and self.kind in GEMM_KINDS:
            self.dims = GemmDims(*gemm_dims(self.kind, self.in_shapes, self.attrs,
                                            self.out_shape))

    @property
    def is_gemm(self) -> bool:
        """Whether the layer runs as a GEMM on the array."""
        return self.dims is not None

    @property
    def out_elements(self) -> int:
        """Number of output elements."""
        return math.prod(self.out_shape)

    @property
    def macs(self) -> int:
        """GEMM multiply-accumulates (``groups*P*K*Q``); 0 for non-GEMM layers."""
        return self.dims.macs if self.dims is not None else 0

    @property
    def params(self) -> int:
        """Trained parameters (weight and bias elements)."""
        if self.weight is None or self.attrs.get("tied_to"):
            return 0
        bias = int(self.attrs.get("out_features", self.attrs.get("cout", 0))) \
            if self.attrs.get("bias") else 0
        return math.prod(self.weight) + bias

    def gemm(self) -> GemmDims:
        """The layer's :class:`GemmDims`; raises for non-GEMM layers."""
        if self.dims is None:
            raise WorkloadError(f"layer {self.name!r} ({self.kind}) is not a GEMM")
        return self.dims

    def gemm_weight(self, *, stacked: bool = False) -> np.ndarray | None:
        """The stationary operand as int8: ``W[K, Q]`` for an ungrouped GEMM,
        ``[groups, K, Q]`` for a grouped one (``stacked=True``: always ``[groups, K, Q]``);
        ``None`` for non-GEMM layers. See the module docstring for where values come from.
        """
        if self.dims is None:
            return None
        d = self.dims
        if self.weight_fn is not None:
            w = self.weight_fn()
        elif d.stationary == "act" or self.data is None:
            w = synthetic_int8(self.name, (d.groups, d.K, d.Q))
        else:
            w = self._from_data()
        w = np.asarray(w, np.int8).reshape(d.groups, d.K, d.Q)
        return w if stacked or d.groups > 1 else w[0]

    def _from_data(self) -> np.ndarray:
        assert self.data is not None and self.dims is not None
        q = quantise_int8(self.data)
        d = self.dims
        if self.kind == "conv":     # [Cout, Cin/g, KH, KW] -> [g, KH*KW*Cin/g, Cout/g]
            cout, cg, kh, kw = q.shape
            return q.reshape(d.groups, cout // d.groups, cg, kh, kw) \
                .transpose(0, 3, 4, 2, 1).reshape(d.groups, kh * kw * cg, d.Q)
        return q.reshape(d.groups, d.K, d.Q)    # linear: data is W[K, Q]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary (name, kind, shapes, GEMM dims, MACs)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind,
                               "inputs": list(self.inputs), "out_shape": list(self.out_shape),
                               "out_elements": self.out_elements, "macs": self.macs,
                               "params": self.params}
        if self.dims is not None:
            out.update(P=self.dims.P, K=self.dims.K, Q=self.dims.Q, groups=self.dims.groups,
                       stationary=self.dims.stationary)
        for k in ("phase", "source", "sparsity"):
            if k in self.attrs:
                out[k] = self.attrs[k]
        return out


class Workload:
    """A validated network: a networkx ``DiGraph`` of typed layers.

    Parameters
    ----------
    name : str
    inputs : dict
        Graph input name -> shape.
    layers : sequence of Layer
        In a topological order (checked).
    attrs : dict, optional
        Free-form metadata: ``batch``, ``seq``, ``source``; ``sparsity`` (a per-layer
        sparsity plan string, e.g. from a SCALE-Sim ``Sparsity`` column).
    """

    def __init__(self, name: str, inputs: dict[str, Shape], layers: Sequence[Layer],
                 attrs: dict[str, Any] | None = None) -> None:
        self.name = name
        self.inputs = {k: tuple(v) for k, v in inputs.items()}
        self.attrs = dict(attrs or {})
        self._layers = list(layers)
        self.graph = nx.DiGraph(name=name)
        for k, sh in self.inputs.items():
            self.graph.add_node(k, kind="input", shape=sh, layer=None)
        for ly in self._layers:
            if ly.name in self.graph:
                raise WorkloadError(f"workload {name!r}: duplicate layer name {ly.name!r}")
            self.graph.add_node(ly.name, kind=ly.kind, shape=ly.out_shape, layer=ly)
            for i in ly.inputs:
                if i not in self.graph:
                    raise WorkloadError(f"workload {name!r}: layer {ly.name!r} reads "
                                        f"{i!r}, which is not an earlier layer or an input")
                self.graph.add_edge(i, ly.name)
        self.validate()

    def validate(self) -> None:
        """Check the graph: acyclic, every layer's shapes re-infer to what it holds."""
        if not nx.is_directed_acyclic_graph(self.graph):
            raise WorkloadError(f"workload {self.name!r}: the graph has a cycle")
        for ly in self._layers:
            shapes = tuple(self.graph.nodes[i]["shape"] for i in ly.inputs)
            if shapes != tuple(ly.in_shapes):
                raise WorkloadError(f"workload {self.name!r}: layer {ly.name!r} records "
                                    f"input shapes {ly.in_shapes}, producers give {shapes}")
            if ly.dims is not None and ly.attrs.get("phase") not in (None, "fwd"):
                continue    # training GEMMs carry explicit dims
            out = infer_shape(ly.kind, shapes, ly.attrs, f"{self.name}:{ly.name}")
            if out != ly.out_shape:
                raise WorkloadError(f"workload {self.name!r}: layer {ly.name!r} has output "
                                    f"shape {ly.out_shape}, inference gives {out}")
            if ly.dims is not None and min(ly.dims.P, ly.dims.K, ly.dims.Q) < 1:
                raise WorkloadError(f"workload {self.name!r}: layer {ly.name!r} has empty "
                                    f"GEMM dims {ly.dims}")

    def layers(self) -> list[Layer]:
        """Layers in topological order (the order they were added)."""
        return list(self._layers)

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        node = self.graph.nodes.get(name)
        if node is None or node["layer"] is None:
            raise WorkloadError(f"workload {self.name!r} has no layer {name!r}")
        return node["layer"]

    def gemm_layers(self) -> list[Layer]:
        """The GEMM-bearing layers."""
        return [ly for ly in self._layers if ly.is_gemm]

    @property
    def total_macs(self) -> int:
        """Sum of the GEMM layers' MACs."""
        return sum(ly.macs for ly in self._layers)

    @property
    def params(self) -> int:
        """Sum of the layers' trained parameters."""
        return sum(ly.params for ly in self._layers)

    def outputs(self) -> list[str]:
        """Layers nothing reads."""
        return [ly.name for ly in self._layers if self.graph.out_degree(ly.name) == 0]

    def sparsity_plan(self) -> str | None:
        """Per-layer sparsity rules carried by the workload (e.g. a SCALE-Sim ``Sparsity``
        column), as a plan string for :meth:`sparsa.workloads.sparsity.SparsityPlan.parse`,
        or ``None``."""
        return self.attrs.get("sparsity")

    def expand_training(self) -> Workload:
        """The training step (see :func:`sparsa.workloads.training.expand_training`)."""
        from .training import expand_training
        return expand_training(self)

    def summary(self) -> dict[str, Any]:
        """Name, layer counts, MACs and parameters."""
        return {"name": self.name, "layers": len(self._layers),
                "gemm_layers": len(self.gemm_layers()), "macs": self.total_macs,
                "params": self.params,
                "inputs": {k: list(v) for k, v in self.inputs.items()}}

    def __repr__(self) -> str:
        return (f"Workload({self.name!r}, {len(self._layers)} layers, "
                f"{self.total_macs / 1e9:.3f} GMAC)")


class GraphBuilder:
    """Build a :class:`Workload` layer by layer, inferring shapes as it goes.

    Every ``add``-style method returns the new layer's name (used as a later input).

    Examples
    --------
    >>> b = GraphBuilder("tiny")
    >>> x = b.input("x", (1, 3, 8, 8))
    >>> y = b.relu(b.conv(x, 4, 3, pad=1, name="c1"))
    >>> b.build().total_macs
    6912
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._inputs: dict[str, Shape] = {}
        self._layers: list[Layer] = []
        self._shapes: dict[str, Shape] = {}
        self._count: dict[str, int] = {}
        self.attrs: dict[str, Any] = {}

    def shape(self, name: str) -> Shape:
        """Shape of a layer or input already added."""
        if name not in self._shapes:
            raise WorkloadError(f"{self.name}: no layer or input {name!r}")
        return self._shapes[name]

    def __contains__(self, name: str) -> bool:
        """Whether a layer or input called ``name`` exists."""
        return name in self._shapes

    def get_layer(self, name: str) -> Layer | None:
        """The layer called ``name`` added so far (``None`` for inputs and unknown names)."""
        return next((ly for ly in reversed(self._layers) if ly.name == name), None)

    def input(self, name: str, shape: Iterable[int]) -> str:
        """Declare a graph input."""
        self._check_name(name)
        self._inputs[name] = tuple(int(d) for d in shape)
        self._shapes[name] = self._inputs[name]
        return name

    def _check_name(self, name: str) -> None:
        if name in self._shapes:
            raise WorkloadError(f"{self.name}: duplicate layer name {name!r}")

    def add(self, kind: str, inputs: Sequence[str], name: str | None = None,
            data: np.ndarray | None = None, **attrs: Any) -> str:
        """Add a layer of ``kind`` reading ``inputs``; returns its name."""
        if name is None:
            self._count[kind] = self._count.get(kind, 0) + 1
            name = f"{kind}{self._count[kind]}"
            while name in self._shapes:
                self._count[kind] += 1
                name = f"{kind}{self._count[kind]}"
        self._check_name(name)
        in_shapes = tuple(self.shape(i) for i in inputs)
        out = infer_shape(kind, in_shapes, attrs, f"{self.name}:{name}")
        ly = Layer(name, kind, tuple(inputs), in_shapes, out, dict(attrs),
                   weight_shape(kind, in_shapes, attrs), data)
        if data is not None and ly.weight is not None and \
                math.prod(np.shape(data)) != math.prod(ly.weight):
            raise WorkloadError(f"{self.name}:{name}: weight data of shape "
                                f"{list(np.shape(data))} does not fit {list(ly.weight)}")
        self._layers.append(ly)
        self._shapes[name] = out
        return name

    # ---- convenience ---------------------------------------------------------------------
    def conv(self, x: str, cout: int, k: int | tuple[int, int], stride: int = 1,
             pad: int | Sequence[int] | None = None, groups: int = 1, dilation: int = 1,
             bias: bool = False, name: str | None = None) -> str:
        """2-D convolution (``pad`` defaults to ``k // 2``)."""
        kk = (k, k) if isinstance(k, int) else tuple(k)
        if pad is None:
            pad = (dilation * (kk[0] - 1) // 2, dilation * (kk[1] - 1) // 2)
        return self.add("conv", [x], name, cout=cout, kernel=kk, stride=stride, pads=pad,
                        groups=groups, dilation=dilation, bias=bias)

    def linear(self, x: str, out_features: int, bias: bool = True,
               name: str | None = None) -> str:
        """Fully connected layer over the last axis."""
        return self.add("linear", [x], name, in_features=self.shape(x)[-1],
                        out_features=out_features, bias=bias)

    def matmul(self, a: str, b: str, transpose_b: bool = False, name: str | None = None) -> str:
        """Product of two activations (attention)."""
        return self.add("matmul", [a, b], name, transpose_b=transpose_b)

    def op(self, kind: str, *inputs: str, name: str | None = None, **attrs: Any) -> str:
        """Any other op kind."""
        return self.add(kind, list(inputs), name, **attrs)

    def relu(self, x: str, name: str | None = None) -> str:
        return self.add("relu", [x], name)

    def build(self, **attrs: Any) -> Workload:
        """The validated :class:`Workload`."""
        return Workload(self.name, self._inputs, self._layers, {**self.attrs, **attrs})
