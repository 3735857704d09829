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

* LOAD (pipelined, ISA v4): one read request per entry in ``T0+1 .. T0+count``; the unit
  accepts the next LOAD in ``T0+count`` (``load_issue_cycles``) while fewer than
  ``LOAD_QUEUE`` LOADs are outstanding. Data comes back in order: a LOAD's first beat
  arrives in ``max(T0 + 1 + L, end of the previous LOAD)`` and its last beat (the entry
  write, the last busy cycle) ``count*entry_beats - 1`` cycles later. Alone:
  ``L + count*entry_beats + 1`` cycles (``LOAD_OVERHEAD = 1``). A LOAD of 0 entries takes 2
  cycles; it and a load-as-sparse LOAD issue only when no LOAD is outstanding, and the
  load-as-sparse one holds the unit until its end.
* LOAD WGT ``expand=1`` (load-as-sparse, ``count = W * cmp_n`` compressed entries of ``E``
  beats, ``F = cmp_n * E`` beats per window): requests as above; the ``cmp_n``-th entry of
  window ``w`` is added into its window bank in cycle ``a_w``, the bank drains ``cmp_m``
  dense-mode entries in ``d_w .. d_w + cmp_m - 1`` with
  ``d_w = max(a_w + 1, d_(w-1) + cmp_m)``; a window waits for its bank (double-buffered)
  only by holding its entry-completing beat until the cycle the bank's last row drains.
  Without waiting ``a_w = T0 + L + (w+1)*F``. If ``cmp_m <= F`` the drains never overlap
  (``d_w = a_w + 1``) and no beat waits; else the drains run back to back
  (``d_w = d_0 + w*cmp_m``) and the beats of window ``w+2`` arrive, at the latest, before
  ``d_(w+2)``. The last drain write is the last busy cycle:
  ``L + F + (W-1)*max(F, cmp_m) + cmp_m + 1`` (``LOAD_OVERHEAD = 1``; 2 for count 0).
* PRELOAD: weight-scratchpad reads in ``T0+1 .. T0+rows``, shifts one cycle later:
  ``rows + 2`` (``PRELOAD_OVERHEAD = 2``).
* COMPUTE (pipelined, ISA v4): activation reads in ``T0+1 .. T0+count``; the unit accepts the
  next COMPUTE in ``T0+count`` (``compute_issue_cycles = max(1, count)``: its reads follow
  without a bubble). Each row then takes the array's ``groups + cols`` latency, one result
  register and the accumulator write; the last write is the last busy cycle:
  ``max(1, count) + groups + cols + 3`` (``COMPUTE_OVERHEAD = 3``; a COMPUTE of no rows
  still sends its completion token one cycle behind the issue). A ``swap=1`` COMPUTE's swap
  reaches PE (g, c) at the edge ending cycle ``T0 + 2 + g + c``; a PRELOAD's first shift
  reaches column c at the edge ending cycle ``T0' + 2 + c`` (the array skews the preload
  like the swap), so a PRELOAD issues at ``T0 + groups`` at the earliest
  (``swap_wave_cycles``).
* STORE: accumulator read in ``T0+1``, first write beat in ``T0+2``, one beat per cycle:
  ``count*entry_beats + 2`` (``STORE_OVERHEAD = 2``).
* FENCE: 1.

The RTL tests (``tests/test_rtl_system.py``, ``tests/test_rtl_loadsparse.py``) assert these;
change them only together with the hardware.
"""

from __future__ import annotations

from typing import Any

from .config import AccelConfig
from .isa import (
    FIELD_DEFAULTS,
    Compute,
    Fence,
    Instr,
    ISAError,
    Load,
    Preload,
    Store,
    Target,
    load_as_sparse,
)

ISSUE_CYCLES = 1
LOAD_OVERHEAD = 1
#: LOADs that may be outstanding at once (the load unit's descriptor queue).
LOAD_QUEUE = 4
PRELOAD_OVERHEAD = 2
COMPUTE_OVERHEAD = 3
STORE_OVERHEAD = 2
FENCE_CYCLES = 1


def load_entry_beats(cfg: AccelConfig, target: Target, expand: int, win: int = 0) -> int:
    """DRAM beats per scratchpad entry moved by a LOAD. An expanding activation LOAD reads
    compact rows of ``groups * win`` bytes (``win`` is its ``cmp_m`` field; 0 means ``n``,
    dense mode)."""
    if target == Target.WGT:
        return cfg.beats(cfg.wgt_entry_bytes)
    if not expand:
        return cfg.beats(cfg.act_entry_bytes)
    return cfg.beats(cfg.act_row_bytes(win or cfg.n))


def act_entry_beats(cfg: AccelConfig, act_win: int) -> int:
    """DRAM beats per activation row at window width ``act_win`` (0: full entries; see
    :func:`sparsa.hw.isa.act_load_fields`)."""
    return load_entry_beats(cfg, Target.ACT, int(act_win > 0), act_win)


def instr_entry_beats(cfg: AccelConfig, instr: Load) -> int:
    """DRAM beats per scratchpad entry of LOAD ``instr`` (:func:`load_entry_beats` of its
    fields)."""
    win = instr.cmp_m if instr.target == Target.ACT else 0
    return load_entry_beats(cfg, instr.target, instr.expand, win)


def store_entry_beats(cfg: AccelConfig, requant: int) -> int:
    """DRAM beats per accumulator entry written by a STORE."""
    return cfg.beats(cfg.cols if requant else cfg.acc_entry_bytes)


def load_cycles(cfg: AccelConfig, count: int, entry_beats: int, cmp_n: int = 0,
                cmp_m: int = 0) -> int:
    """First request one cycle after issue, data ``max(1, latency)`` cycles later, one beat
    per cycle; a LOAD of no entries only occupies its unit for 2 cycles.

    With ``cmp_n``/``cmp_m`` (a load-as-sparse weight LOAD, ``count`` a multiple of
    ``cmp_n``): ``count // cmp_n`` windows of ``F = cmp_n * entry_beats`` beats, each
    drained as ``cmp_m`` dense entries at one per cycle after it arrived, the next window
    arriving while the previous one drains: ``L + F + (W-1)*max(F, cmp_m) + cmp_m + 1``.
    """
    if count == 0:
        return 2
    lat = max(1, cfg.dram_latency_cycles)
    if not cmp_n and not cmp_m:
        return lat + count * entry_beats + LOAD_OVERHEAD
    if not 1 <= cmp_n <= cmp_m or count % cmp_n:
        raise ISAError(f"load-as-sparse LOAD: count={count}, cmp_n={cmp_n}, cmp_m={cmp_m}: "
                       "allowed 1 <= cmp_n <= cmp_m and count a multiple of cmp_n")
    windows, fill = count // cmp_n, cmp_n * entry_beats
    return lat + fill + (windows - 1) * max(fill, cmp_m) + cmp_m + LOAD_OVERHEAD


def preload_cycles(cfg: AccelConfig) -> int:
    return cfg.rows + PRELOAD_OVERHEAD


def compute_cycles(cfg: AccelConfig, count: int) -> int:
    """Issue to last accumulator write of a COMPUTE of ``count`` rows: streaming plus the
    fill/drain through ``groups`` row groups and ``cols`` columns."""
    return max(1, count) + cfg.groups + cfg.cols + COMPUTE_OVERHEAD


def compute_issue_cycles(count: int) -> int:
    """Cycles until the (pipelined) EXEC unit accepts the next COMPUTE: one per row read."""
    return max(1, count)


def swap_wave_cycles(cfg: AccelConfig) -> int:
    """Cycles from a ``swap=1`` COMPUTE's issue until a PRELOAD may issue (in every column
    the swap has reached the last row group before the PRELOAD's first shift)."""
    return cfg.groups


