"""Executor(program) == direct numpy evaluation of the original graph, on small networks."""

import numpy as np
import pytest
from compiler_helpers import concurrent_hazards
from sparsa.compiler import compile_workload, read_output
from sparsa.compiler.executor import run_program
from sparsa.compiler.reference import RefGraph, TrainGraph, conv_direct, im2col
from sparsa.hw.config import PRESETS

SPECS = ["dense", "2:4", "1:4", "block4x4:0.5", "block8x8:0.5+1:4",
         "fwd=2:4,bwd=2:4,method=bimask"]


def resnet_block(seed=0):
    rng = np.random.default_rng(seed)
    g = RefGraph("resnet-basic", rng.integers(-128, 128, (1, 6, 6, 16)).astype(np.int8), seed)
    g.conv("c1", "x", 16, 16, 3)
    g.relu("r1", "c1")
    g.conv("c2", "r1", 16, 16, 3)
    g.add("add", "c2", "x")
    g.relu("r2", "add")
    g.conv("c3", "r2", 16, 24, 1)          # 1x1: chained? (input is a host op -> no)
    g.relu("r3", "c3")
    g.conv("c4", "r3", 24, 16, 1)          # 1x1 after a fused ReLU: chained on the core
    return g


def dw_separable(seed=0):
    rng = np.random.default_rng(seed)
    g = RefGraph("dw-sep", rng.integers(-128, 128, (1, 5, 5, 8)).astype(np.int8), seed)
    g.conv("dw", "x", 8, 8, 3, groups=8)
    g.relu("r1", "dw")
    g.conv("pw", "r1", 8, 24, 1)
    g.relu("r2", "pw")
    return g


def encoder_block(seed=0, seq=12, d=32, heads=2):
    rng = np.random.default_rng(seed)
    g = RefGraph("encoder", rng.integers(-128, 128, (seq, d)).astype(np.int8), seed)
    for n in ("q", "k", "v"):
        g.linear(n, "x", d, d)
    g.matmul("scores", "q", "k", heads, transpose_b=True)
    g.softmax("attn", "scores")
    g.matmul("ctx", "attn", "v", heads, transpose_b=False)
    g.linear("o", "ctx", d, d)
    g.add("res1", "o", "x")
    g.linear("fc1", "res1", d, 2 * d)
    g.relu("gelu", "fc1")
    g.linear("fc2", "gelu", 2 * d, d)
    g.add("res2", "fc2", "res1")
    return g


def _check(prog, ref):
    dram = run_program(prog)
    checked = 0
    for ly in ref.layers():
        if not ly.is_gemm:
            continue
        outs = ref.gemm_out[ly.name]
        for gi, want in enumerate(outs):
            name = ly.name if len(outs) == 1 else f"{ly.name}/g{gi}"
            got = read_output(prog, dram, f"{name}.y")
            np.testing.assert_array_equal(got, want, err_msg=f"{name}")
            checked += 1
    assert checked > 0
    assert concurrent_hazards(prog.config, prog.instructions, trials=1) == []
    return dram


def test_direct_conv_matches_im2col():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (2, 7, 5, 6)).astype(np.int8)
    w = rng.integers(-128, 128, (3, 3, 6, 4)).astype(np.int8)
    y = conv_direct(x, w, 2, 1, 1)
    cols = im2col(x, 3, 3, 2, 1)
    np.testing.assert_array_equal(y.reshape(-1, 4), cols.astype(np.int64) @ w.reshape(-1, 4))


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("build", [resnet_block, dw_separable, encoder_block],
                         ids=["resnet", "dwsep", "encoder"])
def test_inference_blocks(build, spec):
    cfg = PRESETS["8x8-n2m4"]
    ref = build()
    ref.evaluate(spec)
    prog = compile_workload(ref, cfg, sparsity=spec, seed=ref.seed)
    _check(prog, ref)
    s = prog.summary()
    assert s["useful_macs"] == s["nonzero_macs"]


def test_encoder_reuses_shared_input_and_chains():
    cfg = PRESETS["8x8-n2m4"]
    ref = encoder_block()
    ref.evaluate("2:4")
    prog = compile_workload(ref, cfg, sparsity="2:4", seed=0)
    assert prog.tensors["q.y"].role == "output"
    assert "x.x.sparse.k32" in prog.tensors            # Q/K/V share one host input
    assert "fc2.x" not in prog.tensors                  # fc2 reads fc1's output directly
    _check(prog, ref)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", ["8x8-n2m4", "4x4-n2m4"])
def test_mlp_training_step(spec, name):
    cfg = PRESETS[name]
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (10, 24)).astype(np.int8)
    ref = TrainGraph(x, [24, 32, 32, 16], spec, seed=0)
    prog = compile_workload(ref, cfg, sparsity=spec, train=True, seed=0)
    _check(prog, ref)
    kinds = {ly.kind for ly in prog.layers}
    assert {"fwd", "bwd_data", "wgrad"} <= kinds
    if "bimask" in spec:
        bwd = [ly for ly in prog.layers if ly.kind == "bwd_data"]
        assert all(ly.meta["mode"] == ["sparse"] for ly in bwd)


def test_training_options_change_schedule_not_results():
    from sparsa.compiler import CompileOptions
    cfg = PRESETS["8x8-n2m4"]
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (10, 24)).astype(np.int8)
    spec = "fwd=2:4,bwd=2:4,method=bimask"
    ref = TrainGraph(x, [24, 32, 16], spec, seed=0)
    base = compile_workload(ref, cfg, sparsity=spec, train=True)
    for opt in (CompileOptions(pregenerate_bwd=False), CompileOptions(interleave=False),
                CompileOptions(reuse_schedule=False), CompileOptions(dataflow="act-reuse")):
        prog = compile_workload(ref, cfg, sparsity=spec, train=True, options=opt)
        _check(prog, ref)
        if not opt.pregenerate_bwd:
            # pruned on the fly by the host every step: same core program, more host work
            bwd = [ly for ly in prog.layers if ly.kind == "bwd_data"]
            assert all(ly.meta["mode"] == ["sparse"] for ly in bwd)
            gen = [ly for ly in prog.layers if ly.name.endswith(".wt_gen")]
            assert [ly.meta["elements"] for ly in gen] == [32 * 16]
            assert prog.instructions == base.instructions
        if not opt.interleave:
            assert prog.summary()["by_kind"].get("Fence", 0) > 0


@pytest.mark.parametrize("spec", ["3:8", "4:8", "fwd=4:8,bwd=4:8,method=bimask",
                                  "unstructured:0.125"])
def test_patterns_denser_than_n_run_in_passes(spec):
    """On the n = 2, m = 8 core, 3:8 and 4:8 run in two sparse passes (forward and, with
    Bi-Mask, backward-data GEMMs), unstructured weights in as many as their worst window
    needs: executor == direct numpy."""
    cfg = PRESETS["8x8-n2m8"]
    if "method" in spec:
        x = np.random.default_rng(5).integers(-128, 128, (10, 48)).astype(np.int8)
        ref = TrainGraph(x, [48, 64, 32], spec, seed=0)
        prog = compile_workload(ref, cfg, sparsity=spec, train=True, seed=0)
        kinds = {"fwd", "bwd_data"}
    else:
        ref = resnet_block()
        ref.evaluate(spec)
        prog = compile_workload(ref, cfg, sparsity=spec, seed=ref.seed)
        kinds = {"gemm"}
    _check(prog, ref)
    split = {ly.kind for ly in prog.layers if ly.meta.get("passes", 1) > 1}
    assert split == kinds
    s = prog.summary()
    assert s["useful_macs"] == s["nonzero_macs"]
