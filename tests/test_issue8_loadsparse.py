"""Load-as-sparse, compute-as-dense: compressed weights in DRAM, expanded by the weight
LOAD, dense compute. Executor results must equal numpy, DRAM weight bytes must shrink."""

import dataclasses

import numpy as np
import pytest
from compiler_helpers import concurrent_hazards
from sparsa.compiler import compile_workload, read_output
from sparsa.compiler.errors import CompileError
from sparsa.compiler.executor import execute, run_program
from sparsa.compiler.gemms import Gemm, compile_gemms
from sparsa.compiler.loadsparse import (
    choose_window,
    compress_tile,
    expand_entries,
    pack_tiles,
    unpack_tiles,
)
from sparsa.compiler.options import CompileOptions
from sparsa.compiler.reference import RefGraph
from sparsa.compiler.wformat import tile_map_from_weights
from sparsa.hw.config import PRESETS
from sparsa.hw.isa import Load, Target
from sparsa.workloads.sparsity import SparsitySpec, make_masks


def _masked(rng, k, q, pattern):
    w = rng.integers(-127, 128, (k, q)).astype(np.int8)
    w[w == 0] = 1
    mr = make_masks(w, SparsitySpec.parse(pattern), seed=0)
    return np.where(mr.fwd, w, 0).astype(np.int8)


@pytest.mark.parametrize("cfg_name,pattern,want", [
    ("16x16-n2m4", "2:4", (2, 4)), ("16x16-n1m16", "2:4", (2, 4)),
    ("16x16-n2m8", "1:8", (1, 8)), ("16x16-n1m16", "1:16", (1, 16)),
    ("8x8-n2m4", "1:4", (1, 4)),
])
def test_window_and_round_trip(cfg_name, pattern, want):
    cfg = PRESETS[cfg_name]
    w = _masked(np.random.default_rng(1), 70, 37, pattern)
    assert choose_window(cfg, w != 0) == want
    tm = tile_map_from_weights(cfg, w, "load-sparse")
    tiles = pack_tiles(cfg, w, tm, want)
    assert tiles.shape[1] == cfg.rows * want[0] // want[1]
    np.testing.assert_array_equal(unpack_tiles(cfg, tiles, tm, want, 70, 37), w)


def test_dense_weights_do_not_compress():
    cfg = PRESETS["16x16-n2m8"]
    w = np.ones((32, 16), np.int8)
    n, m = choose_window(cfg, w != 0)
    assert n == m


def test_compress_tile_rejects_too_many_nonzeros():
    cfg = PRESETS["8x8-n2m4"]
    t = np.ones((cfg.rows, cfg.cols), np.int8)
    with pytest.raises(ValueError, match="non-zeros"):
        compress_tile(cfg, t, 2, 4)
    v, i = compress_tile(cfg, np.eye(cfg.rows, cfg.cols, dtype=np.int8), 1, 4)
    np.testing.assert_array_equal(expand_entries(cfg, v, i, 1, 4),
                                  np.eye(cfg.rows, cfg.cols, dtype=np.int8))


@pytest.mark.parametrize("cfg_name,pattern", [
    ("16x16-n2m4", "2:4"), ("16x16-n1m16", "2:4"), ("16x16-n2m8", "1:8"),
    ("8x8-n2m4", "1:4"), ("16x16-n1m16", "block4x4:0.5+1:4"),
])
def test_gemms_bit_exact_and_fewer_weight_bytes(cfg_name, pattern):
    cfg = PRESETS[cfg_name]
    rng = np.random.default_rng(2)
    w0 = _masked(rng, 100, 48, pattern)
    w1 = rng.integers(-127, 128, (48, 32)).astype(np.int8)
    x = rng.integers(-128, 128, (7, 100)).astype(np.int8)
    progs = {}
    for mode in ("dense", "load-sparse"):
        prog = compile_gemms(cfg, [Gemm(x, w0, relu=True), Gemm("g0.y", w1)],
                             options=CompileOptions(sparse_mode=mode))
        dram = run_program(prog)
        assert set(prog.expected) == {"g0.y", "g1.y"}
        for name, want in prog.expected.items():
            np.testing.assert_array_equal(read_output(prog, dram, name), want, err_msg=name)
        assert concurrent_hazards(cfg, prog.instructions, trials=1) == []
        progs[mode] = prog
    ls, dn = progs["load-sparse"], progs["dense"]
    assert ls.tensors["g0.w"].meta["mode"] == "load-sparse"
    assert ls.tensors["g1.w"].meta["mode"] == "dense"   # dense weights stay dense
    assert ls.tensors["g0.w"].beats < dn.tensors["g0.w"].beats
    # same compute: identical COMPUTE instructions
    assert [i for i in ls.instructions if type(i).__name__ == "Compute"] == \
        [i for i in dn.instructions if type(i).__name__ == "Compute"]
    assert any(isinstance(i, Load) and i.target == Target.WGT and i.expand
               for i in ls.instructions)


