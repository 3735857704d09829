"""The compressed weight format the core consumes, tile by tile (BSR-like).

A GEMM ``Y[P, Q] = X[P, K] @ W[K, Q]`` is cut into *weight tiles* of ``kp`` rows of ``K`` by
``cols`` columns of ``Q``:

* **sparse mode** (``kp = k_per_pass = groups * m``): in every column, the (at most ``n``)
  non-zeros of aligned window ``g`` (``k`` in ``g*m .. g*m+m-1`` of the tile) go, in order,
  to PE rows ``g*n .. g*n+n-1`` with their in-window position as index; unused slots hold
  value 0, index 0 (:func:`sparsa.hw.layout.compress_nm`). Activations are full
  ``act_entry_bytes`` rows (``kp`` consecutive ``k``).
* **dense mode** (``kp = rows``): PE row ``r`` holds ``W[r]`` with index ``r % n``
  (:func:`sparsa.hw.layout.dense_weights`); activations are compact ``rows``-byte rows that
  ``LOAD expand=1`` spreads so value ``k`` lands at window ``k // n``, position ``k % n``.

A tile is ``rows`` weight entries (values + packed indices, see :mod:`sparsa.hw.layout`),
each padded to whole DRAM beats. Tiles whose weights are all zero are never stored, loaded
or computed (block sparsity); a ``Q`` column block whose tiles are all zero keeps its first
tile (all zeros) so that its output is still written. Stored tiles are laid out column block
by column block (``qt`` major, ``kt`` ascending) and indexed like a BSR/BSC matrix:
``qt_ptr[qt] .. qt_ptr[qt+1]`` index ``kt_idx`` (the stored tiles of column block ``qt``).

A pattern runs in sparse mode when no column has more than ``n`` non-zeros in an aligned
``m`` window of the tile (:func:`fits_sparse`); otherwise the GEMM runs in dense mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sparsa.hw import layout
from sparsa.hw.config import AccelConfig

__all__ = ["TileMap", "tile_k", "fits_sparse", "max_per_window", "tile_map_from_weights",
           "pack_tiles", "unpack_tiles", "tile_matrix"]


def tile_k(cfg: AccelConfig, mode: str) -> int:
    """Values of ``K`` per weight tile: ``k_per_pass`` (sparse) or ``rows`` (dense)."""
    return cfg.k_per_pass if mode == "sparse" else cfg.rows


def max_per_window(cfg: AccelConfig, n: int, m: int) -> int:
    """Worst-case non-zeros of an ``n:m`` pattern (along K) in an aligned window of the
    array's ``m``."""
    M = cfg.m
    if M % m == 0:
        return n * (M // m)
    if m % M == 0:
        return min(n, M)
    return min(M, n * (-(-(M - 1) // m) + 1))


def fits_sparse(cfg: AccelConfig, w: np.ndarray) -> bool:
    """True when every column of ``w[K, Q]`` has at most ``n`` non-zeros in each aligned
    ``m`` window (the array's ``n`` and ``m``)."""
    k, q = w.shape
    kpad = -(-k // cfg.m) * cfg.m
    nz = np.zeros((kpad, q), bool)
    nz[:k] = w != 0
    return bool(nz.reshape(kpad // cfg.m, cfg.m, q).sum(axis=1).max(initial=0) <= cfg.n)


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


def tile_map_from_weights(cfg: AccelConfig, w: np.ndarray, mode: str) -> TileMap:
    """The :class:`TileMap` of weights (or a boolean structure) ``w[K, Q]``."""
    kp = tile_k(cfg, mode)
    return TileMap.from_nnz(mode, kp, _tile_sums(np.asarray(w) != 0, kp, cfg.cols))


def tile_matrix(cfg: AccelConfig, w: np.ndarray, tmap: TileMap, kt: int, qt: int
                ) -> np.ndarray:
    """Tile ``(kt, qt)`` of ``w`` as ``int8[kp, cols]`` (zero padded past K and Q)."""
    kp, c = tmap.kp, cfg.cols
    blk = w[kt * kp:(kt + 1) * kp, qt * c:(qt + 1) * c]
    out = np.zeros((kp, c), np.int8)
    out[:blk.shape[0], :blk.shape[1]] = blk
    return out


def pack_tiles(cfg: AccelConfig, w: np.ndarray, tmap: TileMap) -> np.ndarray:
    """Stored tiles of ``w[K, Q]`` (int8) as DRAM bytes ``uint8[tiles, rows, entry_beats*bb]``,
    in ``qt``-major order (see the module docstring)."""
    eb = cfg.beats(cfg.wgt_entry_bytes) * cfg.beat_bytes
    out = np.zeros((tmap.tiles, cfg.rows, eb), np.uint8)
    j = 0
    for qt in range(tmap.nq):
        for kt in tmap.kts(qt):
            t = tile_matrix(cfg, w, tmap, kt, qt)
            if tmap.mode == "sparse":
                v, i = layout.compress_nm(cfg, t)
            else:
                v, i = layout.dense_weights(cfg, t)
            out[j] = layout.to_beats(cfg, layout.pack_wgt_entries(cfg, v, i))
            j += 1
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
            if tmap.mode == "dense":
                # expanded activation k sits at window k // n, position k % n
                kk = np.arange(cfg.rows)
                weff = weff[(kk // cfg.n) * cfg.m + kk % cfg.n]
            full[kt * kp:(kt + 1) * kp, qt * c:(qt + 1) * c] = weff
            j += 1
    return full[:k, :q].astype(np.int8)
