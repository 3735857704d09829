"""The accelerator's single source of truth: :class:`AccelConfig`.

Every part of sparsa (the Amaranth generator, the compiler's tiler, the SimPy model, the
energy model) reads the same frozen ``AccelConfig``. Validation happens once, in
``__post_init__``; derived sizes are ``cached_property``. Named presets are
``dataclasses.replace(DEFAULT, ...)``; YAML files load with one-line errors that name the
file, the field and what is allowed.

Data layout facts derived here (and used by hardware, compiler and model alike):

* An **activation entry** (one scratchpad word) holds one row of a K-tile: ``groups`` windows
  of ``m`` int8 values, ``groups = rows // n``; it covers ``k_per_pass = groups * m`` values of K.
* A **weight entry** holds one array row: ``cols`` int8 values followed by ``cols`` packed
  ``idx_bits``-bit indices (column ``c``'s index at bit ``c * idx_bits``), little-endian.
* An **accumulator entry** holds ``cols`` int32 partial sums.
* DRAM is addressed in **beats** of ``dram_bytes_per_cycle`` bytes; every scratchpad entry
  moved to or from DRAM occupies a whole number of beats (padded with zeros).

Bit/byte order (everywhere: DRAM image, stream payloads, scratchpad words): little-endian.
Byte ``j`` of an entry is bits ``8j .. 8j+7`` of the entry word; an entry spanning several
beats puts entry bytes ``0 .. beat_bytes-1`` in its first beat. Activation entry byte ``j``
is window ``j // m``, position ``j % m`` (int8). Weight entry: byte ``c`` is column ``c``'s
int8 value; the index field starts at byte ``cols``, column ``c``'s index at bit
``c * idx_bits`` of that field. STORE rows: int8 mode, byte ``c`` = column ``c``; int32 mode,
bytes ``4c .. 4c+3`` = column ``c``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from sparsa.fileio import write_atomic

__all__ = [
    "read_yaml",
    "AccelConfig",
    "ConfigError",
    "DEFAULT",
    "PRESETS",
    "load_config",
    "resolve_config",
]


class ConfigError(ValueError):
    """A user-facing configuration error; its message is one line naming field and range."""


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of one sparse systolic core.

    Parameters
    ----------
    name : str
        Label used in reports and file names.
    rows, cols : int
        PE array shape. ``rows`` must be a multiple of ``n``.
    n, m : int
        The array's N:M group size and window: ``n`` PE rows share one window of ``m``
        activations. ``m`` is a power of two (2..32), ``1 <= n <= m``.
    operand_bits, acc_bits : int
        Operand and accumulator widths (this version: 8 and 32).
    wgt_sp_kib, act_sp_kib, acc_sp_kib : float
        Scratchpad capacities in KiB.
    dram_bytes_per_cycle : int
        DRAM beat width = bytes per cycle per direction (power of two, 4..128).
    dram_latency_cycles : int
        Cycles from a read request to its first data beat (0..10000).
    clock_mhz : float
        Clock frequency used to turn cycles into time and power.
    energy_table : str
        Name of a built-in energy table (``"horowitz45"``) or a path to a YAML table.
    """

    name: str = "default"
    rows: int = 16
    cols: int = 16
    n: int = 2
    m: int = 4
    operand_bits: int = 8
    acc_bits: int = 32
    wgt_sp_kib: float = 64
    act_sp_kib: float = 64
    acc_sp_kib: float = 64
    dram_bytes_per_cycle: int = 16
    dram_latency_cycles: int = 20
    clock_mhz: float = 500.0
    energy_table: str = "horowitz45"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        def bad(fld: str, allowed: str) -> ConfigError:
            return ConfigError(f"{fld}={getattr(self, fld)!r} is invalid: {allowed}")

        for fld in ("rows", "cols", "n", "m", "operand_bits", "acc_bits",
                    "dram_bytes_per_cycle", "dram_latency_cycles"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad(fld, "must be an integer")
        if not 1 <= self.rows <= 256:
            raise bad("rows", "allowed 1..256")
        if not 1 <= self.cols <= 256:
            raise bad("cols", "allowed 1..256")
        if not (_is_pow2(self.m) and 2 <= self.m <= 32):
            raise bad("m", "allowed a power of two in 2..32")
        if not 1 <= self.n <= self.m:
            raise bad("n", f"allowed 1..m={self.m}")
        if self.rows % self.n:
            raise bad("rows", f"must be a multiple of n={self.n}")
        if self.operand_bits != 8:
            raise bad("operand_bits", "allowed 8")
        if self.acc_bits != 32:
            raise bad("acc_bits", "allowed 32")
        for fld in ("wgt_sp_kib", "act_sp_kib", "acc_sp_kib"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.25 <= v <= 65536:
                raise bad(fld, "allowed a number in 0.25..65536 (KiB)")
        if not (_is_pow2(self.dram_bytes_per_cycle) and 4 <= self.dram_bytes_per_cycle <= 128):
            raise bad("dram_bytes_per_cycle", "allowed a power of two in 4..128")
        if not 0 <= self.dram_latency_cycles <= 10000:
            raise bad("dram_latency_cycles", "allowed 0..10000")
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, int | float) \
                or not 1 <= self.clock_mhz <= 10000:
            raise bad("clock_mhz", "allowed a number in 1..10000")
        if not isinstance(self.name, str) or not self.name:
            raise bad("name", "allowed a non-empty string")
        if not isinstance(self.energy_table, str) or not self.energy_table:
            raise bad("energy_table", "a built-in table name or a YAML path")
        for sp, entries in (("wgt_sp_kib", self.wgt_entries), ("act_sp_kib", self.act_entries),
                            ("acc_sp_kib", self.acc_entries)):
            if entries < 2 * self.rows:
                raise bad(sp, f"too small: holds {entries} entries, needs at least "
                              f"{2 * self.rows} for a double-buffered tile")
            if entries > 65535:
                raise bad(sp, "too large: more than 65535 entries (16-bit addresses)")

    # ---- derived sizes -------------------------------------------------------------------
    @cached_property
    def groups(self) -> int:
        """Number of row groups (``rows // n``), each sharing one activation window."""
        return self.rows // self.n

    @cached_property
    def idx_bits(self) -> int:
        """Bits per stored index: ``ceil(log2 m)``."""
        return max(1, math.ceil(math.log2(self.m)))

    @cached_property
    def k_per_pass(self) -> int:
        """Values of K one array pass reduces over in sparse mode (``groups * m``)."""
        return self.groups * self.m

    @cached_property
    def beat_bytes(self) -> int:
        return self.dram_bytes_per_cycle

    @cached_property
    def act_entry_bytes(self) -> int:
        return self.groups * self.m

    @cached_property
    def act_dense_entry_bytes(self) -> int:
        """Bytes of a compact dense activation row (``rows`` values) in DRAM."""
        return self.rows

    @cached_property
    def windows(self) -> tuple[int, ...]:
        """Window widths ``w`` the array runs at: ``n`` (dense mode), every power of two
        between ``n`` and ``m``, and ``m``. At width ``w`` a pass reduces over
        ``groups * w`` values of K, an ``w/n`` speed-up over dense; a pattern with at most
        ``n`` non-zeros in every aligned ``w``-window runs at it (2:4 on an ``m = 8`` array at
        ``w = 4``). Activations for ``w < m`` are compact rows that ``LOAD expand=1``
        spreads into the ``m``-wide windows (see :mod:`sparsa.hw.isa`)."""
        pows = {1 << j for j in range(self.m.bit_length()) if self.n < (1 << j) < self.m}
        return tuple(sorted(pows | {self.n, self.m}))

    def act_row_bytes(self, win: int) -> int:
        """Bytes of one activation row at window width ``win`` (``groups * win`` values of
        K; ``rows`` in dense mode, ``act_entry_bytes`` at ``win = m``)."""
        return self.groups * win

    @cached_property
    def wgt_idx_bytes(self) -> int:
        return math.ceil(self.cols * self.idx_bits / 8)

    @cached_property
    def wgt_entry_bytes(self) -> int:
        return self.cols + self.wgt_idx_bytes

    @cached_property
    def acc_entry_bytes(self) -> int:
        return 4 * self.cols

    def beats(self, nbytes: int) -> int:
        """DRAM beats needed for ``nbytes`` (each entry is padded to whole beats)."""
        return -(-nbytes // self.beat_bytes)

    @cached_property
    def act_entries(self) -> int:
        return int(self.act_sp_kib * 1024) // self.act_entry_bytes

    @cached_property
    def wgt_entries(self) -> int:
        return int(self.wgt_sp_kib * 1024) // self.wgt_entry_bytes

    @cached_property
    def acc_entries(self) -> int:
        return int(self.acc_sp_kib * 1024) // self.acc_entry_bytes

    @cached_property
    def peak_macs_per_cycle(self) -> int:
        """Useful MACs per cycle of the array when every PE holds a non-zero."""
        return self.rows * self.cols

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return d

    def to_yaml(self, path: str | os.PathLike[str]) -> None:
        """Write the config as YAML (atomically: temp file, then rename)."""
        write_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False).encode())

    @property
    def key(self) -> str:
        """Short, stable identifier of the hardware-relevant parameters."""
        return (f"{self.rows}x{self.cols}_n{self.n}m{self.m}_b{self.dram_bytes_per_cycle}"
                f"_w{self.wgt_sp_kib:g}a{self.act_sp_kib:g}c{self.acc_sp_kib:g}")


