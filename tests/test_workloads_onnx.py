"""ONNX import on models built here with onnx.helper (CNNs, a transformer block, external
data present and absent, unsupported ops, files that are not ONNX)."""

from __future__ import annotations

import os
from dataclasses import astuple

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sparsa.workloads import WorkloadError, load_workload
from sparsa.workloads.graph import quantise_int8


class Net:
    """A tiny ONNX graph builder for the tests."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def init(self, name: str, value: np.ndarray | None = None, shape=None, external=None):
        if value is not None:
            t = numpy_helper.from_array(np.asarray(value), name)
        else:   # shape only, data in an external file that does not exist
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(shape))
            t.data_location = TensorProto.EXTERNAL
            e = t.external_data.add()
            e.key, e.value = "location", external
        self.inits.append(t)
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, outputs=1, **attrs):
        self.n += 1
        name = name or f"{op.lower()}{self.n}"
        outs = [f"{name}_out{j}" for j in range(outputs)] if outputs > 1 else [f"{name}_out"]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs if outputs > 1 else outs[0]

    def conv(self, x, cin, cout, k, stride=1, group=1, name=None, external=None, bias=False):
        name = name or f"conv{self.n + 1}"
        shape = (cout, cin // group, k, k)
        w = self.init(f"{name}.w", None if external else
                      self.rng.standard_normal(shape).astype(np.float32), shape, external)
        ins = [x, w]
        if bias:
            ins.append(self.init(f"{name}.b", np.zeros(cout, np.float32)))
        return self.node("Conv", ins, name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[k // 2] * 4, group=group)

    def bn(self, x, c, name):
        p = [self.init(f"{name}.{s}", np.ones(c, np.float32)) for s in ("g", "b", "m", "v")]
        return self.node("BatchNormalization", [x, *p], name)

    def save(self, path, inputs, outputs, **kw):
        g = helper.make_graph(self.nodes, "g", inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(m, str(path), **kw)
        return str(path)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def small_cnn(path):
    """conv/bn/relu/maxpool, a residual block, a depthwise conv, global pool, Gemm."""
    n = Net()
    x = n.node("Relu", [n.bn(n.conv("x", 3, 8, 3, name="stem"), 8, "stem.bn")], "stem.relu")
    x = n.node("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    y = n.node("Relu", [n.conv(x, 8, 8, 3, name="b.c1")], "b.r1")
    y = n.conv(y, 8, 8, 3, name="b.c2")
    x = n.node("Relu", [n.node("Add", [y, x], "b.add")], "b.relu")
    x = n.node("Clip", [n.conv(x, 8, 8, 3, group=8, name="dw")], "dw.clip")
    x = n.node("GlobalAveragePool", [x], "gap")
    x = n.node("Flatten", [x], "flat", axis=1)
    w = n.init("fc.w", n.rng.standard_normal((10, 8)).astype(np.float32))
    b = n.init("fc.b", np.zeros(10, np.float32))
    n.node("Gemm", [x, w, b], "fc", transB=1)
    return n.save(path, [_vi("x", ["N", 3, 16, 16])], [_vi("fc_out", None)]), n


def test_small_cnn(tmp_path):
    path, net = small_cnn(tmp_path / "cnn.onnx")
    wl = load_workload(path)
    assert wl.name == "cnn"
    by = {ly.name: ly for ly in wl.layers()}
    assert [ly.kind for ly in wl.layers()][:4] == ["conv", "batchnorm", "relu", "maxpool"]
    stem = by["stem"].gemm()
    assert (stem.P, stem.K, stem.Q) == (256, 27, 8)
    dw = by["dw"].gemm()
    assert (dw.P, dw.K, dw.Q, dw.groups) == (64, 9, 1, 8)
    fc = by["fc"].gemm()
    assert (fc.P, fc.K, fc.Q) == (1, 8, 10)
    assert by["b.add"].inputs == ("b.c2", "pool")
    expect = 256 * 27 * 8 + 2 * 64 * 72 * 8 + 64 * 9 * 8 + 80
    assert wl.total_macs == expect
    # initializer weights are used, quantised per tensor, K ordered (kh, kw, cin)
    w = numpy_helper.to_array(next(t for t in net.inits if t.name == "stem.w"))
    q = quantise_int8(w)
    assert np.array_equal(by["stem"].gemm_weight(), q.transpose(2, 3, 1, 0).reshape(27, 8))
    wf = numpy_helper.to_array(next(t for t in net.inits if t.name == "fc.w"))
    assert np.array_equal(by["fc"].gemm_weight(), quantise_int8(wf).T)
    # the symbolic batch dimension takes the batch
    assert load_workload(path, batch=3).total_macs == 3 * expect


def resnet18_onnx(path):
    """ResNet-18 written node by node; weights in a .bin that is never written."""
    n = Net()
    ext = "resnet18.bin"

    def cbr(x, cin, cout, k, s, name, relu=True):
        y = n.bn(n.conv(x, cin, cout, k, s, name=name, external=ext), cout, f"{name}.bn")
        return n.node("Relu", [y], f"{name}.relu") if relu else y

    x = cbr("x", 3, 64, 7, 2, "conv1")
    x = n.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1])
    cin = 64
    for si, c in enumerate([64, 128, 256, 512]):
        for bi in range(2):
            s = 2 if si and not bi else 1
            y = cbr(x, cin, c, 3, s, f"l{si}.{bi}.c1")
            y = cbr(y, c, c, 3, 1, f"l{si}.{bi}.c2", relu=False)
            sc = cbr(x, cin, c, 1, s, f"l{si}.{bi}.ds", relu=False) if s != 1 or cin != c \
                else x
            x = n.node("Relu", [n.node("Add", [y, sc])])
            cin = c
    x = n.node("Flatten", [n.node("GlobalAveragePool", [x])])
    w = n.init("fc.w", None, (1000, 512), ext)
    n.node("Gemm", [x, w, n.init("fc.b", np.zeros(1000, np.float32))], "fc", transB=1)
    return n.save(path, [_vi("x", [1, 3, 224, 224])], [_vi("fc_out", None)])


def test_resnet18_with_absent_external_weights_matches_the_zoo(tmp_path):
    path = resnet18_onnx(tmp_path / "resnet18.onnx")
    assert not (tmp_path / "resnet18.bin").exists()
    wl = load_workload(path)
    zoo = load_workload("resnet18")
    assert wl.total_macs == zoo.total_macs
    assert sorted(astuple(ly.gemm()) for ly in wl.gemm_layers()) == \
        sorted(astuple(ly.gemm()) for ly in zoo.gemm_layers())
    assert wl.attrs["absent_weights"] == 21
    w = wl.layer("conv1").gemm_weight()
    assert w.shape == (147, 64) and w.dtype == np.int8 and np.count_nonzero(w) > 0


def test_external_data_deleted_after_saving(tmp_path):
    n = Net()
    y = n.conv("x", 4, 8, 3, name="c", bias=True)
    path = tmp_path / "ext.onnx"
    n.save(path, [_vi("x", [1, 4, 8, 8])], [_vi(y, None)], save_as_external_data=True,
           all_tensors_to_one_file=True, location="ext.bin", size_threshold=0)
    present = load_workload(str(path)).layer("c")
    w = numpy_helper.to_array(n.inits[0])
    assert np.array_equal(present.gemm_weight(),
                          quantise_int8(w).transpose(2, 3, 1, 0).reshape(36, 8))
    (tmp_path / "ext.bin").unlink()
    absent = load_workload(str(path))
    assert absent.attrs["absent_weights"] == 2
    assert absent.layer("c").gemm() == present.gemm()
    assert not np.array_equal(absent.layer("c").gemm_weight(), present.gemm_weight())


def transformer_block(path, seq_dim, d=64, heads=4, ff=128):
    """A BERT-style block: fused QKV + Split, dynamic-shape Reshape, QK^T, Softmax, AV,
    LayerNormalization, Erf-GELU MLP."""
    n = Net()
    hd = d // heads

    def lin(x, k, q, name):
        w = n.init(f"{name}.w", n.rng.standard_normal((k, q)).astype(np.float32))
        return n.node("Add", [n.node("MatMul", [x, w], name),
                              n.init(f"{name}.b", np.zeros(q, np.float32))])

    qkv = lin("x", d, 3 * d, "qkv")
    q, k, v = n.node("Split", [qkv, n.init("split", np.array([d, d, d]))], "split", outputs=3,
                     axis=2)
    # shape arithmetic: [B, S, heads, hd] from Shape -> Gather -> Unsqueeze -> Concat
    shp = n.node("Shape", ["x"], "shape")
    b0 = n.node("Unsqueeze", [n.node("Gather", [shp, n.init("i0", np.array(0))], axis=0),
                              n.init("ax0", np.array([0]))])
    s1 = n.node("Unsqueeze", [n.node("Gather", [shp, n.init("i1", np.array(1))], axis=0),
                              n.init("ax0b", np.array([0]))])
    hshape = n.node("Concat", [b0, s1, n.init("hh", np.array([heads, hd]))], axis=0)
    qh, kh, vh = (n.node("Transpose", [n.node("Reshape", [t, hshape])], f"{nm}.heads",
                         perm=[0, 2, 1, 3]) for t, nm in ((q, "q"), (k, "k"), (v, "v")))
    kt = n.node("Transpose", [kh], "k.t", perm=[0, 1, 3, 2])
    sc = n.node("Div", [n.node("MatMul", [qh, kt], "scores"),
                        n.init("scale", np.array(np.sqrt(hd), np.float32))])
    p = n.node("Softmax", [sc], "softmax", axis=-1)
    ctx = n.node("Transpose", [n.node("MatMul", [p, vh], "context")], perm=[0, 2, 1, 3])
    ctx = n.node("Reshape", [ctx, n.init("merge", np.array([0, 0, d]))], "merge")
    a = n.node("Add", [lin(ctx, d, d, "out"), "x"])
    ln_s, ln_b = (n.init(f"ln{c}", np.ones(d, np.float32)) for c in "sb")
    h = n.node("LayerNormalization", [a, ln_s, ln_b], "ln1", axis=-1)
    f = lin(h, d, ff, "fc1")
    g = n.node("Mul", [n.node("Mul", [f, n.node("Add", [n.node("Erf", [n.node(
        "Div", [f, n.init("sq2", np.array(1.4142135, np.float32))])]),
        n.init("one", np.array(1.0, np.float32))])]), n.init("half", np.array(0.5, np.float32))])
    o = n.node("Add", [lin(g, ff, d, "fc2"), h])
    y = n.node("LayerNormalization", [o, ln_s, ln_b], "ln2", axis=-1)
    return n.save(path, [_vi("x", ["B", seq_dim, d])], [_vi(y, None)])


def test_transformer_block(tmp_path):
    path = transformer_block(tmp_path / "block.onnx", "S")
    with pytest.raises(WorkloadError, match=r"dimension 1 \('S'\) is symbolic; give --seq"):
        load_workload(path)
    s, d, ff, heads = 32, 64, 128, 4
    wl = load_workload(path, batch=2, seq=s)
    by = {ly.name: ly for ly in wl.layers()}
    assert by["qkv"].kind == "linear" and 2 * s == by["qkv"].gemm().P
    assert [by[f"split.{j}"].out_shape for j in range(3)] == [(2, s, d)] * 3
    sc = by["scores"].gemm()
    assert (sc.P, sc.K, sc.Q, sc.groups, sc.stationary) == (s, d // heads, s, 2 * heads, "act")
    assert s == by["context"].gemm().K and by["context"].out_shape == (2, heads, s, d // heads)
    assert by["merge"].out_shape == (2, s, d)
    macs = 2 * (s * d * 3 * d + s * d * d + 2 * s * d * ff + 2 * s * s * d)
    assert wl.total_macs == macs
    assert {"softmax", "layernorm", "erf", "transpose", "reshape"} <= \
        {ly.kind for ly in wl.layers()}
    assert by["scores"].gemm_weight().shape == (8, d // heads, s)


def test_unsupported_op_names_type_node_and_file(tmp_path):
    n = Net()
    y = n.node("Relu", ["x"], "r")
    n.node("NonZero", [y], "where_are_they")
    path = n.save(tmp_path / "bad.onnx", [_vi("x", [1, 4])], [_vi("where_are_they_out", None)])
    with pytest.raises(WorkloadError, match=r"bad\.onnx: unsupported ONNX op NonZero "
                                            r"\(node 'where_are_they'\)"):
        load_workload(path)


def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\xff\xfe definitely not a protobuf \x00\x01")
    with pytest.raises(WorkloadError, match="junk.onnx: not an ONNX model"):
        load_workload(str(p))
    with pytest.raises(WorkloadError, match="does not exist"):
        load_workload(str(tmp_path / "missing.onnx"))


def _checkable(path) -> onnx.ModelProto:
    """An exported model for ``onnx.checker``: its weights, declared as external data that
    a shapes-only export leaves absent, become graph inputs of the same type and shape."""
    m = onnx.load(str(path), load_external_data=False)
    ext = [t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    for t in ext:
        m.graph.initializer.remove(t)
        m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return m


# ---- export: every zoo network round-trips through ONNX ------------------------------
@pytest.mark.parametrize("net", ["resnet18", "resnet50", "vgg16", "mobilenetv2", "bert-base",
                                 "vit-b16", "gpt2", "gpt2-block", "gpt2-decode"])
def test_zoo_onnx_round_trip(net, tmp_path):
    from sparsa.workloads.onnx_export import export_onnx
    seq = 32 if net in ("bert-base", "gpt2", "gpt2-block", "gpt2-decode") else None
    wl = load_workload(net, seq=seq)
    path = export_onnx(wl, tmp_path / f"{net}.onnx")
    assert path.stat().st_size < 100_000      # shapes only: weights declared external
    onnx.checker.check_model(_checkable(path), full_check=True)
    back = load_workload(str(path))
    assert back.total_macs == wl.total_macs
    assert sorted((ly.name, astuple(ly.gemm())) for ly in back.gemm_layers()) == \
        sorted((ly.name, astuple(ly.gemm())) for ly in wl.gemm_layers())
    assert back.attrs["absent_weights"] > 0


def test_onnx_export_with_weights(tmp_path):
    from sparsa.workloads.onnx_export import export_onnx
    path, _ = small_cnn(tmp_path / "cnn.onnx")
    wl = load_workload(path)
    out = export_onnx(wl, tmp_path / "again.onnx", with_weights=True)
    assert (tmp_path / "again.weights.bin").is_file()
    back = load_workload(str(out))
    assert back.attrs["absent_weights"] == 0
    for ly in wl.gemm_layers():
        # int8 values written as floats quantise back to themselves (up to the scale)
        w = ly.gemm_weight(stacked=True)
        assert np.array_equal(back.layer(ly.name).gemm_weight(stacked=True),
                              quantise_int8(w.astype(np.float64)))
    assert [ly.kind for ly in back.layers()] == [ly.kind for ly in wl.layers()]


def test_onnx_export_removes_a_killed_exports_temp_folder(tmp_path):
    """An export killed mid-write leaves its private ``.NAME.PID.tmp.d`` folder; the next
    export of the same file removes it, and leaves other files' (and live writers') alone."""
    import subprocess
    import sys

    from sparsa.workloads.onnx_export import export_onnx
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    wl = load_workload("resnet18")
    left = tmp_path / f".r.onnx.{dead}.tmp.d"
    other = tmp_path / f".other.onnx.{dead}.tmp.d"
    live = tmp_path / f".r.onnx.{os.getppid()}.tmp.d"
    for d in (left, other, live):
        d.mkdir()
        (d / "r.weights.bin").write_bytes(b"half")
    export_onnx(wl, tmp_path / "r.onnx")
    assert not left.exists() and other.is_dir() and live.is_dir()
    assert load_workload(str(tmp_path / "r.onnx")).total_macs == wl.total_macs


def test_imported_onnx_compiles_and_executes(tmp_path):
    """The imported CNN (its own weights, 2:4) through the compiler and the reference
    executor: every GEMM output equals numpy's, for inference and for a training step."""
    from sparsa.compiler import compile_workload, read_output
    from sparsa.compiler.executor import run_program
    from sparsa.hw.config import PRESETS
    path, _ = small_cnn(tmp_path / "cnn.onnx")
    for train in (False, True):
        prog = compile_workload(path, PRESETS["8x8-n2m4"], sparsity="2:4", train=train)
        dram = run_program(prog)
        names = set(prog.expected)
        if train:   # the first layer reads the graph input: no backward-data GEMM
            assert {"stem.fwd.y", "stem.wgrad.y", "fc.bwd_data.y", "dw.wgrad/g0-7.y"} <= names
            assert "stem.bwd_data.y" not in names
        else:
            # the depthwise conv's 8 groups share one GEMM on the 8-column array
            assert {"stem.y", "b.c1.y", "dw/g0-7.y", "fc.y"} <= names
            np.testing.assert_array_equal(read_output(prog, dram, "dw/g3.y"),
                                          prog.expected["dw/g0-7.y"][:, 3:4])
        for name, want in prog.expected.items():
            np.testing.assert_array_equal(read_output(prog, dram, name), want, err_msg=name)


