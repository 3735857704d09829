"""Typed operators of the workload graph: shape inference and GEMM dimensions.

Every layer of a :class:`sparsa.workloads.Workload` has a ``kind`` listed in :data:`OPS`.
Shapes are tuples of ints; convolutional activations are ``NCHW`` (as in ONNX), sequence
activations ``[batch, seq, features]``, attention heads ``[batch, heads, seq, head_dim]``.

GEMM-bearing kinds (:data:`GEMM_KINDS`) lower to ``Y[P, Q] = X[P, K] @ W[K, Q]``
(``DESIGN.md``):

``conv``
    im2col: ``P = N*OH*OW``, ``K = Cin/groups * KH * KW``, ``Q = Cout/groups``, one GEMM per
    group (depthwise: ``groups = C``, ``K = KH*KW``, ``Q = 1``). ``OH = floor((H + pad_top
    + pad_bottom - dilation*(KH-1) - 1) / stride) + 1``.
``linear``
    ``x[..., K] @ W[K, Q]``: ``P`` = product of the leading dimensions.
``matmul``
    a product of two activations ``A[..., M, K] @ B[..., K, N]`` (``transpose_b``: ``B`` is
    given as ``[..., N, K]``), e.g. attention ``Q K^T`` and ``softmax(.) V``. The second
    operand is the stationary one (``stationary="act"``): ``groups`` = product of ``B``'s
    batch dimensions (one GEMM per batch and head), ``P = M`` times whatever batch dimensions
    of ``A`` are not shared with ``B``, ``K``, ``Q = N``.

Non-GEMM kinds carry shapes and element counts only; the host runs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .errors import WorkloadError

__all__ = ["OPS", "GEMM_KINDS", "UNARY_KINDS", "infer_shape", "gemm_dims", "weight_shape",
           "conv_out", "pool_out", "broadcast"]

Shape = tuple[int, ...]

GEMM_KINDS = frozenset({"conv", "linear", "matmul"})

#: element-wise kinds with one activation input (shape preserved)
UNARY_KINDS = frozenset({
    "relu", "clip", "gelu", "erf", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid",
    "leakyrelu", "identity", "dropout", "neg", "sqrt", "exp", "log", "abs", "reciprocal",
    "cast", "softmax", "logsoftmax", "layernorm", "batchnorm", "instancenorm", "groupnorm",
    "lrn", "requant", "elu", "selu", "celu", "softplus", "softsign", "mish", "sign", "shrink",
    "thresholdedrelu", "prelu", "not", "floor", "ceil", "round",
})
#: element-wise kinds with numpy broadcasting over all inputs (and an optional constant)
BINARY_KINDS = frozenset({"add", "sub", "mul", "div", "pow", "max", "min", "where", "mod",
                          "equal", "less", "lessequal", "greater", "greaterequal", "and",
                          "or", "xor"})


class _ShapeError(Exception):
    """Raised by the inference functions; the caller adds the layer's name."""


def _fail(msg: str) -> None:
    raise _ShapeError(msg)


def _pair(v: Any, name: str) -> tuple[int, int]:
    """A kernel/stride/dilation ``int`` or pair, each value >= 1."""
    t = (v, v) if isinstance(v, int) else tuple(int(x) for x in v)
    if len(t) != 2:
        _fail(f"{name} must be an int or a pair, not {v!r}")
    if min(t) < 1:
        _fail(f"{name} must be >= 1, not {v!r}")
    return t  # type: ignore[return-value]


def _pads(v: Any) -> tuple[int, int, int, int]:
    """``int`` / ``(ph, pw)`` / ``(top, left, bottom, right)`` (ONNX order)."""
    t = (v, v, v, v) if isinstance(v, int) else tuple(int(x) for x in v)
    if len(t) == 2:
        t = (t[0], t[1], t[0], t[1])
    if len(t) != 4:
        _fail(f"pads must be an int, a pair or 4 values, not {v!r}")
    if min(t) < 0:
        _fail(f"pads must be >= 0, not {v!r}")
    return t  # type: ignore[return-value]


