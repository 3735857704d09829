"""The compressed weight format the core consumes, tile by tile (BSR-like).

A GEMM ``Y[P, Q] = X[P, K] @ W[K, Q]`` is cut into *weight tiles* of ``kp`` rows of ``K`` by
``cols`` columns of ``Q``:

* **sparse mode** (``kp = k_per_pass = groups * m``): in every column, the (at most ``n``)
  non-zeros of aligned window ``g`` (``k`` in ``g*m .. g*m+m-1`` of the tile) go, in order,
  to PE rows ``g*n .. g*n+n-1`` with their in-window position as index; unused slots hold
  value 0, index 0 (:func:`sparsa.hw.layout.compress_nm`). Activations are full
  ``act_entry_bytes`` rows (``kp`` consecutive ``k``).
* **sparse mode at a narrower window** ``w`` (``n < w < m``, one of
  ``AccelConfig.windows``; ``kp = groups * w``): as above with windows of ``w`` values
  (indices ``< w``); activations are compact ``groups * w``-byte rows that
  ``LOAD expand=1, cmp_m=w`` spreads so value ``k`` lands at window ``k // w``, position
  ``k % w``. A 2:4 pattern runs at its 2x on an ``m = 8`` array this way.
* **dense mode** (``kp = rows``): PE row ``r`` holds ``W[r]`` with index ``r % n``
  (:func:`sparsa.hw.layout.dense_weights`); activations are compact ``rows``-byte rows that
  ``LOAD expand=1`` spreads so value ``k`` lands at window ``k // n``, position ``k % n``.

A tile is ``rows`` weight entries (values + packed indices, see :mod:`sparsa.hw.layout`),
each padded to whole DRAM beats. Tiles whose weights are all zero are never stored, loaded
or computed (block sparsity); a ``Q`` column block whose tiles are all zero keeps its first
tile (all zeros) so that its output is still written. Stored tiles are laid out column block
by column block (``qt`` major, ``kt`` ascending) and indexed like a BSR/BSC matrix:
``qt_ptr[qt] .. qt_ptr[qt+1]`` index ``kt_idx`` (the stored tiles of column block ``qt``).

A pattern runs in sparse mode at the widest window ``w`` in which no column has more than
``n`` non-zeros in an aligned ``w``-window (:func:`sparse_window`).

**Passes.** A pattern denser than the array's ``n`` (3:8 or 4:8 on an ``n = 2, m = 8``
array) runs in sparse mode in ``s`` passes (:func:`pass_plan`): the ``j``-th pass keeps the
non-zeros ranked ``j*n .. j*n+n-1`` in their aligned ``w``-window. The weights become
``s * nk`` tiles (:func:`split_passes`): K tile ``kt*s + j`` holds pass ``j`` of the
weights of activation tile ``kt``, so the activations are stored once, as for one pass, and
every K tile ``t`` reads activation tile ``t // s`` (the scheduler loads it once for the
``s`` tiles that read it); the passes accumulate like any other K tiles. A pass whose tile
holds no non-zero (no window had more than ``j*n``) is skipped like any all-zero tile. The
rate is ``w / (n*s)`` of dense mode's, so it is used when ``n*s < w`` (4:8 on that array:
2x, where dense mode would give 1x); when no split beats dense mode the GEMM runs dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sparsa.hw import layout
from sparsa.hw.config import AccelConfig

__all__ = ["TileMap", "window", "tile_k", "tile_window", "act_window_field", "fits_sparse",
           "sparse_window", "spec_window", "max_per_window", "pass_plan", "spec_passes",
           "weight_passes", "pass_tiles", "dense_tiles", "split_passes", "repeat_input",
           "tile_map_from_weights", "pack_tiles", "unpack_tiles", "tile_matrix"]


def window(cfg: AccelConfig, mode: str, win: int = 0) -> int:
    """Window width a GEMM runs at: ``n`` in dense and load-sparse mode; in sparse mode
    ``win`` (one of ``cfg.windows``; 0 means ``m``)."""
    if mode != "sparse":
        return cfg.n
    return win or cfg.m


def tile_k(cfg: AccelConfig, mode: str, win: int = 0) -> int:
    """Values of ``K`` per weight tile: ``groups * window`` (``k_per_pass`` in sparse mode at
    the full window, ``rows`` in dense mode)."""
    return cfg.act_row_bytes(window(cfg, mode, win))


def tile_window(cfg: AccelConfig, kp: int) -> int:
    """The window width of tiles of ``kp`` values of K (inverse of :func:`tile_k`)."""
    return kp // cfg.groups


def act_window_field(cfg: AccelConfig, mode: str, kp: int) -> int:
    """How activations of tiles of ``kp`` values are loaded: 0 for full ``m``-wide entries
    (sparse mode at ``win = m``), else the window width a ``LOAD expand=1`` spreads compact
    rows into (``n`` in dense mode)."""
    w = tile_window(cfg, kp)
    return 0 if mode == "sparse" and w == cfg.m else w


def max_per_window(cfg: AccelConfig, n: int, m: int, width: int | None = None) -> int:
    """Worst-case non-zeros of an ``n:m`` pattern (along K) in an aligned window of
    ``width`` values (default: the array's ``m``)."""
    M = cfg.m if width is None else width
    if M % m == 0:
        return n * (M // m)
    if m % M == 0:
        return min(n, M)
    return min(M, n * (-(-(M - 1) // m) + 1))


def _max_nnz(w: np.ndarray, width: int) -> int:
    k, q = w.shape
    kpad = -(-k // width) * width
    nz = np.zeros((kpad, q), bool)
    nz[:k] = w != 0
    return int(nz.reshape(kpad // width, width, q).sum(axis=1).max(initial=0))


def fits_sparse(cfg: AccelConfig, w: np.ndarray, width: int | None = None) -> bool:
    """True when every column of ``w[K, Q]`` has at most ``n`` non-zeros in each aligned
    window of ``width`` values (default: the array's ``m``)."""
    return _max_nnz(w, cfg.m if width is None else width) <= cfg.n


def sparse_window(cfg: AccelConfig, w: np.ndarray) -> int:
    """The widest window of ``cfg.windows`` (wider than ``n``) in which every column of
    ``w[K, Q]`` has at most ``n`` non-zeros, or 0 when there is none (dense mode)."""
    for width in reversed(cfg.windows):
        if width > cfg.n and _max_nnz(w, width) <= cfg.n:
            return width
    return 0


def spec_window(cfg: AccelConfig, n: int, m: int) -> int:
    """:func:`sparse_window` for any weights of an ``n:m`` pattern (its worst case)."""
    for width in reversed(cfg.windows):
        if width > cfg.n and max_per_window(cfg, n, m, width) <= cfg.n:
            return width
    return 0


def pass_plan(cfg: AccelConfig, max_at) -> tuple[int, int]:
    """``(w, s)``: the window ``w`` of ``cfg.windows`` and pass count ``s`` of the fastest
    multi-pass sparse mode for a pattern with ``max_at(w)`` non-zeros at most in an aligned
    ``w``-window: ``s = ceil(max_at(w) / n)``, rate ``w / (n*s)`` of dense mode's (ties: fewer
    passes). ``(0, 0)`` when no window beats dense mode (``n*s >= w`` everywhere)."""
    best = (0, 0)
    for w in cfg.windows:
        if w <= cfg.n:
            continue
        s = max(1, -(-int(max_at(w)) // cfg.n))
        if s * cfg.n >= w:
            continue
        bw, bs = best
        if not bw or w * bs > bw * s or (w * bs == bw * s and s < bs):
            best = (w, s)
    return best


def spec_passes(cfg: AccelConfig, n: int, m: int) -> tuple[int, int]:
    """``(window, passes)`` of any weights of an ``n:m`` pattern: ``(spec_window, 1)``
    when it fits a window in one pass, else :func:`pass_plan` (``(0, 0)``: dense mode)."""
    w = spec_window(cfg, n, m)
    return (w, 1) if w else pass_plan(cfg, lambda x: max_per_window(cfg, n, m, x))


def weight_passes(cfg: AccelConfig, w: np.ndarray) -> tuple[int, int]:
    """:func:`spec_passes` for weights (or a boolean structure) ``w[K, Q]``."""
    win = sparse_window(cfg, w)
    return (win, 1) if win else pass_plan(cfg, lambda x: _max_nnz(w, x))


def pass_tiles(cfg: AccelConfig, mask: np.ndarray, width: int) -> tuple[int, int]:
    """``(passes, tiles)`` of weights (or a boolean structure) ``mask[K, Q]`` split at
    window ``width``: the passes the fullest window needs (``ceil(non-zeros / n)``) and the
    weight tiles the split keeps — a K tile keeps as many pass tiles as its fullest window
    needs, the others are empty and skipped (unstructured weights need fewer than their
    worst window suggests)."""
    k, q = mask.shape
    kp = tile_k(cfg, "sparse", width)
    per, c = kp // width, cfg.cols
    nk, nq = -(-k // kp), -(-q // c)
    pad = np.zeros((nk * kp, nq * c), bool)
    pad[:k, :q] = mask != 0
    cnt = pad.reshape(nk * per, width, nq * c).sum(axis=1, dtype=np.int32)
    need = (-(-cnt // cfg.n)).reshape(nk, per, nq, c).max(axis=(1, 3))
    return max(1, int(need.max(initial=0))), int(need.sum())


def dense_tiles(cfg: AccelConfig, mask: np.ndarray) -> int:
    """Weight tiles of ``mask[K, Q]`` in dense mode (all-zero tiles are skipped)."""
    return int((_tile_sums(np.asarray(mask) != 0, cfg.rows, cfg.cols) > 0).sum())


def split_passes(a: np.ndarray, width: int, passes: int, n: int, tile: int) -> np.ndarray:
    """``a[K, Q]`` (weights or a boolean mask) as ``[passes * Kt, Q]`` (``Kt``: ``K``
    padded to whole ``tile``-row K tiles, ``tile`` a multiple of ``width``): rows
    ``(kt*passes + j)*tile ..`` hold pass ``j`` of K tile ``kt`` — the non-zeros ranked
    ``j*n .. j*n+n-1`` in their aligned ``width``-window — so every pass has at most ``n``
    per window and the passes of a tile sum to it. Raises ``ValueError`` when ``passes``
    passes cannot hold every non-zero."""
    k, q = a.shape
    kt = -(-k // tile) * tile
    pad = np.zeros((kt, q), a.dtype)
    pad[:k] = a
    nz = pad.reshape(kt // width, width, q) != 0
    rank = (np.cumsum(nz, axis=1) - 1) // n
    if nz.any() and int(rank[nz].max()) >= passes:
        raise ValueError(f"{passes} passes of {n} per {width}-window cannot hold these "
                         f"non-zeros")
    out = np.zeros((kt // tile, passes, tile, q), a.dtype)
    for j in range(passes):
        sel = (nz & (rank == j)).reshape(kt, q)
        part = np.zeros((kt, q), a.dtype)
        part[sel] = pad[sel]
        out[:, j] = part.reshape(kt // tile, tile, q)
    return out.reshape(passes * kt, q)


def repeat_input(x: np.ndarray, passes: int, tile: int) -> np.ndarray:
    """The activations ``x[P, K]`` as the K tiles of a GEMM split by :func:`split_passes`
    see them: K tile ``t`` is activation tile ``t // passes`` (``x @ a == repeat_input(x)
    @ split_passes(a)``). The program stores ``x`` once; this is the reference view."""
    p, k = x.shape
    kt = -(-k // tile) * tile
    xp = np.zeros((p, kt), x.dtype)
    xp[:, :k] = x
    return np.repeat(xp.reshape(p, kt // tile, 1, tile), passes, axis=2).reshape(p, -1)


@dataclass
class TileMap:
    """Which weight tiles of a GEMM are stored and how many non-zeros each holds.

    ``nnz[kt, qt]`` counts non-zero weights of tile ``(kt, qt)``; ``keep[kt, qt]`` says
    whether the tile is stored and computed (non-zero, or the forced first tile of an
    all-zero column block).
    """

    mode: str
    kp: int
    nk: int
    nq: int
    nnz: np.ndarray    # int64 [nk, nq]
    keep: np.ndarray   # bool [nk, nq]

    @classmethod
    def from_nnz(cls, mode: str, kp: int, nnz: np.ndarray) -> TileMap:
        nnz = np.asarray(nnz, np.int64)
        keep = nnz > 0
        empty = ~keep.any(axis=0)
        keep[0, empty] = True
        return cls(mode, kp, nnz.shape[0], nnz.shape[1], nnz, keep)

    @property
    def tiles(self) -> int:
        return int(self.keep.sum())

    def qt_ptr(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.keep.sum(axis=0))]).astype(np.int64)

    def kt_idx(self) -> np.ndarray:
        return np.nonzero(self.keep.T)[1].astype(np.int64)

    def kts(self, qt: int) -> list[int]:
        return [int(k) for k in np.nonzero(self.keep[:, qt])[0]]


def _tile_sums(mask: np.ndarray, kp: int, cols: int) -> np.ndarray:
    k, q = mask.shape
    nk, nq = -(-k // kp), -(-q // cols)
    pad = np.zeros((nk * kp, nq * cols), np.int64)
    pad[:k, :q] = mask
    return pad.reshape(nk, kp, nq, cols).sum(axis=(1, 3))


def tile_map_from_weights(cfg: AccelConfig, w: np.ndarray, mode: str, win: int = 0
                          ) -> TileMap:
    """The :class:`TileMap` of weights (or a boolean structure) ``w[K, Q]``."""
    kp = tile_k(cfg, mode, win)
    return TileMap.from_nnz(mode, kp, _tile_sums(np.asarray(w) != 0, kp, cfg.cols))


def tile_matrix(cfg: AccelConfig, w: np.ndarray, tmap: TileMap, kt: int, qt: int
                ) -> np.ndarray:
    """Tile ``(kt, qt)`` of ``w`` as ``int8[kp, cols]`` (zero padded past K and Q)."""
    kp, c = tmap.kp, cfg.cols
    blk = w[kt * kp:(kt + 1) * kp, qt * c:(qt + 1) * c]
    out = np.zeros((kp, c), np.int8)
    out[:blk.shape[0], :blk.shape[1]] = blk
    return out


#: tiles :func:`pack_tiles` packs per numpy batch (bounds its working memory)
PACK_BATCH = 4096


def pack_tiles(cfg: AccelConfig, w: np.ndarray, tmap: TileMap) -> np.ndarray:
    """Stored tiles of ``w[K, Q]`` (int8) as DRAM bytes ``uint8[tiles, rows, entry_beats*bb]``,
    in ``qt``-major order (see the module docstring). Each tile is
    :func:`tile_matrix` mapped by :func:`sparsa.hw.layout.compress_nm` (sparse mode) or
    :func:`~sparsa.hw.layout.dense_weights` and packed by
    :func:`~sparsa.hw.layout.pack_wgt_entries`; batches of tiles go through numpy at once."""
    eb = cfg.beats(cfg.wgt_entry_bytes) * cfg.beat_bytes
    out = np.zeros((tmap.tiles, cfg.rows, eb), np.uint8)
    kp, c = tmap.kp, cfg.cols
    qts, kts = np.nonzero(tmap.keep.T)          # qt-major, K tiles ascending
    if not len(qts):
        return out
    w = np.asarray(w)
    if w.dtype != np.int8:
        w = np.asarray(layout._int8_bytes("w", w, w.shape[1])[:, :w.shape[1]]).view(np.int8)
    k, q = w.shape
    full = np.zeros((tmap.nk * kp, tmap.nq * c), np.int8)
    full[:k, :q] = w
    blocks = full.reshape(tmap.nk, kp, tmap.nq, c)
    for j in range(0, len(qts), PACK_BATCH):
        kt, qt = kts[j:j + PACK_BATCH], qts[j:j + PACK_BATCH]
        tiles = blocks[kt, :, qt, :]                              # [T, kp, cols]
        if tmap.mode == "sparse":
            v, i = layout.compress_nm_tiles(cfg, tiles, tile_window(cfg, kp))
        else:                    # dense: row r holds w[r], index r % n
            v = tiles
            i = np.broadcast_to((np.arange(cfg.rows) % cfg.n).astype(np.uint8)[:, None],
                                tiles.shape)
        ent = layout.pack_wgt_entries(cfg, v.reshape(-1, c), i.reshape(-1, c))
        out[j:j + len(kt)] = layout.to_beats(cfg, ent).reshape(len(kt), cfg.rows, eb)
    return out


def unpack_tiles(cfg: AccelConfig, tiles: np.ndarray, tmap: TileMap, k: int, q: int
                 ) -> np.ndarray:
    """Inverse of :func:`pack_tiles`: the dense ``int8[K, Q]`` the stored tiles encode."""
    kp, c = tmap.kp, cfg.cols
    full = np.zeros((tmap.nk * kp, tmap.nq * c), np.int64)
    j = 0
    for qt in range(tmap.nq):
        for kt in tmap.kts(qt):
            ent = layout.from_beats(cfg, tiles[j], cfg.wgt_entry_bytes)
            v, i = layout.unpack_wgt_entries(cfg, ent)
            weff = layout.effective_weights(cfg, v, i)
            if act_window_field(cfg, tmap.mode, kp):
                # expanded activation k sits at window k // w, position k % w
                weff = weff[layout.window_rows(cfg, tile_window(cfg, kp))]
            full[kt * kp:(kt + 1) * kp, qt * c:(qt + 1) * c] = weff
            j += 1
    return full[:k, :q].astype(np.int8)
