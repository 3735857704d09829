"""Packing and unpacking of scratchpad entries and DRAM beats.

These functions are the executable form of the layout facts in :mod:`sparsa.hw.config`'s
docstring; the compiler, the reference executor and the RTL bench all use them, so the byte
order is written down exactly once. Everything is vectorised numpy; inputs are validated and
bad shapes raise ``ValueError`` naming the argument.

* Activation entry (``act_entry_bytes = groups * m``): byte ``j`` is window ``j // m``,
  position ``j % m`` (int8). A dense K-tile of ``rows`` values is stored compactly in DRAM
  (:func:`pack_act_dense`) and expanded by ``LOAD expand=1`` (:func:`expand_dense`): value
  ``k`` lands at window ``k // n``, position ``k % n``. At a window width ``win`` between
  ``n`` and ``m`` (``AccelConfig.windows``; the LOAD's ``cmp_m``) compact rows hold
  ``groups * win`` values and value ``k`` lands at window ``k // win``, position ``k % win``.
* Weight entry (``wgt_entry_bytes``): bytes ``0 .. cols-1`` are the int8 values; the packed
  ``idx_bits``-bit indices follow, column ``c``'s at bit ``c * idx_bits`` of the index field.
* STORE rows: ``cols`` int8 (requant) or ``cols`` little-endian int32.
* DRAM: every entry occupies a whole number of beats, zero padded (:func:`to_beats`).

Weight helpers map a K-tile of a weight matrix onto the array: :func:`compress_nm` (any
pattern with at most ``n`` non-zeros per aligned ``m`` -- or narrower ``win`` -- window of
each column) and
:func:`dense_weights` (dense mode: PE row ``r`` holds ``W[r]`` with index ``r % n``).
"""

from __future__ import annotations

import numpy as np

from .config import AccelConfig

__all__ = [
    "pack_act_entries", "unpack_act_entries", "pack_act_dense", "unpack_act_dense",
    "expand_dense", "window_rows", "pack_wgt_entries", "unpack_wgt_entries", "to_beats",
    "from_beats",
    "encode_store_rows", "decode_store_rows", "compress_nm", "compress_nm_tiles",
    "dense_weights",
    "effective_weights",
]


