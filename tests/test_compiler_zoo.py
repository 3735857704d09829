"""Whole networks: compile succeeds, MAC accounting is exact, data-free == data shape."""

import numpy as np
import pytest
from compiler_helpers import expected_padding_macs, resnet50_shapes
from sparsa.compiler import compile_workload
from sparsa.hw.config import PRESETS
from sparsa.workloads import ZOO_NAMES

CASES = [("16x16-n2m4", "dense"), ("16x16-n2m4", "2:4"), ("16x16-n2m8", "2:8"),
         ("16x16-n2m4", "block16x16:0.5"), ("16x16-n2m8", "block16x16:0.5+1:8")]


def _check_macs(prog, exact_padding):
    s = prog.summary()
    assert s["useful_macs"] == s["nonzero_macs"]
    assert s["macs_issued"] >= s["nonzero_macs"]
    if exact_padding:
        assert s["macs_issued"] - s["nonzero_macs"] == expected_padding_macs(prog)


@pytest.mark.parametrize("name,spec", CASES)
def test_resnet50_shapes(name, spec):
    prog = compile_workload(resnet50_shapes(), PRESETS[name], sparsity=spec, with_data=False)
    _check_macs(prog, "block" not in spec)
    s = prog.summary()
    if spec in ("2:4", "2:8"):
        # exactly n per full window; conv1's K = 147 ends in a partial window
        m = int(spec[2])
        expect = sum(ly.meta["P"] * ly.meta["Q"] * ly.meta["groups"]
                     * sum(min(2, ly.meta["K"] - w) for w in range(0, ly.meta["K"], m))
                     for ly in prog.layers if ly.kind != "host")
        assert s["nonzero_macs"] == expect
        assert all(ly.meta["mode"] == ["sparse"] for ly in prog.layers if ly.kind != "host")
    host = {ly.name for ly in prog.layers if ly.kind == "host"}
    assert "avgpool" in host and "conv1.im2col" in host
    assert "l0b0c2" in {ly.name for ly in prog.layers if ly.kind == "gemm"}


def test_2_4_on_m8_array_runs_at_window_4_and_is_noted():
    """2:4 has up to 4 non-zeros in an 8-window but at most 2 in every aligned 4-window: the
    m = 8 array runs it in sparse mode at window 4 (2x over dense); 4:8 runs in two sparse
    passes at window 8 (also 2x over dense: two weight tiles per activation tile), 7:8 dense."""
    cfg = PRESETS["16x16-n2m8"]
    prog = compile_workload(resnet50_shapes(), cfg, sparsity="2:4", with_data=False)
    gemms = [ly for ly in prog.layers if ly.kind != "host"]
    assert {(tuple(ly.meta["mode"]), tuple(ly.meta["window"])) for ly in gemms} == \
        {(("sparse",), (4,))}
    _check_macs(prog, True)
    dense = compile_workload(resnet50_shapes(), cfg, sparsity="dense", with_data=False)
    assert prog.summary()["macs_issued"] * 2 <= dense.summary()["macs_issued"] * 1.01
    wide = compile_workload(resnet50_shapes(), cfg, sparsity="4:8", with_data=False)
    modes = {(tuple(ly.meta["mode"]), ly.meta.get("passes")) for ly in wide.layers
             if ly.kind != "host"}
    assert (("sparse",), 2) in modes and modes <= {(("sparse",), 2), (("dense",), None)}
    _check_macs(wide, True)
    assert wide.summary()["macs_issued"] * 2 <= dense.summary()["macs_issued"] * 1.05
    dense78 = compile_workload(resnet50_shapes(), cfg, sparsity="7:8", with_data=False)
    assert {tuple(ly.meta["mode"]) for ly in dense78.layers if ly.kind != "host"} == \
        {("dense",)}
    _check_macs(dense78, True)


def test_data_free_stream_has_the_data_shape():
    from compiler_helpers import ShapeLayer, ShapeWorkload
    wl = ShapeWorkload("small", [
        ShapeLayer("c1", "conv", ("x",), (49, 27, 32)),
        ShapeLayer("r1", "relu", ("c1",), out_elements=49 * 32),
        ShapeLayer("c2", "conv", ("r1",), (49, 32, 48)),
        ShapeLayer("dw", "conv", ("c2",), (49, 9, 1, 48)),
        ShapeLayer("fc", "linear", ("dw",), (1, 2352, 10))])
    cases = [("16x16-n2m4", s) for s in ("dense", "2:4", "1:4", "2:8")] + \
        [("16x16-n2m8", "3:8"), ("16x16-n2m8", "4:8"), ("16x16-n1m16", "2:4"),
         ("16x16-n1m16", "3:16")]     # sparse passes
    for cfg, spec in cases:
        a = compile_workload(wl, PRESETS[cfg], sparsity=spec, with_data=True)
        b = compile_workload(wl, PRESETS[cfg], sparsity=spec, with_data=False)
        passes = [ly.meta.get("passes", 1) for ly in a.layers if ly.kind != "host"]
        assert passes == [ly.meta.get("passes", 1) for ly in b.layers if ly.kind != "host"]
        assert (max(passes) > 1) == (":" in spec and cfg != "16x16-n2m4")
        assert [type(i) for i in a.instructions] == [type(i) for i in b.instructions]
        assert [(i.count if hasattr(i, "count") else 0) for i in a.instructions] == \
            [(i.count if hasattr(i, "count") else 0) for i in b.instructions]
        assert a.dram_beats == b.dram_beats and b.dram.size == 0
        assert a.summary()["nonzero_macs"] == b.summary()["nonzero_macs"]


def test_dataflows_trade_weight_and_activation_traffic():
    wl = resnet50_shapes()
    cfg = PRESETS["16x16-n2m4"]
    wr = compile_workload(wl, cfg, sparsity="2:4", with_data=False).summary()
    ar = compile_workload(wl, cfg, sparsity="2:4", with_data=False,
                          dataflow="act-reuse").summary()
    assert wr["macs_issued"] == ar["macs_issued"]
    assert wr["dram_read_bytes"] != ar["dram_read_bytes"]


# ---- the zoo -------------------------------------------------------------------------------
ZOO = sorted(ZOO_NAMES)


@pytest.mark.parametrize("net", ZOO)
@pytest.mark.parametrize("name,spec", CASES)
def test_zoo_compiles(net, name, spec):
    prog = compile_workload(net, PRESETS[name], sparsity=spec, with_data=False)
    _check_macs(prog, "block" not in spec)


@pytest.mark.parametrize("net", ["resnet18", "bert-base"])
@pytest.mark.parametrize("name,spec", CASES + [("16x16-n2m4", "fwd=2:4,bwd=2:4,method=bimask")])
def test_zoo_training_compiles(net, name, spec):
    prog = compile_workload(net, PRESETS[name], sparsity=spec, train=True, with_data=False)
    kinds = {ly.kind for ly in prog.layers}
    assert {"fwd", "bwd_data", "wgrad"} <= kinds
    s = prog.summary()
    assert s["useful_macs"] == s["nonzero_macs"]
    assert np.all([ly.end_instr >= ly.first_instr for ly in prog.layers])
