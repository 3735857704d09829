"""On-chip scratchpads: activation, weight and accumulator memories (``amaranth.lib.memory``).

Each :class:`Scratchpad` is one memory of ``depth`` entries with synchronous read ports
(data one cycle after the address; a port with ``en`` low keeps its last data) and one write
port. Sizes come from :class:`~sparsa.hw.config.AccelConfig`: :func:`act_scratchpad`,
:func:`wgt_scratchpad` and :func:`acc_scratchpad` build the core's three. Contents are not
reset (programs write before they read); simulation starts them at zero.
"""

from __future__ import annotations

from amaranth.hdl import Module, ShapeLike, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from .array import act_layout, psum_row_layout
from .config import AccelConfig

__all__ = ["Scratchpad", "act_scratchpad", "wgt_scratchpad", "acc_scratchpad"]


class Scratchpad(wiring.Component):
    """A single-write, multi-read memory.

    Parameters
    ----------
    shape : ShapeLike
        Shape (or ``amaranth.lib.data`` layout) of one entry.
    depth : int
        Number of entries (>= 2).
    read_ports : int
        Number of synchronous read ports (>= 1).
    transparent : tuple of int
        Read ports that are transparent for the write port: reading an entry in the cycle
        it is written returns the new data.

    Attributes
    ----------
    read : list of Out(ReadPort.Signature(addr_width, shape))
        Read ports ``read[i]`` (``addr``, ``en`` in; ``data`` out one cycle later).
    write : Out(WritePort.Signature(addr_width, shape))
        The write port (``addr``, ``data``, ``en`` in; written at the clock edge).
    """

    def __init__(self, *, shape: ShapeLike, depth: int, read_ports: int = 1,
                 transparent: tuple[int, ...] = ()) -> None:
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2, not {depth!r}")
        if not isinstance(read_ports, int) or read_ports < 1:
            raise ValueError(f"read_ports must be an integer >= 1, not {read_ports!r}")
        self._shape = shape
        self._depth = depth
        self._addr_width = ceil_log2(depth)
        members = {f"read{i}": Out(ReadPort.Signature(addr_width=self._addr_width, shape=shape))
                   for i in range(read_ports)}
        members["write"] = Out(WritePort.Signature(addr_width=self._addr_width, shape=shape))
        self._read_ports = read_ports
        self._transparent = tuple(transparent)
        super().__init__(members)

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def read(self) -> list:
        return [getattr(self, f"read{i}") for i in range(self._read_ports)]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.mem = mem = Memory(shape=self._shape, depth=self._depth, init=[])
        wp = mem.write_port()
        for i, port in enumerate(self.read):
            rp = mem.read_port(transparent_for=(wp,) if i in self._transparent else ())
            m.d.comb += [rp.addr.eq(port.addr), rp.en.eq(port.en), port.data.eq(rp.data)]
        m.d.comb += [wp.addr.eq(self.write.addr), wp.en.eq(self.write.en),
                     wp.data.eq(self.write.data)]
        return m


def act_scratchpad(cfg: AccelConfig) -> Scratchpad:
    """Activation entries (``act_layout``), one read port (COMPUTE)."""
    return Scratchpad(shape=act_layout(cfg), depth=cfg.act_entries, read_ports=1)


def wgt_scratchpad(cfg: AccelConfig) -> Scratchpad:
    """Weight entries (``wgt_entry_bytes`` raw bytes), one read port (PRELOAD)."""
    return Scratchpad(shape=unsigned(8 * cfg.wgt_entry_bytes), depth=cfg.wgt_entries,
                      read_ports=1)


def acc_scratchpad(cfg: AccelConfig) -> Scratchpad:
    """Accumulator rows (``psum_row_layout``), two read ports (COMPUTE accumulate, transparent
    so that back-to-back COMPUTEs accumulate into the same row; STORE)."""
    return Scratchpad(shape=psum_row_layout(cfg), depth=cfg.acc_entries, read_ports=2,
                      transparent=(0,))
