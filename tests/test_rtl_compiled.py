"""Compiled programs on the Verilator core: final DRAM images bit-identical to the reference
executor (and the GEMM outputs equal to the direct numpy evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
from compiler_helpers import two_layer_mlp
from sparsa.compiler import compile_workload, read_output
from sparsa.compiler.executor import execute
from sparsa.compiler.reference import RefGraph, TrainGraph
from sparsa.hw.config import PRESETS
from sparsa.hw.rtl_runner import rtl_available, run_on_rtl

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not rtl_available(), reason="the core's Verilog generator "
                                 "(sparsa.hw.verilog) is not in this checkout yet")]


def _run(prog, ref):
    ex = execute(prog.config, prog.instructions, prog.dram)
    res = run_on_rtl(prog, expected=ex.dram, exp_writes=(ex.write_addrs, ex.write_data))
    np.testing.assert_array_equal(res.dram, ex.dram)
    for ly in ref.layers():
        if ly.is_gemm:
            outs = ref.gemm_out[ly.name]
            for gi, want in enumerate(outs):
                name = ly.name if len(outs) == 1 else f"{ly.name}/g{gi}"
                np.testing.assert_array_equal(read_output(prog, res.dram, f"{name}.y"), want)
    print(f"{ref.name}: {len(prog.instructions)} instructions, {res.cycles} cycles")
    return res


def _x(shape, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)


@pytest.mark.xdist_group("16x16-n2m4")
def test_resnet18_conv_reduced():
    """ResNet-18 layer1 3x3 conv (64 -> 64) on a 4x4 feature map, 2:4: the core reads its
    im2col rows from the padded 6x6 image with strided LOADs (implicit im2col)."""
    g = RefGraph("resnet18-l1-conv", _x((1, 4, 4, 64)), seed=1)
    g.conv("l1.conv1", "x", 64, 64, 3)
    g.relu("l1.relu", "l1.conv1")
    g.evaluate("2:4")
    prog = compile_workload(g, PRESETS["16x16-n2m4"], sparsity="2:4", seed=1)
    assert prog.tensors["l1.conv1.x"].meta["image"] == [1, 6, 6, 64]
    _run(prog, g)


@pytest.mark.xdist_group("16x16-n2m4")
def test_implicit_im2col_strided_and_wide_kernels():
    """Strided LOADs at two pixels per step (a 3x3 stride-2 convolution) and a 5x5 kernel
    with padding 2, both reading their padded images in place, bit-exact on Verilator."""
    g = RefGraph("img-strided", _x((1, 7, 7, 32), seed=8), seed=8)
    g.conv("s2", "x", 32, 32, 3, stride=2)
    g.relu("r", "s2")
    g.conv("k5", "r", 32, 16, 5)
    g.evaluate("2:4")
    prog = compile_workload(g, PRESETS["16x16-n2m4"], sparsity="2:4", seed=8)
    assert prog.tensors["s2.x"].meta["image"] == [1, 9, 9, 32]
    assert prog.tensors["k5.x"].meta["image"] == [1, 8, 8, 32]
    _run(prog, g)


@pytest.mark.xdist_group("16x16-n2m4")
def test_outputs_stored_into_padded_images():
    """``store_image``: a 1x1 convolution's STOREs write the next 3x3 convolution's padded
    image row by row, whose STOREs write the padded image of a strided 3x3 after it (odd
    7x6 maps, two images); the borders stay zero, everything is bit-exact on Verilator and
    the model's cycles equal the RTL's."""
    from sparsa.compiler import CompileOptions
    from sparsa.sim.api import simulate
    g = RefGraph("stored-images", _x((2, 7, 6, 32), seed=9), seed=9)
    g.conv("c1", "x", 32, 32, 1)
    g.relu("r1", "c1")
    g.conv("c2", "r1", 32, 32, 3)
    g.relu("r2", "c2")
    g.conv("c3", "r2", 32, 16, 3, stride=2)
    g.evaluate("2:4")
    prog = compile_workload(g, PRESETS["16x16-n2m4"], sparsity="2:4", seed=9,
                            options=CompileOptions(store_image=True))
    assert prog.tensors["c1.y"].meta["image"] == [2, 9, 8, 32]
    assert prog.tensors["c2.y"].meta["image"] == [2, 9, 8, 32]
    assert "c2.x" not in prog.tensors and "c3.x" not in prog.tensors
    res = _run(prog, g)
    assert simulate(prog).cycles == res.cycles


@pytest.mark.xdist_group("16x16-n2m4")
def test_bert_linear_slice():
    """A BERT-base attention projection slice: 8 tokens x 768 -> 64 outputs, 2:4."""
    g = RefGraph("bert-q-slice", _x((8, 768)), seed=2)
    g.linear("q", "x", 768, 64)
    g.evaluate("2:4")
    _run(compile_workload(g, PRESETS["16x16-n2m4"], sparsity="2:4", seed=2), g)


@pytest.mark.xdist_group("8x8-n2m8")
def test_depthwise_conv():
    g = RefGraph("dw", _x((1, 5, 5, 8)), seed=3)
    g.conv("dw", "x", 8, 8, 3, groups=8)
    g.relu("r", "dw")
    g.conv("pw", "r", 8, 16, 1)
    g.evaluate("1:8")
    _run(compile_workload(g, PRESETS["8x8-n2m8"], sparsity="1:8", seed=3), g)


@pytest.mark.xdist_group("8x8-n2m8")
def test_packed_grouped_convs():
    """Group packing on the core: a depthwise conv of 16 channels (two GEMMs of 8 groups,
    block-diagonal, 1 non-zero per 8-window: sparse mode although the spec is dense), a
    1x1 grouped conv of 4 channels per group (two GEMMs of 2 groups; at 2:8 each group's
    4 rows padded to the 8-window) and a 3x3 grouped conv (packed dense; at 2:8 a pack
    would need more tiles than its groups' 2 sparse tiles each, so it runs group by
    group); every group's output bit-exact."""
    for spec in ("dense", "2:8"):
        g = RefGraph("grouped", _x((1, 5, 5, 16), seed=5), seed=5)
        g.conv("dw", "x", 16, 16, 3, groups=16)
        g.relu("r", "dw")
        g.conv("gc", "r", 16, 16, 1, groups=4)
        g.relu("r2", "gc")
        g.conv("g3", "r2", 16, 16, 3, groups=4)
        g.evaluate(spec)
        prog = compile_workload(g, PRESETS["8x8-n2m8"], sparsity=spec, seed=5)
        dw, gc, g3 = [ly for ly in prog.layers if ly.kind != "host"]
        assert dw.meta["ops"] == ["dw/g0-7", "dw/g8-15"] and dw.meta["pack_k"] == 72
        assert dw.meta["mode"] == ["sparse"]
        assert gc.meta["ops"] == ["gc/g0-1", "gc/g2-3"]
        assert gc.meta["pack_k"] == (8 if spec == "dense" else 16)
        if spec == "dense":
            assert g3.meta["ops"] == ["g3/g0-1", "g3/g2-3"] and g3.meta["pack_k"] == 72
        else:
            assert g3.meta["ops"] == [f"g3/g{i}" for i in range(4)]
        _run(prog, g)