DEFAULT = AccelConfig(name="16x16-n2m4")

PRESETS: dict[str, AccelConfig] = {
    c.name: c
    for c in (
        dataclasses.replace(DEFAULT, name="4x4-n2m4", rows=4, cols=4, wgt_sp_kib=1, act_sp_kib=1,
                            acc_sp_kib=2, dram_bytes_per_cycle=8, dram_latency_cycles=4),
        dataclasses.replace(DEFAULT, name="8x8-n2m4", rows=8, cols=8, wgt_sp_kib=4, act_sp_kib=8,
                            acc_sp_kib=8, dram_bytes_per_cycle=8, dram_latency_cycles=8),
        dataclasses.replace(DEFAULT, name="8x8-n2m8", rows=8, cols=8, m=8, wgt_sp_kib=4,
                            act_sp_kib=8, acc_sp_kib=8, dram_bytes_per_cycle=16,
                            dram_latency_cycles=8),
        DEFAULT,
        dataclasses.replace(DEFAULT, name="16x16-n2m8", m=8),
        # training-sized memory system (SAT-like): bigger activation/accumulator buffers and
        # 32 B/cycle DRAM, so 2:8 forward GEMMs are not starved for activations
        dataclasses.replace(DEFAULT, name="16x16-n2m8-train", m=8, act_sp_kib=256,
                            acc_sp_kib=128, dram_bytes_per_cycle=32),
        dataclasses.replace(DEFAULT, name="16x16-n1m16", n=1, m=16),
        dataclasses.replace(DEFAULT, name="16x16-n1m32", n=1, m=32),
        dataclasses.replace(DEFAULT, name="8x8-n1m16", rows=8, cols=8, n=1, m=16,
                            wgt_sp_kib=4, act_sp_kib=8, acc_sp_kib=8, dram_bytes_per_cycle=16,
                            dram_latency_cycles=8),
        dataclasses.replace(DEFAULT, name="16x16-n2m4-bw4", dram_bytes_per_cycle=4),
        dataclasses.replace(DEFAULT, name="32x32-n2m4", rows=32, cols=32, wgt_sp_kib=256,
                            act_sp_kib=256, acc_sp_kib=256, dram_bytes_per_cycle=32),
    )
}


