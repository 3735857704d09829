"""Self-test of the cocotb bench on a tiny loopback DUT with the core's ports.

Proves the bench machinery independently of the core: the DRAM model's latency convention
(a request accepted in cycle t delivers its first beat in cycle t + dram_latency_cycles),
stalls on every stream, the mid-run reset, and that the in-order checker and the final-image
check fail on a one-bit difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sparsa.hw.config import PRESETS
from sparsa.hw.isa import Preload
from sparsa.hw.rtl_runner import RtlJob, RtlMismatch, build_rtl, run_jobs

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("loopback")]
CFG = PRESETS["4x4-n2m4"]


@pytest.fixture(scope="module")
def loopback():
    text = (Path(__file__).parent / "data" / "loopback.v.in").read_text()
    return build_rtl(CFG, verilog=("loopback", text.replace("BW", str(8 * CFG.beat_bytes))))


def _program(seed: int):
    bb = CFG.beat_bytes
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, 64 * bb, dtype=np.uint8)
    addrs = [int(a) for a in rng.integers(0, 62, 40)]
    exp = img.reshape(-1, bb).copy()
    wd = []
    for a in addrs:
        exp[a + 1] = exp[a]
        wd.append(exp[a + 1].copy())
    writes = (np.array(addrs) + 1, np.array(wd))
    return [Preload(wsp_addr=a) for a in addrs], img, exp.reshape(-1), writes


@pytest.mark.parametrize("stalls", ["none", "cycle", "random"])
def test_bench_loopback(loopback, stalls):
    instrs, img, exp, writes = _program(1)
    jobs = [RtlJob(instrs, img, expected=exp, exp_writes=writes),
            RtlJob(instrs, img, abort_at=30),
            RtlJob(instrs, img, expected=exp, exp_writes=writes)]
    res = run_jobs(CFG, jobs, stalls=stalls, seed=4, build=loopback, name="selftest")
    assert res[1] is None
    np.testing.assert_array_equal(res[2].dram, exp)
    if stalls == "none":
        # busy per instruction: request 1 + latency + write 1 cycles
        assert res[0].cycles == len(instrs) * (CFG.dram_latency_cycles + 2)


def test_bench_checker_can_fail(loopback):
    instrs, img, exp, (wa, wd) = _program(2)
    wd = wd.copy()
    wd[5, 0] ^= 1
    with pytest.raises(RtlMismatch, match="write beat #5"):
        run_jobs(CFG, [RtlJob(instrs, img, expected=exp, exp_writes=(wa, wd))],
                 stalls="random", seed=3, build=loopback, name="selftest")
    bad = exp.copy()
    bad[7] ^= 0x80
    with pytest.raises(RtlMismatch, match="final DRAM image differs"):
        run_jobs(CFG, [RtlJob(instrs, img, expected=bad)], stalls="cycle", build=loopback,
                 name="selftest")
