"""cocotb 2.x system-test bench of the generated core (runs inside the simulator).

Loaded by cocotb as the test module ``sparsa.hw.cocotb_bench``; :mod:`sparsa.hw.rtl_runner`
builds the Verilog and starts it. The bench reads its work from the ``.npz`` jobs file named
by ``SPARSA_JOBS`` and writes what it observed to ``SPARSA_RESULTS`` (both written
atomically by the runner / the bench).

Structure (one TB object per test, as in cocotb's ``matrix_multiplier`` example):

* :class:`TB` owns the clock, reset and the per-stream stall generators, and runs one cycle
  loop: at each falling edge every driver and monitor drives its signals, then at
  ``ReadOnly`` all handshakes of the coming rising edge are sampled. One loop for all
  streams keeps the Python cost per simulated cycle low.
* Drivers: :class:`InstrDriver` (``instr``), :class:`DramModel` (serves ``rd_req`` ->
  ``rd_data`` with ``dram_latency_cycles`` latency and one beat per cycle; takes ``wr``
  beats into its numpy image).
* Monitors: ``rd_req`` and ``wr`` (inside :class:`DramModel`); :class:`WriteChecker`, the
  in-order checker, compares every write beat with the reference's write sequence.
* At the end of each job: nothing left in flight (no queued read, no beat owed, every
  expected write seen), ``retired`` equals the instruction count, and the final DRAM image
  equals the reference image bit for bit.

Stalls (``SPARSA_STALLS``): ``none`` (timing), ``cycle`` (fixed patterns such as
``1,1,1,0``) or ``random`` (seeded ``random.Random``); they gate when a source starts
presenting a new item and when a sink is ready. The seed is logged.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from .config import AccelConfig

CLOCK_NS = 10


class BenchError(AssertionError):
    """A mismatch between the core and the reference, or a protocol violation."""


def _u(handle) -> int:
    v = handle.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


def stall_gen(kind: str, rng: random.Random, pattern_id: int) -> Iterator[bool]:
    """Per-cycle "may transfer" gate of one stream end."""
    if kind == "none":
        return itertools.repeat(True)
    if kind == "cycle":
        patterns = ([1, 1, 1, 0], [1, 0], [1, 1, 0, 0, 1], [0, 1, 1], [1, 1, 1, 1, 1, 0, 0])
        return (bool(b) for b in itertools.cycle(patterns[pattern_id % len(patterns)]))
    if kind == "random":
        p = rng.choice((0.3, 0.5, 0.7, 0.9))
        return (rng.random() < p for _ in itertools.count())
    raise ValueError(f"SPARSA_STALLS={kind!r} is invalid: allowed none, cycle, random")


class InstrDriver:
    """Source of the ``instr`` stream: presents each word until it is taken."""

    def __init__(self, dut, gate: Iterator[bool]) -> None:
        self.valid, self.ready, self.payload = dut.instr__valid, dut.instr__ready, \
            dut.instr__payload
        self.gate = gate
        self.words: deque[int] = deque()
        self.presenting = False
        self.accept_cycles: list[int] = []

    def load(self, words: list[int]) -> None:
        self.words = deque(words)
        self.presenting = False
        self.accept_cycles = []

    def drive(self) -> None:
        if not self.presenting and self.words and next(self.gate):
            self.payload.value = self.words[0]
            self.valid.value = 1
            self.presenting = True
        elif not self.presenting:
            self.valid.value = 0

    def sample(self, cycle: int) -> None:
        if self.presenting and _u(self.ready):
            self.words.popleft()
            self.presenting = False
            self.accept_cycles.append(cycle)

    @property
    def idle(self) -> bool:
        return not self.words and not self.presenting


class WriteChecker:
    """In-order checker: the ``n``-th write beat must equal the reference's ``n``-th."""

    def __init__(self, bb: int) -> None:
        self.bb = bb
        self.addrs = np.zeros(0, np.int64)
        self.data = np.zeros((0, bb), np.uint8)
        self.seen = 0
        self.errors: list[str] = []
        self.enabled = False

    def load(self, addrs: np.ndarray, data: np.ndarray, enabled: bool) -> None:
        self.addrs, self.data, self.seen, self.errors = addrs, data, 0, []
        self.enabled = enabled

    def check(self, cycle: int, addr: int, beat: np.ndarray) -> None:
        n = self.seen
        self.seen += 1
        if not self.enabled or len(self.errors) >= 5:
            return
        if n >= len(self.addrs):
            self.errors.append(f"cycle {cycle}: unexpected write beat #{n} at beat address "
                               f"{addr} (reference writes only {len(self.addrs)} beats)")
            return
        if addr != self.addrs[n] or not np.array_equal(beat, self.data[n]):
            diff = np.nonzero(beat != self.data[n])[0]
            self.errors.append(
                f"cycle {cycle}: write beat #{n}: got addr {addr} data {beat.tobytes().hex()}, "
                f"expected addr {int(self.addrs[n])} data {self.data[n].tobytes().hex()} "
                f"(bytes differing: {diff.tolist()})")


