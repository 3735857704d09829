"""1-D convolutions and pooling, and transposed convolutions, imported from ONNX.

A 1-D ``Conv``/``MaxPool``/``AveragePool`` becomes the 2-D layer on the ``[N, C, 1, L]``
view between two reshapes; a ``ConvTranspose`` becomes a ``linear`` layer on the
channels-last input followed by a host ``Col2Im``. These tests evaluate the imported
layers in floating point (2-D ops through ONNX's own reference evaluator, ``Col2Im`` with
numpy) and compare with what ONNX computes for the original model: the PyTorch exports
shipped in the onnx wheel (their recorded outputs) and models built here (ONNX's
reference evaluator on the original graph).
"""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from sparsa.workloads import WorkloadError, load_workload

CONVERTED = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data",
                         "pytorch-converted")


def _one_node(op: str, inputs: dict[str, np.ndarray], **attrs) -> np.ndarray:
    """Run one ONNX op with ONNX's reference evaluator."""
    node = helper.make_node(op, list(inputs), ["y"], **attrs)
    vis = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
           for k, v in inputs.items()]
    g = helper.make_graph([node], "g", vis,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return ReferenceEvaluator(m).run(None, inputs)[0]


def col2im(cols: np.ndarray, ly) -> np.ndarray:
    """The host ``Col2Im`` of an imported ``ConvTranspose``: ``cols[N, Cout*prod(kernel),
    *spatial_in]`` (a 1-D input as ``1 x L``) scattered and added into ``[N, Cout, *out]``
    (then cropped by the begin pads), written independently of ONNX."""
    a = ly.attrs
    n, cout, *out = ly.out_shape
    k, s, d, begin = a["kernel"], a["stride"], a["dilation"], a["pads_begin"]
    r = len(k)
    sp_in = cols.shape[-r:]
    cols = cols.reshape(n, cout, *k, *sp_in)
    margin = [max(0, -b) for b in begin]       # a negative begin pad: zeros before
    full = [s[i] * (sp_in[i] - 1) + d[i] * (k[i] - 1) + 1 for i in range(r)]
    canvas = [margin[i] + max(full[i], begin[i] + out[i]) for i in range(r)]
    y = np.zeros((n, cout, *canvas), np.float64)
    for off in itertools.product(*(range(kk) for kk in k)):
        idx = tuple(slice(margin[i] + o * d[i], margin[i] + o * d[i] + s[i] * (sp_in[i] - 1)
                          + 1, s[i]) for i, o in enumerate(off))
        y[(slice(None), slice(None), *idx)] += cols[(slice(None), slice(None), *off)]
    crop = tuple(slice(margin[i] + begin[i], margin[i] + begin[i] + out[i]) for i in range(r))
    return y[(slice(None), slice(None), *crop)]


def im2col3d(x: np.ndarray, ly) -> np.ndarray:
    """The host ``Im2Col`` of an imported 3-D ``Conv``: ``Cin*KD*KH*KW`` channels (input
    channel outer, the ONNX weight's order) per output voxel, the voxels as an ``OD x
    OH*OW`` image, written independently of ONNX."""
    a = ly.attrs
    k, s, d, p = a["kernel"], a["stride"], a["dilation"], a["pads"]
    n, c = x.shape[:2]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p[i], p[i + 3]) for i in range(3)])
    out = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(3)]
    cols = np.empty((n, c, *k, *out))
    for off in itertools.product(*(range(kk) for kk in k)):
        sl = tuple(slice(o * d[i], o * d[i] + s[i] * (out[i] - 1) + 1, s[i])
                   for i, o in enumerate(off))
        cols[(slice(None), slice(None), *off)] = xp[(slice(None), slice(None), *sl)]
    return cols.reshape(*ly.out_shape)


