"""The tile ISA (version 4) of the sparse systolic core, defined once.

The formats are written once, as ``{field: width}`` tables in bit order (:data:`FORMATS`).
The hardware decodes with :data:`INSTR_LAYOUT`, the ``amaranth.lib.data`` layout built from
them; the compiler encodes with :func:`encode` and :func:`decode` reads words back, both
from the same tables; the reference executor and the SimPy model interpret the decoded
:class:`Instr` objects. Every instruction is one ``INSTR_BITS``-bit word. The layouts are
built on first use (``from sparsa.hw.isa import INSTR_LAYOUT``): software that only encodes
or times instructions -- the compiler, the model -- never imports Amaranth (a quarter of a
second of every command line's start).

Execution model
---------------
Instructions are issued **in order**, at most one per cycle, to four units:
``LOAD`` (DRAM -> activation or weight scratchpad), ``PRE`` (weight scratchpad -> the
array's shadow registers), ``EXEC`` (stream activation rows through the array into the
accumulator scratchpad) and ``STORE`` (accumulator scratchpad -> DRAM). Each unit runs one
instruction at a time. An instruction issues in the first cycle in which its own unit is idle
**and** every unit named in its ``wait`` mask is idle. Hazards between units are the
compiler's responsibility, expressed only through ``wait`` masks. ``FENCE`` waits for the
units in its mask (all units when the mask is 0) and occupies no unit.

``LOAD`` and ``EXEC`` are pipelined (ISA v4). The load unit accepts the next ``LOAD`` once
it has sent the current one's read requests (up to ``LOAD_QUEUE`` LOADs outstanding; their
data arrives in order); an instruction whose mask names ``LOAD`` waits until every earlier
LOAD has written its last entry, except that a ``PRELOAD`` or ``COMPUTE`` lets its
``load_slack`` most recent LOADs run on. ``EXEC`` accepts the next ``COMPUTE`` as soon as it
has read the last activation row of the current one, while earlier rows still travel
through the array and into the accumulators. For the ``wait`` mask of ``LOAD``/``PRELOAD``/``COMPUTE`` the
``EXEC`` unit is busy only while it reads activation rows; a ``STORE`` whose mask names
``EXEC`` waits until at most ``exec_slack`` COMPUTEs are still writing accumulators
(COMPUTEs finish in order, so ``exec_slack = k`` lets the ``k`` most recent ones run on);
a ``FENCE`` naming ``EXEC`` waits until every COMPUTE has finished. A ``PRELOAD`` always
waits, whatever its mask, until the weight swap of the last ``swap=1`` COMPUTE has reached
every PE (the swap travels through the array with the first row, ``swap_wave_cycles``).

Instructions (fields in scratchpad *entries* and DRAM *beats*; see ``hw/config.py``)
------------------------------------------------------------------------------------
``LOAD target sp_addr count dram_addr dram_stride expand``
    For ``i in range(count)``: read one entry's beats from DRAM beat address
    ``dram_addr + i*dram_stride`` and write scratchpad entry ``sp_addr + i``. ``target`` is
    ``ACT`` or ``WGT``. For ``ACT`` with ``expand=1`` DRAM holds compact rows of
    ``groups * w`` bytes at window width ``w = cmp_m`` (``w = n`` when ``cmp_m = 0``; ISA v3,
    ``w`` one of ``AccelConfig.windows``): value ``k`` lands at window ``k // w``, position
    ``k % w`` and the other window positions are zero -- dense mode (``w = n``) and narrow
    sparse windows (2:4 on an ``m = 8`` array at ``w = 4``) without inflating DRAM traffic.
    ``cmp_n`` is zero for ``ACT``.
    For ``WGT`` with ``expand=1`` (*load-as-sparse*, ISA v2; v1 cores ignored ``expand``
    for weights): DRAM holds ``count`` compressed weight entries (ordinary weight-entry
    bytes, ``idx < cmp_m``); entry ``i`` is slot ``i % cmp_n`` of window ``i // cmp_n`` and
    puts column ``c``'s value at scratchpad entry ``sp_addr + (i // cmp_n) * cmp_m + idx[c]``
    (values of one window add, wrapping, into zeroed entries). It writes
    ``count // cmp_n * cmp_m`` dense-mode entries (entry ``e`` gets index ``e % n``);
    ``count`` must be a multiple of ``cmp_n``, ``1 <= cmp_n <= cmp_m <= m``. The core
    expands each window in a double-buffered window buffer and writes its ``cmp_m`` entries
    one per cycle, so a window costs ``max(cmp_n * entry_beats, cmp_m)`` cycles.
    ``cmp_n``/``cmp_m`` are zero for every other weight LOAD.
    Timing: :func:`sparsa.hw.timing.load_cycles`.
``PRELOAD wsp_addr load_slack``
    Copy weight entries ``wsp_addr .. wsp_addr+rows-1`` into the array's shadow
    (value, index) registers; entry ``r`` goes to PE row ``r``. Timing: ``preload_cycles``.
``COMPUTE asp_addr acc_addr count accumulate swap load_slack``
    If ``swap``: the shadow registers become the active ones first. Then for
    ``p in range(count)``, with ``x = ACT[asp_addr + p]`` viewed as ``groups`` windows of
    ``m`` int8 and PE(r, c) holding ``(v, i)``:
    ``y[c] = sum_r v[r, c] * x[r // n][i[r, c]]`` (int32, wrapping), and
    ``ACC[acc_addr + p] = y`` (``accumulate=0``) or ``ACC[acc_addr + p] += y``.
    Timing: ``compute_cycles`` until the last accumulator row is written,
    ``compute_issue_cycles`` until the unit accepts the next COMPUTE.
``STORE acc_addr count dram_addr dram_stride relu requant shift exec_slack``
    For ``i in range(count)``: take ``a = ACC[acc_addr + i]`` (int32 x cols); if ``requant``:
    ``a = (a + 2**(shift-1)) >> shift`` (arithmetic, exact; no rounding term when
    ``shift=0``), saturate to int8 and write ``cols`` bytes; else write ``4*cols`` bytes of
    little-endian int32. ``relu`` clamps negatives to zero (before saturation). Written at
    DRAM beat ``dram_addr + i*dram_stride``, padded to whole beats with zeros.
    ``exec_slack`` (ISA v4) applies when ``wait`` names ``EXEC``: see the execution model.
    Timing: ``store_cycles``.
``FENCE``
    Waits as described above. Timing: ``fence_cycles``.
"""