class DramModel:
    """DRAM behind the core: ``rd_req`` sink, ``rd_data`` source, ``wr`` sink.

    Independent read and write channels, one beat per cycle each; a request accepted in
    cycle ``t`` may present its first beat in cycle ``t + latency``; requests pipeline.
    """

    def __init__(self, dut, cfg: AccelConfig, gates: list[Iterator[bool]],
                 checker: WriteChecker) -> None:
        self.cfg = cfg
        self.bb = cfg.beat_bytes
        self.latency = cfg.dram_latency_cycles
        self.rq_valid, self.rq_ready, self.rq_payload = dut.rd_req__valid, dut.rd_req__ready, \
            dut.rd_req__payload
        self.rd_valid, self.rd_ready, self.rd_payload = dut.rd_data__valid, \
            dut.rd_data__ready, dut.rd_data__payload
        self.wr_valid, self.wr_ready, self.wr_payload = dut.wr__valid, dut.wr__ready, \
            dut.wr__payload
        self.g_rq, self.g_rd, self.g_wr = gates
        self.checker = checker
        self.image = np.zeros((1, self.bb), np.uint8)
        self.reset_state()

    def reset_state(self) -> None:
        self.pending: deque[list[int]] = deque()   # [next beat addr, beats left, ready cycle]
        self.presenting = False
        self.rq_ready_now = False
        self.wr_ready_now = False
        self.reads = 0
        self.read_beats = 0
        self.writes = 0
        self.errors: list[str] = []

    def load(self, image: np.ndarray) -> None:
        self.image = image.reshape(-1, self.bb).copy()
        self.reset_state()

    def drive(self, cycle: int) -> None:
        self.rq_ready_now = next(self.g_rq)
        self.rq_ready.value = int(self.rq_ready_now)
        self.wr_ready_now = next(self.g_wr)
        self.wr_ready.value = int(self.wr_ready_now)
        if not self.presenting:
            if self.pending and self.pending[0][2] <= cycle and next(self.g_rd):
                addr = self.pending[0][0]
                if addr >= self.image.shape[0]:
                    self.errors.append(f"cycle {cycle}: read of beat {addr} beyond the DRAM "
                                       f"image ({self.image.shape[0]} beats)")
                    beat = 0
                else:
                    beat = int.from_bytes(self.image[addr].tobytes(), "little")
                self.rd_payload.value = beat
                self.rd_valid.value = 1
                self.presenting = True
            else:
                self.rd_valid.value = 0

    def sample(self, cycle: int) -> None:
        if self.rq_ready_now and _u(self.rq_valid):
            p = _u(self.rq_payload)
            addr, beats = p & 0xFFFFFFFF, (p >> 32) & 0xFFFF
            if beats == 0:
                self.errors.append(f"cycle {cycle}: read request of 0 beats at {addr}")
            else:
                start = cycle + self.latency
                if self.pending:   # pipelined: follows the previous request without a bubble
                    prev = self.pending[-1]
                    start = max(start, prev[2] + prev[1])
                self.pending.append([addr, beats, start])
                self.reads += 1
        if self.presenting and _u(self.rd_ready):
            head = self.pending[0]
            head[0] += 1
            head[1] -= 1
            head[2] = cycle + 1
            self.read_beats += 1
            if head[1] == 0:
                self.pending.popleft()
                if self.pending:
                    self.pending[0][2] = max(self.pending[0][2], cycle + 1)
            self.presenting = False
        if self.wr_ready_now and _u(self.wr_valid):
            p = _u(self.wr_payload)
            addr = p & 0xFFFFFFFF
            beat = np.frombuffer((p >> 32).to_bytes(self.bb, "little"), np.uint8)
            if addr >= self.image.shape[0]:
                self.errors.append(f"cycle {cycle}: write of beat {addr} beyond the DRAM image "
                                   f"({self.image.shape[0]} beats)")
            else:
                self.image[addr] = beat
            self.writes += 1
            self.checker.check(cycle, addr, beat)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.presenting

    def in_flight(self) -> str:
        if self.idle:
            return ""
        left = sum(p[1] for p in self.pending)
        return f"{len(self.pending)} read request(s) with {left} beat(s) still owed"


