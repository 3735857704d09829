"""m = 16 on the RTL: a compiled 1:16 program on the small ``8x8-n1m16`` core runs on
Verilator bit-exact against the reference executor, with the model's cycle count; and a
compiled Bi-Mask MLP training step whose model cycles are within 1% of the RTL's."""

from __future__ import annotations

import numpy as np
import pytest
from compiler_helpers import two_layer_mlp
from sparsa.compiler import compile_workload, read_output
from sparsa.compiler.executor import execute
from sparsa.compiler.reference import TrainGraph
from sparsa.hw.config import PRESETS
from sparsa.hw.rtl_runner import rtl_available, run_on_rtl
from sparsa.sim.api import simulate

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not rtl_available(), reason="the core's Verilog generator "
                                 "(sparsa.hw.verilog) is not in this checkout yet")]


def _x(shape, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)


def _rtl(prog):
    ex = execute(prog.config, prog.instructions, prog.dram)
    res = run_on_rtl(prog, expected=ex.dram, exp_writes=(ex.write_addrs, ex.write_data))
    np.testing.assert_array_equal(res.dram, ex.dram)
    return res


@pytest.mark.xdist_group("rtl-8x8-n1m16")
def test_m16_compiled_1to16_bit_exact():
    cfg = PRESETS["8x8-n1m16"]
    assert (cfg.n, cfg.m, cfg.k_per_pass) == (1, 16, 128)
    g = two_layer_mlp("m16-mlp", _x((6, 256), 1), 24, 16, "1:16", seed=1)
    prog = compile_workload(g, cfg, sparsity="1:16", seed=1)
    modes = {ly.name: ly.meta["mode"] for ly in prog.layers if ly.kind != "host"}
    assert modes["fc1"] == ["sparse"]
    res = _rtl(prog)
    for name in ("fc1", "fc2"):
        np.testing.assert_array_equal(read_output(prog, res.dram, f"{name}.y"),
                                      g.gemm_out[name][0])
    model = simulate(prog).cycles
    print(f"m16: RTL {res.cycles} cycles, model {model}")
    assert abs(model - res.cycles) <= 0.01 * res.cycles


@pytest.mark.xdist_group("16x16-n2m4")
def test_bimask_mlp_training_step_model_within_1pct_of_rtl():
    spec = "fwd=2:4,bwd=2:4,method=bimask"
    ref = TrainGraph(_x((16, 64), 5), [64, 64, 32], spec, seed=0)
    prog = compile_workload(ref, PRESETS["16x16-n2m4"], sparsity=spec, train=True)
    res = _rtl(prog)
    for ly in ref.layers():
        if ly.is_gemm:
            np.testing.assert_array_equal(read_output(prog, res.dram, f"{ly.name}.y"),
                                          ref.gemm_out[ly.name][0])
    model = simulate(prog).cycles
    print(f"Bi-Mask MLP training step: RTL {res.cycles} cycles, model {model}")
    assert abs(model - res.cycles) <= 0.01 * res.cycles