@pytest.mark.xdist_group("16x16-n2m4")
def test_block_sparse_layer():
    g = RefGraph("block", _x((12, 96)), seed=4)
    g.linear("fc", "x", 96, 64)
    g.evaluate("block16x16:0.5+2:4")
    prog = compile_workload(g, PRESETS["16x16-n2m4"], sparsity="block16x16:0.5+2:4", seed=4)
    assert prog.summary()["macs_issued"] < 12 * 96 * 64 // 2
    _run(prog, g)


@pytest.mark.xdist_group("16x16-n2m4")
def test_mlp_training_step_bimask():
    spec = "fwd=2:4,bwd=2:4,method=bimask"
    ref = TrainGraph(_x((16, 64), 5), [64, 64, 32], spec, seed=0)
    prog = compile_workload(ref, PRESETS["16x16-n2m4"], sparsity=spec, train=True)
    _run(prog, ref)


@pytest.mark.xdist_group("8x8-n2m8")
def test_packed_depthwise_training_step():
    """A training step of conv -> depthwise conv -> conv (Bi-Mask 2:8) with its grouped
    GEMMs packed: the depthwise forward and weight-gradient GEMMs block-diagonal in sparse
    mode, the backward-data GEMM's groups side by side in one K tile. The DRAM image is
    bit-identical to the executor's (and every GEMM output to the compiler's numpy
    expectation; that a pack computes its groups' products is tests/test_grouppack.py's
    property test), and the model's cycles are within 1% of the RTL's."""
    from sparsa.compiler.gemms import read_output
    from sparsa.sim.api import simulate
    from sparsa.workloads.graph import GraphBuilder
    b = GraphBuilder("dw-train")
    x = b.input("x", (1, 8, 6, 6))
    x = b.relu(b.conv(x, 16, 1, name="pw1"), name="r1")
    x = b.relu(b.conv(x, 16, 3, groups=16, name="dw"), name="r2")
    b.conv(x, 8, 1, name="pw2")
    spec = "fwd=2:8,bwd=2:8,method=bimask"
    prog = compile_workload(b.build(), PRESETS["8x8-n2m8"], sparsity=spec, train=True, seed=2)
    meta = {ly.name: ly.meta for ly in prog.layers if ly.kind != "host"}
    assert meta["dw.fwd"]["ops"] == ["dw.fwd/g0-7", "dw.fwd/g8-15"]
    assert meta["dw.wgrad"]["mode"] == ["sparse"] and meta["dw.wgrad"]["pack"] == 8
    assert meta["dw.bwd_data"]["pack"] == 8 and meta["dw.bwd_data"]["pack_k"] == 8
    ex = execute(prog.config, prog.instructions, prog.dram)
    res = run_on_rtl(prog, expected=ex.dram, exp_writes=(ex.write_addrs, ex.write_data))
    np.testing.assert_array_equal(res.dram, ex.dram)
    for name, want in prog.expected.items():
        np.testing.assert_array_equal(read_output(prog, res.dram, name), want, err_msg=name)
    model = simulate(prog).cycles
    assert abs(model - res.cycles) <= 0.01 * res.cycles, (model, res.cycles)
    print(f"dw-train: {len(prog.instructions)} instructions, {res.cycles} RTL cycles, "
          f"{model} model cycles")