def _as_2d(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    return a


def _int8_bytes(name: str, x: np.ndarray, width: int) -> np.ndarray:
    """``x`` (int8 values, any integer dtype in range) as uint8 bytes, zero-padded to width."""
    x = _as_2d(name, x)
    if x.shape[1] > width:
        raise ValueError(f"{name} has {x.shape[1]} columns, at most {width} allowed")
    if x.dtype != np.int8:
        if x.size and (x.min() < -128 or x.max() > 127):
            raise ValueError(f"{name} holds values outside int8 range -128..127")
        x = x.astype(np.int8)
    out = np.zeros((x.shape[0], width), dtype=np.uint8)
    out[:, :x.shape[1]] = x.view(np.uint8)
    return out


def _entry_bytes(name: str, b: np.ndarray, width: int) -> np.ndarray:
    b = _as_2d(name, b)
    if b.shape[1] < width:
        raise ValueError(f"{name} rows have {b.shape[1]} bytes, need at least {width}")
    return np.ascontiguousarray(b[:, :width]).astype(np.uint8, copy=False)


# ---- activations -------------------------------------------------------------------------
def pack_act_entries(cfg: AccelConfig, x: np.ndarray) -> np.ndarray:
    """Activation rows ``x[P, k<=k_per_pass]`` (int8) -> ``uint8[P, act_entry_bytes]``.

    Column ``k`` of ``x`` is window ``k // m``, position ``k % m``; missing columns are zero.
    """
    return _int8_bytes("x", x, cfg.act_entry_bytes)


def unpack_act_entries(cfg: AccelConfig, entries: np.ndarray) -> np.ndarray:
    """``uint8[P, >=act_entry_bytes]`` -> ``int8[P, k_per_pass]``."""
    return _entry_bytes("entries", entries, cfg.act_entry_bytes).view(np.int8)


def _win(cfg: AccelConfig, win: int | None) -> int:
    w = cfg.n if win is None else win
    if w not in cfg.windows:
        raise ValueError(f"window width {w} is not one of {cfg.name}'s {list(cfg.windows)}")
    return w


def pack_act_dense(cfg: AccelConfig, x: np.ndarray, win: int | None = None) -> np.ndarray:
    """Compact rows ``x[P, k<=groups*win]`` (int8) -> ``uint8[P, groups*win]`` (LOAD
    expand=1 with window width ``win``; default ``n``: dense mode, ``rows`` bytes)."""
    return _int8_bytes("x", x, cfg.act_row_bytes(_win(cfg, win)))


def unpack_act_dense(cfg: AccelConfig, entries: np.ndarray, win: int | None = None
                     ) -> np.ndarray:
    """``uint8[P, >=groups*win]`` -> ``int8[P, groups*win]``."""
    return _entry_bytes("entries", entries, cfg.act_row_bytes(_win(cfg, win))).view(np.int8)


def expand_dense(cfg: AccelConfig, dense: np.ndarray, win: int | None = None) -> np.ndarray:
    """Expand compact rows ``[P, groups*win]`` into activation entries ``[P, k_per_pass]``.

    Value ``k`` lands at window ``k // win``, position ``k % win``; the other ``m - win``
    window positions are zero (``win`` defaults to ``n``: dense mode). Keeps the dtype (int8
    values or uint8 bytes alike).
    """
    w = _win(cfg, win)
    dense = _as_2d("dense", dense)
    if dense.shape[1] != cfg.act_row_bytes(w):
        raise ValueError(f"compact rows must have groups*{w}={cfg.act_row_bytes(w)} values, "
                         f"got {dense.shape[1]}")
    out = np.zeros((dense.shape[0], cfg.groups, cfg.m), dtype=dense.dtype)
    out[:, :, :w] = dense.reshape(dense.shape[0], cfg.groups, w)
    return out.reshape(dense.shape[0], cfg.k_per_pass)


def window_rows(cfg: AccelConfig, win: int) -> np.ndarray:
    """Activation-entry position of each compact value at window width ``win``:
    ``(k // win) * m + k % win`` for ``k < groups * win``."""
    k = np.arange(cfg.act_row_bytes(win))
    return (k // win) * cfg.m + k % win


# ---- weights -----------------------------------------------------------------------------
def pack_wgt_entries(cfg: AccelConfig, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """PE-row weights ``values[R, cols]`` (int8) and ``idx[R, cols]`` -> ``uint8[R, wgt_entry_bytes]``.

    Column ``c``'s index occupies bits ``c*idx_bits ..`` of the index field that starts at
    byte ``cols`` (little-endian).
    """
    values = _as_2d("values", values)
    idx = _as_2d("idx", idx)
    if values.shape != idx.shape or values.shape[1] != cfg.cols:
        raise ValueError(f"values and idx must both have shape [R, cols={cfg.cols}], got "
                         f"{values.shape} and {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= cfg.m):
        raise ValueError(f"idx holds values outside 0..m-1={cfg.m - 1}")
    out = np.zeros((values.shape[0], cfg.wgt_entry_bytes), dtype=np.uint8)
    out[:, :cfg.cols] = _int8_bytes("values", values, cfg.cols)
    # index field as a little-endian bit vector: bit b of column c is field bit c*idx_bits+b
    bits = ((idx.astype(np.uint8)[:, :, None] >> np.arange(cfg.idx_bits, dtype=np.uint8))
            & 1).reshape(values.shape[0], cfg.cols * cfg.idx_bits)
    pad = cfg.wgt_idx_bytes * 8 - bits.shape[1]
    bits = np.pad(bits, ((0, 0), (0, pad)))
    out[:, cfg.cols:] = np.packbits(bits, axis=1, bitorder="little")
    return out


def unpack_wgt_entries(cfg: AccelConfig, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``uint8[R, >=wgt_entry_bytes]`` -> ``(values int8[R, cols], idx uint8[R, cols])``."""
    e = _entry_bytes("entries", entries, cfg.wgt_entry_bytes)
    values = e[:, :cfg.cols].view(np.int8)
    bits = np.unpackbits(e[:, cfg.cols:], axis=1, bitorder="little")
    bits = bits[:, :cfg.cols * cfg.idx_bits].reshape(e.shape[0], cfg.cols, cfg.idx_bits)
    idx = (bits << np.arange(cfg.idx_bits, dtype=np.uint8)).sum(axis=2).astype(np.uint8)
    return values, idx


def dense_weights(cfg: AccelConfig, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense-mode PE weights of a K-tile ``w[k<=rows, cols]``: row ``r`` holds ``w[r]``, index
    ``r % n`` (pairs with :func:`expand_dense` activations). Returns ``(values, idx)``."""
    w = _as_2d("w", w)
    if w.shape[0] > cfg.rows or w.shape[1] != cfg.cols:
        raise ValueError(f"w must have shape [k<={cfg.rows}, cols={cfg.cols}], got {w.shape}")
    values = np.zeros((cfg.rows, cfg.cols), dtype=np.int8)
    values[:w.shape[0]] = _int8_bytes("w", w, w.shape[1]).view(np.int8)
    idx = np.repeat((np.arange(cfg.rows) % cfg.n)[:, None], cfg.cols, axis=1).astype(np.uint8)
    return values, idx


def compress_nm(cfg: AccelConfig, w: np.ndarray, win: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Map a sparse K-tile ``w[k<=groups*win, cols]`` onto the array at window width ``win``
    (default ``m``).

    Every column must have at most ``n`` non-zeros in each aligned window of ``win`` rows;
    window ``g``'s non-zeros go, in order, to PE rows ``g*n ..`` with their in-window
    positions as indices (unused PEs hold value 0, index 0). Returns ``(values, idx)``, each
    ``[rows, cols]``. Pairs with activations expanded at the same width
    (:func:`expand_dense`; full entries at ``win = m``).
    """
    wd = cfg.m if win is None else _win(cfg, win)
    kp = cfg.act_row_bytes(wd)
    w = _as_2d("w", w)
    if w.shape[0] > kp or w.shape[1] != cfg.cols:
        raise ValueError(f"w must have shape [k<={kp}, cols={cfg.cols}], got {w.shape}")
    full = np.zeros((1, kp, cfg.cols), dtype=np.int8)
    full[0, :w.shape[0]] = _int8_bytes("w", w, w.shape[1]).view(np.int8)
    values, idx = compress_nm_tiles(cfg, full, wd)
    return values[0], idx[0]


def compress_nm_tiles(cfg: AccelConfig, tiles: np.ndarray, win: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`compress_nm` of a stack of whole K-tiles ``int8[T, groups*win, cols]`` at once
    (the compiler packs a layer's tiles in one call); returns ``(values, idx)``, each
    ``[T, rows, cols]``. An over-full window is reported with its tile."""
    wd = cfg.m if win is None else _win(cfg, win)
    kp = cfg.act_row_bytes(wd)
    tiles = np.asarray(tiles)
    if tiles.ndim != 3 or tiles.shape[1:] != (kp, cfg.cols) or tiles.dtype != np.int8:
        raise ValueError(f"tiles must be int8[T, {kp}, {cfg.cols}], got {tiles.dtype}"
                         f"{list(tiles.shape)}")
    t = tiles.shape[0]
    win_ = tiles.reshape(t, cfg.groups, wd, cfg.cols)
    # one window position at a time: a non-zero goes to the slot numbered by the non-zeros
    # before it in its window (whole-array steps, ``m * n`` of them, no index arrays)
    values = np.zeros((t, cfg.groups, cfg.n, cfg.cols), dtype=np.int8)
    idx = np.zeros((t, cfg.groups, cfg.n, cfg.cols), dtype=np.uint8)
    counts = np.zeros((t, cfg.groups, cfg.cols), dtype=np.int16)
    for pos in range(wd):
        x = win_[:, :, pos, :]
        nz = x != 0
        for slot in range(cfg.n):
            sel = nz & (counts == slot)
            np.copyto(values[:, :, slot, :], x, where=sel)
            np.copyto(idx[:, :, slot, :], pos, where=sel)
        counts += nz
    if counts.max(initial=0) > cfg.n:
        ti, g, c = np.argwhere(counts > cfg.n)[0]
        where = f"tile {ti}: " if t > 1 else ""
        raise ValueError(f"{where}w column {c} has {counts[ti, g, c]} non-zeros in window {g} "
                         f"(rows {g * wd}..{g * wd + wd - 1}); at most n={cfg.n} allowed")
    return values.reshape(t, cfg.rows, cfg.cols), idx.reshape(t, cfg.rows, cfg.cols)


def effective_weights(cfg: AccelConfig, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The dense ``int64[k_per_pass, cols]`` matrix the PE weights multiply activations by.

    ``y = x @ effective_weights(...)`` for an activation entry ``x[k_per_pass]`` is the ISA's
    ``y[c] = sum_r v[r, c] * x[r // n][i[r, c]]`` (PEs of a group selecting the same position
    add up).
    """
    values = _as_2d("values", values).astype(np.int64)
    idx = _as_2d("idx", idx).astype(np.int64)
    weff = np.zeros((cfg.k_per_pass, cfg.cols), dtype=np.int64)
    k = (np.arange(cfg.rows) // cfg.n)[:, None] * cfg.m + idx
    np.add.at(weff, (k, np.broadcast_to(np.arange(cfg.cols), k.shape)), values)
    return weff


# ---- DRAM beats --------------------------------------------------------------------------
def to_beats(cfg: AccelConfig, entries: np.ndarray) -> np.ndarray:
    """Entries ``uint8[count, nbytes]`` -> ``uint8[count, beats(nbytes) * beat_bytes]`` (zero
    padded), i.e. each entry laid out over whole DRAM beats."""
    entries = _as_2d("entries", entries)
    if entries.dtype != np.uint8:
        raise ValueError(f"entries must be uint8 bytes, got {entries.dtype}")
    width = cfg.beats(entries.shape[1]) * cfg.beat_bytes
    out = np.zeros((entries.shape[0], width), dtype=np.uint8)
    out[:, :entries.shape[1]] = entries
    return out


def from_beats(cfg: AccelConfig, beats: np.ndarray, nbytes: int) -> np.ndarray:
    """Inverse of :func:`to_beats`: keep the first ``nbytes`` of every beat-padded entry."""
    beats = _as_2d("beats", beats)
    if beats.shape[1] != cfg.beats(nbytes) * cfg.beat_bytes:
        raise ValueError(f"beats rows must be {cfg.beats(nbytes) * cfg.beat_bytes} bytes for "
                         f"{nbytes}-byte entries, got {beats.shape[1]}")
    return np.ascontiguousarray(beats[:, :nbytes]).astype(np.uint8, copy=False)


# ---- STORE rows --------------------------------------------------------------------------
def encode_store_rows(cfg: AccelConfig, acc: np.ndarray, *, relu: int = 0, requant: int = 0,
                      shift: int = 0) -> np.ndarray:
    """The bytes STORE writes for accumulator rows ``acc[count, cols]`` (int32).

    ``requant``: ``(a + 2**(shift-1)) >> shift`` (exact, arithmetic; no rounding term for
    ``shift=0``), ReLU, saturate to int8 -> ``uint8[count, cols]``; otherwise ReLU only and
    little-endian int32 -> ``uint8[count, 4*cols]``.
    """
    a = _as_2d("acc", acc).astype(np.int64)
    if a.shape[1] != cfg.cols:
        raise ValueError(f"acc must have cols={cfg.cols} columns, got {a.shape[1]}")
    if not 0 <= shift < 32:
        raise ValueError(f"shift={shift} out of range 0..31")
    if requant:
        if shift:
            a = (a + (1 << (shift - 1))) >> shift
        if relu:
            a = np.maximum(a, 0)
        return np.clip(a, -128, 127).astype(np.int8).view(np.uint8)
    if relu:
        a = np.maximum(a, 0)
    return a.astype("<i4").view(np.uint8).reshape(a.shape[0], 4 * cfg.cols)


def decode_store_rows(cfg: AccelConfig, rows: np.ndarray, *, requant: int) -> np.ndarray:
    """STORE rows (bytes, possibly beat padded) -> ``int8[count, cols]`` or ``int32[count, cols]``."""
    nbytes = cfg.cols if requant else cfg.acc_entry_bytes
    b = _entry_bytes("rows", rows, nbytes)
    if requant:
        return b.view(np.int8)
    return b.view("<i4").astype(np.int32)
