"""Compiler options: one frozen dataclass, so every choice can be switched and measured."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import CompileError

__all__ = ["CompileOptions", "DATAFLOWS", "SPARSE_MODES"]

DATAFLOWS = ("weight-reuse", "act-reuse")
SPARSE_MODES = ("auto", "sparse", "dense")


@dataclass(frozen=True)
class CompileOptions:
    """Switchable compiler choices.

    Parameters
    ----------
    dataflow : {"weight-reuse", "act-reuse"}
        Loop order. ``weight-reuse``: for each chunk of ``P`` rows, for each column block,
        for each ``K`` tile — every weight tile is loaded once per chunk, the chunk's
        activations stay on chip for all column blocks when they fit (else they are reloaded
        per tile), outputs of one column block are stored while the next computes.
        ``act-reuse``: for each chunk, for each ``K`` tile, for each column block — every
        activation tile is loaded once and used by all column blocks (the chunk's partial
        sums of all column blocks stay in the accumulator), weights are reloaded per chunk.
    sparse_mode : {"auto", "sparse", "dense"}
        ``auto``: sparse mode when the pattern fits the array's ``n:m``, else dense;
        ``dense``: always dense mode (the dense baseline on the same core); ``sparse``:
        like ``auto`` but a pattern that does not fit is an error.
    double_buffer : bool
        Overlap loads and preloads with compute (two scratchpad halves, shadow weights).
        Off: every step waits for the previous one to drain.
    interleave : bool
        Keep the pipeline running across GEMM boundaries (the next GEMM's first loads and
        preloads overlap the current GEMM's last compute). Off: a FENCE between GEMMs.
    reuse_schedule : bool
        Keep an activation block on chip when consecutive GEMMs read the same block (e.g.
        attention's Q/K/V projections, or the GEMMs of one layer in training), and order
        GEMMs that share an input next to each other.
    pregenerate_bwd : bool
        Training: store the backward-data weights (``W^T`` with its own mask, Bi-Mask
        permutation folded into the addressing of its input) compressed in the DRAM image
        ahead of time. Off: the array gets no compressed ``W^T`` and runs the backward-data
        GEMM in dense mode (the host transposes and masks ``W`` every step, a host layer).
    fuse_relu : bool
        Apply a following ReLU in the STORE of the GEMM before it.
    """

    dataflow: str = "weight-reuse"
    sparse_mode: str = "auto"
    double_buffer: bool = True
    interleave: bool = True
    reuse_schedule: bool = True
    pregenerate_bwd: bool = True
    fuse_relu: bool = True

    def __post_init__(self) -> None:
        if self.dataflow not in DATAFLOWS:
            raise CompileError(f"dataflow={self.dataflow!r} is invalid; allowed: "
                               f"{', '.join(DATAFLOWS)}")
        if self.sparse_mode not in SPARSE_MODES:
            raise CompileError(f"sparse_mode={self.sparse_mode!r} is invalid; allowed: "
                               f"{', '.join(SPARSE_MODES)}")
        for f in ("double_buffer", "interleave", "reuse_schedule", "pregenerate_bwd",
                  "fuse_relu"):
            if not isinstance(getattr(self, f), bool):
                raise CompileError(f"{f}={getattr(self, f)!r} must be true or false")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