def test_qdq_model(tmp_path):
    """A QDQ-quantised conv: QuantizeLinear/DequantizeLinear on the activation become
    requant layers, the int8 weight initializer behind DequantizeLinear (per-channel
    scales) is folded and used."""
    n = Net()
    wq = np.random.default_rng(3).integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
    scales = np.linspace(0.01, 0.08, 8).astype(np.float32)
    n.init("wq", wq)
    n.init("ws", scales)
    n.init("wz", np.zeros(8, np.int8))
    n.init("xs", np.array(0.05, np.float32))
    n.init("xz", np.array(0, np.int8))
    w = n.node("DequantizeLinear", ["wq", "ws", "wz"], "w_dq", axis=0)
    q = n.node("QuantizeLinear", ["x", "xs", "xz"], "x_q")
    dq = n.node("DequantizeLinear", [q, "xs", "xz"], "x_dq")
    y = n.node("Relu", [n.node("Conv", [dq, w], "conv", kernel_shape=[3, 3], pads=[1] * 4)],
               "relu")
    path = n.save(tmp_path / "qdq.onnx", [_vi("x", [1, 3, 8, 8])], [_vi(y, None)])
    wl = load_workload(path)
    assert [ly.kind for ly in wl.layers()] == ["requant", "requant", "conv", "relu"]
    wf = (wq.astype(np.float64) * scales[:, None, None, None]).astype(np.float32)
    assert np.array_equal(wl.layer("conv").gemm_weight(),
                          quantise_int8(wf).transpose(2, 3, 1, 0).reshape(27, 8))