from __future__ import annotations

import enum as py_enum
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from amaranth.lib import data

    from .config import AccelConfig

__all__ = [  # noqa: F822 (the layouts come from the module's __getattr__)
    "ISA_VERSION", "INSTR_BITS", "Op", "Unit", "Target", "INSTR_LAYOUT", "FORMATS",
    "Instr", "Load", "Preload", "Compute", "Store", "Fence",
    "encode", "decode", "ISAError", "RD_REQ_LAYOUT", "wr_layout", "load_fields_error",
    "load_as_sparse", "load_sp_entries",
    "act_load_fields", "FIELD_DEFAULTS",
]

#: 2: ``LOAD WGT expand=1`` is load-as-sparse in the hardware too (v1 cores ignored it)
#: 3: ``LOAD ACT expand=1`` takes its window width from ``cmp_m`` (v2 always used ``n``)
#: 4: pipelined ``LOAD`` and ``COMPUTE`` (their latencies overlap), ``STORE exec_slack``,
#:    ``PRELOAD``/``COMPUTE load_slack``
ISA_VERSION = 4
INSTR_BITS = 128
ADDR_BITS = 16
COUNT_BITS = 16
DRAM_ADDR_BITS = 32
STRIDE_BITS = 16
SHIFT_BITS = 5
CMP_BITS = 6
SLACK_BITS = 8
LOAD_SLACK_BITS = 3


class ISAError(ValueError):
    """An instruction field out of range, or a word that does not decode."""


class Op(py_enum.Enum):
    """Opcodes: the 4-bit ``op`` field."""
    NOP = 0
    LOAD = 1
    PRELOAD = 2
    COMPUTE = 3
    STORE = 4
    FENCE = 5


class Unit(py_enum.IntFlag):
    """Execution units; also the bits of an instruction's ``wait`` mask."""
    LOAD = 1
    PRE = 2
    EXEC = 4
    STORE = 8
    ALL = 15


class Target(py_enum.Enum):
    """Scratchpad a LOAD writes: the 1-bit ``target`` field."""
    ACT = 0
    WGT = 1


