"""Cycle timing of every ISA instruction — the formulas the RTL tests assert and the SimPy
model uses. Defined here once; nothing else may restate them.

A unit is *busy* for ``*_cycles(...)`` cycles starting in the cycle its instruction issues;
an instruction that waits on that unit can issue in the first cycle after. The issue stage
accepts at most one instruction per cycle (``ISSUE_CYCLES``).

DRAM conventions (shared by the cocotb DRAM model and the SimPy model): independent read and
write channels, each moving one beat of ``dram_bytes_per_cycle`` bytes per cycle; a read
request accepted in cycle ``t`` returns its first beat ``dram_latency_cycles`` later (at
least one cycle later: a latency of 0 behaves as 1); read requests pipeline (the next
request's data follows without a bubble); writes are posted.

Where the constants come from (the generated RTL, :mod:`sparsa.hw.controller`; every unit
latches its instruction in the issue cycle ``T0`` and starts work in ``T0 + 1``):

* LOAD: one read request per entry from ``T0+1``; the last beat arrives (and the entry is
  written) in ``T0 + L + count*entry_beats``: ``L + count*entry_beats + 1`` cycles
  (``LOAD_OVERHEAD = 1``); a LOAD of 0 entries takes 2 cycles.
* PRELOAD: weight-scratchpad reads in ``T0+1 .. T0+rows``, shifts one cycle later:
  ``rows + 2`` (``PRELOAD_OVERHEAD = 2``).
* COMPUTE: activation reads from ``T0+1``, the array's ``groups + cols`` latency, one result
  register, then the accumulator write: ``count + groups + cols + 3``
  (``COMPUTE_OVERHEAD = 3``).
* STORE: accumulator read in ``T0+1``, first write beat in ``T0+2``, one beat per cycle:
  ``count*entry_beats + 2`` (``STORE_OVERHEAD = 2``).
* FENCE: 1.

The RTL tests (``tests/test_rtl_system.py``) assert these; change them only together with
the hardware.
"""

from __future__ import annotations

from .config import AccelConfig
from .isa import Compute, Fence, Instr, Load, Preload, Store, Target

ISSUE_CYCLES = 1
LOAD_OVERHEAD = 1
PRELOAD_OVERHEAD = 2
COMPUTE_OVERHEAD = 3
STORE_OVERHEAD = 2
FENCE_CYCLES = 1


def load_entry_beats(cfg: AccelConfig, target: Target, expand: int) -> int:
    """DRAM beats per scratchpad entry moved by a LOAD."""
    if target == Target.WGT:
        return cfg.beats(cfg.wgt_entry_bytes)
    return cfg.beats(cfg.act_dense_entry_bytes if expand else cfg.act_entry_bytes)


def store_entry_beats(cfg: AccelConfig, requant: int) -> int:
    """DRAM beats per accumulator entry written by a STORE."""
    return cfg.beats(cfg.cols if requant else cfg.acc_entry_bytes)


def load_cycles(cfg: AccelConfig, count: int, entry_beats: int) -> int:
    """First request one cycle after issue, data ``max(1, latency)`` cycles later, one beat
    per cycle; a LOAD of no entries only occupies its unit for 2 cycles."""
    if count == 0:
        return 2
    return max(1, cfg.dram_latency_cycles) + count * entry_beats + LOAD_OVERHEAD


def preload_cycles(cfg: AccelConfig) -> int:
    return cfg.rows + PRELOAD_OVERHEAD


def compute_cycles(cfg: AccelConfig, count: int) -> int:
    """Stream ``count`` rows: fill/drain through ``groups`` row groups and ``cols`` columns."""
    return count + cfg.groups + cfg.cols + COMPUTE_OVERHEAD


def store_cycles(cfg: AccelConfig, count: int, entry_beats: int) -> int:
    return count * entry_beats + STORE_OVERHEAD


def instr_cycles(cfg: AccelConfig, instr: Instr) -> int:
    """Busy cycles of the unit that executes ``instr`` (no DRAM back-pressure)."""
    if isinstance(instr, Load):
        return load_cycles(cfg, instr.count, load_entry_beats(cfg, instr.target, instr.expand))
    if isinstance(instr, Preload):
        return preload_cycles(cfg)
    if isinstance(instr, Compute):
        return compute_cycles(cfg, instr.count)
    if isinstance(instr, Store):
        return store_cycles(cfg, instr.count, store_entry_beats(cfg, instr.requant))
    if isinstance(instr, Fence):
        return FENCE_CYCLES
    raise TypeError(f"no timing for {type(instr).__name__}")