# ---- real networks: the model files the onnx wheel ships (Caffe2 exports, opset 9) -------
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
#: total MACs at batch 1, 224x224 (ResNet-50: the zoo's, next test): AlexNet (BVLC: grouped
#: conv2/4/5, ceil-mode pooling; at 224 the convs see 54, 26, 12, 12, 12 pixels a side and
#: fc6 6x6x256) by hand, exactly; the others within 1-2% of their published figures
#: (VGG-19 19.6G, DenseNet-121 2.87G, GoogLeNet 1.43G)
LIGHT_MACS = {"bvlc_alexnet": (96 * 363 * 54 * 54 + 256 * 1200 * 26 * 26 + 384 * 2304 * 144
                               + 384 * 1728 * 144 + 256 * 1728 * 144 + 9216 * 4096
                               + 4096 * 4096 + 4096 * 1000, 0.0),
              "vgg19": (19.6e9, 0.01), "densenet121": (2.87e9, 0.02),
              "inception_v1": (1.43e9, 0.02)}


@pytest.mark.parametrize("net", ["bvlc_alexnet", "densenet121", "inception_v1",
                                 "inception_v2", "resnet50", "shufflenet", "squeezenet",
                                 "vgg19", "zfnet512"])
def test_real_onnx_models_shipped_with_onnx_import(net):
    """Every real network in the onnx wheel's test data imports (LRN, the n-ary Sum of
    residual adds, weights as ConstantOfShape), each output shape checked against ONNX
    shape inference by the importer."""
    wl = load_workload(os.path.join(LIGHT, f"light_{net}.onnx"))
    assert wl.gemm_layers() and wl.total_macs > 0
    kinds = {ly.kind for ly in wl.layers()}
    if net in ("bvlc_alexnet", "inception_v1", "zfnet512"):
        assert "lrn" in kinds
    if net in ("resnet50", "shufflenet"):
        assert any(ly.kind == "add" and len(ly.inputs) >= 2 for ly in wl.layers())
    if net in LIGHT_MACS:
        want, tol = LIGHT_MACS[net]
        assert abs(wl.total_macs - want) <= tol * want, (net, wl.total_macs)