#: Payload formats, ``{field: width}`` from bit 0 up (``target`` holds a :class:`Target`).
LOAD_FIELDS = {
    "target": 1,
    "expand": 1,
    "sp_addr": ADDR_BITS,
    "count": COUNT_BITS,
    "dram_addr": DRAM_ADDR_BITS,
    "dram_stride": STRIDE_BITS,
    "cmp_n": CMP_BITS,
    "cmp_m": CMP_BITS,
}
PRELOAD_FIELDS = {
    "wsp_addr": ADDR_BITS,
    "load_slack": LOAD_SLACK_BITS,
}
COMPUTE_FIELDS = {
    "asp_addr": ADDR_BITS,
    "acc_addr": ADDR_BITS,
    "count": COUNT_BITS,
    "accumulate": 1,
    "swap": 1,
    "load_slack": LOAD_SLACK_BITS,
}
STORE_FIELDS = {
    "acc_addr": ADDR_BITS,
    "count": COUNT_BITS,
    "dram_addr": DRAM_ADDR_BITS,
    "dram_stride": STRIDE_BITS,
    "relu": 1,
    "requant": 1,
    "shift": SHIFT_BITS,
    "exec_slack": SLACK_BITS,
}
PAYLOAD_BITS = INSTR_BITS - 8
#: The instruction word: ``op`` (4 bits, an :class:`Op`), ``wait`` (4 bits, :class:`Unit`
#: flags), then the payload (one of the formats above, by opcode; unused bits zero).
INSTR_FIELDS = {"op": 4, "wait": 4, "payload": PAYLOAD_BITS}
#: every format by name (the payload union's members)
FORMATS = {"load": LOAD_FIELDS, "preload": PRELOAD_FIELDS, "compute": COMPUTE_FIELDS,
           "store": STORE_FIELDS}
assert sum(INSTR_FIELDS.values()) == INSTR_BITS
assert all(sum(f.values()) <= PAYLOAD_BITS for f in FORMATS.values())

#: Payload of the core's DRAM read-request stream: read ``beats`` beats from beat ``addr``.
RD_REQ_FIELDS = {"addr": DRAM_ADDR_BITS, "beats": COUNT_BITS}

#: the ``amaranth.lib.data`` layouts, built from the tables on first use (:func:`__getattr__`)
_LAYOUT_NAMES = ("LOAD_LAYOUT", "PRELOAD_LAYOUT", "COMPUTE_LAYOUT", "STORE_LAYOUT",
                 "PAYLOAD_LAYOUT", "INSTR_LAYOUT", "RD_REQ_LAYOUT")


def _build_layouts() -> dict[str, data.Layout]:
    from amaranth.lib import data
    fmt = {k: data.StructLayout(v) for k, v in FORMATS.items()}
    payload = data.UnionLayout({**fmt, "raw": PAYLOAD_BITS})
    instr = data.StructLayout({**INSTR_FIELDS, "payload": payload})
    assert instr.size == INSTR_BITS
    for name, lay in fmt.items():    # the hardware's offsets are the software's
        assert _field_offsets(FORMATS[name]) == {n: (f.offset, f.width) for n, f in lay}
    return {"LOAD_LAYOUT": fmt["load"], "PRELOAD_LAYOUT": fmt["preload"],
            "COMPUTE_LAYOUT": fmt["compute"], "STORE_LAYOUT": fmt["store"],
            "PAYLOAD_LAYOUT": payload, "INSTR_LAYOUT": instr,
            "RD_REQ_LAYOUT": data.StructLayout(RD_REQ_FIELDS)}


def __getattr__(name: str) -> Any:
    if name in _LAYOUT_NAMES:
        globals().update(_build_layouts())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def wr_layout(beat_bytes: int) -> data.StructLayout:
    """Payload of the core's DRAM write stream: one beat of data at beat address ``addr``."""
    from amaranth.lib import data
    return data.StructLayout({"addr": DRAM_ADDR_BITS, "data": 8 * beat_bytes})


_OFFSETS: dict[int, tuple[dict[str, int], dict[str, tuple[int, int]]]] = {}


def _field_offsets(fmt: dict[str, int]) -> dict[str, tuple[int, int]]:
    """``{field: (offset, width)}`` of the format ``fmt`` (``{field: width}`` from bit 0
    up, as ``amaranth.lib.data.StructLayout`` places them), computed once per format
    (decoding a whole network's program asks for it once per instruction)."""
    hit = _OFFSETS.get(id(fmt))
    if hit is not None and hit[0] is fmt:
        return hit[1]
    out, off = {}, 0
    for name, width in fmt.items():
        out[name] = (off, width)
        off += width
    _OFFSETS[id(fmt)] = (fmt, out)      # the format is kept, so its id stays unique
    return out


_OP_OFF, _OP_W = _field_offsets(INSTR_FIELDS)["op"]
_WAIT_OFF, _WAIT_W = _field_offsets(INSTR_FIELDS)["wait"]
_PAY_OFF = _field_offsets(INSTR_FIELDS)["payload"][0]