class TB:
    """Clock, reset, stall generators and the cycle loop around one core."""

    def __init__(self, dut, cfg: AccelConfig, stalls: str, seed: int) -> None:
        self.dut = dut
        self.cfg = cfg
        self.rng = random.Random(seed)
        gates = [stall_gen(stalls, self.rng, i) for i in range(4)]
        self.instr = InstrDriver(dut, gates[0])
        self.checker = WriteChecker(cfg.beat_bytes)
        self.dram = DramModel(dut, cfg, gates[1:], self.checker)
        self.cycle = 0
        self.busy, self.cycles, self.retired = dut.busy, dut.cycles, dut.retired
        self.retire_cycles: list[int] = []
        self._last_retired = 0

    async def start(self) -> None:
        Clock(self.dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
        await self.reset()

    async def reset(self, cycles: int = 3) -> None:
        d = self.dut
        await FallingEdge(d.clk)
        d.rst.value = 1
        for h in (d.instr__valid, d.rd_data__valid, d.rd_req__ready, d.wr__ready):
            h.value = 0
        for _ in range(cycles):
            await RisingEdge(d.clk)
        await FallingEdge(d.clk)
        d.rst.value = 0
        self.dram.reset_state()
        self.instr.load([])
        self.cycle = 0
        self.retire_cycles = []
        self._last_retired = 0

    async def step(self) -> None:
        """One clock cycle: drive at the falling edge, sample handshakes at ReadOnly."""
        await FallingEdge(self.dut.clk)
        self.instr.drive()
        self.dram.drive(self.cycle)
        await ReadOnly()
        self.instr.sample(self.cycle)
        self.dram.sample(self.cycle)
        r = _u(self.retired)
        if r != self._last_retired:
            self.retire_cycles.extend([self.cycle] * ((r - self._last_retired) & 0xFFFFFFFF))
            self._last_retired = r
        self.cycle += 1

    async def run_job(self, words: list[int], image: np.ndarray, exp_addrs: np.ndarray,
                      exp_data: np.ndarray, check_writes: bool, max_cycles: int,
                      abort_at: int = -1) -> dict:
        """Run one program from reset; return what was observed."""
        await self.reset()
        self.dram.load(image)
        self.checker.load(exp_addrs, exp_data, check_writes)
        self.instr.load(words)
        n = len(words)
        while True:
            await self.step()
            if abort_at >= 0 and self.cycle >= abort_at:
                return {"aborted": True, "cycle": self.cycle}
            if self.instr.idle and self.dram.idle and self._last_retired >= n \
                    and not _u(self.busy):
                break
            if self.cycle > max_cycles:
                raise BenchError(
                    f"timeout after {self.cycle} cycles: {n - len(self.instr.words)} of {n} "
                    f"instructions taken, retired {self._last_retired}, busy "
                    f"{_u(self.busy)}; {self.dram.in_flight() or 'no reads in flight'}")
        # a few idle cycles: nothing may move once the core reports done
        writes, reads = self.dram.writes, self.dram.reads
        for _ in range(3):
            await self.step()
        errors = list(self.dram.errors)
        if self.dram.writes != writes or self.dram.reads != reads:
            errors.append("the core issued DRAM traffic after reporting idle")
        if self._last_retired != n:
            errors.append(f"retired counter {self._last_retired} != {n} instructions")
        if check_writes and self.checker.seen != len(exp_addrs):
            errors.append(f"saw {self.checker.seen} write beats, the reference writes "
                          f"{len(exp_addrs)}")
        errors += self.checker.errors
        return {"aborted": False, "dram": self.dram.image.reshape(-1).copy(),
                "cycles": _u(self.cycles), "sim_cycles": self.cycle,
                "retired": self._last_retired,
                "accept": np.array(self.instr.accept_cycles, np.int64),
                "retire": np.array(self.retire_cycles, np.int64), "errors": errors,
                "read_beats": self.dram.read_beats, "write_beats": self.dram.writes}


def _save(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


@cocotb.test()
async def run_jobs(dut) -> None:
    """Run every job of ``SPARSA_JOBS``; fail on the first job with errors (after saving)."""
    jobs = np.load(os.environ["SPARSA_JOBS"], allow_pickle=False)
    out = Path(os.environ["SPARSA_RESULTS"])
    cfg = AccelConfig(**json.loads(str(jobs["config"])))
    stalls = os.environ.get("SPARSA_STALLS", "none")
    seed = int(os.environ.get("SPARSA_SEED", "0"))
    dut._log.info("sparsa bench: config %s, stalls=%s, seed=%d (set SPARSA_SEED to replay)",
                  cfg.name, stalls, seed)
    tb = TB(dut, cfg, stalls, seed)
    await tb.start()
    results: dict[str, np.ndarray] = {}
    failures: list[str] = []
    for j in range(int(jobs["n_jobs"])):
        words = [int.from_bytes(w.tobytes(), "little") for w in jobs[f"j{j}_instr"]]
        exp_dram = jobs[f"j{j}_exp_dram"]
        res = await tb.run_job(words, jobs[f"j{j}_dram"], jobs[f"j{j}_exp_waddr"],
                               jobs[f"j{j}_exp_wdata"],
                               check_writes=bool(jobs[f"j{j}_check_writes"]),
                               max_cycles=int(jobs[f"j{j}_max_cycles"]),
                               abort_at=int(jobs[f"j{j}_abort_at"]))
        results[f"j{j}_aborted"] = np.array(res["aborted"])
        if res["aborted"]:
            continue
        errors = res.pop("errors")
        if exp_dram.size and not np.array_equal(res["dram"], exp_dram):
            bad = np.nonzero(res["dram"] != exp_dram)[0]
            bb = cfg.beat_bytes
            errors.append(f"final DRAM image differs from the reference in {bad.size} bytes, "
                          f"first at byte {bad[0]} (beat {bad[0] // bb}): got "
                          f"{res['dram'][bad[0]]}, expected {exp_dram[bad[0]]}")
        for k, v in res.items():
            results[f"j{j}_{k}"] = np.asarray(v)
        if errors:
            failures.append(f"job {j}: " + "; ".join(errors))
    results["failures"] = np.array(json.dumps(failures))
    _save(out, results)
    if failures:
        raise BenchError(f"{len(failures)} job(s) failed (stalls={stalls}, seed={seed}): "
                         + " | ".join(failures)[:4000])
