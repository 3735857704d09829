"""High sparsity (m = 8, 16, 32) and hierarchical block + N:M: compile, run bit-exact on
the reference executor, and take m/n fewer weight tiles than dense."""

import numpy as np
import pytest
from compiler_helpers import concurrent_hazards
from sparsa.compiler import compile_workload, read_output
from sparsa.compiler.executor import run_program
from sparsa.compiler.gemms import Gemm, compile_gemms
from sparsa.compiler.options import CompileOptions
from sparsa.compiler.reference import RefGraph
from sparsa.hw.config import PRESETS
from sparsa.workloads.sparsity import SparsitySpec, make_masks


@pytest.mark.parametrize("cfg_name,pattern", [
    ("16x16-n2m8", "1:8"), ("16x16-n2m8", "2:8"), ("16x16-n1m16", "1:16"),
    ("16x16-n1m32", "1:32"), ("8x8-n1m16", "1:16"), ("16x16-n1m16", "1:32"),
])
def test_high_sparsity_gemm_bit_exact(cfg_name, pattern):
    cfg = PRESETS[cfg_name]
    rng = np.random.default_rng(5)
    K, Q = 3 * cfg.k_per_pass + 40, 2 * cfg.cols + 3
    w = rng.integers(-127, 128, (K, Q)).astype(np.int8)
    w[w == 0] = 1
    w = np.where(make_masks(w, SparsitySpec.parse(pattern), seed=0).fwd, w, 0).astype(np.int8)
    x = rng.integers(-128, 128, (9, K)).astype(np.int8)
    progs = {m: compile_gemms(cfg, [Gemm(x, w)], options=CompileOptions(sparse_mode=m))
             for m in ("sparse", "dense")}
    for prog in progs.values():
        dram = run_program(prog)
        np.testing.assert_array_equal(read_output(prog, dram, "g0.y"), prog.expected["g0.y"])
        assert concurrent_hazards(cfg, prog.instructions, trials=1) == []
    sp, dn = (progs[m].tensors["g0.w"].meta for m in ("sparse", "dense"))
    assert sp["mode"] == "sparse"
    tiles_sp, tiles_dn = len(sp["kt_idx"]), len(dn["kt_idx"])
    # a sparse tile covers k_per_pass = rows * m / n values of K, a dense one rows
    assert tiles_sp == -(-K // cfg.k_per_pass) * -(-Q // cfg.cols)
    # (dense mode skips K tiles that are all zero in a column block: possible at 1:32)
    assert tiles_sp * cfg.m // cfg.n // 2 < tiles_dn <= -(-K // cfg.rows) * -(-Q // cfg.cols)


def small_cnn(seed=0):
    rng = np.random.default_rng(seed)
    g = RefGraph("cnn", rng.integers(-128, 128, (1, 6, 6, 32)).astype(np.int8), seed)
    g.conv("c1", "x", 32, 32, 3)
    g.relu("r1", "c1")
    g.conv("c2", "r1", 32, 32, 1)
    return g


@pytest.mark.parametrize("cfg_name,spec,fewer_tiles", [
    ("16x16-n1m16", "1:16", False),
    # 16x16 blocks are much smaller than a sparse tile (K = k_per_pass = 256): numerics only
    ("16x16-n1m16", "block16x16:0.5+1:16", False),
    # blocks as deep as a sparse tile: whole tiles are skipped
    ("16x16-n1m16", "block256x16:0.5+1:16", True),
    ("16x16-n1m32", "1:32", False),
    ("16x16-n1m32", "block16x16:0.5+1:32", False),
])
def test_cnn_high_sparsity_matches_reference(cfg_name, spec, fewer_tiles):
    cfg = PRESETS[cfg_name]
    g = small_cnn()
    g.evaluate(spec)
    prog = compile_workload(g, cfg, sparsity=spec)
    dram = run_program(prog)
    for name in ("c1", "c2"):
        np.testing.assert_array_equal(read_output(prog, dram, f"{name}.y"),
                                      g.gemm_out[name][0], err_msg=name)
    modes = {ly.name: ly.meta["mode"] for ly in prog.layers if ly.kind != "host"}
    assert modes["c1"] == ["sparse"]
    if fewer_tiles:
        nm_only = compile_workload(g, cfg, sparsity=spec.split("+")[1], with_data=False)
        c1 = {p.name: p for p in prog.layers}["c1"]
        c1_nm = {p.name: p for p in nm_only.layers}["c1"]
        assert c1.meta["tiles"] < c1_nm.meta["tiles"]
