"""Load-as-sparse, compute-as-dense (Flash-LLM style): the compressed weight format.

In ``load-sparse`` mode a GEMM's weights stay compressed in DRAM and the weight LOAD
expands them on chip (``LOAD WGT expand=1``, see :mod:`sparsa.hw.isa`); the array then runs
the GEMM in ordinary dense mode (``kp = rows``, compact activations expanded by
``LOAD ACT expand=1``). This saves DRAM traffic on memory-bound GEMMs (skinny decode
GEMMs) even when the pattern does not fit the array's ``n:m`` (e.g. 2:4 weights on an
``n1m16`` array, or unstructured/higher-density masks).

Format of one dense weight tile ``t[rows, cols]`` (``rows`` values of ``K``): the ``rows``
values of every column are cut into aligned windows of ``cmp_m`` rows; window ``w`` is
stored as ``cmp_n`` compressed entries (ordinary weight entries: ``cols`` int8 values plus
``cols`` packed ``idx_bits``-bit indices), slot ``j`` of column ``c`` holding the ``j``-th
non-zero of the window (zero-valued positions fill unused slots). A tile is therefore
``rows * cmp_n / cmp_m`` entries instead of ``rows``.

The window ``(cmp_n, cmp_m)`` is chosen per GEMM (:func:`choose_window`): ``cmp_m`` a power
of two up to ``min(m, largest power of two dividing rows)`` (indices must fit the entry's
``idx_bits``), ``cmp_n`` the largest number of non-zeros of any column in any aligned
``cmp_m`` window; the smallest ``cmp_n / cmp_m`` wins.
"""

from __future__ import annotations

import numpy as np
from sparsa.hw import layout
from sparsa.hw.config import AccelConfig

from .wformat import TileMap, tile_matrix

__all__ = ["max_window", "window_choices", "choose_window", "tile_entries", "compress_tile",
           "expand_entries", "pack_tiles", "unpack_tiles", "dense_ratio"]


def max_window(cfg: AccelConfig) -> int:
    """Largest compression window: a power of two ``<= m`` that divides ``rows``."""
    mc = 1
    while mc * 2 <= cfg.m and cfg.rows % (mc * 2) == 0:
        mc *= 2
    return mc


def window_choices(cfg: AccelConfig, nz: np.ndarray) -> dict[int, int]:
    """``{cmp_m: cmp_n}`` for every candidate window of the non-zero mask ``nz[K, Q]``
    (``K`` is cut into dense tiles of ``rows``; windows are aligned inside tiles)."""
    nz = np.asarray(nz, bool)
    k, q = nz.shape
    kpad = -(-k // cfg.rows) * cfg.rows
    full = np.zeros((kpad, q), bool)
    full[:k] = nz
    out: dict[int, int] = {}
    mc = 2
    while mc <= max_window(cfg):
        out[mc] = max(1, int(full.reshape(kpad // mc, mc, q).sum(axis=1).max(initial=0)))
        mc *= 2
    return out


def choose_window(cfg: AccelConfig, nz: np.ndarray) -> tuple[int, int]:
    """``(cmp_n, cmp_m)`` with the smallest ``cmp_n / cmp_m`` for the non-zero mask ``nz``
    (ties: the smaller window). ``cmp_n == cmp_m`` means nothing compresses."""
    ch = window_choices(cfg, nz)
    if not ch:
        return 1, 1
    best = min(ch, key=lambda mc: (ch[mc] / mc, mc))
    return ch[best], best


def dense_ratio(cmp: tuple[int, int]) -> float:
    """Fraction of the dense weight bytes a load-sparse tile moves."""
    return cmp[0] / cmp[1]


def tile_entries(cfg: AccelConfig, cmp_n: int, cmp_m: int) -> int:
    """Compressed entries per dense tile: ``rows * cmp_n / cmp_m``."""
    return cfg.rows // cmp_m * cmp_n


def compress_tile(cfg: AccelConfig, t: np.ndarray, cmp_n: int, cmp_m: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Dense tile ``t[rows, cols]`` -> compressed ``(values, idx)``, each
    ``[rows * cmp_n / cmp_m, cols]`` (see the module docstring)."""
    nw = cfg.rows // cmp_m
    win = np.asarray(t, np.int8).reshape(nw, cmp_m, cfg.cols)
    nz = win != 0
    if nz.sum(axis=1).max(initial=0) > cmp_n:
        raise ValueError(f"tile has more than {cmp_n} non-zeros in a {cmp_m}-window")
    # non-zero positions first (in order), then zero positions: the first cmp_n slots
    order = np.argsort(~nz, axis=1, kind="stable")[:, :cmp_n, :]
    vals = np.take_along_axis(win, order, axis=1)
    return vals.reshape(-1, cfg.cols), order.astype(np.uint8).reshape(-1, cfg.cols)


def expand_entries(cfg: AccelConfig, values: np.ndarray, idx: np.ndarray, cmp_n: int,
                   cmp_m: int) -> np.ndarray:
    """ISA semantics of the decompressor: ``count`` compressed entries -> dense values
    ``int8[count // cmp_n * cmp_m, cols]`` (values of one window add, wrapping)."""
    count = values.shape[0]
    nw = count // cmp_n
    out = np.zeros((nw, cmp_m, cfg.cols), np.int64)
    w = np.repeat(np.arange(nw), cmp_n)[:, None]
    c = np.arange(cfg.cols)[None, :]
    np.add.at(out, (np.broadcast_to(w, idx.shape), idx.astype(np.int64),
                    np.broadcast_to(c, idx.shape)), values.astype(np.int64))
    return out.reshape(nw * cmp_m, cfg.cols).astype(np.uint8).view(np.int8)


def pack_tiles(cfg: AccelConfig, w: np.ndarray, tmap: TileMap, cmp: tuple[int, int]
               ) -> np.ndarray:
    """Stored tiles of ``w[K, Q]`` compressed: ``uint8[tiles, entries, entry_beats * bb]``
    (``qt``-major, like :func:`sparsa.compiler.wformat.pack_tiles`)."""
    cmp_n, cmp_m = cmp
    eb = cfg.beats(cfg.wgt_entry_bytes) * cfg.beat_bytes
    ne = tile_entries(cfg, cmp_n, cmp_m)
    out = np.zeros((tmap.tiles, ne, eb), np.uint8)
    j = 0
    for qt in range(tmap.nq):
        for kt in tmap.kts(qt):
            v, i = compress_tile(cfg, tile_matrix(cfg, w, tmap, kt, qt), cmp_n, cmp_m)
            out[j] = layout.to_beats(cfg, layout.pack_wgt_entries(cfg, v, i))
            j += 1
    return out


def unpack_tiles(cfg: AccelConfig, tiles: np.ndarray, tmap: TileMap, cmp: tuple[int, int],
                 k: int, q: int) -> np.ndarray:
    """Inverse of :func:`pack_tiles`: the dense ``int8[K, Q]`` the stored tiles encode."""
    kp, c = tmap.kp, cfg.cols
    full = np.zeros((tmap.nk * kp, tmap.nq * c), np.int8)
    j = 0
    for qt in range(tmap.nq):
        for kt in tmap.kts(qt):
            ent = layout.from_beats(cfg, tiles[j], cfg.wgt_entry_bytes)
            v, i = layout.unpack_wgt_entries(cfg, ent)
            full[kt * kp:(kt + 1) * kp, qt * c:(qt + 1) * c] = expand_entries(cfg, v, i, *cmp)
            j += 1
    return full[:k, :q]
