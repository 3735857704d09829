"""Compiler options: one frozen dataclass, so every choice can be switched and measured."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Any

from .errors import CompileError

__all__ = ["CompileOptions", "DATAFLOWS", "SPARSE_MODES"]

DATAFLOWS = ("weight-reuse", "act-reuse", "auto")
SPARSE_MODES = ("auto", "sparse", "dense", "load-sparse")


@dataclass(frozen=True)
class CompileOptions:
    """Switchable compiler choices.

    Parameters
    ----------
    dataflow : {"weight-reuse", "act-reuse", "auto"}
        Loop order. ``weight-reuse``: for each chunk of ``P`` rows, for each block of
        ``qb`` column blocks (their partial sums in the accumulator), for each block of
        ``kc`` ``K`` tiles (their activations on chip), every weight tile of those columns
        and ``K`` tiles — every weight tile is loaded once per chunk; when one block holds
        all ``K`` tiles the chunk's activations stay for every column block, else they are
        reloaded once per block of columns. Block sizes from a cost estimate, close
        candidates timed (:func:`sparsa.compiler.tiling.choose_tiling`).
        ``act-reuse``: the same with one ``K`` tile per activation block and every column
        block in one accumulator block — every activation tile is loaded once and used by
        all column blocks.
        ``auto``: per GEMM, the order whose schedule of that GEMM alone takes fewer cycles
        (timed with the core's static issue schedule, :func:`sparsa.hw.schedule.schedule`;
        both are noted in the dump); where that picks act-reuse anywhere, the whole
        program is timed with those choices and with weight-reuse and the faster kept, so
        ``auto`` is never slower than ``weight-reuse``.
    sparse_mode : {"auto", "sparse", "dense", "load-sparse"}
        ``auto``: sparse mode when the pattern fits the array's ``n:m`` and ``K > rows``
        (with ``K <= rows`` one tile holds ``K`` in either mode and sparse mode would only
        stream more activation bytes), else dense;
        ``dense``: always dense mode (the dense baseline on the same core); ``sparse``:
        like ``auto`` but a pattern that does not fit is an error; ``load-sparse``: weights
        stay compressed in DRAM and are expanded on chip, the array computes densely
        (:mod:`sparsa.compiler.loadsparse`; dense when no window compresses). The cost-based
        per-layer choice is :func:`sparsa.sim.modes.choose_modes`, which fills
        ``layer_modes``.
    layer_modes : tuple of (pattern, mode)
        Per-layer overrides of ``sparse_mode``: the first ``fnmatch`` pattern matching a
        GEMM's source layer name (or its own name) gives its mode (one of the modes above).
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
        Training: the backward-data weights (``W^T`` with its own mask, Bi-Mask
        permutation folded into the addressing of its input) are generated compressed ahead
        of time, with the weight update. Off: they are pruned on the fly, every step, before
        the backward-data GEMM (a host layer reading, transposing and pruning ``W``: ``K*Q``
        elements); the GEMM itself is unchanged.
    fuse_relu : bool
        Apply a following ReLU in the STORE of the GEMM before it.
    fold_bn : bool
        Inference: fold a batch norm that follows a GEMM (its only consumer) into that
        GEMM's weights and requantisation, as deployment flows do; the norm costs no host
        work and a ReLU after it fuses into the GEMM's STORE. Training keeps its norms
        (batch statistics).
    implicit_im2col : bool
        Convolutions read their GEMM rows from the zero-padded input image with strided
        LOADs (:mod:`sparsa.compiler.imgload`) where the tiling allows, so the host writes
        the image instead of its im2col. Off: the host writes every convolution's im2col.
    store_image : bool
        Inference, with ``implicit_im2col``: a convolution read in place whose input is the
        output of the GEMM before it (its only reader) gets that output stored straight
        into its zero-padded image by the GEMM's STOREs (one per output-image row of a
        chunk), so the host does not pad it. Off (the default): the host writes the padded
        image. On, the host writes a fifth less on ResNet-50 and three quarters less on
        VGG-16, for 0.01-0.5% more core cycles (a STORE per image row, and a consumer
        that starts when the rows it reads are stored).
    pack_groups : bool
        Put several groups of a grouped (depthwise) convolution side by side in one GEMM
        with a block-diagonal weight (:mod:`sparsa.compiler.grouppack`). Off: one GEMM per
        group.
    weight_batch : int
        Most weight tiles per group: consecutive steps of a GEMM whose tiles are adjacent
        in DRAM (weight-reuse order) are cut into near-equal groups of at most this many
        tiles; a group is fetched into a group slot (one LOAD, or pieces of about a step's
        COMPUTE where DRAM keeps up) while the group before is preloaded tile by tile.
        Capped by the weight scratchpad (two group slots). 1: one LOAD per tile.
    """

    dataflow: str = "weight-reuse"
    sparse_mode: str = "auto"
    double_buffer: bool = True
    interleave: bool = True
    reuse_schedule: bool = True
    pregenerate_bwd: bool = True
    fuse_relu: bool = True
    fold_bn: bool = True
    implicit_im2col: bool = True
    store_image: bool = False
    pack_groups: bool = True
    weight_batch: int = 8
    layer_modes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.dataflow not in DATAFLOWS:
            raise CompileError(f"dataflow={self.dataflow!r} is invalid; allowed: "
                               f"{', '.join(DATAFLOWS)}")
        if self.sparse_mode not in SPARSE_MODES:
            raise CompileError(f"sparse_mode={self.sparse_mode!r} is invalid; allowed: "
                               f"{', '.join(SPARSE_MODES)}")
        try:
            lm = tuple((str(p), str(m)) for p, m in self.layer_modes)
        except (TypeError, ValueError):
            raise CompileError("layer_modes must be a sequence of (pattern, mode) pairs") \
                from None
        for p, m in lm:
            if m not in SPARSE_MODES:
                raise CompileError(f"layer_modes: {p}={m!r} is invalid; allowed: "
                                   f"{', '.join(SPARSE_MODES)}")
        object.__setattr__(self, "layer_modes", lm)
        if isinstance(self.weight_batch, bool) or not isinstance(self.weight_batch, int) \
                or not 1 <= self.weight_batch <= 256:
            raise CompileError(f"weight_batch={self.weight_batch!r} is invalid; allowed: an "
                               f"integer in 1..256")
        for f in ("double_buffer", "interleave", "reuse_schedule", "pregenerate_bwd",
                  "fuse_relu", "fold_bn", "implicit_im2col", "store_image",
                  "pack_groups"):
            if not isinstance(getattr(self, f), bool):
                raise CompileError(f"{f}={getattr(self, f)!r} must be true or false")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_modes"] = [list(x) for x in self.layer_modes]
        return d

    def mode_for(self, *names: str) -> str:
        """The sparse mode of a GEMM whose source layer / own name is in ``names``."""
        for pat, mode in self.layer_modes:
            if any(fnmatch.fnmatchcase(n, pat) for n in names if n):
                return mode
        return self.sparse_mode
