"""Energy model: counted actions x per-action energies.

The model counts actions per layer (:data:`sparsa.sim.model.ACTIONS`) and prices them with an
:class:`EnergyTable`. The default table, ``horowitz45``, holds the 45 nm figures of Horowitz
(ISSCC 2014) that ``DESIGN.md`` fixes:

=====================  ==========================================================
int8 multiply          0.2 pJ
int32 add              0.1 pJ (an int8 MAC with int32 accumulation = 0.3 pJ)
SRAM, per 64 bits      8 KiB 10 pJ, 32 KiB 20 pJ, 1 MiB 100 pJ; other sizes on the
                       power law through the neighbouring points (log-log)
DRAM, per 64 bits      2000 pJ (Horowitz: 1300-2600; presets ``horowitz45-dram1300``
                       and ``horowitz45-dram2600``)
window multiplexer     0.004 pJ per 8-bit input per selection (an ``m``-input mux
                       costs ``m * 0.004`` pJ per PE operation)
=====================  ==========================================================

Components (``pJ``):

``mac``
    Each PE operation whose weight is non-zero costs a multiply and an add; a PE slot with
    a zero weight (pruned value or tile padding) is operand-isolated: the multiplier is
    gated, the add of zero into the column's partial sum remains.
``mux``
    Each PE operation selects ``window[index]`` from ``m`` activations.
``sram_act``, ``sram_wgt``, ``sram_acc``
    Bytes read and written in each scratchpad, at the 64-bit access energy for that
    scratchpad's size (``act_sp_kib``, ``wgt_sp_kib``, ``acc_sp_kib``).
``sram_meta``
    The N:M index metadata (``ceil(log2 m)`` bits per stored weight, packed next to the
    values) read and written at the weight scratchpad's rate.
``dram``
    Bytes read and written in DRAM (whole beats, as moved), at the DRAM 64-bit rate.

Override with YAML (``config.energy_table`` names a preset or a file)::

    preset: horowitz45          # optional base, default horowitz45
    name: my-table
    mult_int8_pj: 0.2
    add_int32_pj: 0.1
    sram_pj_per_64b: {8: 10, 32: 20, 1024: 100}    # KiB: pJ
    dram_pj_per_64b: 2000
    mux_pj_per_input: 0.004

Totals: ``energy_pj`` is the sum of the components (the tests check it reconciles);
``tops_w`` = effective (dense-equivalent) operations per joule / 1e12 = ``2 * dense_macs /
energy_pj``; ``edp`` = energy (J) x run time (s).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsa.hw.config import AccelConfig, read_yaml

from .errors import SimError

__all__ = ["EnergyTable", "ENERGY_PRESETS", "COMPONENTS", "load_energy_table",
           "energy_table_kind_error", "resolve_energy_table", "energy_breakdown", "format_table"]

#: Largest per-action energy a table may give (pJ).
_MAX_PJ = 1e7
#: Scratchpad sizes a config may have (KiB; ``AccelConfig.*_sp_kib``).
_SP_KIB = (0.25, 65536)

#: Energy components in report order.
COMPONENTS = ("mac", "mux", "sram_act", "sram_wgt", "sram_meta", "sram_acc", "dram")


@dataclass(frozen=True)
class EnergyTable:
    """Per-action energies in pJ (see the module docstring).

    Parameters
    ----------
    name : str
    mult_int8_pj, add_int32_pj : float
        One int8 multiply, one int32 add.
    sram_pj_per_64b : tuple of (KiB, pJ)
        64-bit access energy at given SRAM sizes, sizes increasing; other sizes follow
        the power law through the two neighbouring points (the end segments extrapolate).
    dram_pj_per_64b : float
    mux_pj_per_input : float
        Window multiplexer energy per 8-bit input per selection.
    """

    name: str = "horowitz45"
    mult_int8_pj: float = 0.2
    add_int32_pj: float = 0.1
    sram_pj_per_64b: tuple[tuple[float, float], ...] = ((8, 10), (32, 20), (1024, 100))
    dram_pj_per_64b: float = 2000.0
    mux_pj_per_input: float = 0.004

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SimError(f"energy table name={self.name!r} is invalid; allowed a non-empty "
                           f"string")
        for f in ("mult_int8_pj", "add_int32_pj", "dram_pj_per_64b", "mux_pj_per_input"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < _MAX_PJ:
                raise SimError(f"energy table {self.name!r}: {f}={v!r} is invalid; allowed "
                               f"a number 0..1e7 pJ")
        pts = self.sram_pj_per_64b
        if len(pts) < 2:
            raise SimError(f"energy table {self.name!r}: sram_pj_per_64b needs at least two "
                           f"size: pJ points")
        for size, pj in pts:
            if not (0 < size < math.inf and 0 < pj < _MAX_PJ):
                raise SimError(f"energy table {self.name!r}: sram_pj_per_64b point "
                               f"{size}: {pj} is invalid; sizes (KiB) must be finite and > 0, "
                               f"pJ in (0, 1e7)")
        if any(b[0] <= a[0] for a, b in zip(pts, pts[1:], strict=False)):
            raise SimError(f"energy table {self.name!r}: sram_pj_per_64b sizes must increase")
        # the power law between (and beyond) the points, at every scratchpad size a config
        # may have: a steep segment overflowed or underflowed there
        for kib in sorted({_SP_KIB[0], _SP_KIB[1], *(s for s, _ in pts
                                                      if _SP_KIB[0] < s < _SP_KIB[1])}):
            try:
                pj = self.sram_pj(kib)
            except (OverflowError, ZeroDivisionError):
                pj = math.inf
            if not 0 < pj < _MAX_PJ:
                raise SimError(f"energy table {self.name!r}: sram_pj_per_64b gives {pj:g} pJ "
                               f"at {kib:g} KiB; allowed (0, 1e7) pJ for scratchpads of "
                               f"{_SP_KIB[0]:g}..{_SP_KIB[1]:g} KiB (points too steep)")

    @property
    def mac_pj(self) -> float:
        return self.mult_int8_pj + self.add_int32_pj

    def sram_pj(self, kib: float) -> float:
        """64-bit access energy of a ``kib`` KiB SRAM (log-log interpolation)."""
        pts = self.sram_pj_per_64b
        j = 0
        while j < len(pts) - 2 and kib > pts[j + 1][0]:
            j += 1
        (s0, e0), (s1, e1) = pts[j], pts[j + 1]
        slope = math.log(e1 / e0) / math.log(s1 / s0)
        return e0 * (kib / s0) ** slope

    def rows(self, cfg: AccelConfig) -> list[tuple[str, str]]:
        """The table as printed in reports, with the values used for ``cfg``."""
        return [
            ("table", self.name),
            ("int8 multiply", f"{self.mult_int8_pj:g} pJ"),
            ("int32 add", f"{self.add_int32_pj:g} pJ"),
            ("SRAM /64 bit", ", ".join(f"{s:g} KiB {e:g} pJ" for s, e in self.sram_pj_per_64b)),
            (f"act SRAM {cfg.act_sp_kib:g} KiB", f"{self.sram_pj(cfg.act_sp_kib):.2f} pJ/64b"),
            (f"wgt SRAM {cfg.wgt_sp_kib:g} KiB",
             f"{self.sram_pj(cfg.wgt_sp_kib):.2f} pJ/64b (metadata {cfg.idx_bits} b/weight)"),
            (f"acc SRAM {cfg.acc_sp_kib:g} KiB", f"{self.sram_pj(cfg.acc_sp_kib):.2f} pJ/64b"),
            ("DRAM /64 bit", f"{self.dram_pj_per_64b:g} pJ"),
            (f"window mux ({cfg.m} inputs)",
             f"{self.mux_pj_per_input * cfg.m:g} pJ/select"),
        ]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sram_pj_per_64b"] = {s: e for s, e in self.sram_pj_per_64b}
        return d


ENERGY_PRESETS: dict[str, EnergyTable] = {
    t.name: t for t in (
        EnergyTable(),
        EnergyTable(name="horowitz45-dram1300", dram_pj_per_64b=1300.0),
        EnergyTable(name="horowitz45-dram2600", dram_pj_per_64b=2600.0),
    )
}

_FIELDS = ("preset", "name", "mult_int8_pj", "add_int32_pj", "sram_pj_per_64b",
           "dram_pj_per_64b", "mux_pj_per_input")


def _from_mapping(data: Any, source: str) -> EnergyTable:
    if not isinstance(data, dict):
        raise SimError(f"{source}: expected a mapping of energy table fields, got "
                       f"{type(data).__name__}")
    for k in data:
        if k not in _FIELDS:
            raise SimError(f"{source}: unknown field {k!r}; allowed: {', '.join(_FIELDS)}")
    base_name = data.get("preset", "horowitz45")
    if not isinstance(base_name, str) or base_name not in ENERGY_PRESETS:
        raise SimError(f"{source}: preset={base_name!r} is unknown; allowed: "
                       f"{', '.join(ENERGY_PRESETS)}")
    kw: dict[str, Any] = {k: v for k, v in data.items() if k != "preset"}
    kw.setdefault("name", Path(source).stem)
    for k in ("mult_int8_pj", "add_int32_pj", "dram_pj_per_64b", "mux_pj_per_input"):
        if k in kw and (isinstance(kw[k], bool) or not isinstance(kw[k], int | float)):
            raise SimError(f"{source}: {k}={kw[k]!r} is invalid; allowed a number (pJ)")
    if "sram_pj_per_64b" in kw:
        pts = kw["sram_pj_per_64b"]
        if not isinstance(pts, dict) or not all(
                isinstance(a, int | float) and isinstance(b, int | float)
                and not isinstance(a, bool) and not isinstance(b, bool)
                for a, b in pts.items()):
            raise SimError(f"{source}: sram_pj_per_64b must map SRAM size in KiB to pJ per "
                           f"64-bit access, e.g. {{8: 10, 32: 20, 1024: 100}}")
        try:
            kw["sram_pj_per_64b"] = tuple(sorted((float(a), float(b)) for a, b in pts.items()))
        except OverflowError:       # an integer beyond float range
            raise SimError(f"{source}: sram_pj_per_64b holds a number too large; allowed "
                           f"sizes (KiB) and pJ in (0, 1e7), e.g. {{8: 10, 32: 20, 1024: 100}}"
                           ) from None
    try:
        return dataclasses.replace(ENERGY_PRESETS[base_name], **kw)
    except SimError as e:
        raise SimError(f"{source}: {e}") from None


def load_energy_table(path: str | os.PathLike[str]) -> EnergyTable:
    """Read an energy table from YAML (fields not given come from ``preset``)."""
    return _from_mapping(read_yaml(path, SimError, "energy table"), str(Path(path)))


def energy_table_kind_error(spec: Any) -> str | None:
    """Why ``spec`` cannot name an energy table at all (not ``None``, a table or a
    non-empty string: a number, a list...), or ``None``."""
    if spec is None or isinstance(spec, EnergyTable) or (isinstance(spec, str) and spec):
        return None
    return (f"energy_table={spec!r} is invalid; allowed a built-in table name "
            f"({', '.join(ENERGY_PRESETS)}) or a YAML path")


def resolve_energy_table(spec: str | EnergyTable | None) -> EnergyTable:
    """A preset name, a YAML path, or a table -> :class:`EnergyTable`."""
    why = energy_table_kind_error(spec)
    if why:
        raise SimError(why)
    if spec is None:
        return ENERGY_PRESETS["horowitz45"]
    if isinstance(spec, EnergyTable):
        return spec
    if spec in ENERGY_PRESETS:
        return ENERGY_PRESETS[spec]
    if spec.endswith((".yaml", ".yml")) or os.path.exists(spec):
        return load_energy_table(spec)
    raise SimError(f"energy_table={spec!r} is neither a preset ({', '.join(ENERGY_PRESETS)}) "
                   f"nor a YAML file")


def energy_breakdown(actions: dict[str, int], cfg: AccelConfig,
                     table: EnergyTable) -> dict[str, float]:
    """pJ per component (:data:`COMPONENTS`) for one set of action counts."""
    def per64(nbytes: float, kib: float) -> float:
        return nbytes / 8.0 * table.sram_pj(kib)

    pe = actions.get("pe_ops", 0)
    nz = min(actions.get("nonzero_macs", 0), pe)
    return {
        "mac": nz * table.mac_pj + (pe - nz) * table.add_int32_pj,
        "mux": actions.get("mux_selects", 0) * cfg.m * table.mux_pj_per_input,
        "sram_act": per64(actions.get("sram_act_read", 0) + actions.get("sram_act_write", 0),
                          cfg.act_sp_kib),
        "sram_wgt": per64(actions.get("sram_wgt_read", 0) + actions.get("sram_wgt_write", 0),
                          cfg.wgt_sp_kib),
        "sram_meta": per64(actions.get("sram_meta_read", 0)
                           + actions.get("sram_meta_write", 0), cfg.wgt_sp_kib),
        "sram_acc": per64(actions.get("sram_acc_read", 0) + actions.get("sram_acc_write", 0),
                          cfg.acc_sp_kib),
        "dram": (actions.get("dram_read", 0) + actions.get("dram_write", 0)) / 8.0
        * table.dram_pj_per_64b,
    }


def format_table(table: EnergyTable, cfg: AccelConfig) -> str:
    """Plain-text form of the table used (printed in every report)."""
    rows = table.rows(cfg)
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"  {a:<{w}}  {b}" for a, b in rows)