@pytest.mark.xdist_group("8x8-n2m8")
def test_blocked_weight_reuse_and_act_reuse():
    """Both loop orders on one graph: weight-reuse blocks GEMM a (K blocks of 2 tiles,
    accumulator blocks of 2 column blocks, their STOREs spread over later passes), and
    act-reuse runs every GEMM with all column blocks in one accumulator block. Each program
    runs bit-exact, and the model's cycles equal the RTL's."""
    from sparsa.sim.api import simulate
    g = RefGraph("orders", _x((256, 256), 6), seed=6)
    g.linear("a", "x", 256, 16)
    g.relu("r", "a")
    g.linear("b", "r", 16, 64)
    g.evaluate("2:8")
    for df in ("weight-reuse", "act-reuse"):
        dumps: list[str] = []
        prog = compile_workload(g, PRESETS["8x8-n2m8"], sparsity="2:8", seed=6, dataflow=df,
                                dump_after="tile", dump=dumps.append)
        assert [ly.meta["order"] for ly in prog.layers if ly.kind != "host"] == [[df], [df]]
        if df == "weight-reuse":
            assert " kc=2 qb=2 " in dumps[0]
        res = _run(prog, g)
        assert simulate(prog).cycles == res.cycles


@pytest.mark.xdist_group("8x8-n2m8")
def test_pattern_denser_than_n_runs_in_passes():
    """3:8 on the n = 2, m = 8 core: two sparse passes (each keeps 2 of every 8) reading
    every activation tile with two weight tiles, bit-exact on Verilator, the model's cycles
    equal to the RTL's, and fewer cycles than the same layers in dense mode."""
    from sparsa.compiler import CompileOptions
    from sparsa.sim.api import simulate
    cfg = PRESETS["8x8-n2m8"]
    g = two_layer_mlp("passes", _x((24, 96), 7), 16, 24, "3:8", seed=7)
    prog = compile_workload(g, cfg, sparsity="3:8", seed=7)
    fc1 = next(ly for ly in prog.layers if ly.name == "fc1")
    assert fc1.meta["passes"] == 2 and fc1.meta["window"] == [8]
    x = prog.tensors["x.x.sparse.k96"]
    assert x.shape == (24, 96)                                      # the input, once
    acts = [i for i in prog.instructions if type(i).__name__ == "Load"
            and i.target.name == "ACT" and x.addr <= i.dram_addr < x.addr + x.beats]
    assert sum(i.count for i in acts) == 24 * 96 // cfg.k_per_pass   # each entry loaded once
    assert prog.summary()["useful_macs"] == prog.summary()["nonzero_macs"]
    res = _run(prog, g)
    assert simulate(prog).cycles == res.cycles
    dense = compile_workload(g, cfg, sparsity="3:8", seed=7,
                             options=CompileOptions(sparse_mode="dense"))
    assert res.cycles < simulate(dense).cycles
