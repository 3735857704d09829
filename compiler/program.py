"""The compiled :class:`Program`: instructions + DRAM image + manifest.

This is the contract between the compiler (which builds it), the reference executor and the
RTL bench (which run it) and the SimPy model (which times it).

* ``instructions`` — :class:`sparsa.hw.isa.Instr` objects in issue order.
* ``dram`` — the initial DRAM image, ``uint8``, length a multiple of ``config.beat_bytes``;
  DRAM addresses in instructions are beat addresses into it. A program compiled with
  ``with_data=False`` has an empty image and its size in ``meta["dram_beats"]``
  (:attr:`Program.dram_beats` gives the size either way).
* ``tensors`` — every tensor's placement (:class:`TensorInfo`), by name.
* ``layers`` — per-layer bookkeeping (:class:`LayerInfo`): the instruction index range and
  MAC counts, so the model and reports can break results down per layer. Non-GEMM layers
  (pooling, softmax, norms, adds, im2col) are ``kind="host"`` entries with an empty
  instruction range and their element counts in ``meta``. A GEMM layer's ``meta`` holds
  its shape (``P``, ``K``, ``Q``, ``groups``), spec, modes, windows, ``passes`` (when a
  pattern denser than the array's ``n`` runs over several copies of ``K``, see
  :mod:`sparsa.compiler.wformat`), loop orders and, when
  it does not run the mode its sparsity suggests, ``notes`` saying why
  (:meth:`Program.mode_notes` sums them up).
* ``notes`` — per-instruction annotations (same length as ``instructions``): the layer index
  and, for COMPUTE, the useful (non-padding, non-zero-weight) MACs it performs.

A program compiled without data holds the scheduler's tuples instead of instruction and
note objects until ``instructions`` or ``notes`` is first read (:meth:`Program.defer`,
:attr:`Program.scheduled`): the model times a whole network from the tuples without
building its 10^5-10^6 objects.

Serialisation
-------------
:meth:`Program.save` writes a binary (``.sprg``)::

    magic  b"SPARSAPG"            8 bytes
    format version                u32 (little-endian)
    ISA version                   u32
    header length H               u32
    header                        H bytes of UTF-8 JSON (config, tensors, layers, notes, meta,
                                  instruction count, DRAM bytes)
    instructions                  16 bytes each (``hw.isa.encode``, little-endian)
    DRAM image                    the header's ``dram_bytes`` bytes
    CRC32                         u32 over everything above

:meth:`Program.load` gives back an identical program (``==``); a corrupted or truncated file
raises :class:`~sparsa.compiler.errors.CompileError` with a one-line message, and so does
one whose instructions reach beyond the config's scratchpads or the DRAM image, or whose
layers, notes and tensors disagree with its instructions (both loaders check it).
:meth:`Program.save_json` writes the same content as readable JSON (instructions
disassembled, DRAM image in base64); :meth:`Program.load_json` reads it back.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from sparsa.hw.config import AccelConfig, ConfigError, from_dict
from sparsa.hw.isa import (
    INSTR_BITS,
    ISA_VERSION,
    Compute,
    Instr,
    ISAError,
    Load,
    Preload,
    Store,
    Target,
    decode,
    encode,
    load_fields_error,
    load_sp_entries,
)
from sparsa.hw.timing import instr_entry_beats, store_entry_beats

from sparsa.fileio import write_atomic

from .errors import CompileError

__all__ = ["Program", "TensorInfo", "LayerInfo", "InstrNote", "MAGIC", "FORMAT_VERSION",
           "instr_to_dict", "instr_from_dict"]

MAGIC = b"SPARSAPG"
FORMAT_VERSION = 1
_WORD = INSTR_BITS // 8
_PRE = struct.Struct("<8sIII")


@dataclass
class TensorInfo:
    """Where a tensor lives in DRAM and how it is laid out.

    ``fmt`` names the layout, e.g. ``"act"`` (activation entries), ``"act_dense"`` (compact
    rows for LOAD expand), ``"wgt"`` (weight entries: values + packed indices),
    ``"wgt_tiles"`` (block-compressed weight tiles, see :mod:`sparsa.compiler.wformat`),
    ``"out_i8"`` / ``"out_i32"`` (STORE rows). ``role`` is ``input``, ``weight``,
    ``output`` or ``scratch``.
    """

    name: str
    addr: int            # beat address
    beats: int           # beats occupied
    shape: tuple[int, ...]
    dtype: str           # "int8" | "int32"
    fmt: str
    role: str = "scratch"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LayerInfo:
    name: str
    first_instr: int
    end_instr: int       # exclusive
    kind: str = "gemm"   # gemm | fwd | bwd_data | wgrad | host
    dense_macs: int = 0  # MACs of the dense GEMM(s)
    nonzero_macs: int = 0  # MACs with a non-zero weight
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class InstrNote:
    layer: int = -1
    useful_macs: int = 0


def _jsonable(x: Any) -> Any:
    """Plain-JSON form of manifest values (numpy scalars/arrays, tuples)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def instr_to_dict(instr: Instr) -> dict[str, Any]:
    """Readable form of one instruction: ``{"op": "Load", "wait": 0, ...fields}``."""
    d: dict[str, Any] = {"op": type(instr).__name__, "wait": int(instr.wait)}
    for k, v in instr.payload_fields().items():
        d[k] = v.name if isinstance(v, Target) else int(v)
    return d


