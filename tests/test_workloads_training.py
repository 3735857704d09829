"""Training expansion: three GEMMs per weight layer with the right dims, weights and order."""

from __future__ import annotations

import numpy as np
import pytest
from sparsa.workloads import GraphBuilder, load_workload
from sparsa.workloads.training import expand_training


def _mlp():
    b = GraphBuilder("mlp")
    x = b.input("x", (8, 32))
    h = b.relu(b.linear(x, 64, name="fc1"), name="fc1.relu")
    h2 = b.relu(b.linear(h, 64, name="fc2"), name="fc2.relu")
    y = b.op("add", h2, h, name="res")
    b.linear(y, 10, name="fc3")
    return b.build()


def test_three_gemms_with_transposed_dims() -> None:
    wl = _mlp()
    tw = wl.expand_training()
    by = {ly.name: ly for ly in tw.layers()}
    for name in ("fc2", "fc3"):
        f = wl.layer(name).gemm()
        assert by[f"{name}.fwd"].gemm() == f
        bd, wg = by[f"{name}.bwd_data"].gemm(), by[f"{name}.wgrad"].gemm()
        assert (bd.P, bd.K, bd.Q, bd.groups, bd.stationary) == (f.P, f.Q, f.K, 1, "weight")
        assert (wg.P, wg.K, wg.Q, wg.stationary) == (f.K, f.P, f.Q, "act")
        for suffix, phase in (("fwd", "fwd"), ("bwd_data", "bwd_data"), ("wgrad", "wgrad")):
            ly = by[f"{name}.{suffix}"]
            assert ly.attrs["phase"] == phase and ly.attrs["source"] == name
            assert ly.macs == f.macs
        # backward-data weights are the forward weights transposed
        assert np.array_equal(by[f"{name}.bwd_data"].gemm_weight(),
                              wl.layer(name).gemm_weight().T)
        assert by[f"{name}.wgrad"].gemm_weight().shape == (f.P, f.Q)
    # the first layer's input is the graph input: no input gradient
    assert "fc1.bwd_data" not in by and "fc1.wgrad" in by
    assert by["fc1.wgrad"].inputs == ("x", "fc1.relu.bwd")
    # the residual's two gradient contributions are summed
    assert set(by["fc1.relu.grad_sum"].inputs) == {"res.bwd1", "fc2.bwd_data"}


def test_order_forward_then_reverse_backward() -> None:
    tw = expand_training(_mlp())
    names = [ly.name for ly in tw.layers()]
    nf = sum(ly.attrs["phase"] == "fwd" for ly in tw.layers())
    assert all(ly.attrs["phase"] == "fwd" for ly in tw.layers()[:nf])
    assert names[nf] == "fc3.loss_grad"
    assert names.index("fc3.wgrad") < names.index("fc2.bwd_data") < names.index("fc1.wgrad")
    seen = set(tw.inputs)
    for ly in tw.layers():
        assert set(ly.inputs) <= seen
        seen.add(ly.name)


@pytest.mark.parametrize("net", ["resnet18", "bert-base", "mobilenetv2"])
def test_training_macs(net: str) -> None:
    wl = load_workload(net)
    tw = wl.expand_training()
    macs = {"fwd": 0, "bwd_data": 0, "wgrad": 0}
    for ly in tw.gemm_layers():
        macs[ly.attrs["phase"]] += ly.macs
    first = wl.gemm_layers()[0]
    assert macs["fwd"] == macs["wgrad"] == wl.total_macs
    expect_bwd = wl.total_macs - (first.macs if first.inputs[0] in wl.inputs else 0)
    assert macs["bwd_data"] == expect_bwd
    assert tw.name == f"{net}-train" and tw.attrs["training"]


def test_grouped_and_attention_backward() -> None:
    tw = load_workload("mobilenetv2").expand_training()
    bd = tw.layer("block1.dw.bwd_data")
    assert bd.gemm() == type(bd.gemm())(3136, 1, 9, 96, "weight")
    assert bd.gemm_weight().shape == (96, 1, 9)
    assert bd.out_shape == (1, 96, 112, 112)
    bt = load_workload("bert-base", seq=32).expand_training()
    s = bt.layer("encoder.0.attn.scores.bwd_data").gemm()
    assert (s.P, s.K, s.Q, s.groups, s.stationary) == (32, 32, 64, 12, "act")
    w = bt.layer("encoder.0.attn.scores.wgrad")
    assert w.out_shape == (1, 12, 32, 64)     # d(K^T operand), as given: [B, H, S, d]
    assert (w.gemm().P, w.gemm().K, w.gemm().Q) == (64, 32, 32)