def _energy_table_ref(value: Any, source: str, base_dir: Path | None) -> Any:
    """Check an ``energy_table`` given in a config file or mapping: a preset name, or a YAML
    file that exists (a relative path is taken from the config file's folder first)."""
    from sparsa.sim.energy import ENERGY_PRESETS  # sim imports hw: resolve lazily
    if not isinstance(value, str) or value in ENERGY_PRESETS:
        return value
    for cand in ([base_dir / value] if base_dir is not None else []) + [Path(value)]:
        if cand.is_file():
            return str(cand)
    raise ConfigError(f"{source}: energy_table={value!r} is neither a preset "
                      f"({', '.join(ENERGY_PRESETS)}) nor an existing YAML file")


def _from_mapping(data: Any, source: str, base_dir: Path | None = None,
                  check_files: bool = True) -> AccelConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of AccelConfig fields, "
                          f"got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(AccelConfig)} - {"extra"}
    base = DEFAULT
    if "preset" in data:
        p = data["preset"]
        if not isinstance(p, str) or p not in PRESETS:
            raise ConfigError(f"{source}: preset={p!r} is unknown; allowed: {', '.join(PRESETS)}")
        base = PRESETS[p]
        data = {k: v for k, v in data.items() if k != "preset"}
    for k in data:
        if k not in names:
            raise ConfigError(f"{source}: unknown field {k!r}; allowed: preset, "
                              f"{', '.join(sorted(names))}")
    if "energy_table" in data and check_files:
        data = {**data, "energy_table": _energy_table_ref(data["energy_table"], source, base_dir)}
    try:
        return dataclasses.replace(base, **data)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"key {key!r}")
        self.key, self.line = key, line


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a mapping key given twice (YAML would keep the
    last one, silently dropping the other)."""


def _unique_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":    # '<<: *anchor' keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        except TypeError:       # an unhashable key: construct_mapping names it
            pass
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: str | os.PathLike[str], error: type[Exception], what: str) -> Any:
    """Parse a YAML file; an unreadable file, malformed YAML or a key given twice in one
    mapping raises ``error`` with one line naming the file (and the line of the syntax
    error). Shared by every YAML input (configs, energy tables, sweep specs)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text (YAML expected)") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except _DuplicateKey as e:
        raise error(f"{path}: line {e.line}: key {e.key!r} is given twice; give each key "
                    f"once") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{path}: malformed YAML{where}") from None
    except RecursionError:
        raise error(f"{path}: malformed YAML (nested too deeply)") from None