def test_real_resnet50_onnx_equals_the_zoo_and_round_trips(tmp_path):
    """The onnx wheel's ResNet-50 has the zoo's MACs, parameters and GEMMs exactly; exported
    again it passes the ONNX checker and imports the same (so does AlexNet, with LRN)."""
    from sparsa.workloads.onnx_export import export_onnx
    wl = load_workload(os.path.join(LIGHT, "light_resnet50.onnx"))
    zoo = load_workload("resnet50")
    assert (wl.total_macs, wl.params) == (zoo.total_macs, zoo.params) == (4_089_184_256,
                                                                        25_503_912)
    assert [astuple(ly.gemm()) for ly in wl.gemm_layers()] == \
        [astuple(ly.gemm()) for ly in zoo.gemm_layers()]
    for net in ("resnet50", "bvlc_alexnet"):
        src = load_workload(os.path.join(LIGHT, f"light_{net}.onnx"))
        path = export_onnx(src, tmp_path / f"{net}.onnx")
        onnx.checker.check_model(_checkable(path), full_check=True)
        back = load_workload(str(path))
        assert back.total_macs == src.total_macs
        inference = {"dropout": "identity"}         # exported as what it is at inference
        assert sorted(ly.kind for ly in back.layers()) == \
            sorted(inference.get(ly.kind, ly.kind) for ly in src.layers())


