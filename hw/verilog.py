"""Verilog generation for the sparse systolic core, its manifest, and Verilator lint.

:func:`generate` converts :class:`sparsa.hw.core.SparsaCore` (or any component a factory
builds from an :class:`~sparsa.hw.config.AccelConfig`) to ``<top>.v`` with
:func:`amaranth.back.verilog.convert` and writes ``manifest.json`` next to it::

    {"top": "sparsa_core", "files": ["sparsa_core.v"],
     "ports": [{"name": "clk", "width": 1, "direction": "input"}, ...],
     "parameters": {<every AccelConfig field>, <derived sizes>},
     "isa_version": 4, "sparsa_version": "0.1.0", "amaranth_version": "0.5.x",
     "sha256": {"sparsa_core.v": "<hex>"}}

Ports are read back from the generated Verilog (so the manifest describes the file, not the
intent) and checked against the component's signature. Both files are written atomically
(temp file, then rename), the manifest last, so a directory with a manifest always has a
complete Verilog file that matches its hash.

:func:`lint` runs ``verilator --lint-only -Wall`` on a generated directory with only the
waivers in :data:`LINT_WAIVERS`, each of which names an idiom of Amaranth's Verilog back end
(not a design problem), and returns the remaining warnings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

from amaranth.back import verilog as _amaranth_verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from sparsa.fileio import write_files

from .config import AccelConfig
from .isa import INSTR_BITS, ISA_VERSION

__all__ = ["LINT_WAIVERS", "TOP", "derived_parameters", "generate", "lint", "verilog_ports"]

#: Module name of the generated core.
TOP = "sparsa_core"

#: Verilator warnings waived by :func:`lint`; everything else ``-Wall`` reports is a finding.
#: Each entry is (flag, why Amaranth's output triggers it although the design is fine).
_WAIVERS_WHY: tuple[tuple[str, str], ...] = (
    ("-Wno-WIDTHEXPAND",
     "Amaranth sizes arithmetic results exactly (a+b is one bit wider) and lets Verilog's "
     "context rules zero/sign-extend operands implicitly"),
    ("-Wno-WIDTHTRUNC",
     "the matching truncation: a wider expression assigned to a narrower signal keeps the "
     "low bits, which is Amaranth's `.eq()` semantics"),
    ("-Wno-UNUSEDSIGNAL",
     "Amaranth emits one wire per struct field / array element view (e.g. `w_in.index`) and "
     "keeps the carry bit of sized adders, also when only some of them are read"),
    ("-Wno-CASEINCOMPLETE",
     "Amaranth assigns a combinational signal its default before a `case` without "
     "`default:`, so values the case does not list keep that default"),
    ("-Wno-DECLFILENAME",
     "Amaranth writes the whole hierarchy into one file, submodules as `<top>.<name>`"),
    ("-Wno-PROCASSINIT",
     "Amaranth gives every register its reset value as a declaration initialiser "
     "(`reg x = 0;`) and also assigns it in the clocked process"),
)

#: The waiver flags passed to Verilator (see the table in this module's source for reasons).
LINT_WAIVERS: tuple[str, ...] = tuple(flag for flag, _ in _WAIVERS_WHY)

Factory = Callable[[AccelConfig], wiring.Component]


def _core_factory(config: AccelConfig) -> wiring.Component:
    from .core import SparsaCore
    return SparsaCore(config=config)


def derived_parameters(config: AccelConfig) -> dict[str, Any]:
    """Sizes derived from ``config`` that a Verilog user needs (widths, entries, bytes)."""
    names = ("groups", "idx_bits", "k_per_pass", "beat_bytes", "act_entry_bytes",
             "wgt_idx_bytes", "wgt_entry_bytes", "acc_entry_bytes", "act_entries",
             "wgt_entries", "acc_entries", "peak_macs_per_cycle")
    d: dict[str, Any] = {n: getattr(config, n) for n in names}
    d["instr_bits"] = INSTR_BITS
    d["key"] = config.key
    return d


_MODULE_RE = re.compile(r"^module\s+(\\?\S+?)\s*\(", re.M)
_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                      r"(?:\[(\d+):(\d+)\]\s*)?(\\\S+|[A-Za-z_][\w$]*)\s*;", re.M)


def verilog_ports(text: str, top: str) -> list[dict[str, Any]]:
    """Ports of module ``top`` in Verilog ``text`` as ``{"name", "width", "direction"}``.

    Reads the port declarations of Amaranth/Yosys-style Verilog (one ``input [h:l] name;``
    per port), in declaration order.
    """
    starts = [(m.group(1).lstrip("\\"), m.start()) for m in _MODULE_RE.finditer(text)]
    for i, (name, start) in enumerate(starts):
        if name == top:
            end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
            body = text[start:end]
            break
    else:
        raise ValueError(f"module {top!r} not found in the generated Verilog")
    ports = []
    for m in _PORT_RE.finditer(body):
        hi, lo = m.group(2), m.group(3)
        width = abs(int(hi) - int(lo)) + 1 if hi is not None else 1
        ports.append({"name": m.group(4).lstrip("\\"), "width": width,
                      "direction": m.group(1)})
    return ports


def _signature_ports(component: wiring.Component) -> dict[str, tuple[int, str]]:
    out = {}
    for path, member, _value in component.signature.flatten(component):
        width = Shape.cast(member.shape).width
        out["__".join(map(str, path))] = (width, "input" if member.flow == wiring.In
                                          else "output")
    return out


def _order(ports: list[dict[str, Any]], sig: dict[str, tuple[int, str]]) -> list[dict]:
    rank = {"clk": -2, "rst": -1} | {name: i for i, name in enumerate(sig)}
    return sorted(ports, key=lambda p: (rank.get(p["name"], len(rank)), p["name"]))


def generate(config: AccelConfig, out_dir: str | os.PathLike[str], *,
             factory: Factory | None = None, top: str = TOP,
             emit_src: bool = False) -> dict[str, Any]:
    """Write ``<top>.v`` and ``manifest.json`` for ``config`` into ``out_dir``.

    Parameters
    ----------
    config : AccelConfig
        The core's parameters (recorded in full in the manifest).
    out_dir : path-like
        Output folder; created if missing. Existing files of the same names are replaced.
    factory : callable, optional
        ``factory(config) -> wiring.Component`` to convert instead of
        :class:`sparsa.hw.core.SparsaCore` (e.g. a single PE for experiments).
    top : str
        Verilog module name of the top level (default ``"sparsa_core"``).
    emit_src : bool
        Keep Amaranth's ``(* src = "file:line" *)`` attributes. Off by default so that the
        Verilog (and its hash) is identical on every checkout.

    Returns
    -------
    dict
        The manifest that was written (see the module docstring).

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`AccelConfig`.
    RuntimeError
        If the generated Verilog's ports disagree with the component's signature.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config).__name__}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
        raise ValueError(f"top must be a plain Verilog identifier, not {top!r}")
    component = (factory or _core_factory)(config)
    text = _amaranth_verilog.convert(component, name=top, emit_src=emit_src)
    sig = _signature_ports(component)
    ports = _order(verilog_ports(text, top), sig)
    found = {p["name"]: (p["width"], p["direction"]) for p in ports}
    for name, (width, direction) in sig.items():
        if width and found.get(name) != (width, direction):
            raise RuntimeError(f"port {name}: signature says {direction} [{width}], the "
                               f"generated Verilog has {found.get(name)}")
    out = Path(out_dir)
    vfile = f"{top}.v"
    vbytes = text.encode()
    manifest: dict[str, Any] = {
        "top": top,
        "files": [vfile],
        "ports": ports,
        "parameters": {**config.to_dict(), **derived_parameters(config)},
        "isa_version": ISA_VERSION,
        "sparsa_version": _dist_version("sparsa"),
        "amaranth_version": _dist_version("amaranth"),
        "sha256": {vfile: hashlib.sha256(vbytes).hexdigest()},
    }
    write_files(out, {vfile: vbytes,
                      "manifest.json": (json.dumps(manifest, indent=1) + "\n").encode()})
    return manifest


