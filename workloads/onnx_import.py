"""Import an ONNX model (through the ``onnx`` package) as a :class:`Workload`.

* ``Conv`` (1-D and 2-D, any groups, ``pads``/``auto_pad``, strides, dilations) ->
  ``conv`` (a 1-D one on the ``[N, C, 1, L]`` view, between two free reshapes; so are 1-D
  MaxPool/AveragePool); ``ConvTranspose`` (1-D and 2-D, any groups) -> a 1x1 ``conv``
  with ``Cout*KH*KW`` outputs and a host ``Col2Im`` scatter (see
  :meth:`_Importer._conv_transpose`); a 3-D ``Conv`` (any groups) -> a host ``Im2Col``
  and a 1x1 ``conv`` (:meth:`_Importer._conv3d`); 3-D pooling is host work;
  ``Gemm`` and ``MatMul`` with an initializer as the second operand -> ``linear``
  (``W[K, Q]``: ``B``, or ``B^T`` when ``transB=1``; an ``Add`` of a 1-D constant that
  alone reads a ``MatMul``'s product is its bias); ``MatMul`` of two activations ->
  ``matmul`` (attention).
* Non-GEMM ops of CNNs and transformers become layers with shapes: Relu, Clip, Gelu, Erf,
  Sigmoid, Tanh, HardSwish, LeakyRelu, PRelu, Elu/Selu/Celu, Softplus, Mish, LRN,
  Add/Sub/Mul/Div/Pow/Mod and the n-ary Sum/Max/Min (constant operands as a broadcast
  ``const_shape``), comparisons and logic (Equal, Less, Greater, ..., And/Or/Xor/Not:
  attention masks built from inputs), Floor/Ceil/Round, MaxPool, AveragePool,
  GlobalAveragePool, Flatten, Reshape, Transpose, Softmax, LayerNormalization,
  BatchNormalization, Concat, Split (one ``slice`` layer per output), Slice, Squeeze,
  Unsqueeze, Pad, ReduceMean, Gather (embedding lookup, or indexing an activation), Expand,
  Resize/Upsample, Tile, DepthToSpace, SpaceToDepth, ArgMax and the other reductions,
  CumSum (shapes from ONNX shape inference), Where and friends; QuantizeLinear /
  DequantizeLinear on activations as ``requant`` layers.
* Shape arithmetic on constants (``Shape -> Gather -> Concat -> Reshape`` chains of
  exporters) and ``DequantizeLinear`` of quantised initializers (QDQ models) are folded
  with numpy; ``onnx.shape_inference`` (with data propagation) gives
  the output shape of ops whose target shape stays symbolic.
* Initializer weights are used (quantised to int8 by :meth:`Layer.gemm_weight`). Weights
  stored as external data are read when the file is there; when it is absent the shapes
  come from the graph and the weights are synthesised (seeded by layer name).
* Symbolic input dimensions: the first is the batch (``batch``), any other one is the
  sequence length (``seq``, required then).

Any other op raises :class:`WorkloadError` naming the op type, the node and the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import WorkloadError
from .graph import GraphBuilder, Workload

__all__ = ["import_onnx", "SUPPORTED_OPS"]

_UNARY = {
    "Relu": "relu", "Gelu": "gelu", "Erf": "erf", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid", "LeakyRelu": "leakyrelu",
    "Identity": "identity", "Dropout": "dropout", "Neg": "neg", "Sqrt": "sqrt", "Exp": "exp",
    "Log": "log", "Abs": "abs", "Reciprocal": "reciprocal", "Cast": "cast", "Clip": "clip",
    "Softmax": "softmax", "LogSoftmax": "logsoftmax", "LayerNormalization": "layernorm",
    "BatchNormalization": "batchnorm", "InstanceNormalization": "instancenorm",
    "GroupNormalization": "groupnorm", "LRN": "lrn", "Silu": "silu", "Elu": "elu",
    "Selu": "selu", "Celu": "celu", "Softplus": "softplus", "Softsign": "softsign",
    "Mish": "mish", "Sign": "sign", "Shrink": "shrink", "ThresholdedRelu": "thresholdedrelu",
    "PRelu": "prelu", "Not": "not", "Floor": "floor", "Ceil": "ceil", "Round": "round",
    "QuantizeLinear": "requant", "DequantizeLinear": "requant",
}
_BINARY = {"Add": "add", "Sum": "add", "Sub": "sub", "Mul": "mul", "Div": "div",
           "Pow": "pow", "Max": "max", "Min": "min", "Where": "where", "Mod": "mod",
           "Equal": "equal", "Less": "less", "LessOrEqual": "lessequal",
           "Greater": "greater", "GreaterOrEqual": "greaterequal", "And": "and", "Or": "or",
           "Xor": "xor"}
#: host ops whose output shape comes from ONNX shape inference (upsampling, tiling, pixel
#: shuffles, index reductions, scans, column-to-image scatters)
_SHAPED = ("Resize", "Upsample", "Tile", "DepthToSpace", "SpaceToDepth", "ArgMax", "ArgMin",
           "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
           "ReduceSumSquare", "CumSum", "Col2Im")
_STRUCT = {"Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool",
           "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Transpose", "Concat",
           "Split", "Slice", "Squeeze", "Unsqueeze", "Pad", "ReduceMean", "ReduceSum",
           "ReduceMax", "Gather", "Expand", "Constant", "Shape", *_SHAPED}
#: ONNX op types the importer understands
SUPPORTED_OPS = frozenset(_UNARY) | frozenset(_BINARY) | _STRUCT


class _Importer:
    def __init__(self, path: Path, batch: int, seq: int | None) -> None:
        import onnx
        self.onnx = onnx
        self.path = path
        self.batch, self.seq = batch, seq
        if not path.is_file():
            raise WorkloadError(f"ONNX file {str(path)!r} "
                                f"{'is a directory' if path.is_dir() else 'does not exist'}")
        try:
            self.model = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf DecodeError and friends: not an ONNX file
            raise WorkloadError(f"{path}: not an ONNX model ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else 'unreadable'})"
                                ) from None
        if not self.model.graph.node:
            raise WorkloadError(f"{path}: not an ONNX model (no graph nodes)")
        self.g = self.model.graph
        self.b = GraphBuilder(path.stem)
        self.consts: dict[str, np.ndarray | None] = {}     # value, or None when absent
        self.const_shapes: dict[str, tuple[int, ...]] = {}
        self.acts: dict[str, str] = {}                      # tensor -> layer / input name
        self.inferred: dict[str, tuple[int, ...]] = {}
        self.absent_weights = 0

    # ---- set-up -------------------------------------------------------------------------
    def _err(self, node: Any, msg: str) -> WorkloadError:
        return WorkloadError(f"{self.path}: node {node.name or '?'!r} ({node.op_type}): {msg}")

    def _initializers(self) -> None:
        from onnx import numpy_helper
        from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data
        base = str(self.path.parent)
        for t in self.g.initializer:
            shape = tuple(int(d) for d in t.dims)
            self.const_shapes[t.name] = shape
            if uses_external_data(t):
                loc = next((e.value for e in t.external_data if e.key == "location"), "")
                if not loc or not (self.path.parent / loc).is_file():
                    self.consts[t.name] = None
                    self.absent_weights += 1
                    continue
                try:
                    load_external_data_for_tensor(t, base)
                except Exception as e:
                    raise WorkloadError(f"{self.path}: external data of {t.name!r} in "
                                        f"{loc!r} unreadable: {e}") from None
            try:
                self.consts[t.name] = numpy_helper.to_array(t)
            except Exception as e:
                raise WorkloadError(f"{self.path}: initializer {t.name!r} unreadable: "
                                    f"{e}") from None

    def _inputs(self) -> None:
        inits = set(self.consts)
        used_seq = False
        for vi in self.g.input:
            if vi.name in inits:
                continue
            tt = vi.type.tensor_type
            if not tt.HasField("shape"):
                raise WorkloadError(f"{self.path}: input {vi.name!r} has no shape")
            dims = []
            for i, d in enumerate(tt.shape.dim):
                # some exporters write 0 for an unknown batch; any other size must be > 0
                if d.HasField("dim_value") and (d.dim_value < 0 or (d.dim_value == 0 and i)):
                    raise WorkloadError(f"{self.path}: input {vi.name!r} dimension {i} is "
                                        f"{d.dim_value}; allowed a positive size or a "
                                        f"symbolic name")
                if d.HasField("dim_value") and d.dim_value > 0:
                    dims.append(int(d.dim_value))
                elif i == 0:
                    dims.append(self.batch)
                elif self.seq is not None:
                    dims.append(self.seq)
                    used_seq = True
                else:
                    raise WorkloadError(
                        f"{self.path}: input {vi.name!r} dimension {i} "
                        f"({d.dim_param or 'unknown'!r}) is symbolic; give --seq")
            if dims and self.batch != 1 and tt.shape.dim[0].HasField("dim_value") and \
                    tt.shape.dim[0].dim_value != self.batch:
                raise WorkloadError(f"{self.path}: input {vi.name!r} has a fixed batch "
                                    f"dimension {dims[0]}; batch={self.batch} not possible")
            self.acts[vi.name] = self.b.input(vi.name, dims)
            # concrete shape for shape inference
            for i, d in enumerate(tt.shape.dim):
                d.ClearField("dim_param")
                d.dim_value = dims[i]
        if self.seq is not None and not used_seq:
            raise WorkloadError(f"{self.path}: seq={self.seq} has no effect: no input has a "
                                f"symbolic sequence dimension")

    def _shape_inference(self) -> None:
        try:
            inf = self.onnx.shape_inference.infer_shapes(self.model, data_prop=True)
        except Exception:
            return      # our own inference does the job for the ops that need it
        for vi in list(inf.graph.value_info) + list(inf.graph.output):
            tt = vi.type.tensor_type
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                self.inferred[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)

    # ---- helpers ------------------------------------------------------------------------
    def _attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def _is_const(self, name: str) -> bool:
        return name in self.const_shapes

    def _const(self, node: Any, name: str, what: str) -> np.ndarray:
        v = self.consts.get(name)
        if v is None:
            raise self._err(node, f"{what} must be a constant known at import time")
        return v

    def _act(self, node: Any, name: str) -> str:
        if name not in self.acts:
            raise self._err(node, f"input {name!r} is not produced by an earlier node")
        return self.acts[name]

    def _name(self, node: Any, idx: int) -> str:
        base = node.name or f"{node.op_type.lower()}_{idx}"
        name, k = base, 1
        while name in self.b:
            k += 1
            name = f"{base}_{k}"
        return name

    def _out_shape(self, node: Any, j: int = 0) -> tuple[int, ...]:
        out = node.output[j]
        if out not in self.inferred:
            raise self._err(node, f"cannot determine the shape of {out!r}")
        return self.inferred[out]

    def _set_const(self, out: str, value: np.ndarray | None,
                   shape: tuple[int, ...] | None = None) -> None:
        self.consts[out] = value
        self.const_shapes[out] = tuple(value.shape) if value is not None else (shape or ())

    # ---- constant folding ---------------------------------------------------------------
    def _fold(self, node: Any) -> None:
        """A node whose inputs are all constants: fold it with numpy when possible, else
        keep its (inferred) shape with an unknown value."""
        a = self._attrs(node)
        vals = [self.consts.get(i) if i else None for i in node.input]
        op = node.op_type
        v: np.ndarray | None = None
        try:
            if any(i and self.consts.get(i) is None for i in node.input):
                v = None
            elif op in ("Identity", "Cast"):
                v = vals[0]
            elif op == "Unsqueeze":
                axes = a.get("axes", vals[1] if len(vals) > 1 else None)
                v = vals[0]
                for ax in sorted(int(x) % (v.ndim + len(axes)) for x in axes):
                    v = np.expand_dims(v, ax)
            elif op == "Squeeze":
                axes = a.get("axes", vals[1] if len(vals) > 1 else None)
                v = np.squeeze(vals[0], axis=None if axes is None else tuple(
                    int(x) for x in axes))
            elif op == "Concat":
                v = np.concatenate([np.atleast_1d(x) for x in vals], axis=int(a["axis"]))
            elif op == "Gather":
                v = np.take(vals[0], vals[1].astype(np.int64), axis=int(a.get("axis", 0)))
            elif op in _BINARY and op != "Where":
                fn = {"Add": np.add, "Sum": np.add, "Sub": np.subtract, "Mul": np.multiply,
                      "Div": np.divide, "Pow": np.power, "Max": np.maximum,
                      "Min": np.minimum}[op]
                v = vals[0]
                for x in vals[1:]:       # Sum, Max and Min take any number of operands
                    v = fn(v, x)
                if op == "Div" and np.issubdtype(vals[0].dtype, np.integer):
                    v = np.floor_divide(vals[0], vals[1])
            elif op == "Reshape":
                tgt = [int(x) for x in vals[1]]
                tgt = [vals[0].shape[i] if d == 0 else d for i, d in enumerate(tgt)]
                v = vals[0].reshape(tgt)
            elif op == "Slice":
                v = self._slice_value(vals)
            elif op == "Transpose":
                v = np.transpose(vals[0], a.get("perm"))
            elif op == "ConstantOfShape":
                fill = a.get("value")
                from onnx import numpy_helper
                f = numpy_helper.to_array(fill) if fill is not None else np.zeros(1)
                v = np.full([int(x) for x in vals[0]], f.reshape(-1)[0], f.dtype)
            elif op == "Range":
                v = np.arange(vals[0].item(), vals[1].item(), vals[2].item())
            elif op == "DequantizeLinear":   # quantised initializers (QDQ models)
                x = vals[0].astype(np.float64)
                scale = np.asarray(vals[1], np.float64)
                zp = np.asarray(vals[2], np.float64) if len(vals) > 2 and \
                    vals[2] is not None else np.zeros_like(scale)
                if scale.ndim == 1 and scale.size > 1:
                    shape = [1] * x.ndim
                    shape[int(a.get("axis", 1)) % x.ndim] = scale.size
                    scale, zp = scale.reshape(shape), zp.reshape(shape)
                v = ((x - zp) * scale).astype(np.float32)
        except Exception:
            v = None
        for j, out in enumerate(node.output):
            if j == 0 and v is not None:
                self._set_const(out, np.asarray(v))
            elif out:
                self._set_const(out, None, self.inferred.get(out, ()))

    @staticmethod
    def _slice_value(vals: list[Any]) -> np.ndarray:
        data, starts, ends = vals[0], vals[1], vals[2]
        axes = vals[3] if len(vals) > 3 and vals[3] is not None else range(len(starts))
        steps = vals[4] if len(vals) > 4 and vals[4] is not None else [1] * len(starts)
        idx = [slice(None)] * data.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
            idx[int(ax)] = slice(int(s), int(e), int(st))
        return data[tuple(idx)]

    # ---- nodes --------------------------------------------------------------------------
    def run(self) -> Workload:
        self._initializers()
        self._inputs()
        self._shape_inference()
        self.readers: dict[str, int] = {}
        for node in self.g.node:
            for i in node.input:
                self.readers[i] = self.readers.get(i, 0) + 1
        for o in self.g.output:
            self.readers[o.name] = self.readers.get(o.name, 0) + 1
        for idx, node in enumerate(self.g.node):
            op = node.op_type
            if node.domain not in ("", "ai.onnx", "com.microsoft") and op not in SUPPORTED_OPS:
                raise WorkloadError(f"{self.path}: unsupported ONNX op {node.domain}.{op} "
                                    f"(node {node.name or '?'!r})")
            if op == "Constant":
                self._constant(node)
                continue
            if op == "Shape":
                x = node.input[0]
                sh = self.b.shape(self.acts[x]) if x in self.acts else self.const_shapes[x]
                self._set_const(node.output[0], np.array(sh, np.int64))
                continue
            data_inputs = [i for i in node.input if i]
            if data_inputs and all(self._is_const(i) for i in data_inputs) and \
                    op not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
                self._fold(node)
                continue
            if op not in SUPPORTED_OPS:
                raise WorkloadError(f"{self.path}: unsupported ONNX op {op} "
                                    f"(node {node.name or '?'!r})")
            self._node(node, idx)
        outs = [o.name for o in self.g.output]
        missing = [o for o in outs if o not in self.acts]
        if missing:
            raise WorkloadError(f"{self.path}: graph outputs {missing} are not computed "
                                f"from the inputs")
        return self.b.build(source=str(self.path), batch=self.batch, seq=self.seq,
                            absent_weights=self.absent_weights)

    def _constant(self, node: Any) -> None:
        from onnx import numpy_helper
        a = self._attrs(node)
        if "value" in a:
            v = numpy_helper.to_array(a["value"])
        elif "value_float" in a:
            v = np.array(a["value_float"], np.float32)
        elif "value_floats" in a:
            v = np.array(a["value_floats"], np.float32)
        elif "value_int" in a:
            v = np.array(a["value_int"], np.int64)
        elif "value_ints" in a:
            v = np.array(a["value_ints"], np.int64)
        else:
            raise self._err(node, f"unsupported Constant attributes {sorted(a)}")
        self._set_const(node.output[0], v)

    def _add(self, node: Any, idx: int, kind: str, inputs: list[str],
             data: np.ndarray | None = None, **attrs: Any) -> str:
        name = self._name(node, idx)
        return self._finish(node, self.b.add(kind, inputs, name, data=data, **attrs))

    def _finish(self, node: Any, out: str) -> str:
        """Layer ``out`` computes the node's first output: checked against ONNX shape
        inference where it gave a shape."""
        self.acts[node.output[0]] = out
        want = self.inferred.get(node.output[0])
        if want is not None and want != self.b.shape(out):
            raise self._err(node, f"output shape {list(self.b.shape(out))} differs from "
                                  f"ONNX shape inference {list(want)}")
        return out

    @staticmethod
    def _auto_pad_mode(a: dict[str, Any]) -> str:
        """The node's ``auto_pad`` (``NOTSET`` when absent)."""
        ap = a.get("auto_pad", b"NOTSET")
        return ap.decode() if isinstance(ap, bytes) else str(ap)

    def _strides_dilations(self, node: Any, a: dict[str, Any], r: int
                           ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A windowed node's ``strides`` and ``dilations`` (default 1), ``r`` values each."""
        s = tuple(int(v) for v in a.get("strides", [1] * r))
        d = tuple(int(v) for v in a.get("dilations", [1] * r))
        if len(s) != r or len(d) != r:
            raise self._err(node, f"strides {list(s)} and dilations {list(d)} must each "
                                  f"have {r} value(s)")
        return s, d

    def _view_2d(self, x: str, name: str) -> str:
        """``x[N, C, L]`` as ``[N, C, 1, L]`` (a free reshape), for the 2-D layers."""
        n, c, length = self.b.shape(x)
        return self.b.add("reshape", [x], f"{name}.to_2d", shape=[n, c, 1, length])

    def _auto_pad(self, node: Any, a: dict[str, Any], hw: tuple[int, int],
                  k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]) -> list[int]:
        ap = self._auto_pad_mode(a)
        if ap in ("NOTSET", ""):
            pads = [int(p) for p in a.get("pads", [0] * 2 * len(hw))]
            if len(pads) != 2 * len(hw):
                raise self._err(node, f"pads {pads} must have {2 * len(hw)} values for "
                                      f"{len(hw)} spatial dimension(s)")
            return pads
        if ap == "VALID":
            return [0] * 2 * len(hw)
        pads_lo, pads_hi = [], []
        for size, kk, ss, dd in zip(hw, k, s, d, strict=True):
            out = -(-size // ss)
            total = max(0, (out - 1) * ss + (kk - 1) * dd + 1 - size)
            lo = total // 2 if ap == "SAME_UPPER" else total - total // 2
            pads_lo.append(lo)
            pads_hi.append(total - lo)
        return pads_lo + pads_hi

    def _node(self, node: Any, idx: int) -> None:
        op = node.op_type
        a = self._attrs(node)
        ins = [i for i in node.input]
        if op in _UNARY:
            extra: dict[str, Any] = {}
            if op in ("Softmax", "LogSoftmax", "LayerNormalization"):
                extra["axis"] = int(a.get("axis", -1))
            elif op == "PRelu":    # the slope: a parameter broadcast over the input
                extra["slope_shape"] = self._slope_shape(node, ins)
            elif op == "LRN":      # across `size` channels; the rest as ONNX defaults it
                extra["size"] = int(a["size"])
                extra.update({k: float(a.get(k, d)) for k, d in
                              (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0))})
            self._add(node, idx, _UNARY[op], [self._act(node, ins[0])], **extra)
        elif op in _BINARY:
            acts = [self._act(node, i) for i in ins if i and not self._is_const(i)]
            consts = [self.const_shapes[i] for i in ins if i and self._is_const(i)]
            cshape = None
            if consts:
                from .ops import broadcast
                try:
                    cshape = list(broadcast(*consts))
                except Exception:
                    raise self._err(node, f"constant operands {consts} do not broadcast") \
                        from None
            if op == "Add" and self._fold_bias(node, ins, acts, consts):
                return
            self._add(node, idx, _BINARY[op], acts, const_shape=cshape)
        elif op == "Conv":
            self._conv(node, idx, a, ins)
        elif op == "ConvTranspose":
            self._conv_transpose(node, idx, a, ins)
        elif op in ("Gemm", "MatMul"):
            self._gemm(node, idx, a, ins)
        elif op in ("MaxPool", "AveragePool"):
            x = self._act(node, ins[0])
            if len(self.b.shape(x)) == 5 and len(a["kernel_shape"]) == 3:
                self._pool3d(node, idx, a, x)
                return
            geo = self._window(node, a, x, tuple(int(v) for v in a["kernel_shape"]))
            self._windowed(node, idx, "maxpool" if op == "MaxPool" else "avgpool", x, None,
                           **geo, ceil_mode=bool(a.get("ceil_mode", 0)))
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            kind = "globalavgpool" if op == "GlobalAveragePool" else "globalmaxpool"
            self._add(node, idx, kind, [self._act(node, ins[0])])
        elif op == "Flatten":
            self._add(node, idx, "flatten", [self._act(node, ins[0])], axis=int(a.get("axis", 1)))
        elif op == "Reshape":
            x = self._act(node, ins[0])
            if ins[1] in self.consts and self.consts[ins[1]] is not None:
                shape = [int(v) for v in self._const(node, ins[1], "shape")]
            else:
                shape = list(self._out_shape(node))
            self._add(node, idx, "reshape", [x], shape=shape,
                      allowzero=bool(a.get("allowzero", 0)))
        elif op == "Transpose":
            perm = a.get("perm")
            self._add(node, idx, "transpose", [self._act(node, ins[0])],
                      perm=None if perm is None else [int(p) for p in perm])
        elif op == "Concat":
            parts = []
            for j, i in enumerate(ins):
                if self._is_const(i):   # a constant part (e.g. a class token)
                    cn = self.b.add("constant", [], f"{self._name(node, idx)}.const{j}",
                                    shape=list(self.const_shapes[i]))
                    parts.append(cn)
                else:
                    parts.append(self._act(node, i))
            self._add(node, idx, "concat", parts, axis=int(a["axis"]))
        elif op == "Split":
            self._split(node, idx, a, ins)
        elif op == "Slice":
            x = self._act(node, ins[0])
            if len(ins) == 1:   # opset < 10: attributes
                starts, ends = list(a["starts"]), list(a["ends"])
                axes = list(a.get("axes", range(len(starts))))
                steps = [1] * len(starts)
            else:
                starts = [int(v) for v in self._const(node, ins[1], "starts")]
                ends = [int(v) for v in self._const(node, ins[2], "ends")]
                axes = [int(v) for v in self._const(node, ins[3], "axes")] \
                    if len(ins) > 3 and ins[3] else list(range(len(starts)))
                steps = [int(v) for v in self._const(node, ins[4], "steps")] \
                    if len(ins) > 4 and ins[4] else [1] * len(starts)
            self._add(node, idx, "slice", [x], starts=starts, ends=ends, axes=axes,
                      steps=steps)
        elif op in ("Squeeze", "Unsqueeze"):
            x = self._act(node, ins[0])
            axes = a.get("axes")
            if axes is None and len(ins) > 1 and ins[1]:
                axes = [int(v) for v in self._const(node, ins[1], "axes")]
            if op == "Unsqueeze" and axes is None:
                raise self._err(node, "Unsqueeze needs axes")
            self._add(node, idx, op.lower(), [x],
                      axes=None if axes is None else [int(v) for v in axes])
        elif op == "Pad":
            x = self._act(node, ins[0])
            pads = a.get("pads")
            if pads is None:
                pads = [int(v) for v in self._const(node, ins[1], "pads")]
            if len(ins) > 3 and ins[3]:
                raise self._err(node, "Pad with axes is not supported")
            self._add(node, idx, "pad", [x], pads=[int(v) for v in pads])
        elif op in ("ReduceMean", "ReduceSum", "ReduceMax"):
            x = self._act(node, ins[0])
            axes = a.get("axes")
            if axes is None and len(ins) > 1 and ins[1]:
                axes = [int(v) for v in self._const(node, ins[1], "axes")]
            self._add(node, idx, op.lower(), [x], axes=axes,
                      keepdims=bool(a.get("keepdims", 1)))
        elif op == "Gather":
            self._gather(node, idx, a, ins)
        elif op == "Expand" or op in _SHAPED:
            x = self._act(node, ins[0])
            self._add(node, idx, "host", [x], op=op, out_shape=list(self._out_shape(node)))
        else:
            raise WorkloadError(f"{self.path}: unsupported ONNX op {op} "
                                f"(node {node.name or '?'!r})")

    def _slope_shape(self, node: Any, ins: list[str]) -> list[int]:
        """PRelu's slope shape, broadcastable to its input the way opset 7+ reads it: a
        per-channel slope ``[C]`` of an older export becomes ``[C, 1, ..., 1]``."""
        x = self.b.shape(self._act(node, ins[0]))
        sl = list(self.const_shapes.get(ins[1], ())) if len(ins) > 1 else []
        if len(sl) == 1 and len(x) > 2 and sl[0] == x[1] and sl[0] not in (1, x[-1]):
            sl = sl + [1] * (len(x) - 2)
        from .ops import broadcast
        try:
            if tuple(broadcast(tuple(x), tuple(sl))) != tuple(x):
                raise ValueError
        except Exception:
            raise self._err(node, f"slope of shape {sl} does not broadcast to the input "
                                  f"{list(x)}") from None
        return sl

    def _fold_bias(self, node: Any, ins: list[str], acts: list[str],
                   consts: list[tuple[int, ...]]) -> bool:
        """``MatMul`` + ``Add`` of a 1-D constant (how exporters write a biased linear
        layer): becomes the linear layer's bias when nothing else reads the product."""
        if len(acts) != 1 or len(consts) != 1:
            return False
        src = next(i for i in ins if i and not self._is_const(i))
        ly = self.b.get_layer(acts[0])
        if ly is None or ly.kind != "linear" or ly.attrs.get("bias") or \
                self.readers.get(src, 0) != 1 or consts[0] != (ly.attrs["out_features"],):
            return False
        ly.attrs["bias"] = True
        self.acts[node.output[0]] = ly.name
        return True

    def _window(self, node: Any, a: dict[str, Any], x: str,
                k: tuple[int, ...]) -> dict[str, Any]:
        """Kernel, stride, dilation and pads of a sliding window over ``x``'s spatial axes,
        as the 2-D layers take them; a 1-D window ``k`` is the 2-D window ``(1, k)``."""
        sp = self.b.shape(x)[2:]
        r = len(k)
        if r not in (1, 2) or len(sp) != r:
            raise self._err(node, f"only 1-D, 2-D and 3-D windows are supported: kernel "
                                  f"{list(k)} over input {list(self.b.shape(x))}")
        s, d = self._strides_dilations(node, a, r)
        pads = self._auto_pad(node, a, sp, k, s, d)  # type: ignore[arg-type]
        if r == 1:
            return {"kernel": (1, k[0]), "stride": (1, s[0]), "dilation": (1, d[0]),
                    "pads": [0, pads[0], 0, pads[1]]}
        return {"kernel": k, "stride": s, "dilation": d, "pads": pads}

    def _windowed(self, node: Any, idx: int, kind: str, x: str, data: np.ndarray | None,
                  **attrs: Any) -> str:
        """A conv/pool layer over ``x``; on a 1-D input ``[N, C, L]`` it runs on the 2-D view
        ``[N, C, 1, L]`` between two reshapes (free: no data moves), as exporters once
        wrote 1-D pooling themselves."""
        shape = self.b.shape(x)
        if len(shape) == 4:
            return self._add(node, idx, kind, [x], data=data, **attrs)
        name = self._name(node, idx)
        y = self.b.shape(self.b.add(kind, [self._view_2d(x, name)], name, data=data, **attrs))
        return self._finish(node, self.b.add("reshape", [name], f"{name}.to_1d",
                                             shape=[y[0], y[1], y[3]]))

    def _conv(self, node: Any, idx: int, a: dict[str, Any], ins: list[str]) -> None:
        x = self._act(node, ins[0])
        if not self._is_const(ins[1]):
            raise self._err(node, "weights must be an initializer")
        wshape = self.const_shapes[ins[1]]
        xs = self.b.shape(x)
        if len(wshape) not in (3, 4, 5) or len(wshape) != len(xs):
            raise self._err(node, f"only 1-D, 2-D and 3-D convolutions are supported (input "
                                  f"{list(xs)}, weight {list(wshape)})")
        if len(xs) == 5:
            self._conv3d(node, idx, a, ins, x, wshape)
            return
        geo = self._window(node, a, x, tuple(int(v) for v in a.get("kernel_shape",
                                                                      wshape[2:])))
        data = self.consts.get(ins[1])
        if data is not None and data.ndim == 3:
            data = data[:, :, None, :]
        self._windowed(node, idx, "conv", x, data, cout=int(wshape[0]), **geo,
                       groups=int(a.get("group", 1)), bias=len(ins) > 2 and bool(ins[2]))

    def _conv3d(self, node: Any, idx: int, a: dict[str, Any], ins: list[str], x: str,
                wshape: tuple[int, ...]) -> None:
        """A 3-D ``Conv`` (video, volumetric networks) as the array runs it: the host
        unfolds the input (``Im2Col``: ``Cin*KD*KH*KW`` channels per output voxel, input
        channel outer as in the ONNX weight, the voxels as a ``OD x OH*OW`` image) and a 1x1
        ``conv`` with the same groups computes every output voxel, with the convolution's
        exact MACs (a depthwise one is packed like a 2-D depthwise conv); a free reshape
        gives ``[N, Cout, OD, OH, OW]``. The array has no 3-D image loader, so the unfolded
        rows are what it reads from DRAM."""
        xs = self.b.shape(x)
        g = int(a.get("group", 1))
        if g < 1 or xs[1] % g or wshape[0] % g or wshape[1] * g != xs[1]:
            raise self._err(node, f"weight {list(wshape)} with group={g} does not fit "
                                  f"input {list(xs)}")
        k = tuple(int(v) for v in a.get("kernel_shape", wshape[2:]))
        if len(k) != 3:
            raise self._err(node, f"kernel {list(k)} must have 3 values")
        s, d = self._strides_dilations(node, a, 3)
        pads = self._auto_pad(node, a, xs[2:], k, s, d)  # type: ignore[arg-type]
        from .ops import conv_out
        out = [conv_out(xs[2 + i], k[i], s[i], pads[i], pads[i + 3], d[i]) for i in range(3)]
        if min(out) < 1:
            raise self._err(node, f"kernel {list(k)} does not fit input {list(xs)}")
        cout = int(wshape[0])
        name = self._name(node, idx)
        cols = self.b.add("host", [x], f"{name}.im2col", op="Im2Col",
                          out_shape=[xs[0], xs[1] * int(np.prod(k)), out[0], out[1] * out[2]],
                          kernel=list(k), stride=list(s), dilation=list(d), pads=pads)
        w = self.consts.get(ins[1])
        self.b.add("conv", [cols], name, data=None if w is None else w.reshape(cout, -1, 1, 1),
                   cout=cout, kernel=(1, 1), groups=g, bias=len(ins) > 2 and bool(ins[2]))
        self._finish(node, self.b.add("reshape", [name], f"{name}.to_3d",
                                      shape=[xs[0], cout, *out]))

    def _pool3d(self, node: Any, idx: int, a: dict[str, Any], x: str) -> None:
        """3-D MaxPool/AveragePool: host work, shaped by ONNX shape inference."""
        attrs = {k: [int(v) for v in a[k]] for k in ("kernel_shape", "strides", "pads",
                                                      "dilations") if k in a}
        self._add(node, idx, "host", [x], op=node.op_type,
                  out_shape=list(self._out_shape(node)),
                  ceil_mode=bool(a.get("ceil_mode", 0)), **attrs)

    def _conv_transpose(self, node: Any, idx: int, a: dict[str, Any], ins: list[str]) -> None:
        """``ConvTranspose`` as a GEMM and a scatter: a 1x1 ``conv`` with the same groups
        and ``Cout*KH*KW`` output channels (the ONNX weight ``[Cin, Cout/group, KH, KW]``
        read as that convolution's ``W[Cin/group, Cout/group*KH*KW]`` per group) gives every
        input pixel's contributions to the output, which the host adds into place
        (``Col2Im``, with the bias). Its MACs are the transposed convolution's,
        ``N*H*W*Cin*Cout*KH*KW/group``; N:M masks the weight along ``Cin``, the reduction
        axis. A 1-D one runs on the ``[N, C, 1, L]`` view."""
        x = self._act(node, ins[0])
        if not self._is_const(ins[1]):
            raise self._err(node, "weights must be an initializer")
        xs, wshape = self.b.shape(x), self.const_shapes[ins[1]]
        r = len(xs) - 2
        if r not in (1, 2) or len(wshape) != len(xs):
            raise self._err(node, f"only 1-D and 2-D transposed convolutions are supported "
                                  f"(input {list(xs)}, weight {list(wshape)})")
        g = int(a.get("group", 1))
        cin, cout = int(wshape[0]), int(wshape[1]) * g
        if g < 1 or cin != xs[1] or cin % g:
            raise self._err(node, f"weight {list(wshape)} with group={g} does not fit "
                                  f"input {list(xs)}")
        k = [int(v) for v in a.get("kernel_shape", wshape[2:])]
        opad = [int(v) for v in a.get("output_padding", [0] * r)]
        if len(k) != r or len(opad) != r:
            raise self._err(node, f"kernel {k} and output_padding {opad} must each have "
                                  f"{r} value(s)")
        s, d = (list(v) for v in self._strides_dilations(node, a, r))
        ap = self._auto_pad_mode(a)
        full = [s[i] * (xs[2 + i] - 1) + opad[i] + (k[i] - 1) * d[i] + 1 for i in range(r)]
        if ap in ("NOTSET", "", "VALID") and "output_shape" not in a:
            pads = [0] * 2 * r if ap == "VALID" else \
                [int(v) for v in a.get("pads", [0] * 2 * r)]
            out = [full[i] - pads[i] - pads[i + r] for i in range(r)]
            begin = pads[:r]
        else:      # the output shape is given (or SAME_*): ONNX splits the total padding
            # as the operator's specification (and onnxruntime) do; ONNX's reference
            # evaluator pads nothing when output_shape is given, and its shape inference
            # clips a negative total padding to 0
            out = [int(v) for v in a["output_shape"]][-r:] if "output_shape" in a else \
                [xs[2 + i] * s[i] for i in range(r)]
            total = [f - o for f, o in zip(full, out, strict=False)]
            begin = [t // 2 if ap == "SAME_UPPER" else t - t // 2 for t in total]
        if len(out) != r or min(out) < 1:
            raise self._err(node, f"kernel {k}, strides {s} and pads give no output "
                                  f"{out} for input {list(xs)}")
        name = self._name(node, idx)
        kk = int(np.prod(k))
        if r == 1:
            x = self._view_2d(x, name)
        w = self.consts.get(ins[1])
        if w is not None:     # [Cin, Cout/g, *k] -> [Cout*kk, Cin/g, 1, 1], group-major
            w = w.reshape(g, cin // g, cout // g * kk).transpose(0, 2, 1) \
                .reshape(cout * kk, cin // g, 1, 1)
        self.b.add("conv", [x], name, data=w, cout=cout * kk, kernel=(1, 1), groups=g,
                   bias=False)
        self._finish(node, self.b.add("host", [name], f"{name}.col2im", op="Col2Im",
                                      out_shape=[xs[0], cout, *out], kernel=k, stride=s,
                                      dilation=d, pads_begin=begin,
                                      bias=len(ins) > 2 and bool(ins[2])))

    def _gemm(self, node: Any, idx: int, a: dict[str, Any], ins: list[str]) -> None:
        op = node.op_type
        if self._is_const(ins[0]):
            raise self._err(node, "a constant first operand is not supported")
        x = self._act(node, ins[0])
        if op == "Gemm" and int(a.get("transA", 0)):
            raise self._err(node, "transA=1 is not supported")
        trans_b = op == "Gemm" and bool(int(a.get("transB", 0)))
        if self._is_const(ins[1]):
            shape = self.const_shapes[ins[1]]
            if len(shape) != 2:
                raise self._err(node, f"a constant second operand must be 2-D, not "
                                      f"{list(shape)}")
            k, q = (shape[1], shape[0]) if trans_b else shape
            w = self.consts.get(ins[1])
            if w is not None and trans_b:
                w = w.T
            bias = op == "Gemm" and len(ins) > 2 and bool(ins[2])
            self._add(node, idx, "linear", [x], data=w, in_features=int(k),
                      out_features=int(q), bias=bias)
        else:
            self._add(node, idx, "matmul", [x, self._act(node, ins[1])], transpose_b=trans_b)

    def _split(self, node: Any, idx: int, a: dict[str, Any], ins: list[str]) -> None:
        x = self._act(node, ins[0])
        shape = self.b.shape(x)
        ax = int(a.get("axis", 0)) % len(shape)
        n = len(node.output)
        sizes = a.get("split")
        if sizes is None and len(ins) > 1 and ins[1]:
            sizes = [int(v) for v in self._const(node, ins[1], "split")]
        if sizes is None:
            per = -(-shape[ax] // n)
            sizes = [min(per, shape[ax] - j * per) for j in range(n)]
        if sum(sizes) != shape[ax] or len(sizes) != n:
            raise self._err(node, f"split sizes {list(sizes)} do not cover axis {ax} of "
                                  f"{list(shape)} in {n} parts")
        base = self._name(node, idx)
        start = 0
        for j, (out, sz) in enumerate(zip(node.output, sizes, strict=True)):
            name = self.b.add("slice", [x], f"{base}.{j}", axes=[ax], starts=[start],
                              ends=[start + int(sz)])
            self.acts[out] = name
            start += int(sz)

    def _gather(self, node: Any, idx: int, a: dict[str, Any], ins: list[str]) -> None:
        axis = int(a.get("axis", 0))
        if self._is_const(ins[0]):     # embedding table lookup
            table = self.const_shapes[ins[0]]
            if axis != 0 or len(table) != 2:
                raise self._err(node, f"a constant table must be 2-D gathered on axis 0, "
                                      f"not {list(table)} axis {axis}")
            self._add(node, idx, "gather", [self._act(node, ins[1])], num=int(table[0]),
                      dim=int(table[1]))
            return
        x = self._act(node, ins[0])
        shape = self.b.shape(x)
        ax = axis % len(shape)
        if self._is_const(ins[1]):
            ish = self.const_shapes[ins[1]]
            out = (*shape[:ax], *ish, *shape[ax + 1:])
            self._add(node, idx, "host", [x], op="Gather", out_shape=list(out))
        else:
            raise self._err(node, "gathering an activation with computed indices is not "
                                  "supported")


def import_onnx(path: str | Path, batch: int = 1, seq: int | None = None) -> Workload:
    """Read an ONNX model as a :class:`Workload` (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file. External weight data is read from the file's directory when
        present; absent weights are synthesised.
    batch : int
        Value of a symbolic first input dimension.
    seq : int, optional
        Value of any other symbolic input dimension.

    Returns
    -------
    Workload
        ``attrs["absent_weights"]`` counts initializers whose external data was missing.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise WorkloadError(f"{path}: batch must be an integer >= 1, not {batch!r}")
    imp = _Importer(Path(path), batch, seq)
    return imp.run()