_OPS = {c.__name__: c for c in (Load, Preload, Compute, Store)}


def instr_from_dict(d: dict[str, Any]) -> Instr:
    """Inverse of :func:`instr_to_dict`."""
    from sparsa.hw.isa import Fence
    ops = dict(_OPS, Fence=Fence)
    kw = dict(d)
    cls = ops.get(kw.pop("op", None))
    if cls is None:
        raise CompileError(f"instruction {d!r}: unknown op; allowed {', '.join(ops)}")
    # every field, as instr_to_dict writes them: a field left out would silently take
    # the dataclass default (count=1, swap=1, ...)
    missing = [f.name for f in fields(cls) if f.name not in kw]
    if missing:
        raise CompileError(f"instruction {d!r}: missing field {missing[0]!r}; a {cls.__name__} "
                           f"has {', '.join(['op', *(f.name for f in fields(cls))])}")
    try:
        if "target" in kw:
            if kw["target"] not in Target.__members__:
                raise CompileError(f"instruction {d!r}: target={kw['target']!r}; allowed "
                                   f"{', '.join(Target.__members__)}")
            kw["target"] = Target[kw["target"]]
        for k, v in kw.items():
            if k != "target" and (isinstance(v, bool) or not isinstance(v, int)):
                raise CompileError(f"instruction {d!r}: {k}={v!r} is not an integer")
        return cls(**kw)
    except (TypeError, KeyError, ISAError) as e:
        raise CompileError(f"instruction {d!r}: {e}") from None


