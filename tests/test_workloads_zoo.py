"""Model zoo and graph IR: published MAC totals, GEMM dims, weights, errors."""

from __future__ import annotations

import numpy as np
import pytest
from sparsa.workloads import ZOO_NAMES, GraphBuilder, WorkloadError, load_workload

# published GMAC at batch 1, standard input sizes (GEMM MACs)
PUBLISHED = {"resnet18": 1.82, "resnet50": 4.1, "mobilenetv2": 0.30, "vgg16": 15.5,
             "bert-base": 11.2, "vit-b16": 17.6}


def test_zoo_names() -> None:
    assert set(PUBLISHED) < set(ZOO_NAMES)
    assert {"gpt2", "gpt2-block", "gpt2-decode"} < set(ZOO_NAMES)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_macs(name: str) -> None:
    wl = load_workload(name)
    tol = 0.01 if name == "resnet50" else 0.02
    assert wl.total_macs / 1e9 == pytest.approx(PUBLISHED[name], rel=tol)


def test_transformer_macs_by_formula() -> None:
    d, ff, L = 768, 3072, 12
    for s in (128, 1024):
        block = s * d * 3 * d + s * d * d + 2 * s * d * ff + 2 * s * s * d
        assert load_workload("gpt2-block", seq=s).total_macs == block
        assert load_workload("gpt2", seq=s).total_macs == L * block + s * d * 50257
    assert load_workload("gpt2").attrs["seq"] == 128
    s = 128
    bert = L * (4 * s * d * d + 2 * s * d * ff + 2 * s * s * d)
    assert load_workload("bert-base").total_macs == bert
    assert load_workload("BERT-base", seq=64).total_macs == \
        L * (4 * 64 * d * d + 2 * 64 * d * ff + 2 * 64 * 64 * d)


def test_gpt2_decode_is_skinny() -> None:
    wl = load_workload("gpt2-decode", seq=256)
    gemms = wl.gemm_layers()
    assert all(ly.gemm().P == 1 for ly in gemms)
    scores = wl.layer("h.0.attn.scores").gemm()
    assert (scores.K, scores.Q, scores.groups, scores.stationary) == (64, 256, 12, "act")
    ctx = wl.layer("h.0.attn.context").gemm()
    assert (ctx.K, ctx.Q, ctx.groups) == (256, 64, 12)
    d = 768
    per_block = d * 3 * d + d * d + 2 * d * 3072 + 2 * 256 * d
    assert wl.total_macs == 12 * per_block + d * 50257


def test_batch_scales_macs_and_p() -> None:
    one, four = load_workload("resnet18"), load_workload("resnet18", batch=4)
    assert four.total_macs == 4 * one.total_macs
    assert four.layer("conv1").gemm().P == 4 * 112 * 112
    b2 = load_workload("bert-base", batch=2)
    assert b2.layer("encoder.0.attn.scores").gemm().groups == 24
    assert b2.layer("encoder.0.attn.query").gemm().P == 256


def test_conv_gemm_dims() -> None:
    wl = load_workload("resnet18")
    c1 = wl.layer("conv1")
    d = c1.gemm()
    assert (d.P, d.K, d.Q, d.groups, d.stationary) == (112 * 112, 147, 64, 1, "weight")
    assert c1.out_shape == (1, 64, 112, 112) and c1.weight == (64, 3, 7, 7)
    assert c1.macs == 112 * 112 * 147 * 64
    assert wl.layer("maxpool").out_shape == (1, 64, 56, 56)
    fc = wl.layer("fc").gemm()
    assert (fc.P, fc.K, fc.Q) == (1, 512, 1000)
    mb = load_workload("mobilenetv2")
    dw = mb.layer("block1.dw")
    assert dw.attrs["groups"] == 96
    assert dw.gemm() == type(dw.gemm())(112 * 112 // 4, 9, 1, 96, "weight")


def test_layers_are_topological_and_typed() -> None:
    for name in ("resnet50", "vit-b16"):
        wl = load_workload(name)
        seen = set(wl.inputs)
        for ly in wl.layers():
            assert all(i in seen for i in ly.inputs), ly.name
            seen.add(ly.name)
            assert ly.out_elements == int(np.prod(ly.out_shape))
            assert ly.is_gemm == (ly.kind in ("conv", "linear", "matmul"))
            assert ly.macs == (ly.gemm().macs if ly.is_gemm else 0)
        assert set(wl.graph.nodes) == seen
        assert wl.graph.number_of_edges() == sum(len(ly.inputs) for ly in wl.layers())


def test_gemm_weights_are_seeded_int8() -> None:
    wl = load_workload("resnet18")
    w = wl.layer("conv1").gemm_weight()
    assert w.dtype == np.int8 and w.shape == (147, 64)
    assert np.array_equal(w, load_workload("resnet18", batch=2).layer("conv1").gemm_weight())
    assert not np.array_equal(w[:, :8], wl.layer("layer1.0.conv1").gemm_weight()[:147, :8])
    assert wl.layer("conv1").gemm_weight(stacked=True).shape == (1, 147, 64)
    assert wl.layer("avgpool").gemm_weight() is None
    dw = load_workload("mobilenetv2").layer("block1.dw").gemm_weight()
    assert dw.shape == (96, 9, 1)
    att = load_workload("bert-base", seq=16).layer("encoder.0.attn.scores")
    assert att.gemm_weight().shape == (12, 64, 16)


def test_unknown_name_lists_the_zoo() -> None:
    with pytest.raises(WorkloadError, match="unknown workload 'resnet-9000'.*resnet18"):
        load_workload("resnet-9000")
    with pytest.raises(WorkloadError, match="batch must be an integer >= 1"):
        load_workload("resnet18", batch=0)
    with pytest.raises(WorkloadError, match="takes no seq"):
        load_workload("resnet18", seq=5)
    with pytest.raises(WorkloadError, match="does not exist"):
        load_workload("no/such/model.bin")


def test_builder_validates_shapes() -> None:
    b = GraphBuilder("bad")
    x = b.input("x", (1, 6, 8, 8))
    with pytest.raises(WorkloadError, match=r"bad:c \(conv\): groups=4 must divide"):
        b.conv(x, 8, 3, groups=4, name="c")
    with pytest.raises(WorkloadError, match="cannot reshape"):
        b.op("reshape", x, shape=[5, -1])
    y = b.conv(x, 8, 3, name="c")
    with pytest.raises(WorkloadError, match="duplicate layer name 'c'"):
        b.conv(y, 8, 3, name="c")
    with pytest.raises(WorkloadError, match="do not broadcast"):
        b.op("add", x, y)
    with pytest.raises(WorkloadError, match="unknown op kind 'frobnicate'"):
        b.op("frobnicate", x)
