"""Unit tests of the systolic array in ``amaranth.sim`` against numpy (``x @ W_eff``)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsa.hw import layout
from sparsa.hw.array import SystolicArray
from sparsa.hw.config import PRESETS


def _row_weights_int(cfg, values: np.ndarray, idx: np.ndarray) -> int:
    """One array row's (value, index) pairs as the flat bits of ``row_weights_layout``."""
    word, width = 0, 8 + cfg.idx_bits
    for c in range(cfg.cols):
        word |= ((int(values[c]) & 0xFF) | (int(idx[c]) << 8)) << (c * width)
    return word


def _weights(cfg, rng, mode):
    if mode == "dense":
        w = rng.integers(-128, 128, (cfg.rows, cfg.cols))
        return layout.dense_weights(cfg, w)
    n = int(mode.split(":")[0])
    keys = rng.random((cfg.groups, cfg.m, cfg.cols))
    keep = (np.argsort(keys, axis=1) < n).reshape(cfg.k_per_pass, cfg.cols)
    w = np.where(keep, rng.integers(-128, 128, (cfg.k_per_pass, cfg.cols)), 0)
    return layout.compress_nm(cfg, w)


def _run(cfg, tiles, rows_per_tile, seed):
    """Preload tile t+1 while tile t streams (gaps in x_valid); swap between tiles."""
    dut = SystolicArray(config=cfg)
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, (rows_per_tile, cfg.k_per_pass)).astype(np.int8)
          for _ in tiles]
    got: list[list[np.ndarray]] = [[] for _ in tiles]
    lat: list[int] = []

    async def preload(ctx, values, idx):
        for r in reversed(range(cfg.rows)):          # shift chain: last row goes in first
            ctx.set(dut.w_in.as_value(), _row_weights_int(cfg, values[r], idx[r]))
            ctx.set(dut.w_shift, 1)
            await ctx.tick()
        ctx.set(dut.w_shift, 0)

    async def bench(ctx):
        await preload(ctx, *tiles[0])
        cycle = 0
        for t in range(len(tiles)):
            ctx.set(dut.swap, 1)
            await ctx.tick()
            ctx.set(dut.swap, 0)
            cycle += 1
            sent = {}
            p = 0
            nxt = t + 1
            shifts = list(reversed(range(cfg.rows))) if nxt < len(tiles) else []
            while len(got[t]) < rows_per_tile:
                if p < rows_per_tile and rng.random() < 0.7:
                    x = layout.pack_act_entries(cfg, xs[t][p:p + 1])[0]
                    ctx.set(dut.x.as_value(), int.from_bytes(x.tobytes(), "little"))
                    ctx.set(dut.x_valid, 1)
                    sent[p] = cycle
                    p += 1
                else:
                    ctx.set(dut.x_valid, 0)
                    ctx.set(dut.x.as_value(), int(rng.integers(0, 2**62)))   # garbage must not matter
                if shifts:                       # overlap the next tile's preload
                    r = shifts.pop(0)
                    ctx.set(dut.w_in.as_value(), _row_weights_int(cfg, tiles[nxt][0][r], tiles[nxt][1][r]))
                    ctx.set(dut.w_shift, 1)
                else:
                    ctx.set(dut.w_shift, 0)
                if ctx.get(dut.y_valid):
                    raw = ctx.get(dut.y.as_value())
                    y = np.frombuffer(raw.to_bytes(4 * cfg.cols, "little"), "<i4")
                    lat.append(cycle - sent[len(got[t])])
                    got[t].append(y.copy())
                await ctx.tick()
                cycle += 1
            ctx.set(dut.x_valid, 0)
            ctx.set(dut.w_shift, 0)
            assert not shifts

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for t, (values, idx) in enumerate(tiles):
        want = (xs[t].astype(np.int64) @ layout.effective_weights(cfg, values, idx))
        want = want.astype(np.uint32).view(np.int32)
        np.testing.assert_array_equal(np.array(got[t]), want)
    assert set(lat) == {dut.latency}


@pytest.mark.parametrize("name,modes", [("4x4-n2m4", ("dense", "2:4", "1:4")),
                                        ("8x8-n2m8", ("2:8", "dense", "1:8")),
                                        ("16x16-n1m16", ("1:16",))])
def test_array_matches_numpy(name, modes):
    cfg = PRESETS[name]
    rng = np.random.default_rng(1)
    tiles = [_weights(cfg, rng, md) for md in modes]
    _run(cfg, tiles, rows_per_tile=max(cfg.rows, 6), seed=2)


def test_array_extreme_values_wrap():
    """All -128: products of +16384 summed over k_per_pass stay exact; psum wraps at 32 bits
    only by design (checked via the same wrapping reference)."""
    cfg = PRESETS["4x4-n2m4"]
    values = np.full((cfg.rows, cfg.cols), -128, np.int8)
    idx = np.tile(np.arange(cfg.cols) % cfg.m, (cfg.rows, 1)).astype(np.uint8)
    _run(cfg, [(values, idx)], rows_per_tile=3, seed=3)