@dataclass(eq=False)
class Program:
    config: AccelConfig
    instructions: list[Instr]
    dram: np.ndarray
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    layers: list[LayerInfo] = field(default_factory=list)
    notes: list[InstrNote] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    #: expected values of output tensors (set by the compiler with data; not serialised)
    expected: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: seconds per compiler pass of this compile (not serialised: a program's files are
    #: the same bytes every time it is compiled)
    pass_seconds: dict[str, float] = field(default_factory=dict, repr=False)

    # ---- deferred instructions -------------------------------------------------------
    # ``instructions`` and ``notes`` are properties (defined below the class) over
    # ``__dict__["_instructions"]`` / ``["_notes"]``: a program compiled without data
    # keeps the scheduler's tuples instead (:meth:`defer`) and builds the objects on first
    # access; the model reads the tuples as they are (a whole network's 10^5-10^6
    # instruction objects cost more than simulating them).
    def defer(self, scheduled: Any) -> None:
        """Replace ``instructions`` and ``notes`` by ``scheduled``
        (:class:`sparsa.compiler.encode.ScheduledInstrs`, its fields range-checked): its
        ``build()`` gives both on first access; until then :attr:`scheduled` returns it."""
        d = self.__dict__
        d.pop("_instructions", None)
        d.pop("_notes", None)
        d["_scheduled"] = scheduled

    @property
    def scheduled(self) -> Any:
        """The scheduler's instruction tuples while the instruction objects are not built
        (see :meth:`defer`), else ``None``."""
        return self.__dict__.get("_scheduled")

    def _build(self) -> None:
        d = self.__dict__
        d["_instructions"], d["_notes"] = d.pop("_scheduled").build()

    # ---- derived figures -------------------------------------------------------------
    @property
    def dram_beats(self) -> int:
        """Size of the DRAM image in beats (also for data-less programs)."""
        if self.dram.size:
            return self.dram.size // self.config.beat_bytes
        return int(self.meta.get("dram_beats", 0))

    @property
    def has_data(self) -> bool:
        """False for programs compiled with ``with_data=False`` (no DRAM image)."""
        return bool(self.dram.size) or not self.meta.get("dram_beats")

    def summary(self) -> dict[str, Any]:
        """Counts for reports: instructions by kind, DRAM bytes moved, MACs.

        ``macs_issued`` counts ``rows * cols`` MACs per streamed activation row (what the
        array spends); ``useful_macs`` sums the notes; ``dense_macs`` and ``nonzero_macs``
        sum the GEMM layers (dense-equivalent work and work with non-zero weights).
        """
        cfg = self.config
        kinds: Counter = Counter()
        rd = wr = issued = 0
        for ins in self.instructions:
            kinds[type(ins).__name__] += 1
            if isinstance(ins, Load):
                rd += ins.count * instr_entry_beats(cfg, ins) * cfg.beat_bytes
            elif isinstance(ins, Store):
                wr += ins.count * store_entry_beats(cfg, ins.requant) * cfg.beat_bytes
            elif isinstance(ins, Compute):
                issued += ins.count * cfg.rows * cfg.cols
        gemm = [ly for ly in self.layers if ly.kind != "host"]
        return {
            "instructions": len(self.instructions),
            "by_kind": dict(sorted(kinds.items())),
            "dram_read_bytes": rd,
            "dram_write_bytes": wr,
            "dram_image_bytes": self.dram_beats * cfg.beat_bytes,
            "macs_issued": issued,
            "useful_macs": sum(n.useful_macs for n in self.notes),
            "dense_macs": sum(ly.dense_macs for ly in gemm),
            "nonzero_macs": sum(ly.nonzero_macs for ly in gemm),
            "gemm_layers": len(gemm),
            "host_layers": len(self.layers) - len(gemm),
            "mode_notes": self.mode_notes(),
        }

    def mode_notes(self) -> list[str]:
        """Why GEMM layers run in another mode than their sparsity suggests (a pattern the
        array cannot run sparse falls back to dense, a narrower window, ...): one line per
        distinct reason, most frequent first, with the number of layers and the first of
        them, e.g. ``"21 GEMM layers (conv1, layer1.0.conv1, ...): dense mode: 3:8 has more
        than 2 non-zeros in some aligned 4-window"``."""
        groups: dict[str, list[str]] = {}
        for ly in self.layers:
            if ly.kind == "host":
                continue
            for why in ly.meta.get("notes", []):
                groups.setdefault(why, []).append(ly.name)
        lines = []
        for why, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(names[:2]) + (", ..." if len(names) > 2 else "")
            lines.append(f"{len(names)} GEMM layer{'s' if len(names) > 1 else ''} ({shown}): "
                         f"{why}")
        return lines

    # ---- equality --------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return (self.config == other.config and self.instructions == other.instructions
                and self.dram.dtype == other.dram.dtype
                and np.array_equal(self.dram, other.dram)
                and self._header(False) == other._header(False))

    __hash__ = None  # type: ignore[assignment]

    # ---- serialisation ---------------------------------------------------------------
    def _header(self, with_counts: bool = True) -> dict[str, Any]:
        h: dict[str, Any] = {
            "config": _jsonable(self.config.to_dict()),
            "tensors": {k: _jsonable(asdict(t)) for k, t in self.tensors.items()},
            "layers": [_jsonable(asdict(ly)) for ly in self.layers],
            "notes": {"layer": [n.layer for n in self.notes],
                      "useful_macs": [int(n.useful_macs) for n in self.notes]},
            "meta": _jsonable(self.meta),
        }
        if with_counts:
            h["n_instr"] = len(self.instructions)
            h["dram_bytes"] = int(self.dram.size)
        return h

    def to_bytes(self) -> bytes:
        """The binary form (see the module docstring)."""
        if self.dram.dtype != np.uint8 or self.dram.ndim != 1:
            raise CompileError(f"DRAM image must be 1-D uint8, got {self.dram.dtype} "
                               f"{self.dram.shape}")
        head = json.dumps(self._header(), separators=(",", ":")).encode()
        words = b"".join(encode(i).to_bytes(_WORD, "little") for i in self.instructions)
        body = (_PRE.pack(MAGIC, FORMAT_VERSION, ISA_VERSION, len(head)) + head + words
                + self.dram.tobytes())
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "program") -> Program:
        """Parse :meth:`to_bytes` output; one-line :class:`CompileError` when it is damaged."""
        if len(data) < _PRE.size + 4:
            raise CompileError(f"{source}: truncated program binary ({len(data)} bytes)")
        magic, fver, iver, hlen = _PRE.unpack_from(data)
        if magic != MAGIC:
            raise CompileError(f"{source}: not a sparsa program binary (bad magic)")
        if fver != FORMAT_VERSION:
            raise CompileError(f"{source}: program format version {fver} is not supported "
                               f"(this sparsa reads version {FORMAT_VERSION})")
        if iver != ISA_VERSION:
            raise CompileError(f"{source}: program targets ISA version {iver}, this sparsa "
                               f"implements ISA version {ISA_VERSION}")
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        if _PRE.size + hlen + 4 > len(data):
            raise CompileError(f"{source}: truncated program binary (header needs {hlen} "
                               f"bytes)")
        if zlib.crc32(data[:-4]) != crc:
            raise CompileError(f"{source}: program binary is corrupted or truncated "
                               f"(CRC32 mismatch)")
        try:
            head = json.loads(data[_PRE.size:_PRE.size + hlen].decode())
        except (ValueError, RecursionError):
            raise CompileError(f"{source}: program header is not valid JSON") from None
        if not isinstance(head, dict):
            raise CompileError(f"{source}: program header is not a JSON object")
        try:
            n_instr = _int(head["n_instr"], "n_instr")
            dram_bytes = _int(head["dram_bytes"], "dram_bytes")
        except (KeyError, TypeError) as e:
            raise CompileError(f"{source}: malformed program header ({e})") from None
        off = _PRE.size + hlen
        if off + n_instr * _WORD + dram_bytes + 4 != len(data):
            raise CompileError(f"{source}: program binary has {len(data)} bytes, header "
                               f"announces {off + n_instr * _WORD + dram_bytes + 4}")
        try:
            instrs = [decode(int.from_bytes(data[off + j * _WORD:off + (j + 1) * _WORD],
                                            "little")) for j in range(n_instr)]
        except ISAError as e:
            raise CompileError(f"{source}: bad instruction word: {e}") from None
        off += n_instr * _WORD
        dram = np.frombuffer(data, np.uint8, dram_bytes, off).copy()
        return cls._from_header(head, instrs, dram, source)

    @classmethod
    def _from_header(cls, head: dict[str, Any], instrs: list[Instr], dram: np.ndarray,
                     source: str) -> Program:
        try:
            cfg = from_dict(dict(head["config"]), f"{source}: config", check_files=False)
            tensors = {}
            for k, t in head["tensors"].items():
                t = dict(t)
                t["shape"] = tuple(t["shape"])
                tensors[k] = _checked(TensorInfo(**t), f"tensors.{k}")
            layers = [_checked(LayerInfo(**ly), f"layers[{j}]")
                      for j, ly in enumerate(head["layers"])]
            nl, nm = head["notes"]["layer"], head["notes"]["useful_macs"]
            notes = [InstrNote(_int(a, "notes.layer"), _int(b, "notes.useful_macs"))
                     for a, b in zip(nl, nm, strict=True)]
            meta = dict(head["meta"])
        except ConfigError as e:
            raise CompileError(str(e)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CompileError(f"{source}: malformed program header ({e})") from None
        prog = cls(cfg, instrs, dram, tensors, layers, notes, meta)
        prog._check_consistent(source)
        return prog

    def _check_consistent(self, source: str) -> None:
        """What a hand-edited or damaged file can break beyond the field types: the DRAM
        image size, every instruction's scratchpad and DRAM ranges, notes per instruction,
        layer instruction ranges, kinds and GEMM shapes, note layer indices."""
        cfg, n = self.config, len(self.instructions)
        self._check_dram(source)
        dram_beats = self.dram_beats
        for i, ins in enumerate(self.instructions):
            err = load_fields_error(cfg, ins) if isinstance(ins, Load) else None
            err = err or _range_error(cfg, ins, dram_beats)
            if err:
                raise CompileError(f"{source}: instructions[{i}] {err}")
        if self.notes and len(self.notes) != n:
            raise CompileError(f"{source}: notes has {len(self.notes)} entries, the program "
                               f"{n} instructions")
        for j, ly in enumerate(self.layers):
            if not 0 <= ly.first_instr <= ly.end_instr <= n:
                raise CompileError(f"{source}: layers[{j}] ({ly.name!r}) instruction range "
                                   f"{ly.first_instr}..{ly.end_instr} is not within 0..{n}")
            if ly.dense_macs < 0 or ly.nonzero_macs < 0:
                raise CompileError(f"{source}: layers[{j}] ({ly.name!r}) has negative MACs")
            if ly.kind not in LAYER_KINDS:
                raise CompileError(f"{source}: layers[{j}].kind={ly.kind!r}; allowed "
                                   f"{', '.join(LAYER_KINDS)}")
            if ly.kind == "host" and ly.first_instr != ly.end_instr:
                raise CompileError(f"{source}: layers[{j}] ({ly.name!r}) is a host layer with "
                                   f"instructions {ly.first_instr}..{ly.end_instr}; a host "
                                   f"layer runs none (first_instr = end_instr)")
            if ly.kind == "host" and not _count_ok(ly.meta.get("elements", 0)):
                raise CompileError(f"{source}: layers[{j}] ({ly.name!r}) meta.elements="
                                   f"{ly.meta['elements']!r}; allowed an integer in "
                                   f"0..2**62-1 (the elements the host layer handles)")
            mode = ly.meta.get("mode", [])
            if not isinstance(mode, list) or not all(isinstance(x, str) for x in mode):
                raise CompileError(f"{source}: layers[{j}].meta.mode={mode!r} is not a list of "
                                   f"mode names")
            why = ly.meta.get("notes", [])
            if not isinstance(why, list) or not all(isinstance(x, str) for x in why):
                raise CompileError(f"{source}: layers[{j}].meta.notes={why!r}; allowed a list "
                                   f"of strings")
            if ly.kind != "host":
                err = _gemm_meta_error(cfg, ly)
                if err:
                    raise CompileError(f"{source}: layers[{j}] ({ly.name!r}) {err}")
        array = cfg.rows * cfg.cols
        for i, (note, ins) in enumerate(zip(self.notes, self.instructions, strict=True)):
            # a COMPUTE does at most rows*cols MACs per streamed row (each PE holds one
            # weight), any other instruction none
            most = ins.count * array if isinstance(ins, Compute) else 0
            if not -1 <= note.layer < len(self.layers) or not 0 <= note.useful_macs <= most:
                raise CompileError(f"{source}: notes entry {i} (layer {note.layer}, "
                                   f"useful_macs {note.useful_macs}) is out of range "
                                   f"(layer -1..{len(self.layers) - 1}, useful_macs "
                                   f"0..{most}: at most the MACs instructions[{i}] "
                                   f"({type(ins).__name__.upper()}) issues)")
        for k, t in self.tensors.items():
            if t.addr < 0 or t.beats < 0 or any(v < 0 for v in t.shape):
                raise CompileError(f"{source}: tensors.{k}: negative addr, beats or shape")
            if t.addr + t.beats > dram_beats:
                raise CompileError(f"{source}: tensors.{k}: beats {t.addr}.."
                                   f"{t.addr + t.beats - 1} are beyond the DRAM image "
                                   f"(beats 0..{dram_beats - 1})")

    def _check_dram(self, source: str) -> None:
        """The DRAM image is whole beats, and ``meta.dram_beats`` (the size of a data-less
        program's image) a count that agrees with it."""
        bb = self.config.beat_bytes
        if self.dram.size % bb:
            raise CompileError(f"{source}: DRAM image of {self.dram.size} bytes is not a whole "
                               f"number of {bb}-byte beats")
        beats = self.meta.get("dram_beats")
        if beats is None:
            return
        if isinstance(beats, bool) or not isinstance(beats, int) or beats < 0:
            raise CompileError(f"{source}: meta.dram_beats={beats!r}; allowed an integer >= 0")
        if self.dram.size and beats != self.dram.size // bb:
            raise CompileError(f"{source}: meta.dram_beats={beats} but the DRAM image has "
                               f"{self.dram.size // bb} beats")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the binary form atomically (temp file, then rename); returns the path."""
        return write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Program:
        """Read a binary written by :meth:`save`."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CompileError(f"{path}: cannot read program ({e.strerror})") from None
        return cls.from_bytes(data, str(path))

    def to_json(self) -> dict[str, Any]:
        """Readable form: the header plus disassembled instructions and base64 DRAM."""
        h = self._header()
        h["format_version"] = FORMAT_VERSION
        h["isa_version"] = ISA_VERSION
        h["instructions"] = [instr_to_dict(i) for i in self.instructions]
        h["dram_base64"] = base64.b64encode(self.dram.tobytes()).decode()
        return h

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str = "program.json") -> Program:
        try:
            if "isa_version" not in d and "instructions" not in d:
                raise CompileError(f"{source}: not a program JSON (no isa_version, no "
                                   f"instructions; 'sparsa compile' writes program.json)")
            if type(d.get("isa_version")) is not int or d["isa_version"] != ISA_VERSION:
                raise CompileError(f"{source}: isa_version {d.get('isa_version')!r} is not "
                                   f"{ISA_VERSION}")
            fver = d.get("format_version", FORMAT_VERSION)
            if type(fver) is not int or fver != FORMAT_VERSION:
                raise CompileError(f"{source}: format_version {d.get('format_version')!r} "
                                   f"is not {FORMAT_VERSION}")
            if "n_instr" in d and d["n_instr"] != len(d["instructions"]):
                raise CompileError(f"{source}: n_instr={d['n_instr']!r} but "
                                   f"{len(d['instructions'])} instructions are listed")
            instrs = []
            for j, x in enumerate(d["instructions"]):
                try:
                    instrs.append(instr_from_dict(x))
                except CompileError as e:
                    raise CompileError(f"{source}: instructions[{j}]: {e}") from None
            try:
                raw = base64.b64decode(d["dram_base64"], validate=True)
            except binascii.Error:
                raise CompileError(f"{source}: dram_base64 is not base64 text") from None
            if "dram_bytes" in d and d["dram_bytes"] != len(raw):
                raise CompileError(f"{source}: dram_bytes={d['dram_bytes']!r} but dram_base64 "
                                   f"holds {len(raw)} bytes")
            dram = np.frombuffer(raw, np.uint8).copy()
        except CompileError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise CompileError(f"{source}: malformed program JSON ({e})") from None
        return cls._from_header(d, instrs, dram, source)

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`json_bytes` atomically."""
        return write_atomic(path, self.json_bytes())

    def json_bytes(self) -> bytes:
        """:meth:`to_json` as file bytes: the header indented, one instruction per line
        (compact lines keep json's C encoder: a whole network writes 3x faster)."""
        d = self.to_json()
        instrs, dram = d.pop("instructions"), d.pop("dram_base64")
        head = json.dumps(d, indent=1)
        enc = json.JSONEncoder(separators=(", ", ": ")).encode
        lines = ",\n".join("  " + enc(i) for i in instrs)
        text = (f'{head[:-2]},\n "instructions": [\n{lines}\n ],\n'
                f' "dram_base64": {json.dumps(dram)}\n}}\n')
        return text.encode()

    @classmethod
    def load_json(cls, path: str | os.PathLike[str]) -> Program:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except OSError as e:
            raise CompileError(f"{path}: cannot read program JSON ({e.strerror})") from None
        except ValueError:
            raise CompileError(f"{path}: not valid JSON") from None
        except RecursionError:
            raise CompileError(f"{path}: not a program JSON (nested too deeply)") from None
        if not isinstance(d, dict):
            raise CompileError(f"{path}: expected a program JSON object (written by "
                               f"'sparsa compile'), got {type(d).__name__}")
        return cls.from_json(d, str(path))


def _deferred(name: str, doc: str) -> property:
    key = "_" + name

    def get(self: Program) -> Any:
        d = self.__dict__
        if key not in d:
            self._build()
        return d[key]

    def put(self: Program, value: Any) -> None:
        if "_scheduled" in self.__dict__:   # the other list is built first
            self._build()
        self.__dict__[key] = value
    return property(get, put, doc=doc)


Program.instructions = _deferred(    # type: ignore[assignment]
    "instructions", "The :class:`~sparsa.hw.isa.Instr` objects in issue order.")
Program.notes = _deferred(           # type: ignore[assignment]
    "notes", "One :class:`InstrNote` per instruction.")


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "dict[str, Any]": dict,
                                                     "tuple[int, ...]": tuple}