def load_config(path: str | os.PathLike[str]) -> AccelConfig:
    """Load an ``AccelConfig`` from YAML; unspecified fields come from ``preset`` or DEFAULT."""
    return _from_mapping(read_yaml(path, ConfigError, "config file"), str(path),
                         Path(path).parent)


def from_dict(data: dict[str, Any], source: str = "config", *,
              check_files: bool = True) -> AccelConfig:
    """Build a config from a mapping (e.g. a sweep point), with the same checks as YAML.
    ``check_files=False`` (a config stored in a compiled program) accepts an
    ``energy_table`` file that no longer exists: it matters only to a simulation that uses
    it, which then names it (``--energy-table`` can replace it)."""
    return _from_mapping(data, source, check_files=check_files)


def resolve_config(spec: str | AccelConfig | None) -> AccelConfig:
    """Turn a preset name, a YAML path, or an ``AccelConfig`` into an ``AccelConfig``."""
    if spec is None:
        return DEFAULT
    if isinstance(spec, AccelConfig):
        return spec
    if spec in PRESETS:
        return PRESETS[spec]
    if spec.endswith((".yaml", ".yml")) or os.path.exists(spec):
        return load_config(spec)
    raise ConfigError(f"config {spec!r} is neither a preset ({', '.join(PRESETS)}) "
                      f"nor a YAML file")
