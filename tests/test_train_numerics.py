"""Training-step numerics: forward, backward-data and weight-gradient GEMMs of a small MLP
and a small CNN, compiled with bidirectional masks, equal the direct numpy evaluation on the
reference executor; the weight gradient is dense; the backward-data weights are N:M along
their reduction axis."""

import numpy as np
import pytest
from sparsa.compiler import CompileOptions, compile_workload, read_output
from sparsa.compiler.executor import run_program
from sparsa.compiler.reference import TrainGraph
from sparsa.compiler.training import (
    CNNTrainGraph,
    col2im,
    conv_input_grad,
    conv_weight_grad,
)
from sparsa.compiler.wformat import unpack_tiles
from sparsa.hw.config import PRESETS

SPECS = ["fwd=2:8,bwd=2:8,method=bimask", "fwd=2:8,bwd=2:8,method=transposable",
         "fwd=2:8,bwd=2:8,method=forward-only"]


def _check_all(prog, ref):
    dram = run_program(prog)
    phases = set()
    for ly in ref.layers():
        if not ly.is_gemm:
            continue
        got = read_output(prog, dram, f"{ly.name}.y")
        np.testing.assert_array_equal(got, ref.gemm_out[ly.name][0], err_msg=ly.name)
        phases.add(ly.attrs["phase"])
    assert phases == {"fwd", "bwd_data", "wgrad"}
    return dram


def _nm_along_rows(w, n, m):
    k = w.shape[0]
    kp = -(-k // m) * m
    nz = np.zeros((kp, w.shape[1]), bool)
    nz[:k] = w != 0
    return nz.reshape(kp // m, m, -1).sum(axis=1).max() <= n


def _check_modes_and_masks(prog, cfg, method):
    by = {ly.name: ly for ly in prog.layers}
    for ly in prog.layers:
        if ly.kind == "wgrad":
            assert ly.meta["mode"] == ["dense"], ly.name        # weight gradient: dense
        if ly.kind == "fwd":
            assert ly.meta["mode"] == ["sparse"], ly.name
        if ly.kind == "bwd_data":
            t = prog.tensors[f"{ly.name}.w"]
            if method == "forward-only":
                continue
            assert ly.meta["mode"] == ["sparse"], ly.name
            # decode the stored W^T tiles: N:M along the GEMM's reduction axis (rows)
            from sparsa.compiler.wformat import TileMap
            m = t.meta
            keep = np.zeros((m["nk"], m["nq"]), bool)
            for qt in range(m["nq"]):
                keep[m["kt_idx"][m["qt_ptr"][qt]:m["qt_ptr"][qt + 1]], qt] = True
            tm = TileMap(m["mode"], m["kp"], m["nk"], m["nq"], keep.astype(np.int64), keep)
            bb = cfg.beat_bytes
            raw = prog.dram[t.addr * bb:(t.addr + t.beats) * bb].reshape(tm.tiles, cfg.rows, -1)
            wt = unpack_tiles(cfg, raw, tm, *t.shape)
            assert _nm_along_rows(wt, 2, 8), ly.name
            assert np.count_nonzero(wt) <= wt.size // 4
    assert by


@pytest.mark.parametrize("spec", SPECS)
def test_mlp_training_step_three_gemms(spec):
    cfg = PRESETS["8x8-n2m8"]
    x = np.random.default_rng(0).integers(-128, 128, (12, 48)).astype(np.int8)
    ref = TrainGraph(x, [48, 64, 32, 16], spec, seed=0)
    prog = compile_workload(ref, cfg, sparsity=spec, train=True, seed=0)
    _check_all(prog, ref)
    _check_modes_and_masks(prog, cfg, spec.split("method=")[1])


@pytest.mark.parametrize("spec", SPECS)
def test_cnn_training_step_three_gemms(spec):
    cfg = PRESETS["8x8-n2m8"]
    x = np.random.default_rng(1).integers(-128, 128, (1, 5, 5, 8)).astype(np.int8)
    ref = CNNTrainGraph(x, [(16, 3), (16, 3), (8, 1)], spec, seed=0)
    # sparse_mode="sparse": the last layer's backward-data GEMM (K = 8 = rows) would run
    # dense under "auto" (one tile either way); here every masked GEMM must run sparse
    prog = compile_workload(ref, cfg, sparsity=spec, train=True, seed=0,
                            options=CompileOptions(sparse_mode="sparse"))
    _check_all(prog, ref)
    _check_modes_and_masks(prog, cfg, spec.split("method=")[1])


def test_cnn_gemms_are_the_convolution_gradients():
    """The GEMM formulation (im2col / col2im) equals direct gradient convolutions."""
    x = np.random.default_rng(2).integers(-128, 128, (2, 5, 6, 4)).astype(np.int8)
    spec = "fwd=2:8,bwd=2:8,method=bimask"
    ref = CNNTrainGraph(x, [(8, 3), (8, 3)], spec, seed=3)
    name = "conv1"
    w4 = ref.weights[name]
    wb = np.where(ref.masks[name].bwd_or_dense(), w4.reshape(-1, w4.shape[3]), 0)
    dy = ref.grads[name]
    got = col2im(ref.dx32[name], ref.acts[1].shape, 3, 3, 1)
    np.testing.assert_array_equal(got, conv_input_grad(dy, wb.reshape(w4.shape), 1))
    dw = ref.gemm_out[f"{name}.wgrad"][0].astype(np.int64)
    np.testing.assert_array_equal(dw.reshape(w4.shape),
                                  conv_weight_grad(ref.acts[1], dy, 3, 3, 1))
    # the backward mask really is N:M along Q of W (the reduction axis of dX = dY W^T)
    assert _nm_along_rows(wb.T, 2, 8)