#: Largest element count a host layer's ``meta.elements`` may hold: the simulator and the
#: sweep results keep counts in 64-bit integers, with room for sums.
_MAX_COUNT = 2**62 - 1


def _count_ok(v: Any) -> bool:
    """``v`` is an integer (not a bool) in ``0.._MAX_COUNT``."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_COUNT


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what}={v!r} is not an integer")
    return v


def _checked(obj: Any, what: str) -> Any:
    """``obj`` (a TensorInfo or LayerInfo read from a header) with every field of its
    declared type; TypeError naming ``what.field`` otherwise."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        want = _FIELD_TYPES.get(str(f.type))
        if want is int:
            _int(v, f"{what}.{f.name}")
        elif want is not None and not isinstance(v, want):
            raise TypeError(f"{what}.{f.name}={v!r} is not a {str(f.type).split('[')[0]}")
        if want is tuple:
            for x in v:
                _int(x, f"{what}.{f.name}")
    return obj


#: ``LayerInfo.kind`` values (see :class:`LayerInfo`).
LAYER_KINDS = ("gemm", "fwd", "bwd_data", "wgrad", "host")


def _sp_error(what: str, start: int, count: int, size: int) -> str | None:
    if start + count > size:
        return (f"{what} entries {start}..{start + count - 1} are beyond the scratchpad "
                f"(entries 0..{size - 1})")
    return None


