"""Unit tests of the processing element in ``amaranth.sim`` against a numpy reference."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsa.hw.config import PRESETS
from sparsa.hw.pe import ProcessingElement


def _wrap32(v: int) -> int:
    return int(np.int64(v).astype(np.uint32).view(np.int32))


@pytest.mark.parametrize("name", ["4x4-n2m4", "8x8-n2m8", "16x16-n1m16"])
def test_sparse_pe_double_buffer_and_mac(name):
    cfg = PRESETS[name]
    dut = ProcessingElement(config=cfg)
    rng = np.random.default_rng(7)
    seen = []

    async def bench(ctx):
        active = (0, 0)
        shadow = (0, 0)
        for step in range(200):
            op = rng.integers(0, 4)       # 0: idle, 1: shift, 2: swap, 3: shift+swap
            w = (int(rng.integers(-128, 128)), int(rng.integers(0, cfg.m)))
            window = [int(v) for v in rng.integers(-128, 128, cfg.m)]
            psum = int(rng.integers(-2**31, 2**31))
            ctx.set(dut.w_in, {"value": w[0], "index": w[1]})
            ctx.set(dut.shift, int(op & 1))
            ctx.set(dut.swap, int(op >> 1))
            ctx.set(dut.window, window)
            ctx.set(dut.psum_in, psum)
            # combinational MAC with the active pair; shadow visible on w_out
            want = _wrap32(psum + active[0] * window[active[1]])
            assert ctx.get(dut.psum_out) == want, f"step {step}"
            assert ctx.get(dut.w_out.value) == shadow[0]
            assert ctx.get(dut.w_out.index) == shadow[1]
            await ctx.tick()
            if op >> 1:
                active, shadow = shadow, active
            elif op & 1:
                shadow = w
            seen.append(op)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert set(seen) == {0, 1, 2, 3}


def test_dense_pe_has_no_index():
    cfg = PRESETS["4x4-n2m4"]
    dut = ProcessingElement(config=cfg, sparse=False)
    assert not dut.sparse

    async def bench(ctx):
        ctx.set(dut.w_in.value, -7)
        ctx.set(dut.shift, 1)
        await ctx.tick()
        ctx.set(dut.shift, 0)
        ctx.set(dut.swap, 1)
        await ctx.tick()
        ctx.set(dut.swap, 0)
        ctx.set(dut.window, -128)
        ctx.set(dut.psum_in, 2**31 - 1)
        assert ctx.get(dut.psum_out) == _wrap32(2**31 - 1 + 896)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_pe_rejects_non_config():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the half-built PE is never elaborated
        with pytest.raises(TypeError, match="AccelConfig") as excinfo:
            ProcessingElement(config={"rows": 4})
        del excinfo
        gc.collect()