@pytest.mark.parametrize("case, kind", [("PReLU_2d_multiparam", "prelu"), ("PReLU_1d", "prelu"),
                                        ("ELU", "elu"), ("SELU", "selu"),
                                        ("Softplus", "softplus")])
def test_activation_files_shipped_with_onnx_import_and_export(case, kind, tmp_path):
    """PyTorch exports in the onnx wheel (old opsets: a per-channel PRelu slope ``[C]``,
    read as ``[C, 1, 1]``) import, and export again to a model that passes the checker."""
    from sparsa.workloads.onnx_export import export_onnx
    path = os.path.join(os.path.dirname(LIGHT), "pytorch-converted", f"test_{case}",
                        "model.onnx")
    wl = load_workload(path)
    (ly,) = wl.layers()
    assert ly.kind == kind and ly.out_shape == ly.in_shapes[0]
    if case == "PReLU_2d_multiparam":
        assert ly.attrs["slope_shape"] == [3, 1, 1]
    out = export_onnx(wl, tmp_path / "again.onnx")
    onnx.checker.check_model(_checkable(out), full_check=True)
    (back,) = load_workload(str(out)).layers()
    assert (back.kind, back.out_shape, back.attrs) == (ly.kind, ly.out_shape, ly.attrs)


def test_prelu_slope_that_does_not_broadcast_is_one_line(tmp_path):
    n = Net()
    n.init("slope", np.ones(7, np.float32))
    n.node("PRelu", ["x", "slope"], "p")
    path = n.save(tmp_path / "prelu.onnx", [_vi("x", [1, 3, 4, 4])], [_vi("p_out", None)])
    with pytest.raises(WorkloadError, match=r"prelu\.onnx: .*(PRelu|slope)"):
        load_workload(path)


