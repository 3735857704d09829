"""Unit tests of the controller (decoder, in-order issue, wait masks, status counters) in
``amaranth.sim``, against the reference issue model :func:`sparsa.hw.schedule.schedule`."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsa.hw.config import PRESETS
from sparsa.hw.controller import Controller
from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit, encode
from sparsa.hw.schedule import schedule
from sparsa.hw.sim_helpers import stream_put
from sparsa.hw.timing import instr_cycles, issue_cycles, swap_wave_cycles

CFG = PRESETS["4x4-n2m4"]
UNITS = {Unit.LOAD: "load", Unit.PRE: "pre", Unit.EXEC: "exec", Unit.STORE: "store"}


def _random_program(rng: np.random.Generator, length: int) -> list:
    prog = []
    for _ in range(length):
        wait = int(rng.integers(0, 16)) if rng.random() < 0.5 else 0
        kind = rng.integers(0, 5)
        if kind == 0:
            prog.append(Load(target=Target(int(rng.integers(0, 2))), count=int(rng.integers(0, 6)),
                             sp_addr=int(rng.integers(0, 100)), dram_addr=int(rng.integers(0, 2**32)),
                             dram_stride=int(rng.integers(0, 9)), wait=wait))
        elif kind == 1:
            prog.append(Preload(wsp_addr=int(rng.integers(0, 2**16)),
                                load_slack=int(rng.integers(0, 3)), wait=wait))
        elif kind == 2:
            prog.append(Compute(asp_addr=int(rng.integers(0, 2**16)), count=int(rng.integers(0, 9)),
                                acc_addr=int(rng.integers(0, 2**16)),
                                accumulate=int(rng.integers(0, 2)), swap=int(rng.integers(0, 2)),
                                load_slack=int(rng.integers(0, 3)), wait=wait))
        elif kind == 3:
            prog.append(Store(acc_addr=int(rng.integers(0, 2**16)), count=int(rng.integers(0, 5)),
                              dram_addr=int(rng.integers(0, 2**32)), relu=int(rng.integers(0, 2)),
                              requant=int(rng.integers(0, 2)), shift=int(rng.integers(0, 32)),
                              exec_slack=int(rng.integers(0, 3)), wait=wait))
        else:
            prog.append(Fence(wait=wait))
    return prog


@pytest.mark.parametrize("seed", range(6))
def test_issue_matches_schedule_and_decodes(seed):
    """Units modelled in the testbench with the timing formulas' busy times: issue cycles,
    the ``cycles`` counter and ``retired`` equal the reference schedule; every unit sees the
    exact instruction word it was issued."""
    rng = np.random.default_rng(seed)
    prog = _random_program(rng, 40)
    ref = schedule(CFG, prog)
    dut = Controller()
    unit_prog = [(i, ins) for i, ins in enumerate(prog) if ins.UNIT is not None]
    starts: list[tuple[int, str, int]] = []
    state = {"done": False}

    async def feeder(ctx):
        for ins in prog:
            await stream_put(ctx, dut.instr, encode(ins))

    async def units(ctx):
        busy_until = {name: 0 for name in UNITS.values()}
        exec_ends: list[int] = []          # the pipelined EXEC: every COMPUTE's end
        load_ends: list[int] = []          # the pipelined LOAD: every LOAD's end
        swap_until = 0
        pending = list(unit_prog)
        cycle = 0
        while cycle < 5000:
            for name, until in busy_until.items():
                port = getattr(dut, name)
                ctx.set(port.busy, int(cycle < until))     # busy after the issue cycle
                if name in ("exec", "load"):
                    ctx.set(port.done, int(cycle + 1 in (exec_ends if name == "exec"
                                                         else load_ends)))
                else:
                    ctx.set(port.done, int(cycle == until - 1 and until > 0))
            ctx.set(dut.exec_outstanding, sum(e > cycle for e in exec_ends))
            ctx.set(dut.load_outstanding, sum(e > cycle for e in load_ends))
            ctx.set(dut.exec_swapping, int(cycle < swap_until))
            for unit, name in UNITS.items():
                port = getattr(dut, name)
                if ctx.get(port.start):
                    idx, ins = pending.pop(0)
                    assert unit == ins.UNIT, f"instruction {idx} issued to {name}"
                    assert ctx.get(port.instr.as_value()) == encode(ins), f"decode of {idx}"
                    starts.append((idx, name, cycle))
                    busy_until[name] = cycle + issue_cycles(CFG, ins)
                    if name == "load":     # data order: the reference's completion time
                        load_ends.append(cycle + ref.end[idx] - ref.issue[idx])
                    if name == "exec":
                        exec_ends.append(cycle + instr_cycles(CFG, ins))
                        if ins.swap:
                            swap_until = cycle + swap_wave_cycles(CFG)
            if not pending and ctx.get(dut.retired) == len(prog) and not ctx.get(dut.busy):
                break
            await ctx.tick()
            cycle += 1
        state["done"] = True
        state["cycles"] = ctx.get(dut.cycles)
        state["retired"] = ctx.get(dut.retired)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder, background=True)
    sim.add_testbench(units)
    sim.run()
    assert state["done"]
    assert [i for i, _, _ in starts] == [i for i, _ in unit_prog]
    t0 = starts[0][2] - ref.issue[starts[0][0]]
    assert [c - t0 for _, _, c in starts] == [ref.issue[i] for i, _, _ in starts]
    assert state["cycles"] == ref.total
    assert state["retired"] == len(prog)


def test_fence_waits_for_all_units_and_retires_at_issue():
    prog = [Compute(count=8), Fence(), Preload()]
    ref = schedule(CFG, prog)
    assert ref.issue[2] == instr_cycles(CFG, prog[0]) + 1
    dut = Controller()
    seen = {}

    async def feeder(ctx):
        for ins in prog:
            await stream_put(ctx, dut.instr, encode(ins))

    async def units(ctx):
        until = feed = 0
        for cycle in range(60):
            ctx.set(dut.exec.busy, int(cycle < feed))
            ctx.set(dut.exec.done, int(cycle == until - 1))
            ctx.set(dut.exec_outstanding, int(cycle < until))
            if ctx.get(dut.exec.start):
                seen["exec"] = cycle
                until = cycle + instr_cycles(CFG, prog[0])
                feed = cycle + issue_cycles(CFG, prog[0])
            if ctx.get(dut.pre.start):
                seen["pre"] = cycle
            await ctx.tick()
        seen["retired"] = ctx.get(dut.retired)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder, background=True)
    sim.add_testbench(units)
    sim.run()
    assert seen["pre"] - seen["exec"] == ref.issue[2]
    assert seen["retired"] == 2     # COMPUTE and FENCE (the PRELOAD's unit never finishes here)