_PAYLOAD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True)
class Instr:
    """Software form of one instruction. Subclasses name their payload layout."""

    wait: int = 0
    OP: ClassVar[Op] = Op.NOP
    FIELDS: ClassVar[dict[str, int] | None] = None
    UNIT: ClassVar[Unit | None] = None

    def payload_fields(self) -> dict[str, int]:
        names = _PAYLOAD_NAMES.get(type(self))
        if names is None:
            names = _PAYLOAD_NAMES[type(self)] = tuple(
                f.name for f in fields(self) if f.name != "wait")
        d = self.__dict__
        return {k: d[k] for k in names}

    def __post_init__(self) -> None:
        if not 0 <= self.wait <= 15:
            raise ISAError(f"{type(self).__name__}.wait={self.wait} out of range 0..15")
        if self.FIELDS is None:
            return
        offs = _field_offsets(self.FIELDS)
        for name, value in self.payload_fields().items():
            width = offs[name][1]
            v = value.value if isinstance(value, py_enum.Enum) else int(value)
            if not 0 <= v < (1 << width):
                raise ISAError(f"{type(self).__name__}.{name}={value} does not fit in "
                               f"{width} bits (allowed 0..{(1 << width) - 1})")


@dataclass(frozen=True)
class Load(Instr):
    target: Target = Target.ACT
    sp_addr: int = 0
    count: int = 1
    dram_addr: int = 0
    dram_stride: int = 1
    expand: int = 0
    cmp_n: int = 0
    cmp_m: int = 0
    OP: ClassVar[Op] = Op.LOAD
    FIELDS: ClassVar[dict[str, int]] = LOAD_FIELDS
    UNIT: ClassVar[Unit] = Unit.LOAD


@dataclass(frozen=True)
class Preload(Instr):
    wsp_addr: int = 0
    load_slack: int = 0
    OP: ClassVar[Op] = Op.PRELOAD
    FIELDS: ClassVar[dict[str, int]] = PRELOAD_FIELDS
    UNIT: ClassVar[Unit] = Unit.PRE


@dataclass(frozen=True)
class Compute(Instr):
    asp_addr: int = 0
    acc_addr: int = 0
    count: int = 1
    accumulate: int = 0
    swap: int = 1
    load_slack: int = 0
    OP: ClassVar[Op] = Op.COMPUTE
    FIELDS: ClassVar[dict[str, int]] = COMPUTE_FIELDS
    UNIT: ClassVar[Unit] = Unit.EXEC


@dataclass(frozen=True)
class Store(Instr):
    acc_addr: int = 0
    count: int = 1
    dram_addr: int = 0
    dram_stride: int = 1
    relu: int = 0
    requant: int = 0
    shift: int = 0
    exec_slack: int = 0
    OP: ClassVar[Op] = Op.STORE
    FIELDS: ClassVar[dict[str, int]] = STORE_FIELDS
    UNIT: ClassVar[Unit] = Unit.STORE


@dataclass(frozen=True)
class Fence(Instr):
    OP: ClassVar[Op] = Op.FENCE


_BY_OP: dict[Op, type[Instr]] = {c.OP: c for c in (Load, Preload, Compute, Store, Fence)}
#: every format's fields (``wait`` included) with their defaults: what a field left out of
#: an instruction's fields means (the compiler's schedule leaves defaults out)
FIELD_DEFAULTS: dict[type[Instr], dict[str, Any]] = {c: dict(c().__dict__)
                                                     for c in _BY_OP.values()}
_PAYLOAD_KEY = {Op.LOAD: "load", Op.PRELOAD: "preload", Op.COMPUTE: "compute",
                Op.STORE: "store"}


def act_load_fields(config: AccelConfig, act_win: int) -> dict[str, int]:
    """``expand`` and ``cmp_m`` of an activation LOAD of rows at window width ``act_win``:
    0 means full ``m``-wide entries (no expansion); ``cmp_m = 0`` stands for ``n``."""
    return {"expand": int(act_win > 0), "cmp_m": 0 if act_win in (0, config.n) else act_win}


