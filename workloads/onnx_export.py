"""Export a (forward) :class:`Workload` to an ONNX model that
:func:`sparsa.workloads.onnx_import.import_onnx` reads back to the same layers.

Each layer becomes one ONNX node named after it (``conv`` -> Conv, ``linear`` -> MatMul
(+ Add of the bias), ``matmul`` -> MatMul (a Transpose first for ``transpose_b``), pooling,
norms, element-wise ops, Reshape/Transpose/Concat/Slice/Gather...; an imported
``ConvTranspose``'s host scatter -> Reshape + Col2Im (+ Add of the bias)). Opset 20 (for
Gelu). Other host layers (``Resize``, a 3-D convolution's ``Im2Col``...) have no export.

Weights: by default only their shapes are written - each weight, bias, norm parameter and
constant operand is an initializer whose data is declared *external* in
``<stem>.weights.bin`` and never written, the "absent external data" case the importer
handles by synthesising weights (a ResNet-50 file is then ~40 KB). With
``with_weights=True`` the layers' int8 GEMM weights (as floats in the ONNX layout) and zero
biases/constants are written to that file, so a re-import quantises back to the same int8
values.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sparsa.fileio import remove_stale_temps, temp_dir

from .errors import WorkloadError
from .graph import Layer, Workload

__all__ = ["export_onnx"]

OPSET = 20

_SIMPLE = {"relu": "Relu", "gelu": "Gelu", "erf": "Erf", "sigmoid": "Sigmoid",
           "tanh": "Tanh", "identity": "Identity", "dropout": "Identity", "neg": "Neg",
           "sqrt": "Sqrt", "exp": "Exp", "log": "Log", "abs": "Abs",
           "reciprocal": "Reciprocal", "hardswish": "HardSwish", "hardsigmoid": "HardSigmoid",
           "leakyrelu": "LeakyRelu", "globalavgpool": "GlobalAveragePool",
           "globalmaxpool": "GlobalMaxPool", "elu": "Elu", "selu": "Selu", "celu": "Celu",
           "softplus": "Softplus", "softsign": "Softsign", "mish": "Mish", "sign": "Sign",
           "shrink": "Shrink", "thresholdedrelu": "ThresholdedRelu", "floor": "Floor",
           "ceil": "Ceil", "round": "Round"}
# (comparisons and logic, whose tensors are bool or int in ONNX, have no export: every
# exported tensor is float)
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
           "max": "Max", "min": "Min"}


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def _pads4(v: Any) -> list[int]:
    if isinstance(v, int):
        return [v] * 4
    t = [int(x) for x in v]
    return t * 2 if len(t) == 2 else t


class _Exporter:
    def __init__(self, wl: Workload, with_weights: bool, ext: str) -> None:
        from onnx import TensorProto, helper, numpy_helper
        self.h, self.T, self.nh = helper, TensorProto, numpy_helper
        self.wl, self.with_weights, self.ext = wl, with_weights, ext
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def param(self, name: str, shape: tuple[int, ...], value: np.ndarray | None = None) -> str:
        """A float initializer: real data with ``with_weights``, else external and absent."""
        if self.with_weights:
            v = np.zeros(shape, np.float32) if value is None else value.astype(np.float32)
            self.inits.append(self.nh.from_array(v.reshape(shape), name))
        else:
            t = self.T(name=name, data_type=self.T.FLOAT, dims=list(shape))
            t.data_location = self.T.EXTERNAL
            e = t.external_data.add()
            e.key, e.value = "location", self.ext
            self.inits.append(t)
        return name

    def ints(self, name: str, values: Any) -> str:
        self.inits.append(self.nh.from_array(np.asarray(values, np.int64), name))
        return name

    def node(self, op: str, inputs: list[str], out: str, name: str, **attrs: Any) -> str:
        self.nodes.append(self.h.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def layer(self, ly: Layer) -> None:
        k, a, n, ins = ly.kind, ly.attrs, ly.name, list(ly.inputs)
        if k == "conv":
            w = None
            if self.with_weights:
                d = ly.gemm()
                cout, cg, kh, kw = ly.weight  # type: ignore[misc]
                q = ly.gemm_weight(stacked=True).astype(np.float32)
                # [g, kh*kw*cg, og] -> [Cout, Cin/g, KH, KW]
                w = q.reshape(d.groups, kh, kw, cg, d.Q).transpose(0, 4, 3, 1, 2) \
                    .reshape(cout, cg, kh, kw)
            wn = self.param(f"{n}.weight", tuple(ly.weight or ()), w)
            args = [ins[0], wn]
            if a.get("bias"):
                args.append(self.param(f"{n}.bias", (int(a["cout"]),)))
            self.node("Conv", args, n, n, kernel_shape=_pair(a["kernel"]),
                      strides=_pair(a.get("stride", 1)), pads=_pads4(a.get("pads", 0)),
                      dilations=_pair(a.get("dilation", 1)), group=int(a.get("groups", 1)))
        elif k == "linear":
            w = ly.gemm_weight().astype(np.float32) if self.with_weights else None
            wn = self.param(f"{n}.weight", tuple(ly.weight or ()), w)
            if a.get("bias"):
                mm = self.node("MatMul", [ins[0], wn], f"{n}.matmul", n)
                self.node("Add", [mm, self.param(f"{n}.bias", (int(a["out_features"]),))],
                          n, f"{n}.bias_add")
            else:
                self.node("MatMul", [ins[0], wn], n, n)
        elif k == "matmul":
            b = ins[1]
            if a.get("transpose_b"):
                r = len(self.wl.graph.nodes[b]["shape"])
                perm = list(range(r - 2)) + [r - 1, r - 2]
                b = self.node("Transpose", [b], f"{n}.bT", f"{n}.transpose_b", perm=perm)
            self.node("MatMul", [ins[0], b], n, n)
        elif k in _SIMPLE:
            self.node(_SIMPLE[k], ins[:1], n, n)
        elif k == "prelu":
            self.node("PRelu", [ins[0], self.param(f"{n}.slope", tuple(
                int(x) for x in a.get("slope_shape", [1])))], n, n)
        elif k == "lrn":
            self.node("LRN", ins[:1], n, n, size=int(a["size"]),
                      **{x: float(a[x]) for x in ("alpha", "beta", "bias") if x in a})
        elif k == "clip":
            lo = self.nh.from_array(np.array(a.get("min", 0.0), np.float32), f"{n}.min")
            hi = self.nh.from_array(np.array(a.get("max", 6.0), np.float32), f"{n}.max")
            self.inits += [lo, hi]
            self.node("Clip", [ins[0], lo.name, hi.name], n, n)
        elif k in _BINARY:
            args = list(ins)
            if a.get("const_shape") is not None:
                args.append(self.param(f"{n}.const", tuple(int(x) for x in a["const_shape"])))
            # ONNX Add is binary; an n-ary add (an imported Sum) goes back as Sum
            self.node("Sum" if k == "add" and len(args) > 2 else _BINARY[k], args, n, n)
        elif k in ("softmax", "logsoftmax"):
            self.node("Softmax" if k == "softmax" else "LogSoftmax", ins, n, n,
                      axis=int(a.get("axis", -1)))
        elif k == "layernorm":
            ax = int(a.get("axis", -1))
            shape = ly.out_shape
            norm = tuple(shape[ax:]) if ax >= 0 else tuple(shape[len(shape) + ax:])
            self.node("LayerNormalization", [ins[0], self.param(f"{n}.scale", norm),
                                             self.param(f"{n}.bias_", norm)], n, n, axis=ax)
        elif k == "batchnorm":
            c = (ly.out_shape[1],)
            self.node("BatchNormalization",
                      [ins[0], *(self.param(f"{n}.{s}", c) for s in ("scale", "b", "mean",
                                                                      "var"))], n, n)
        elif k in ("maxpool", "avgpool"):
            extra = {"dilations": _pair(a.get("dilation", 1))} if k == "maxpool" else {}
            self.node("MaxPool" if k == "maxpool" else "AveragePool", ins, n, n,
                      kernel_shape=_pair(a["kernel"]),
                      strides=_pair(a.get("stride", a["kernel"])),
                      pads=_pads4(a.get("pads", 0)), ceil_mode=int(bool(a.get("ceil_mode"))),
                      **extra)
        elif k == "flatten":
            self.node("Flatten", ins, n, n, axis=int(a.get("axis", 1)))
        elif k == "reshape":
            self.node("Reshape", [ins[0], self.ints(f"{n}.shape", list(ly.out_shape))], n, n)
        elif k == "transpose":
            perm = a.get("perm")
            kw = {} if perm is None else {"perm": [int(p) for p in perm]}
            self.node("Transpose", ins, n, n, **kw)
        elif k == "concat":
            self.node("Concat", ins, n, n, axis=int(a.get("axis", 0)))
        elif k == "slice":
            starts = list(a["starts"])
            args = [ins[0], self.ints(f"{n}.starts", starts), self.ints(f"{n}.ends", a["ends"]),
                    self.ints(f"{n}.axes", a.get("axes") or list(range(len(starts)))),
                    self.ints(f"{n}.steps", a.get("steps") or [1] * len(starts))]
            self.node("Slice", args, n, n)
        elif k == "gather":
            table = self.param(f"{n}.table", (int(a.get("num", 1)), int(a["dim"])))
            self.node("Gather", [table, ins[0]], n, n, axis=0)
        elif k == "host" and a.get("op") == "Col2Im":
            self._col2im(ly)
        elif k == "constant":
            self.inits.append(self.nh.from_array(
                np.zeros(ly.out_shape, np.float32), n) if math.prod(ly.out_shape) <= 65536
                else self._ext_const(n, ly.out_shape))
        else:
            raise WorkloadError(f"layer {n!r}: op kind {k!r} has no ONNX export")

    def _col2im(self, ly: Layer) -> None:
        """A transposed convolution's host scatter (an imported ``ConvTranspose``) as ONNX
        ``Col2Im`` on the ``[N, Cout*prod(kernel), pixels]`` view of its 1x1 conv's output,
        and the bias; the end pads are whatever makes ONNX's block count the input's
        pixels (an ``output_padding`` is zeros there)."""
        a, n, x = ly.attrs, ly.name, ly.inputs[0]
        src = ly.in_shapes[0]
        k, s, d, begin = (list(a[f]) for f in ("kernel", "stride", "dilation", "pads_begin"))
        r = len(k)
        sp_in = src[len(src) - r:]
        nb, cout, *out = ly.out_shape
        if min(begin) < 0:
            raise WorkloadError(f"layer {n!r}: Col2Im with negative begin pads {begin} has no "
                                f"ONNX export")
        end = [max(0, s[i] * (sp_in[i] - 1) + d[i] * (k[i] - 1) + 1 - out[i] - begin[i])
               for i in range(r)]
        cols = self.node("Reshape", [x, self.ints(f"{n}.cols_shape", [nb, src[1],
                                                                      math.prod(sp_in)])],
                         f"{n}.cols", f"{n}.cols")
        y = self.node("Col2Im", [cols, self.ints(f"{n}.image_shape", out),
                                 self.ints(f"{n}.block_shape", k)],
                      n if not a.get("bias") else f"{n}.scatter", f"{n}.col2im",
                      strides=s, dilations=d, pads=begin + end)
        if a.get("bias"):
            self.node("Add", [y, self.param(f"{n}.bias", (cout, *[1] * r))], n, n)

    def _ext_const(self, name: str, shape: tuple[int, ...]) -> Any:
        self.param(name, shape)
        return self.inits.pop()

    def model(self) -> Any:
        h = self.h
        inputs = []
        for name, shape in self.wl.inputs.items():
            ints = any(self.wl.graph.nodes[s]["kind"] == "gather"
                       for s in self.wl.graph.successors(name))
            inputs.append(h.make_tensor_value_info(
                name, self.T.INT64 if ints else self.T.FLOAT, list(shape)))
        for ly in self.wl.layers():
            self.layer(ly)
        outputs = [h.make_tensor_value_info(o, self.T.FLOAT, list(self.wl.layer(o).out_shape))
                   for o in self.wl.outputs()]
        g = h.make_graph(self.nodes, self.wl.name, inputs, outputs, self.inits)
        return h.make_model(g, opset_imports=[h.make_opsetid("", OPSET)],
                            producer_name="sparsa")


def export_onnx(workload: Workload, path: str | Path, with_weights: bool = False) -> Path:
    """Write ``workload`` as an ONNX model (atomically; see the module docstring).

    Parameters
    ----------
    workload : Workload
        A forward workload (not a training expansion).
    path : str or Path
        The ``.onnx`` file; weights (``with_weights``) go to ``<stem>.weights.bin`` next
        to it.
    with_weights : bool
        Write weight data; by default only shapes (external data declared, absent).

    Returns
    -------
    Path
    """
    import onnx
    out = Path(path)
    if workload.attrs.get("training"):
        raise WorkloadError("export the forward workload, not its training expansion")
    ext = f"{out.stem}.weights.bin"
    model = _Exporter(workload, with_weights, ext).model()
    # Both files are written in a private temp folder next to ``out`` and renamed into place
    # (weights first): a failed or killed export leaves the old files or none, and onnx
    # refuses to write external data over an existing file (a re-export).
    tmpdir = temp_dir(out)
    remove_stale_temps(out.parent, lambda name: name == out.name)   # a killed export's
    what = repr(str(out))     # the file being written, for the error message
    try:
        tmpdir.mkdir()
        tmp = tmpdir / out.name
        if with_weights:
            # mark the large tensors ourselves: onnx.save(save_as_external_data=True) refuses
            # when a file named like ``ext`` exists in the *current* directory
            from onnx.external_data_helper import set_external_data
            for t in model.graph.initializer:
                if t.HasField("raw_data") and sys.getsizeof(t.raw_data) >= 1024:
                    set_external_data(t, ext)
            onnx.save(model, str(tmp))
            if (tmpdir / ext).exists():     # absent when every tensor is under 1 KiB
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmpdir / ext, 0o666 & ~umask)     # onnx creates it 0600
                what = f"{str(out.with_name(ext))!r} (the weights of {str(out)!r})"
                os.replace(tmpdir / ext, out.with_name(ext))
                what = repr(str(out))
        else:
            onnx.save(model, str(tmp))
        os.replace(tmp, out)
    except OSError as e:
        raise WorkloadError(f"cannot write {what}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmpdir)
    return out