def conv_out(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1,
             ceil_mode: bool = False) -> int:
    """Output size of a convolution/pooling window along one axis."""
    span = size + pad_lo + pad_hi - dilation * (k - 1) - 1
    if span < 0:
        return 0
    if ceil_mode:   # as ONNX shape inference: plain ceiling
        return -(-span // stride) + 1
    return span // stride + 1


def broadcast(*shapes: Shape) -> Shape:
    """numpy broadcasting of shapes."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = {s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            _fail(f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _need(in_shapes: Sequence[Shape], n: int, rank: int | None = None) -> None:
    if len(in_shapes) != n:
        _fail(f"takes {n} input(s), got {len(in_shapes)}")
    if rank is not None and len(in_shapes[0]) != rank:
        _fail(f"input must have rank {rank}, not shape {list(in_shapes[0])}")


def _axis(axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        _fail(f"axis {axis} out of range for rank {rank}")
    return a


# ---- inference functions ------------------------------------------------------------------
def _conv(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1, 4)
    n, c, h, w = s[0]
    g = int(a.get("groups", 1))
    kh, kw = _pair(a["kernel"], "kernel")
    sh, sw = _pair(a.get("stride", 1), "stride")
    dh, dw = _pair(a.get("dilation", 1), "dilation")
    pt, pl, pb, pr = _pads(a.get("pads", 0))
    cout = int(a["cout"])
    if g < 1 or c % g or cout % g:
        _fail(f"groups={g} must divide Cin={c} and Cout={cout}")
    if "cin" in a and int(a["cin"]) != c:
        _fail(f"expects {a['cin']} input channels, input has {c}")
    oh = conv_out(h, kh, sh, pt, pb, dh)
    ow = conv_out(w, kw, sw, pl, pr, dw)
    if oh < 1 or ow < 1:
        _fail(f"kernel {kh}x{kw} does not fit input {h}x{w} with pads {[pt, pl, pb, pr]}")
    return (n, cout, oh, ow)


def _linear(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    if len(s[0]) < 1:
        _fail("input must have rank >= 1")
    if int(a["in_features"]) != s[0][-1]:
        _fail(f"expects {a['in_features']} input features, input shape is {list(s[0])}")
    return (*s[0][:-1], int(a["out_features"]))


def _matmul_parts(s: Sequence[Shape], a: dict[str, Any]) -> tuple[Shape, Shape, int, int, int]:
    _need(s, 2)
    A, B = s
    if len(A) < 2 or len(B) < 2:
        _fail(f"operands must have rank >= 2, not {list(A)} and {list(B)}")
    if a.get("transpose_b"):
        B = (*B[:-2], B[-1], B[-2])
    if A[-1] != B[-2]:
        _fail(f"inner dimensions differ: {list(A)} @ {list(B)}")
    return A, B, A[-2], A[-1], B[-1]


def _matmul(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    A, B, m, _k, n = _matmul_parts(s, a)
    return (*broadcast(A[:-2], B[:-2]), m, n)


def _unary(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    if "axis" in a:
        _axis(int(a["axis"]), len(s[0]))
    return s[0]


def _binary(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    if not s:
        _fail("needs at least one activation input")
    extra = [tuple(a["const_shape"])] if a.get("const_shape") is not None else []
    return broadcast(*s, *extra)


def _pool(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1, 4)
    n, c, h, w = s[0]
    kh, kw = _pair(a["kernel"], "kernel")
    sh, sw = _pair(a.get("stride", (kh, kw)), "stride")
    dh, dw = _pair(a.get("dilation", 1), "dilation")
    pt, pl, pb, pr = _pads(a.get("pads", 0))
    cm = bool(a.get("ceil_mode", False))
    oh, ow = conv_out(h, kh, sh, pt, pb, dh, cm), conv_out(w, kw, sw, pl, pr, dw, cm)
    if oh < 1 or ow < 1:
        _fail(f"window {kh}x{kw} does not fit input {h}x{w}")
    return (n, c, oh, ow)


def pool_out(shape: Shape, attrs: dict[str, Any]) -> Shape:
    """Output shape of a ``maxpool``/``avgpool`` layer."""
    return _pool([shape], attrs)


def _globalpool(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    if len(s[0]) < 3:
        _fail(f"input must be N,C,spatial..., not {list(s[0])}")
    return (*s[0][:2], *([1] * (len(s[0]) - 2)))


def _flatten(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    ax = int(a.get("axis", 1))
    ax = ax + len(s[0]) if ax < 0 else ax
    if not 0 <= ax <= len(s[0]):
        _fail(f"axis {a.get('axis')} out of range for rank {len(s[0])}")
    return (math.prod(s[0][:ax]), math.prod(s[0][ax:]))


def _reshape(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    src = s[0]
    tgt = [int(x) for x in a["shape"]]
    out = [src[i] if (d == 0 and not a.get("allowzero")) else d for i, d in enumerate(tgt)]
    if out.count(-1) > 1:
        _fail(f"shape {tgt} has more than one -1")
    total = math.prod(src)
    if -1 in out:
        rest = math.prod(d for d in out if d != -1)
        if rest == 0 or total % rest:
            _fail(f"cannot reshape {list(src)} to {tgt}")
        out[out.index(-1)] = total // rest
    if math.prod(out) != total:
        _fail(f"cannot reshape {list(src)} ({total} elements) to {tgt}")
    return tuple(out)


def _transpose(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    perm = a.get("perm")
    perm = list(range(len(s[0]) - 1, -1, -1)) if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(len(s[0]))):
        _fail(f"perm {perm} is not a permutation of the {len(s[0])} axes")
    return tuple(s[0][p] for p in perm)


def _concat(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    if not s:
        _fail("needs at least one input")
    r = len(s[0])
    ax = _axis(int(a.get("axis", 0)), r)
    for sh in s:
        if len(sh) != r or any(sh[i] != s[0][i] for i in range(r) if i != ax):
            _fail(f"inputs {[list(x) for x in s]} differ outside axis {ax}")
    out = list(s[0])
    out[ax] = sum(sh[ax] for sh in s)
    return tuple(out)


def _slice(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    out = list(s[0])
    starts, ends = list(a["starts"]), list(a["ends"])
    axes = list(a.get("axes") or range(len(starts)))
    steps = list(a.get("steps") or [1] * len(starts))
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        ax = _axis(int(ax), len(out))
        if sp == 0:
            _fail("slice step 0")
        out[ax] = len(range(*slice(int(st), int(en), int(sp)).indices(s[0][ax])))
    return tuple(out)


def _pad(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    p = [int(x) for x in a["pads"]]
    r = len(s[0])
    if len(p) != 2 * r:
        _fail(f"pads needs {2 * r} values, not {len(p)}")
    return tuple(d + p[i] + p[i + r] for i, d in enumerate(s[0]))


def _squeeze(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    axes = a.get("axes")
    if axes is None:
        return tuple(d for d in s[0] if d != 1)
    ax = {_axis(int(x), len(s[0])) for x in axes}
    if any(s[0][i] != 1 for i in ax):
        _fail(f"cannot squeeze axes {sorted(ax)} of {list(s[0])}")
    return tuple(d for i, d in enumerate(s[0]) if i not in ax)


def _unsqueeze(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    r = len(s[0]) + len(a["axes"])
    ax = sorted(_axis(int(x), r) for x in a["axes"])
    out = list(s[0])
    for i in ax:
        out.insert(i, 1)
    return tuple(out)


def _reduce(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 1)
    axes = a.get("axes")
    r = len(s[0])
    ax = set(range(r)) if axes is None else {_axis(int(x), r) for x in axes}
    if a.get("keepdims", True):
        return tuple(1 if i in ax else d for i, d in enumerate(s[0]))
    return tuple(d for i, d in enumerate(s[0]) if i not in ax)


def _gather(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    """Embedding lookup: ``indices`` -> ``indices.shape + [dim]`` (a table
    ``[num, dim]``)."""
    _need(s, 1)
    return (*s[0], int(a["dim"]))


def _constant(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    _need(s, 0)
    return tuple(int(x) for x in a["shape"])


def _explicit(s: Sequence[Shape], a: dict[str, Any]) -> Shape:
    """Ops whose output shape comes from elsewhere (backward ops, ONNX shape inference)."""
    return tuple(int(x) for x in a["out_shape"])


OPS: dict[str, Callable[[Sequence[Shape], dict[str, Any]], Shape]] = {
    "conv": _conv, "linear": _linear, "matmul": _matmul,
    **{k: _unary for k in UNARY_KINDS}, **{k: _binary for k in BINARY_KINDS},
    "maxpool": _pool, "avgpool": _pool, "globalavgpool": _globalpool,
    "globalmaxpool": _globalpool, "flatten": _flatten, "reshape": _reshape,
    "transpose": _transpose, "concat": _concat, "slice": _slice, "pad": _pad,
    "squeeze": _squeeze, "unsqueeze": _unsqueeze, "reducemean": _reduce,
    "reducesum": _reduce, "reducemax": _reduce, "gather": _gather, "constant": _constant,
    "loss_grad": _explicit, "host": _explicit,
}


def infer_shape(kind: str, in_shapes: Sequence[Shape], attrs: dict[str, Any],
                where: str) -> Shape:
    """Output shape of one layer; errors name ``where`` (the layer)."""
    fn = OPS.get(kind)
    if fn is None and kind.endswith("_bwd"):
        fn = _explicit
    if fn is None:
        raise WorkloadError(f"{where}: unknown op kind {kind!r}; known: "
                            f"{', '.join(sorted(OPS))}")
    try:
        out = fn([tuple(int(d) for d in sh) for sh in in_shapes], attrs)
    except _ShapeError as e:
        raise WorkloadError(f"{where} ({kind}): {e}") from None
    except KeyError as e:
        raise WorkloadError(f"{where} ({kind}): missing attribute {e.args[0]!r}") from None
    if any(d < 0 for d in out):
        raise WorkloadError(f"{where} ({kind}): negative output shape {list(out)}")
    return tuple(int(d) for d in out)


def gemm_dims(kind: str, in_shapes: Sequence[Shape], attrs: dict[str, Any],
              out_shape: Shape) -> tuple[int, int, int, int, str]:
    """``(P, K, Q, groups, stationary)`` of a GEMM-bearing layer (see the module
    docstring)."""
    if kind == "conv":
        n, c, _, _ = in_shapes[0]
        g = int(attrs.get("groups", 1))
        kh, kw = _pair(attrs["kernel"], "kernel")
        _, cout, oh, ow = out_shape
        return n * oh * ow, c // g * kh * kw, cout // g, g, "weight"
    if kind == "linear":
        return math.prod(in_shapes[0][:-1]), int(attrs["in_features"]), \
            int(attrs["out_features"]), 1, "weight"
    if kind == "matmul":
        A, B, m, k, n = _matmul_parts(in_shapes, attrs)
        groups = math.prod(B[:-2])
        p = math.prod(broadcast(A[:-2], B[:-2])) // max(1, groups) * m
        return p, k, n, groups, "act"
    raise WorkloadError(f"op kind {kind!r} is not a GEMM")


def weight_shape(kind: str, in_shapes: Sequence[Shape], attrs: dict[str, Any]
                 ) -> tuple[int, ...] | None:
    """Shape of the layer's trained weight: conv ``[Cout, Cin/groups, KH, KW]`` (ONNX),
    linear ``[K, Q]``, embedding table ``[num, dim]``; ``None`` for the rest."""
    if kind == "conv":
        kh, kw = _pair(attrs["kernel"], "kernel")
        return (int(attrs["cout"]), in_shapes[0][1] // int(attrs.get("groups", 1)), kh, kw)
    if kind == "linear":
        return (int(attrs["in_features"]), int(attrs["out_features"]))
    if kind == "gather" and "num" in attrs:
        return (int(attrs["num"]), int(attrs["dim"]))
    return None