def _dram_error(what: str, addr: int, stride: int, count: int, entry_beats: int,
                dram_beats: int) -> str | None:
    last = addr + (count - 1) * stride + entry_beats
    if count and last > dram_beats:
        return (f"{what} DRAM beats {addr}..{last - 1} are beyond the DRAM image "
                f"(beats 0..{dram_beats - 1})")
    return None


def _range_error(cfg: AccelConfig, ins: Instr, dram_beats: int) -> str | None:
    """Why ``ins`` reaches outside the scratchpads of ``cfg`` or a DRAM image of
    ``dram_beats`` beats (the ranges the reference executor checks as it runs and the
    hardware's address widths assume), or ``None``. ``load_fields_error`` passed."""
    t = type(ins)
    if t is Load:
        wgt = ins.target == Target.WGT
        size, what = (cfg.wgt_entries, "LOAD WGT") if wgt else (cfg.act_entries, "LOAD ACT")
        return (_sp_error(what, ins.sp_addr, load_sp_entries(ins), size)
                or _dram_error(what, ins.dram_addr, ins.dram_stride, ins.count,
                               instr_entry_beats(cfg, ins), dram_beats))
    if t is Preload:
        return _sp_error("PRELOAD WGT", ins.wsp_addr, cfg.rows, cfg.wgt_entries)
    if t is Compute:
        return (_sp_error("COMPUTE ACT", ins.asp_addr, ins.count, cfg.act_entries)
                or _sp_error("COMPUTE ACC", ins.acc_addr, ins.count, cfg.acc_entries))
    if t is Store:
        return (_sp_error("STORE ACC", ins.acc_addr, ins.count, cfg.acc_entries)
                or _dram_error("STORE", ins.dram_addr, ins.dram_stride, ins.count,
                               store_entry_beats(cfg, ins.requant), dram_beats))
    return None