def run_float(wl, feeds: dict[str, np.ndarray], biases: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate an imported workload in floating point, layer by layer as imported."""
    v = dict(feeds)
    for ly in wl.layers():
        x = v[ly.inputs[0]] if ly.inputs else None
        a = ly.attrs
        if ly.kind == "reshape":
            y = x.reshape(ly.out_shape)
        elif ly.kind == "transpose":
            y = np.transpose(x, a["perm"])
        elif ly.kind == "linear":
            y = x @ ly.data.astype(np.float64)
        elif ly.kind in ("conv", "maxpool", "avgpool"):
            a = {"stride": (1, 1), "pads": [0] * 4, "dilation": (1, 1), **a}
            kh, kw = a["kernel"]
            attrs = dict(kernel_shape=[kh, kw], strides=list(a["stride"]),
                         pads=list(a["pads"]), dilations=list(a["dilation"]))
            if ly.kind == "conv":
                w = ly.data.astype(np.float32)
                assert w.shape[2:] == (kh, kw), (ly.name, w.shape)
                y = _one_node("Conv", {"x": x.astype(np.float32), "w": w},
                              group=a["groups"], **attrs)
            else:
                if ly.kind == "avgpool":
                    attrs.pop("dilations")
                y = _one_node("MaxPool" if ly.kind == "maxpool" else "AveragePool",
                              {"x": x.astype(np.float32)}, ceil_mode=int(a["ceil_mode"]),
                              **attrs)
        elif ly.kind == "host" and a["op"] == "Col2Im":
            y = col2im(x, ly)
        elif ly.kind == "host" and a["op"] == "Im2Col":
            y = im2col3d(x, ly)
        elif ly.kind == "host" and a["op"] in ("MaxPool", "AveragePool"):
            attrs = {k: a[k] for k in ("kernel_shape", "strides", "pads", "dilations")
                     if k in a}
            y = _one_node(a["op"], {"x": x.astype(np.float32)},
                          ceil_mode=int(a["ceil_mode"]), **attrs)
        elif ly.kind == "relu":
            y = np.maximum(x, 0)
        else:
            raise AssertionError(f"no float evaluation for {ly.kind}")
        b = biases.get(ly.name)
        if b is not None:
            y = y + b.reshape(1, -1, *([1] * (y.ndim - 2)))
        assert y.shape == ly.out_shape, (ly.name, y.shape, ly.out_shape)
        v[ly.name] = y
    return v[wl.layers()[-1].name]


def _pb(path: str) -> np.ndarray:
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def _biases(model: onnx.ModelProto, wl) -> dict[str, np.ndarray]:
    """Bias initializers of the Conv/ConvTranspose nodes, keyed by the layer that adds them
    (the conv itself, or a transposed convolution's Col2Im)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    names = {ly.name for ly in wl.layers()}
    conv_layers = [ly for ly in wl.layers() if
                   (ly.kind == "conv" and f"{ly.name}.col2im" not in names and
                    f"{ly.name}.to_3d" not in names) or
                   (ly.kind == "host" and ly.attrs.get("op") == "Col2Im") or
                   ly.name.endswith(".to_3d")]
    nodes = [nd for nd in model.graph.node if nd.op_type in ("Conv", "ConvTranspose")]
    for nd, ly in zip(nodes, conv_layers, strict=True):
        if len(nd.input) > 2 and nd.input[2]:
            out[ly.name] = inits[nd.input[2]].astype(np.float64)
    return out


@pytest.mark.parametrize("case", ["Conv1d", "Conv1d_dilated", "Conv1d_groups", "Conv1d_pad1",
                                  "Conv1d_pad1size1", "Conv1d_pad2", "Conv1d_pad2size1",
                                  "Conv1d_stride", "ConvTranspose2d",
                                  "ConvTranspose2d_no_bias", "MaxPool1d", "MaxPool1d_stride",
                                  "Conv3d", "Conv3d_dilated", "Conv3d_dilated_strided",
                                  "Conv3d_groups",
                                  "Conv3d_no_bias", "Conv3d_stride", "Conv3d_stride_padding",
                                  "AvgPool3d", "AvgPool3d_stride",
                                  "AvgPool3d_stride1_pad0_gpu_input", "MaxPool3d",
                                  "MaxPool3d_stride", "MaxPool3d_stride_padding",
                                  "pytorch-operator/test_operator_convtranspose"])
def test_pytorch_exports_compute_what_onnx_recorded(case):
    """The imported layers, evaluated in floating point, give the outputs recorded with the
    onnx wheel's PyTorch exports (1-D convolutions with padding, stride, dilation and
    groups; transposed 2-D convolutions with stride, pads and output_padding; 3-D
    convolutions and pooling)."""
    d = os.path.join(os.path.dirname(CONVERTED), case) if "/" in case else \
        os.path.join(CONVERTED, f"test_{case}")
    model = onnx.load(os.path.join(d, "model.onnx"))
    wl = load_workload(os.path.join(d, "model.onnx"))
    x = _pb(os.path.join(d, "test_data_set_0", "input_0.pb")).astype(np.float64)
    want = _pb(os.path.join(d, "test_data_set_0", "output_0.pb"))
    (name,) = wl.inputs
    got = run_float(wl, {name: x}, _biases(model, wl))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    gemms = wl.gemm_layers()
    if "Conv" in case:
        (g,) = gemms
        w = next(t for t in model.graph.initializer if len(t.dims) >= 3)
        spatial_out = math.prod(want.shape[2:]) if "Transpose" not in case else \
            math.prod(x.shape[2:])
        # MACs: each output (or, transposed, each input) pixel times the whole filter
        assert g.macs == want.shape[0] * spatial_out * math.prod(w.dims), case


def test_long_1d_pooling_with_padding_and_dilation_has_onnx_shape():
    """A 220,000-sample signal pooled with kernel 200, stride 10, pads 100, dilation 10."""
    d = os.path.join(CONVERTED, "test_MaxPool1d_stride_padding_dilation")
    wl = load_workload(os.path.join(d, "model.onnx"))
    want = _pb(os.path.join(d, "test_data_set_0", "output_0.pb"))
    assert wl.layers()[-1].out_shape == want.shape == (1, 1, 21821)
    pool = wl.layer("maxpool_0")
    assert (pool.kind, pool.attrs["kernel"], pool.attrs["dilation"]) == \
        ("maxpool", (1, 200), (1, 10))


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _model(nodes, inits, inputs, outputs, opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs,
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("rank, attrs", [
    (2, dict(strides=[2, 2])),
    (2, dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    (2, dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    (2, dict(strides=[2, 2], auto_pad="SAME_LOWER", dilations=[2, 1])),
    (2, dict(strides=[3, 2], output_shape=[15, 8])),
    (2, dict(strides=[2, 2], pads=[1, 0, 1, 0], group=2)),
    (2, dict(strides=[2, 1], group=6)),
    (1, dict(strides=[4], pads=[2, 2])),
    (1, dict(strides=[2], dilations=[3], output_padding=[1])),
    (1, dict(strides=[2], group=3)),
])
def test_conv_transpose_variants_match_onnx(rank, attrs, tmp_path):
    """Padding, output padding, dilation, SAME_UPPER/SAME_LOWER, an explicit
    output_shape and groups (depthwise included), 1-D and 2-D: the 1x1 convolution +
    Col2Im decomposition equals ONNX's own ConvTranspose on random data."""
    rng = np.random.default_rng(3)
    sp = [5, 4][:rank]
    k = [3, 2][:rank]
    group = attrs.get("group", 1)
    per = 5 if group < 6 else 1              # output channels per group
    x = rng.standard_normal((2, 6, *sp)).astype(np.float32)
    w = rng.standard_normal((6, per, *k)).astype(np.float32)
    b = rng.standard_normal(per * group).astype(np.float32)
    m = _model([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="up",
                                 kernel_shape=k, **attrs)],
               {"w": w, "b": b}, [_vi("x", list(x.shape))], [_vi("y", None)])
    # ONNX's reference evaluator slices a grouped ConvTranspose's weight wrongly: group by
    # group, each one ungrouped, concatenated
    ungrouped = {key: v for key, v in attrs.items() if key != "group"}
    cg = 6 // group
    want = np.concatenate([_one_node("ConvTranspose", {
        "x": x[:, j * cg:(j + 1) * cg], "w": w[j * cg:(j + 1) * cg],
        "b": b[j * per:(j + 1) * per]}, kernel_shape=k, **ungrouped) for j in range(group)],
        axis=1)
    path = tmp_path / "up.onnx"
    onnx.save(m, str(path))
    wl = load_workload(str(path))
    assert [ly.kind for ly in wl.layers()] == ["reshape"] * (rank == 1) + ["conv", "host"]
    got = run_float(wl, {"x": x.astype(np.float64)}, {"up.col2im": b.astype(np.float64)})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    (g,) = wl.gemm_layers()
    dims = g.gemm()
    # per group: every input pixel (P) times its Cin/group channels (K) gives per*KH*KW
    # outputs (Q): the transposed convolution's MACs
    pixels, outs = 2 * math.prod(sp), per * math.prod(k)
    assert (dims.groups, dims.P, dims.K * group, dims.Q) == (group, pixels, 6, outs)
    assert g.macs == 2 * math.prod(sp) * 6 * per * math.prod(k)


def audio_and_decoder(tmp_path, samples: int = 16000, side: int = 64):
    """A 1-D CNN over a waveform (strided conv, BN, ReLU, pooling, a depthwise conv, global
    pooling, a classifier), a 2-D encoder-decoder (strided conv down, two transposed convs
    up) and a 3-D CNN over a video clip: the shapes of keyword spotting, of
    segmentation/generator networks and of action recognition."""
    rng = np.random.default_rng(0)

    def w(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    inits = {"c1": w(64, 1, 80), "c2": w(128, 64, 3), "dw": w(128, 1, 3), "fc": w(128, 12),
             "e1": w(32, 3, 3, 3), "e2": w(64, 32, 3, 3), "d1": w(64, 32, 4, 4),
             "d2": w(32, 16, 4, 4), "head": w(2, 16, 1, 1), "v1": w(16, 3, 3, 3, 3),
             "v2": w(32, 16, 3, 3, 3), "vdw": w(32, 1, 3, 3, 3), "vfc": w(32, 10)}
    for c in ("s", "b", "m", "v"):
        inits[f"bn.{c}"] = np.ones(64, np.float32)
    nodes = [
        helper.make_node("Conv", ["wave", "c1"], ["a1"], name="c1", strides=[4]),
        helper.make_node("BatchNormalization", ["a1", "bn.s", "bn.b", "bn.m", "bn.v"],
                         ["a2"], name="bn"),
        helper.make_node("Relu", ["a2"], ["a3"], name="relu1"),
        helper.make_node("MaxPool", ["a3"], ["a4"], name="pool", kernel_shape=[4],
                         strides=[4]),
        helper.make_node("Conv", ["a4", "c2"], ["a5"], name="c2", pads=[1, 1]),
        helper.make_node("Conv", ["a5", "dw"], ["a6"], name="dw", group=128,
                         auto_pad="SAME_UPPER"),
        helper.make_node("GlobalAveragePool", ["a6"], ["a7"], name="gap"),
        helper.make_node("Flatten", ["a7"], ["a8"], name="flat"),
        helper.make_node("MatMul", ["a8", "fc"], ["logits"], name="fc"),
        helper.make_node("Conv", ["img", "e1"], ["b1"], name="e1", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b1"], ["b2"], name="e1.relu"),
        helper.make_node("Conv", ["b2", "e2"], ["b3"], name="e2", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["b3", "d1"], ["b4"], name="d1", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b4"], ["b5"], name="d1.relu"),
        helper.make_node("ConvTranspose", ["b5", "d2"], ["b6"], name="d2", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["b6", "head"], ["mask"], name="head"),
        helper.make_node("Conv", ["clip", "v1"], ["t1"], name="v1", pads=[1] * 6),
        helper.make_node("Relu", ["t1"], ["t2"], name="v1.relu"),
        helper.make_node("MaxPool", ["t2"], ["t3"], name="vpool", kernel_shape=[1, 2, 2],
                         strides=[1, 2, 2]),
        helper.make_node("Conv", ["t3", "v2"], ["t4"], name="v2", pads=[1] * 6,
                         strides=[2, 1, 1]),
        helper.make_node("Conv", ["t4", "vdw"], ["t4d"], name="vdw", group=32,
                         pads=[1] * 6),
        helper.make_node("GlobalAveragePool", ["t4d"], ["t5"], name="vgap"),
        helper.make_node("Flatten", ["t5"], ["t6"], name="vflat"),
        helper.make_node("MatMul", ["t6", "vfc"], ["action"], name="vfc"),
    ]
    frames = max(2, side // 8)
    m = _model(nodes, inits, [_vi("wave", [1, 1, samples]), _vi("img", [1, 3, side, side]),
                              _vi("clip", [1, 3, frames, side // 2, side // 2])],
               [_vi("logits", None), _vi("mask", None), _vi("action", None)])
    path = tmp_path / f"audio_decoder_{samples}.onnx"
    onnx.save(m, str(path))
    return str(path)


def test_imported_1d_and_transposed_layers_compile_simulate_and_train(tmp_path):
    """The 1-D CNN, the decoder and the 3-D CNN run through the whole flow: MACs as the formulas give,
    2:4 halves the weight-stationary GEMM work, a training step compiles, and the reference
    executor reproduces every GEMM of the compiled program bit for bit."""
    from sparsa.compiler import compile_workload, read_output
    from sparsa.compiler.executor import run_program
    from sparsa.hw.config import PRESETS
    from sparsa.sim.api import run_point
    path = audio_and_decoder(tmp_path)
    wl = load_workload(path)
    macs = {ly.name: ly.macs for ly in wl.gemm_layers()}
    # c1: 3981 outputs x 64 x 80; d1: 16x16 input pixels x 64 x 32*16; d2: 32x32 x 32 x 16*16
    assert macs["c1"] == 3981 * 64 * 80
    assert macs["dw"] == 995 * 128 * 3          # pooled by 4, then "same" convs
    assert macs["d1"] == 16 * 16 * 64 * 32 * 16 and macs["d2"] == 32 * 32 * 32 * 16 * 16
    assert wl.layer("d2.col2im").out_shape == (1, 16, 64, 64)
    assert wl.layer("head").out_shape == (1, 2, 64, 64)
    # v1: 8x32x32 output voxels x 3*27 x 16; v2 (depth stride 2): 4x16x16 x 16*27 x 32
    assert macs["v1"] == 8 * 32 * 32 * 81 * 16 and macs["v2"] == 4 * 16 * 16 * 432 * 32
    assert wl.layer("v2.to_3d").out_shape == (1, 32, 4, 16, 16)
    assert macs["vdw"] == 4 * 16 * 16 * 27 * 32      # depthwise: 27 taps per channel
    dense = run_point(wl, "16x16-n2m4", "dense")
    sparse = run_point(wl, "16x16-n2m4", "2:4")
    assert dense["dense_macs"] == wl.total_macs
    assert 1.3 < dense["cycles"] / sparse["cycles"] <= 2.0
    train = run_point(wl, "16x16-n2m4", "2:4", train=True)
    assert train["cycles"] > 2 * sparse["cycles"]
    small = audio_and_decoder(tmp_path, samples=800, side=16)
    for train_step in (False, True):
        prog = compile_workload(small, PRESETS["8x8-n2m4"], sparsity="2:4",
                                train=train_step, batch=1)
        dram = run_program(prog)
        for name, want in prog.expected.items():
            np.testing.assert_array_equal(read_output(prog, dram, name), want, err_msg=name)


@pytest.mark.parametrize("node, inputs, match", [
    (helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", group=3),
     {"w": (4, 2, 3, 3)}, r"'up' \(ConvTranspose\): weight \[4, 2, 3, 3\] with group=3 does "
                          r"not fit input"),
    (helper.make_node("Conv", ["x5", "w"], ["y"], name="c3d", group=2),
     {"w": (4, 4, 2, 2, 2)}, r"'c3d' \(Conv\): weight \[4, 4, 2, 2, 2\] with group=2 does "
                             r"not fit"),
    (helper.make_node("ConvTranspose", ["x5", "w"], ["y"], name="up3d"),
     {"w": (4, 4, 2, 2, 2)}, r"'up3d' \(ConvTranspose\): only 1-D and 2-D transposed"),
    (helper.make_node("MaxPool", ["x5"], ["y"], name="p2d", kernel_shape=[2, 2]),
     {}, r"'p2d' \(MaxPool\): only 1-D, 2-D and 3-D windows"),
    (helper.make_node("Conv", ["x", "w"], ["y"], name="c", strides=[1, 1, 1]),
     {"w": (4, 4, 3, 3)}, r"'c' \(Conv\): strides \[1, 1, 1\] .* 2 value"),
])
def test_unsupported_convolutions_are_one_line_errors(node, inputs, match, tmp_path):
    inits = {k: np.ones(s, np.float32) for k, s in inputs.items()}
    m = _model([node], inits, [_vi("x", [1, 4, 8, 8]), _vi("x5", [1, 4, 4, 8, 8])],
               [_vi("y", None)])
    path = tmp_path / "bad.onnx"
    onnx.save(m, str(path))
    with pytest.raises(WorkloadError, match=match) as e:
        load_workload(str(path))
    assert "\n" not in str(e.value) and "bad.onnx" in str(e.value)


@pytest.mark.parametrize("rank, attrs", [
    (2, dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    (2, dict(strides=[2, 3], group=2)),
    (1, dict(strides=[2], dilations=[2], pads=[1, 0])),
])
def test_conv_transpose_exports_as_conv_and_col2im(rank, attrs, tmp_path):
    """An imported ConvTranspose exports (with its int8 weights) as a 1x1 Conv, a Reshape
    and ONNX's Col2Im, plus the bias: the exported model passes the checker's full check,
    ONNX's reference evaluator gives the original's output on it, and it imports back with
    the same MACs."""
    from sparsa.workloads.onnx_export import export_onnx
    rng = np.random.default_rng(5)
    sp, k = [5, 4][:rank], [3, 2][:rank]
    group = attrs.get("group", 1)
    x = rng.standard_normal((1, 4, *sp)).astype(np.float32)
    w = rng.integers(-127, 128, (4, 3, *k)).astype(np.float32)
    w.flat[0] = 127                     # int-valued with max 127: quantised as it is
    m = _model([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="up",
                                 kernel_shape=k, **attrs)],
               {"w": w, "b": np.zeros(3 * group, np.float32)},
               [_vi("x", list(x.shape))], [_vi("y", None)])
    path = tmp_path / "up.onnx"
    onnx.save(m, str(path))
    wl = load_workload(str(path))
    out = export_onnx(wl, tmp_path / "again.onnx", with_weights=True)
    exported = onnx.load(str(out))
    onnx.checker.check_model(exported, full_check=True)
    assert [nd.op_type for nd in exported.graph.node] == \
        ["Reshape"] * (rank == 1) + ["Conv", "Reshape", "Col2Im", "Add"]
    ungrouped = {key: v for key, v in attrs.items() if key != "group"}
    cg = 4 // group
    want = np.concatenate([_one_node("ConvTranspose", {
        "x": x[:, j * cg:(j + 1) * cg], "w": w[j * cg:(j + 1) * cg]}, kernel_shape=k,
        **ungrouped) for j in range(group)], axis=1)
    got = ReferenceEvaluator(exported).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    back = load_workload(str(out))
    assert back.total_macs == wl.total_macs
    assert back.layers()[-1].out_shape == wl.layers()[-1].out_shape
