"""Training expansion: a workload's forward pass plus its backward pass, as one workload.

Every GEMM layer ``L`` (``conv``, ``linear`` and attention ``matmul``) with dims
``(P, K, Q, groups)`` becomes up to three GEMM layers, each with ``attrs["phase"]`` and
``attrs["source"] = L.name``:

``L.fwd``
    ``Y[P, Q] = X[P, K] @ W[K, Q]``: the original dims and weights.
``L.bwd_data``
    ``dX[P, K] = dY[P, Q] @ W^T[Q, K]``: ``GemmDims(P, Q, K, groups)``; ``gemm_weight()`` is
    ``W^T`` per group (``[Q, K]``, or ``[groups, Q, K]``). For a matmul ``C = A @ B`` this is
    ``dA = dC @ B^T`` (stationary ``"act"``).
``L.wgrad``
    ``dW[K, Q] = X^T[K, P] @ dY[P, Q]``: ``GemmDims(K, P, Q, groups, stationary="act")`` -
    the stationary operand is ``dY`` (seeded synthetic int8 activations). For a matmul this
    is ``dB = A^T @ dC``.

Non-GEMM layers appear in the forward pass as ``L.fwd`` and in the backward pass as
``L.bwd`` (``L.bwd<i>`` for the ``i``-th input of a multi-input op) of kind ``<kind>_bwd``,
carrying the input gradient's shape (a non-GEMM layer with parameters, e.g. an embedding
table, gets one ``L.bwd`` with the parameter gradient's shape). Where a tensor feeds several
layers (residual connections) its gradient contributions are summed by an ``add`` layer
``<name>.grad_sum``. The backward pass starts from ``<output>.loss_grad`` (the loss
gradient of each graph output).

Order: all forward layers first (topological order), then the backward layers in reverse
layer order (per layer: gradient sum, ``bwd_data``, ``wgrad``).

**Which gradients exist.** A tensor needs a gradient when a layer with trained parameters
lies upstream of it. The graph input needs none, so the first layer (and any layer fed only
by graph inputs or parameter-free paths from them) has **no** ``bwd_data`` - the usual
convention of training frameworks, which skip ``dX`` of the input image. Its ``wgrad`` is
kept. A matmul operand that needs no gradient likewise gets no backward GEMM. A workload
whose graph inputs stand for activations inside a network (``attrs["inputs_need_grad"]``,
set by the SCALE-Sim importer, whose layers each read their own input) gets ``bwd_data``
for every layer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .graph import GemmDims, Layer, Workload, synthetic_int8

__all__ = ["expand_training"]


def _transposed(ly: Layer) -> Callable[[], np.ndarray]:
    def fn() -> np.ndarray:
        w = ly.gemm_weight(stacked=True)
        assert w is not None
        return np.ascontiguousarray(w.transpose(0, 2, 1))
    return fn


def _synthetic(name: str, shape: tuple[int, int, int]) -> Callable[[], np.ndarray]:
    return lambda: synthetic_int8(name, shape)


def expand_training(workload: Workload) -> Workload:
    """The training step of ``workload`` (see the module docstring).

    Parameters
    ----------
    workload : Workload

    Returns
    -------
    Workload
        Named ``<name>-train``; ``attrs["training"] = True``.
    """
    layers = workload.layers()
    if any(ly.attrs.get("phase") for ly in layers):
        return workload     # already a training graph
    fwd_name = {ly.name: f"{ly.name}.fwd" for ly in layers}
    shape = {k: v for k, v in workload.inputs.items()}
    shape.update({ly.name: ly.out_shape for ly in layers})

    def fwd(x: str) -> str:
        return fwd_name.get(x, x)

    needs: dict[str, bool] = {k: bool(workload.attrs.get("inputs_need_grad"))
                              for k in workload.inputs}
    for ly in layers:
        needs[ly.name] = ly.weight is not None or any(needs.get(i, False) for i in ly.inputs)

    out: list[Layer] = []
    for ly in layers:
        out.append(Layer(fwd_name[ly.name], ly.kind, tuple(fwd(i) for i in ly.inputs),
                         ly.in_shapes, ly.out_shape, {**ly.attrs, "phase": "fwd",
                                                      "source": ly.name},
                         ly.weight, ly.data, ly.dims,
                         weight_fn=(lambda ly=ly: ly.gemm_weight(stacked=True))
                         if ly.is_gemm else None))

    shape_of = {fwd(k): v for k, v in shape.items()}
    grads: dict[str, list[str]] = {}
    for o in workload.outputs():
        if needs[o]:
            name = f"{o}.loss_grad"
            out.append(Layer(name, "loss_grad", (fwd(o),), (shape[o],), shape[o],
                             {"phase": "bwd", "source": o, "out_shape": list(shape[o])}))
            grads[o] = [name]
            shape_of[name] = shape[o]

    def bwd_layer(name: str, kind: str, inputs: tuple[str, ...], out_shape: tuple[int, ...],
                  src: str, phase: str = "bwd", dims: GemmDims | None = None,
                  weight_fn: Callable[[], np.ndarray] | None = None) -> Layer:
        return Layer(name, kind, inputs, tuple(shape_of[i] for i in inputs), out_shape,
                     {"phase": phase, "source": src, "out_shape": list(out_shape)},
                     dims=dims, weight_fn=weight_fn)

    for ly in reversed(layers):
        contrib = grads.get(ly.name, [])
        if not contrib:
            continue
        if len(contrib) == 1:
            dy = contrib[0]
        else:
            dy = f"{ly.name}.grad_sum"
            out.append(Layer(dy, "add", tuple(contrib), tuple(shape_of[c] for c in contrib),
                             ly.out_shape, {"phase": "bwd", "source": ly.name}))
            shape_of[dy] = ly.out_shape
        if ly.is_gemm:
            d = ly.gemm()
            g = d.groups
            if ly.kind == "matmul":
                a, b = ly.inputs
                if needs.get(a, False):
                    n = f"{ly.name}.bwd_data"
                    shape_of[n] = ly.in_shapes[0]
                    out.append(bwd_layer(n, ly.kind, (dy, fwd(b)), ly.in_shapes[0], ly.name,
                                         "bwd_data", GemmDims(d.P, d.Q, d.K, g, "act"),
                                         _synthetic(n, (g, d.Q, d.K))))
                    grads.setdefault(a, []).append(n)
                if needs.get(b, False):
                    n = f"{ly.name}.wgrad"
                    shape_of[n] = ly.in_shapes[1]
                    out.append(bwd_layer(n, ly.kind, (fwd(a), dy), ly.in_shapes[1], ly.name,
                                         "wgrad", GemmDims(d.K, d.P, d.Q, g, "act"),
                                         _synthetic(n, (g, d.P, d.Q))))
                    grads.setdefault(b, []).append(n)
                continue
            x = ly.inputs[0]
            if needs.get(x, False):
                n = f"{ly.name}.bwd_data"
                shape_of[n] = ly.in_shapes[0]
                out.append(bwd_layer(n, ly.kind, (dy,), ly.in_shapes[0], ly.name, "bwd_data",
                                     GemmDims(d.P, d.Q, d.K, g, d.stationary),
                                     _transposed(ly)))
                grads.setdefault(x, []).append(n)
            n = f"{ly.name}.wgrad"
            wshape = ly.weight if ly.weight is not None else (g, d.K, d.Q)
            shape_of[n] = wshape
            out.append(bwd_layer(n, ly.kind, (fwd(x), dy), wshape, ly.name, "wgrad",
                                 GemmDims(d.K, d.P, d.Q, g, "act"),
                                 _synthetic(n, (g, d.P, d.Q))))
            continue
        # non-GEMM layer: one backward op per input that needs a gradient
        targets = [(j, i) for j, i in enumerate(ly.inputs) if needs.get(i, False)]
        if not targets and ly.weight is not None:
            n = f"{ly.name}.bwd"
            shape_of[n] = ly.weight
            out.append(bwd_layer(n, f"{ly.kind}_bwd", (dy,), ly.weight, ly.name))
        for j, i in targets:
            n = f"{ly.name}.bwd" if len(ly.inputs) == 1 else f"{ly.name}.bwd{j}"
            shape_of[n] = ly.in_shapes[j]
            out.append(bwd_layer(n, f"{ly.kind}_bwd", (dy,), ly.in_shapes[j], ly.name))
            grads.setdefault(i, []).append(n)

    return Workload(f"{workload.name}-train", workload.inputs, out,
                    {**workload.attrs, "training": True})