def test_attention_mask_from_an_input_with_comparisons_and_logic(tmp_path):
    """An attention mask computed from an input (Equal, Not, Less, And, Where, Cast) is host
    work with shapes; the attention GEMMs around it import as usual."""
    n = Net()
    w = np.ones((16, 16), np.float32)
    q = n.node("MatMul", ["x", n.init("wq", w)], "q")
    kt = n.node("Transpose", [n.node("MatMul", ["x", n.init("wk", w)], "k")],
                "kt", perm=[0, 2, 1])
    s = n.node("MatMul", [q, kt], "scores")
    pad = n.node("Equal", ["ids", n.init("zero", np.zeros(1, np.int64))], "is_pad")
    keep = n.node("Not", [pad], "keep")
    pos = n.node("Less", ["ids", n.init("big", np.full(1, 1000, np.int64))], "in_vocab")
    both = n.node("And", [keep, pos], "both")
    m = n.node("Unsqueeze", [both, n.init("ax", np.array([1], np.int64))], "mask")
    masked = n.node("Where", [m, s, n.init("neg", np.full(1, -1e4, np.float32))], "masked")
    n.node("Softmax", [masked], "probs", axis=-1)
    path = n.save(tmp_path / "mask.onnx", [_vi("x", [1, 8, 16]),
                                           helper.make_tensor_value_info("ids", TensorProto.INT64,
                                                                         [1, 8])],
                  [_vi("probs_out", None)])
    wl = load_workload(path)
    kinds = [ly.kind for ly in wl.layers()]
    for k in ("equal", "not", "less", "and", "where", "softmax"):
        assert k in kinds, k
    assert [ly.kind for ly in wl.gemm_layers()] == ["linear", "linear", "matmul"]
    assert wl.layer("masked").out_shape == (1, 8, 8)


def test_upsampling_and_pixel_shuffle_take_their_shapes_from_onnx(tmp_path):
    """Resize (an FPN/U-Net upsampling), DepthToSpace and ArgMax are host layers whose
    output shapes come from ONNX shape inference; the convolution after them imports."""
    n = Net()
    up = n.node("Resize", ["x", "", n.init("scales", np.array([1, 1, 2, 2], np.float32))],
                "up", mode="nearest")
    c = n.conv(up, 8, 16, 3, name="c")
    d2s = n.node("DepthToSpace", [c], "d2s", blocksize=2)
    n.node("ArgMax", [d2s], "cls", axis=1, keepdims=0)
    path = n.save(tmp_path / "up.onnx", [_vi("x", [1, 8, 5, 5])],
                  [helper.make_tensor_value_info("cls_out", TensorProto.INT64, None)])
    wl = load_workload(path)
    assert wl.layer("up").out_shape == (1, 8, 10, 10)
    assert wl.layer("d2s").out_shape == (1, 4, 20, 20)
    assert wl.layer("cls").out_shape == (1, 20, 20)
    assert [ly.name for ly in wl.gemm_layers()] == ["c"]