def load_fields_error(config: AccelConfig, instr: Load) -> str | None:
    """Why the ``expand``/``cmp_n``/``cmp_m`` fields of LOAD ``instr`` are not valid on a
    core of ``config``, or ``None``. The rules of the instruction documentation above:
    an activation LOAD has ``cmp_n = 0`` and ``cmp_m`` 0 or, with ``expand=1``, one of
    ``config.windows``; a load-as-sparse weight LOAD (``expand=1``) has
    ``1 <= cmp_n <= cmp_m <= m``, ``cmp_m`` a power of two and ``count`` a multiple of
    ``cmp_n``; any other weight LOAD has both 0.
    """
    n, m = instr.cmp_n, instr.cmp_m
    if load_as_sparse(instr) and 1 <= n <= m and instr.count % n:
        return (f"LOAD WGT count={instr.count}; allowed a multiple of cmp_n={n} "
                f"(load-as-sparse)")
    if instr.target == Target.ACT:
        if not n and (not m or (instr.expand and m in config.windows)):
            return None
        allowed = f"cmp_n=0 and cmp_m 0 or, with expand=1, one of {list(config.windows)}"
    elif instr.expand:
        if 1 <= n <= m <= config.m and m & (m - 1) == 0:
            return None
        allowed = f"with expand=1: 1 <= cmp_n <= cmp_m <= m={config.m}, cmp_m a power of two"
    else:
        if not n and not m:
            return None
        allowed = "with expand=0: cmp_n=cmp_m=0"
    return (f"LOAD {instr.target.name} cmp_n={n} cmp_m={m} expand={instr.expand}; "
            f"allowed {allowed}")


def load_as_sparse(instr: Load) -> bool:
    """A weight LOAD that expands compressed entries (``expand=1``, ISA v2)."""
    return bool(instr.target == Target.WGT and instr.expand)


def load_sp_entries(instr: Load) -> int:
    """Scratchpad entries a LOAD writes: ``count``, or for a load-as-sparse weight LOAD
    ``count // cmp_n * cmp_m`` (each window of ``cmp_n`` compressed entries expands into
    ``cmp_m`` dense-mode entries)."""
    if load_as_sparse(instr) and instr.cmp_n:
        return instr.count // instr.cmp_n * instr.cmp_m
    return instr.count


def encode(instr: Instr) -> int:
    """Encode one instruction into its ``INSTR_BITS``-bit integer word."""
    word = (instr.OP.value << _OP_OFF) | (instr.wait << _WAIT_OFF)
    if instr.FIELDS is not None:
        offs = _field_offsets(instr.FIELDS)
        for name, value in instr.payload_fields().items():
            v = value.value if isinstance(value, py_enum.Enum) else int(value)
            word |= v << (_PAY_OFF + offs[name][0])
    return word


_DECODERS: dict[int, tuple[type[Instr], tuple[tuple[str, int, int], ...], dict, int]] = {}
_TARGETS = {t.value: t for t in Target}


def _decoder(opv: int) -> tuple[type[Instr], tuple[tuple[str, int, int], ...], dict, int]:
    ent = _DECODERS.get(opv)
    if ent is None:
        try:
            op = Op(opv)
        except ValueError:
            raise ISAError(f"unknown opcode {opv}") from None
        cls = _BY_OP.get(op)
        if cls is None:
            raise ISAError(f"opcode {op.name} is not executable")
        flds = tuple((name, _PAY_OFF + off, width) for name, (off, width)
                     in (_field_offsets(cls.FIELDS).items() if cls.FIELDS is not None else ()))
        used = (((1 << _OP_W) - 1) << _OP_OFF) | (((1 << _WAIT_W) - 1) << _WAIT_OFF)
        for _, off, width in flds:
            used |= ((1 << width) - 1) << off
        ent = _DECODERS[opv] = (cls, flds, FIELD_DEFAULTS[cls], used)
    return ent


def decode(word: int) -> Instr:
    """Decode an integer word back into an :class:`Instr`; raises :class:`ISAError`.

    Every field is read with its own width, so it is in range by construction; the
    instance is filled without the constructor's range checks (a whole network's program
    decodes 3x faster). Bits outside the opcode's fields are reserved and must be zero (the
    core ignores them; a word that sets them was not written by :func:`encode`)."""
    if not 0 <= word < (1 << INSTR_BITS):
        raise ISAError(f"instruction word does not fit in {INSTR_BITS} bits")
    cls, flds, base, used = _decoder((word >> _OP_OFF) & ((1 << _OP_W) - 1))
    if word & ~used:
        raise ISAError(f"{cls.OP.name} word sets reserved bits (mask "
                       f"0x{word & ~used:x}); they must be zero")
    d = dict(base)
    d["wait"] = (word >> _WAIT_OFF) & ((1 << _WAIT_W) - 1)
    for name, off, width in flds:
        d[name] = (word >> off) & ((1 << width) - 1)
    if "target" in d:
        d["target"] = _TARGETS[d["target"]]     # 1-bit field: both values are targets
    obj = object.__new__(cls)
    obj.__dict__.update(d)
    return obj


def to_bytes(words: list[int]) -> bytes:
    """Little-endian concatenation of instruction words (16 bytes each)."""
    return b"".join(w.to_bytes(INSTR_BITS // 8, "little") for w in words)
