"""The whole core in ``amaranth.sim`` (no Verilator): a short tile program against the
reference executor, with a Python DRAM model in the testbench. The cocotb/Verilator system
tests (``test_rtl_system.py``) cover the long random runs; this one runs in seconds and
checks the per-instruction busy times against :mod:`sparsa.hw.timing` too."""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsa.compiler.executor import execute
from sparsa.compiler.tilegen import build_gemm_program, random_gemm_specs
from sparsa.hw.config import PRESETS
from sparsa.hw.core import SparsaCore
from sparsa.hw.isa import encode
from sparsa.hw.schedule import schedule
from sparsa.hw.sim_helpers import stream_put


def _run_core(cfg, instructions, dram: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Run ``instructions`` on the core; return (final DRAM image, cycles, retired)."""
    dut = SparsaCore(config=cfg)
    bb = cfg.beat_bytes
    image = dram.reshape(-1, bb).copy()
    out: dict[str, int] = {}

    async def feeder(ctx):
        for ins in instructions:
            await stream_put(ctx, dut.instr, encode(ins))

    async def dram_model(ctx):
        pending: deque[list[int]] = deque()        # [beat addr, beats left, first cycle]
        ctx.set(dut.rd_req.ready, 1)
        ctx.set(dut.wr.ready, 1)
        for cycle in range(20000):
            head = pending[0] if pending else None
            present = head is not None and head[2] <= cycle
            ctx.set(dut.rd_data.valid, int(present))
            if present:
                ctx.set(dut.rd_data.payload, int.from_bytes(image[head[0]].tobytes(), "little"))
            if ctx.get(dut.rd_req.valid):
                start = cycle + cfg.dram_latency_cycles
                if pending:
                    start = max(start, pending[-1][2] + pending[-1][1])
                pending.append([ctx.get(dut.rd_req.payload.addr),
                                ctx.get(dut.rd_req.payload.beats), start])
            if present and ctx.get(dut.rd_data.ready):
                head[0] += 1
                head[1] -= 1
                head[2] = cycle + 1
                if head[1] == 0:
                    pending.popleft()
            if ctx.get(dut.wr.valid):
                addr = ctx.get(dut.wr.payload.addr)
                data = ctx.get(dut.wr.payload.data)
                image[addr] = np.frombuffer(data.to_bytes(bb, "little"), np.uint8)
            if ctx.get(dut.retired) == len(instructions) and not ctx.get(dut.busy) \
                    and not pending:
                break
            await ctx.tick()
        out["cycles"] = ctx.get(dut.cycles)
        out["retired"] = ctx.get(dut.retired)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder, background=True)
    sim.add_testbench(dram_model)
    sim.run()
    return image.reshape(-1), out["cycles"], out["retired"]


@pytest.mark.parametrize("mode", ["dense", "2:4"])
def test_core_runs_tile_program_like_the_executor(mode):
    cfg = PRESETS["4x4-n2m4"]
    rng = np.random.default_rng(4)
    specs = random_gemm_specs(cfg, rng, 2, mode, max_p=5, max_passes=2, max_qblocks=1)
    prog = build_gemm_program(cfg, specs, seed=1)
    ref = execute(cfg, prog.instructions, prog.dram)
    got, cycles, retired = _run_core(cfg, prog.instructions, prog.dram)
    np.testing.assert_array_equal(got, ref.dram)
    assert retired == len(prog.instructions)
    assert cycles == schedule(cfg, prog.instructions).total


ODD = [
    # odd shapes: 3 columns (index field not byte aligned), 4-byte beats (multi-beat
    # entries everywhere), n = m, a 32-wide window, DRAM latency 1 and 0 (behaves as 1)
    dict(name="6x3-n3m4", rows=6, cols=3, n=3, m=4, dram_bytes_per_cycle=4,
         dram_latency_cycles=1, wgt_sp_kib=0.25, act_sp_kib=0.25, acc_sp_kib=0.25),
    dict(name="4x5-n2m2", rows=4, cols=5, n=2, m=2, dram_bytes_per_cycle=16,
         dram_latency_cycles=0, wgt_sp_kib=0.25, act_sp_kib=0.25, acc_sp_kib=0.5),
    dict(name="8x2-n4m32", rows=8, cols=2, n=4, m=32, dram_bytes_per_cycle=8,
         dram_latency_cycles=2, wgt_sp_kib=0.25, act_sp_kib=1, acc_sp_kib=0.25),
]


@pytest.mark.parametrize("fields", ODD, ids=[f["name"] for f in ODD])
def test_core_on_odd_configurations(fields):
    cfg = dataclasses.replace(PRESETS["4x4-n2m4"], **fields)
    rng = np.random.default_rng(9)
    specs = (random_gemm_specs(cfg, rng, 1, "dense", max_p=4, max_passes=2, max_qblocks=1)
             + random_gemm_specs(cfg, rng, 1, f"{cfg.n}:{cfg.m}", max_p=4, max_passes=2,
                                 max_qblocks=2))
    prog = build_gemm_program(cfg, specs, seed=2)
    ref = execute(cfg, prog.instructions, prog.dram)
    got, cycles, _ = _run_core(cfg, prog.instructions, prog.dram)
    np.testing.assert_array_equal(got, ref.dram)
    assert cycles == schedule(cfg, prog.instructions).total