def test_layer_modes_override_and_errors():
    cfg = PRESETS["16x16-n2m4"]
    rng = np.random.default_rng(3)
    w = _masked(rng, 64, 16, "2:4")
    x = rng.integers(-128, 128, (3, 64)).astype(np.int8)
    opt = CompileOptions(layer_modes=(("g1", "load-sparse"), ("g*", "dense")))
    prog = compile_gemms(cfg, [Gemm(x, w), Gemm(x, w)], options=opt)
    assert prog.tensors["g0.w"].meta["mode"] == "dense"
    assert prog.tensors["g1.w"].meta["mode"] == "load-sparse"
    assert opt.to_dict()["layer_modes"] == [["g1", "load-sparse"], ["g*", "dense"]]
    with pytest.raises(CompileError, match="layer_modes"):
        CompileOptions(layer_modes=(("fc*", "compressed"),))
    with pytest.raises(CompileError, match="sparse_mode"):
        CompileOptions(sparse_mode="flash")


def test_executor_checks_decompress_fields():
    cfg = PRESETS["8x8-n2m4"]
    dram = np.zeros(64 * cfg.beat_bytes, np.uint8)
    with pytest.raises(CompileError, match="cmp_n"):
        execute(cfg, [Load(target=Target.WGT, count=4, expand=1, cmp_n=0, cmp_m=4)], dram)
    with pytest.raises(CompileError, match="multiple"):
        execute(cfg, [Load(target=Target.WGT, count=3, expand=1, cmp_n=2, cmp_m=4)], dram)
    # a plain LOAD of the same bytes leaves cmp fields at zero
    r = execute(cfg, [Load(target=Target.WGT, count=2, expand=1, cmp_n=1, cmp_m=4)], dram)
    assert r.stats.sp_entries["wgt"] == 8


@pytest.mark.parametrize("with_data", [True, False])
def test_workload_load_sparse_matches_reference(with_data):
    rng = np.random.default_rng(4)
    g = RefGraph("mlp", rng.integers(-128, 128, (4, 64)).astype(np.int8), 0)
    g.linear("fc1", "x", 64, 64)
    g.relu("r1", "fc1")
    g.linear("fc2", "r1", 64, 32)
    g.evaluate("2:4")
    cfg = PRESETS["16x16-n1m16"]
    prog = compile_workload(g, cfg, sparsity="2:4", with_data=with_data,
                            options=CompileOptions(sparse_mode="load-sparse"))
    modes = {ly.name: ly.meta["mode"] for ly in prog.layers if ly.kind != "host"}
    assert modes == {"fc1": ["load-sparse"], "fc2": ["load-sparse"]}
    dense = compile_workload(g, cfg, sparsity="2:4", with_data=with_data,
                             options=CompileOptions(sparse_mode="dense"))
    assert prog.dram_beats < dense.dram_beats
    if with_data:
        dram = run_program(prog)
        for name in ("fc1", "fc2"):
            np.testing.assert_array_equal(read_output(prog, dram, f"{name}.y"),
                                          g.gemm_out[name][0])
    else:   # same instruction shape without data
        withd = compile_workload(g, cfg, sparsity="2:4",
                                 options=CompileOptions(sparse_mode="load-sparse"))
        def strip(ins):   # shifts are data-dependent
            return [dataclasses.replace(i, shift=0) if hasattr(i, "shift") else i for i in ins]
        assert strip(prog.instructions) == strip(withd.instructions)