def _gemm_meta_error(cfg: AccelConfig, ly: LayerInfo) -> str | None:
    """Why the GEMM shape in a layer's ``meta`` (``P``, ``K``, ``Q``, ``groups``, read by
    the os/is dataflow models) or its window widths are not valid, or ``None``."""
    m = ly.meta
    for k in ("P", "K", "Q", "groups"):
        v = m.get(k, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            return f"meta.{k}={v!r}; allowed an integer >= 1"
    if all(k in m for k in ("P", "K", "Q")):
        macs = m["P"] * m["K"] * m["Q"] * m.get("groups", 1)
        if macs != ly.dense_macs:
            return (f"meta P*K*Q*groups = {macs} but dense_macs={ly.dense_macs}; they are "
                    f"the same GEMM")
    ps = m.get("passes", 1)
    if isinstance(ps, bool) or not isinstance(ps, int) or ps < 1:
        return f"meta.passes={ps!r}; allowed an integer >= 1"
    pk = m.get("pack", 1)
    if isinstance(pk, bool) or not isinstance(pk, int) or pk < 1 or \
            m.get("groups", 1) % pk:
        return f"meta.pack={pk!r}; allowed an integer >= 1 dividing groups"
    if pk > 1:
        kp = m.get("pack_k")
        if isinstance(kp, bool) or not isinstance(kp, int) or kp < pk * m.get("K", 1):
            return f"meta.pack_k={kp!r}; allowed an integer >= pack * K"
    win = m.get("window", [])
    if not isinstance(win, list) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w in cfg.windows for w in win):
        return f"meta.window={win!r}; allowed a list of window widths {list(cfg.windows)}"
    return None