def load_issue_cycles(count: int) -> int:
    """Cycles until the load unit accepts the next LOAD after a plain LOAD of ``count``
    entries: one read request per cycle (a LOAD of no entries: 1)."""
    return max(1, count)


def load_solo(instr: Load) -> bool:
    """A LOAD that issues only when no LOAD is outstanding: load-as-sparse or empty."""
    return instr.count == 0 or load_as_sparse(instr)


def issue_cycles(cfg: AccelConfig, instr: Instr) -> int:
    """Cycles until ``instr``'s unit accepts its next instruction (= :func:`instr_cycles`
    except for the pipelined COMPUTE and plain LOADs)."""
    if isinstance(instr, Compute):
        return compute_issue_cycles(instr.count)
    if isinstance(instr, Load) and not load_as_sparse(instr):
        return load_issue_cycles(instr.count)
    return instr_cycles(cfg, instr)


def store_cycles(cfg: AccelConfig, count: int, entry_beats: int) -> int:
    return count * entry_beats + STORE_OVERHEAD


def instr_cycles(cfg: AccelConfig, instr: Instr) -> int:
    """Busy cycles of the unit that executes ``instr`` (no DRAM back-pressure)."""
    if isinstance(instr, Load):
        eb = instr_entry_beats(cfg, instr)
        if load_as_sparse(instr):
            return load_cycles(cfg, instr.count, eb, instr.cmp_n, instr.cmp_m)
        return load_cycles(cfg, instr.count, eb)
    if isinstance(instr, Preload):
        return preload_cycles(cfg)
    if isinstance(instr, Compute):
        return compute_cycles(cfg, instr.count)
    if isinstance(instr, Store):
        return store_cycles(cfg, instr.count, store_entry_beats(cfg, instr.requant))
    if isinstance(instr, Fence):
        return FENCE_CYCLES
    raise TypeError(f"no timing for {type(instr).__name__}")


def instr_timing(cfg: AccelConfig, instr: Instr, cache: dict) -> tuple[int, int, int, bool]:
    """``(instr_cycles, issue_cycles, instr_entry_beats (LOADs; else 0), load_solo)`` of
    ``instr``, memoised in ``cache`` (see :func:`fields_timing`)."""
    return fields_timing(cfg, type(instr), instr.__dict__, cache)


def fields_timing(cfg: AccelConfig, cls: type, fields: dict[str, Any],
                  cache: dict) -> tuple[int, int, int, bool]:
    """:func:`instr_timing` of the instruction of class ``cls`` with ``fields`` (those left
    out take the format's defaults, as in the compiler's schedule), memoised in ``cache``
    by the fields the formulas above read (a program repeats a few instruction shapes
    many times); keep the key in step with them."""
    get, d = fields.get, FIELD_DEFAULTS[cls]
    if cls is Load:
        key: object = (cls, get("count", d["count"]), get("target", d["target"]),
                       get("expand", d["expand"]), get("cmp_n", d["cmp_n"]),
                       get("cmp_m", d["cmp_m"]))
    elif cls is Compute:
        key = (cls, get("count", d["count"]))
    elif cls is Store:
        key = (cls, get("count", d["count"]), get("requant", d["requant"]))
    else:                   # PRELOAD, FENCE: fixed
        key = cls
    t = cache.get(key)
    if t is None:
        instr = cls(**fields)
        load = cls is Load
        t = cache[key] = (instr_cycles(cfg, instr), issue_cycles(cfg, instr),
                          instr_entry_beats(cfg, instr) if load else 0,
                          load and load_solo(instr))
    return t
