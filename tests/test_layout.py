"""Round trips and byte-order facts of sparsa.hw.layout."""

import numpy as np
import pytest
from sparsa.hw import layout
from sparsa.hw.config import PRESETS

CONFIGS = [PRESETS[k] for k in ("4x4-n2m4", "8x8-n2m8", "16x16-n2m4", "16x16-n1m16")]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_act_round_trip(cfg):
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(7, cfg.k_per_pass)).astype(np.int8)
    ent = layout.pack_act_entries(cfg, x)
    assert ent.shape == (7, cfg.act_entry_bytes) and ent.dtype == np.uint8
    np.testing.assert_array_equal(layout.unpack_act_entries(cfg, ent), x)
    # byte j is window j // m, position j % m
    j = cfg.m + 1
    assert ent[0, j] == np.uint8(x[0, j].view(np.uint8))
    d = rng.integers(-128, 128, size=(5, cfg.rows)).astype(np.int8)
    np.testing.assert_array_equal(layout.unpack_act_dense(cfg, layout.pack_act_dense(cfg, d)), d)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_expand_dense_positions(cfg):
    d = np.arange(cfg.rows, dtype=np.int8)[None, :] + 1
    e = layout.expand_dense(cfg, d).reshape(cfg.groups, cfg.m)
    for k in range(cfg.rows):
        assert e[k // cfg.n, k % cfg.n] == k + 1
    assert (e[:, cfg.n:] == 0).all()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_wgt_round_trip_and_bit_positions(cfg):
    rng = np.random.default_rng(2)
    v = rng.integers(-128, 128, size=(cfg.rows, cfg.cols)).astype(np.int8)
    i = rng.integers(0, cfg.m, size=(cfg.rows, cfg.cols)).astype(np.uint8)
    ent = layout.pack_wgt_entries(cfg, v, i)
    assert ent.shape == (cfg.rows, cfg.wgt_entry_bytes)
    v2, i2 = layout.unpack_wgt_entries(cfg, ent)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(i2, i)
    # column c's index at bit c*idx_bits of the field starting at byte cols
    field = int.from_bytes(ent[0, cfg.cols:].tobytes(), "little")
    for c in range(cfg.cols):
        assert (field >> (c * cfg.idx_bits)) & ((1 << cfg.idx_bits) - 1) == i[0, c]


def test_beats_and_store_rows():
    cfg = PRESETS["16x16-n2m4"]
    e = np.arange(20 * 3, dtype=np.uint8).reshape(3, 20)
    b = layout.to_beats(cfg, e)
    assert b.shape == (3, 32) and (b[:, 20:] == 0).all()
    np.testing.assert_array_equal(layout.from_beats(cfg, b, 20), e)
    acc = np.array([[-(2**31), 2**31 - 1, -3, 5] + [0] * 12], dtype=np.int32)
    r32 = layout.encode_store_rows(cfg, acc)
    assert r32.shape == (1, 64)
    assert r32[0, 4:8].tobytes() == (2**31 - 1).to_bytes(4, "little")
    np.testing.assert_array_equal(layout.decode_store_rows(cfg, r32, requant=0), acc)
    r8 = layout.decode_store_rows(cfg, layout.encode_store_rows(cfg, acc, requant=1, shift=1),
                                  requant=1)
    # (-3 + 1) >> 1 = -1 ; (5 + 1) >> 1 = 3 ; saturation at both ends
    assert r8[0, :4].tolist() == [-128, 127, -1, 3]
    r8 = layout.decode_store_rows(cfg, layout.encode_store_rows(cfg, acc, requant=1, relu=1,
                                                                shift=0), requant=1)
    assert r8[0, :4].tolist() == [0, 127, 0, 5]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_compress_nm_matches_dense(cfg):
    rng = np.random.default_rng(3)
    from sparsa.compiler.tilegen import random_nm_weights
    w = random_nm_weights(rng, cfg.k_per_pass, cfg.cols, cfg.n, cfg.m)
    v, i = layout.compress_nm(cfg, w)
    np.testing.assert_array_equal(layout.effective_weights(cfg, v, i), w.astype(np.int64))
    wd = rng.integers(-128, 128, size=(cfg.rows, cfg.cols)).astype(np.int8)
    v, i = layout.dense_weights(cfg, wd)
    x = rng.integers(-128, 128, size=(4, cfg.rows)).astype(np.int8)
    xe = layout.expand_dense(cfg, x).astype(np.int64)
    np.testing.assert_array_equal(xe @ layout.effective_weights(cfg, v, i),
                                  x.astype(np.int64) @ wd)


def test_compress_nm_rejects_too_dense():
    cfg = PRESETS["4x4-n2m4"]
    w = np.zeros((cfg.k_per_pass, cfg.cols), np.int8)
    w[0:3, 1] = 1
    with pytest.raises(ValueError, match="column 1 has 3 non-zeros in window 0"):
        layout.compress_nm(cfg, w)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_compress_nm_tiles_is_compress_nm_per_tile(cfg):
    """The batched mapping the compiler packs layers with equals the per-tile one."""
    rng = np.random.default_rng(4)
    from sparsa.compiler.tilegen import random_nm_weights
    tiles = np.stack([random_nm_weights(rng, cfg.k_per_pass, cfg.cols, cfg.n, cfg.m)
                      for _ in range(5)]).astype(np.int8)
    v, i = layout.compress_nm_tiles(cfg, tiles)
    assert v.shape == i.shape == (5, cfg.rows, cfg.cols)
    for t in range(5):
        v1, i1 = layout.compress_nm(cfg, tiles[t])
        np.testing.assert_array_equal(v[t], v1)
        np.testing.assert_array_equal(i[t], i1)
    tiles[3, 0:cfg.n + 1, 2] = 1
    with pytest.raises(ValueError, match="tile 3: w column 2 has"):
        layout.compress_nm_tiles(cfg, tiles)
