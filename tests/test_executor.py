"""The reference executor against direct numpy GEMM."""

import numpy as np
import pytest
from sparsa.compiler.errors import CompileError
from sparsa.compiler.executor import execute, run_program
from sparsa.compiler.tilegen import (
    GemmSpec,
    build_gemm_program,
    expected_output,
    random_gemm_specs,
    read_outputs,
)
from sparsa.hw.config import PRESETS
from sparsa.hw.isa import Compute, Load, Store, Target

CASES = [("4x4-n2m4", "dense"), ("4x4-n2m4", "2:4"), ("4x4-n2m4", "1:4"),
         ("8x8-n2m8", "2:8"), ("8x8-n2m8", "1:8"), ("8x8-n2m8", "dense"),
         ("16x16-n2m4", "2:4"), ("16x16-n2m4", "dense"), ("16x16-n1m16", "1:16")]


@pytest.mark.parametrize("name,mode", CASES)
def test_random_gemms_bit_exact(name, mode):
    cfg = PRESETS[name]
    rng = np.random.default_rng(7)
    specs = random_gemm_specs(cfg, rng, 12, mode)
    prog = build_gemm_program(cfg, specs, seed=3)
    res = execute(cfg, prog.instructions, prog.dram)
    for spec, got in zip(specs, read_outputs(prog, res.dram), strict=True):
        np.testing.assert_array_equal(got, expected_output(cfg, spec))
    # writes trace reproduces the final image
    img = prog.dram.copy().reshape(-1, cfg.beat_bytes)
    img[res.write_addrs] = res.write_data
    np.testing.assert_array_equal(img.reshape(-1), res.dram)
    assert res.stats.macs_issued > 0


def test_large_p_is_tiled():
    cfg = PRESETS["4x4-n2m4"]
    x = np.full((70, 40), -128, np.int8)
    w = np.full((40, 8), -128, np.int8)
    spec = GemmSpec(x=x, w=w, mode="dense")
    prog = build_gemm_program(cfg, [spec], seed=1, max_p_tile=16)
    assert sum(isinstance(i, Store) for i in prog.instructions) == 5 * 2
    np.testing.assert_array_equal(read_outputs(prog, run_program(prog))[0],
                                  expected_output(cfg, spec))


def test_int32_wraps():
    cfg = PRESETS["4x4-n2m4"]
    from sparsa.hw import layout
    from sparsa.hw.isa import Preload
    x = np.full((1, cfg.rows), -128, np.int8)
    v, i = layout.dense_weights(cfg, np.full((cfg.rows, cfg.cols), -128, np.int8))
    bb = cfg.beat_bytes
    dram = np.zeros(bb * 64, np.uint8)
    dram[:cfg.rows] = layout.pack_act_dense(cfg, x)[0]
    w = layout.to_beats(cfg, layout.pack_wgt_entries(cfg, v, i))
    dram[bb: bb + w.size] = w.reshape(-1)
    prog = [Load(target=Target.ACT, expand=1, dram_addr=0),
            Load(target=Target.WGT, sp_addr=0, count=cfg.rows, dram_addr=1), Preload()]
    n = 2**31 // (cfg.rows * 2**14) + 1   # enough accumulations to pass 2**31
    prog += [Compute(accumulate=int(j > 0), swap=int(j == 0)) for j in range(n)]
    prog.append(Store(dram_addr=40))
    out = execute(cfg, prog, dram).dram[40 * bb:40 * bb + 4 * cfg.cols].view("<i4")
    assert out[0] == np.int64(n * cfg.rows * 2**14).astype(np.uint32).view(np.int32)


def test_out_of_range_errors():
    cfg = PRESETS["4x4-n2m4"]
    dram = np.zeros(cfg.beat_bytes * 4, np.uint8)
    with pytest.raises(CompileError, match=r"instruction 0 \(Load\): DRAM beats up to 4"):
        execute(cfg, [Load(target=Target.ACT, count=2, dram_addr=3)], dram)
    with pytest.raises(CompileError, match="ACT entries"):
        execute(cfg, [Load(target=Target.ACT, sp_addr=cfg.act_entries, count=1)], dram)
    with pytest.raises(CompileError, match="ACC entries"):
        execute(cfg, [Store(acc_addr=cfg.acc_entries - 1, count=2)], dram)
    with pytest.raises(CompileError, match="whole number"):
        execute(cfg, [], np.zeros(3, np.uint8))
