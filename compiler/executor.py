"""The numpy reference interpreter of the tile ISA (the golden model).

:func:`execute` runs instructions **sequentially**, exactly as the ISA docstring in
:mod:`sparsa.hw.isa` specifies (``wait`` masks only matter for timing; a correctly compiled
program gives the same result on the concurrent hardware). Arithmetic is int32 wrapping,
computed in int64 and wrapped; STORE requantisation rounds half up, shifts arithmetically and
saturates. Addresses out of range raise :class:`~sparsa.compiler.errors.CompileError`.

Array state: PRELOAD fills the *shadow* (value, index) registers; ``COMPUTE swap=1``
exchanges shadow and active registers before streaming (the hardware toggles its two banks).
All scratchpads and registers start at zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sparsa.hw import layout
from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Compute, Fence, Instr, Load, Preload, Store, Target, load_fields_error
from sparsa.hw.timing import instr_entry_beats, store_entry_beats

from . import loadsparse
from .errors import CompileError
from .program import Program

__all__ = ["ExecResult", "ExecStats", "Executor", "execute", "run_program"]


def _wrap32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.int64).astype(np.uint32).view(np.int32)


@dataclass
class ExecStats:
    """Counters of one run: instructions per kind, MACs issued, DRAM bytes per kind."""

    instrs: Counter = field(default_factory=Counter)
    macs_issued: int = 0          # rows * cols per streamed activation row
    dram_read_bytes: Counter = field(default_factory=Counter)    # per kind (incl. padding)
    dram_write_bytes: Counter = field(default_factory=Counter)
    sp_entries: Counter = field(default_factory=Counter)  # scratchpad entries written, per sp


@dataclass
class ExecResult:
    """Final state after :func:`execute`."""

    dram: np.ndarray              # uint8, same length as the input image
    act: np.ndarray               # uint8[act_entries, act_entry_bytes]
    wgt: np.ndarray               # uint8[wgt_entries, wgt_entry_bytes]
    acc: np.ndarray               # int32[acc_entries, cols]
    stats: ExecStats
    #: DRAM write beats in issue order: beat addresses ``int64[n]`` and data
    #: ``uint8[n, beat_bytes]`` (what the core's write stream must carry, in this order).
    write_addrs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    write_data: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))


class Executor:
    """Stateful interpreter; :func:`execute` is the one-call form.

    Parameters
    ----------
    cfg : AccelConfig
        The core the program was compiled for.
    dram : numpy.ndarray
        Initial DRAM image (``uint8``, length a multiple of ``cfg.beat_bytes``); copied.
    """

    def __init__(self, cfg: AccelConfig, dram: np.ndarray) -> None:
        dram = np.asarray(dram)
        if dram.dtype != np.uint8 or dram.ndim != 1:
            raise CompileError(f"DRAM image must be a 1-D uint8 array, got {dram.dtype} "
                               f"{dram.shape}")
        if dram.size % cfg.beat_bytes:
            raise CompileError(f"DRAM image of {dram.size} bytes is not a whole number of "
                               f"{cfg.beat_bytes}-byte beats")
        self.cfg = cfg
        self.dram = dram.copy()
        self.act = np.zeros((cfg.act_entries, cfg.act_entry_bytes), np.uint8)
        self.wgt = np.zeros((cfg.wgt_entries, cfg.wgt_entry_bytes), np.uint8)
        self.acc = np.zeros((cfg.acc_entries, cfg.cols), np.int32)
        self.shadow = (np.zeros((cfg.rows, cfg.cols), np.int8),
                       np.zeros((cfg.rows, cfg.cols), np.uint8))
        self.active = (np.zeros((cfg.rows, cfg.cols), np.int8),
                       np.zeros((cfg.rows, cfg.cols), np.uint8))
        self.stats = ExecStats()
        self._pc = 0
        self._waddr: list[np.ndarray] = []
        self._wdata: list[np.ndarray] = []

    # ---- checks ----------------------------------------------------------------------
    def _err(self, instr: Instr, msg: str) -> CompileError:
        return CompileError(f"instruction {self._pc} ({type(instr).__name__}): {msg}")

    def _check_sp(self, instr: Instr, what: str, start: int, count: int, size: int) -> None:
        if start + count > size:
            raise self._err(instr, f"{what} entries {start}..{start + count - 1} out of range "
                                   f"(scratchpad holds {size} entries)")

    def _beat_rows(self, instr: Instr, addr: int, stride: int, count: int,
                   entry_beats: int) -> np.ndarray:
        """Byte offsets ``[count, entry_beats*beat_bytes]`` of the entries; range-checked."""
        bb = self.cfg.beat_bytes
        nbeats = self.dram.size // bb
        last = addr + (count - 1) * stride + entry_beats
        if count and last > nbeats:
            raise self._err(instr, f"DRAM beats up to {last - 1} out of range "
                                   f"(image has {nbeats} beats)")
        starts = (addr + np.arange(count, dtype=np.int64) * stride) * bb
        return starts[:, None] + np.arange(entry_beats * bb, dtype=np.int64)

    # ---- instructions ----------------------------------------------------------------
    def step(self, instr: Instr) -> None:
        """Execute one instruction."""
        cfg, st = self.cfg, self.stats
        st.instrs[type(instr).__name__] += 1
        if isinstance(instr, Load):
            wgt = instr.target == Target.WGT
            if not wgt:
                self._act_window(instr)
            eb = instr_entry_beats(cfg, instr)
            sp = self.wgt if wgt else self.act
            if not (wgt and instr.expand):
                self._check_sp(instr, "WGT" if wgt else "ACT", instr.sp_addr, instr.count,
                               sp.shape[0])
            offs = self._beat_rows(instr, instr.dram_addr, instr.dram_stride, instr.count, eb)
            raw = self.dram[offs]
            if wgt and instr.expand:
                self._load_sparse(instr, raw)
            elif wgt:
                data = raw[:, :cfg.wgt_entry_bytes]
            elif instr.expand:
                win = self._act_window(instr)
                data = layout.expand_dense(cfg, raw[:, :cfg.act_row_bytes(win)], win)
            else:
                data = raw[:, :cfg.act_entry_bytes]
            if not (wgt and instr.expand):
                sp[instr.sp_addr:instr.sp_addr + instr.count] = data
                st.sp_entries["wgt" if wgt else "act"] += instr.count
            st.dram_read_bytes["Load"] += raw.size
        elif isinstance(instr, Preload):
            self._check_sp(instr, "WGT", instr.wsp_addr, cfg.rows, self.wgt.shape[0])
            ent = self.wgt[instr.wsp_addr:instr.wsp_addr + cfg.rows]
            v, i = layout.unpack_wgt_entries(cfg, ent)
            if i.max(initial=0) >= cfg.m:
                raise self._err(instr, f"weight index {int(i.max())} >= m={cfg.m}")
            self.shadow = (v.copy(), i.copy())
        elif isinstance(instr, Compute):
            self._check_sp(instr, "ACT", instr.asp_addr, instr.count, self.act.shape[0])
            self._check_sp(instr, "ACC", instr.acc_addr, instr.count, self.acc.shape[0])
            if instr.swap:
                self.active, self.shadow = self.shadow, self.active
            x = self.act[instr.asp_addr:instr.asp_addr + instr.count].view(np.int8)
            weff = layout.effective_weights(cfg, *self.active)
            y = x.astype(np.int64) @ weff
            sl = slice(instr.acc_addr, instr.acc_addr + instr.count)
            if instr.accumulate:
                y = y + self.acc[sl].astype(np.int64)
            self.acc[sl] = _wrap32(y)
            st.macs_issued += instr.count * cfg.rows * cfg.cols
            st.sp_entries["acc"] += instr.count
        elif isinstance(instr, Store):
            self._check_sp(instr, "ACC", instr.acc_addr, instr.count, self.acc.shape[0])
            eb = store_entry_beats(cfg, instr.requant)
            offs = self._beat_rows(instr, instr.dram_addr, instr.dram_stride, instr.count, eb)
            rows = layout.encode_store_rows(cfg, self.acc[instr.acc_addr:instr.acc_addr +
                                                          instr.count],
                                            relu=instr.relu, requant=instr.requant,
                                            shift=instr.shift)
            beats = layout.to_beats(cfg, rows)
            self.dram[offs] = beats
            self._waddr.append((instr.dram_addr + np.arange(instr.count, dtype=np.int64)[:, None]
                                * instr.dram_stride + np.arange(eb)).reshape(-1))
            self._wdata.append(beats.reshape(-1, cfg.beat_bytes))
            st.dram_write_bytes["Store"] += offs.size
        elif isinstance(instr, Fence):
            pass
        else:
            raise self._err(instr, "not an executable instruction")
        self._pc += 1

    def _act_window(self, instr: Load) -> int:
        """Window width of an activation LOAD: ``cmp_m`` (0 means ``n``), only with
        ``expand=1`` and only one of the config's ``windows``; ``cmp_n`` is 0."""
        err = load_fields_error(self.cfg, instr)
        if err:
            raise self._err(instr, err)
        return instr.cmp_m or self.cfg.n

    def _load_sparse(self, instr: Load, raw: np.ndarray) -> None:
        """``LOAD WGT expand=1``: expand compressed entries into dense-mode entries."""
        cfg = self.cfg
        cn, cm = instr.cmp_n, instr.cmp_m
        err = load_fields_error(cfg, instr)
        if err:
            raise self._err(instr, f"load-as-sparse: {err}")
        v, i = layout.unpack_wgt_entries(cfg, raw[:, :cfg.wgt_entry_bytes])
        if i.max(initial=0) >= cm:
            raise self._err(instr, f"compressed index {int(i.max())} >= cmp_m={cm}")
        dense = loadsparse.expand_entries(cfg, v, i, cn, cm)
        nout = dense.shape[0]
        self._check_sp(instr, "WGT", instr.sp_addr, nout, self.wgt.shape[0])
        idx = np.repeat(((instr.sp_addr + np.arange(nout)) % cfg.n)[:, None], cfg.cols, axis=1)
        self.wgt[instr.sp_addr:instr.sp_addr + nout] = layout.pack_wgt_entries(cfg, dense, idx)
        self.stats.sp_entries["wgt"] += nout

    def run(self, instructions: Sequence[Instr]) -> ExecResult:
        for instr in instructions:
            self.step(instr)
        return self.result()

    def result(self) -> ExecResult:
        bb = self.cfg.beat_bytes
        waddr = np.concatenate(self._waddr) if self._waddr else np.zeros(0, np.int64)
        wdata = np.concatenate(self._wdata) if self._wdata else np.zeros((0, bb), np.uint8)
        return ExecResult(self.dram.copy(), self.act.copy(), self.wgt.copy(), self.acc.copy(),
                          self.stats, waddr, wdata)


def execute(cfg: AccelConfig, instructions: Sequence[Instr], dram: np.ndarray) -> ExecResult:
    """Run ``instructions`` sequentially on a copy of ``dram``; return the final state.

    Raises
    ------
    CompileError
        An address out of range (scratchpad entry or DRAM beat), or a malformed image.
    """
    return Executor(cfg, dram).run(instructions)


def run_program(program: Program) -> np.ndarray:
    """The final DRAM image after running ``program`` on the reference executor."""
    return execute(program.config, program.instructions, program.dram).dram
