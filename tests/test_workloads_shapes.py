"""Property tests: our shape inference agrees with onnx.shape_inference on random
convolutions and poolings (the importer raises when they differ), and GEMM dims follow
im2col."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from sparsa.workloads import load_workload


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 2, 4]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    h = draw(st.integers(dh * (kh - 1) + 1, 20))
    w = draw(st.integers(dw * (kw - 1) + 1, 20))
    pool = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    pk = draw(st.integers(1, 3))
    ceil = draw(st.booleans())
    return groups, cin, cout, (kh, kw), (sh, sw), (dh, dw), pads, (h, w), pool, pk, ceil


@settings(max_examples=30, deadline=None)
@given(conv_case())
def test_conv_and_pool_shapes_match_onnx(tmp_path_factory, case):
    groups, cin, cout, k, s, d, pads, (h, w), pool, pk, ceil = case
    wt = numpy_helper.from_array(np.ones((cout, cin // groups, *k), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=list(k),
                            strides=list(s), dilations=list(d), pads=pads, group=groups)
    nodes = [conv]
    out = "y"
    # a pooling window that fits the convolution's output
    oh = (h + pads[0] + pads[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + pads[1] + pads[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if min(oh, ow) >= pk:
        nodes.append(helper.make_node(pool, ["y"], ["z"], name="pool", kernel_shape=[pk, pk],
                                      strides=[2, 2], pads=[pk // 2] * 4 if pk > 1 else
                                      [0] * 4, ceil_mode=int(ceil)))
        out = "z"
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                         [1, cin, h, w])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], [wt])
    path = tmp_path_factory.mktemp("p") / "m.onnx"
    import onnx
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    wl = load_workload(str(path))      # raises if our shape differs from ONNX's
    ly = wl.layer("conv")
    gd = ly.gemm()
    assert ly.out_shape == (1, cout, oh, ow)
    assert (gd.P, gd.K, gd.Q, gd.groups) == (oh * ow, cin // groups * k[0] * k[1],
                                             cout // groups, groups)
    assert ly.macs == oh * ow * cout * (cin // groups) * k[0] * k[1]