_DIAG_RE = re.compile(r"^%(Warning|Error)(-[A-Z0-9_]+)?:")


def lint(out_dir: str | os.PathLike[str], *,
         waivers: tuple[str, ...] = LINT_WAIVERS, timeout_s: float = 600) -> list[str]:
    """Run ``verilator --lint-only -Wall`` (plus ``waivers``) on a generated directory.

    Parameters
    ----------
    out_dir : path-like
        A folder written by :func:`generate` (its ``manifest.json`` names the top).
    waivers : tuple of str
        Verilator ``-Wno-...`` flags; default :data:`LINT_WAIVERS`.
    timeout_s : float
        Give up after this many seconds.

    Returns
    -------
    list of str
        One line per Verilator warning or error (``%Warning-WIDTHEXPAND: file:line: ...``);
        empty when the Verilog is lint-clean.
    """
    from .verilator_env import setup

    out = Path(out_dir)
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{out}: no readable manifest.json ({e})") from None
    top = manifest["top"]
    exe = setup()
    cmd = [str(exe), "--lint-only", "-Wall", *waivers, "--top-module", top,
           *manifest.get("files", [f"{top}.v"])]
    r = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=timeout_s)
    lines = (r.stdout + r.stderr).splitlines()
    found = [ln.strip() for ln in lines if _DIAG_RE.match(ln.strip())
             and not ln.startswith("%Error: Exiting due to")]
    if r.returncode != 0 and not found:
        found = [f"%Error: verilator exited with {r.returncode}: " + " ".join(lines[-3:])]
    return found
