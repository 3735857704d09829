"""Unit tests of the systolic array in ``amaranth.sim`` against numpy (``x @ W_eff``)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsa.hw import layout
from sparsa.hw.array import SystolicArray
from sparsa.hw.config import PRESETS
from sparsa.hw.timing import swap_wave_cycles


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
    """Stream the tiles' rows in one sequence with random gaps; the first row of every tile
    carries ``x_swap`` (or the swap goes alone on an empty cycle just before it), so a tile's
    rows enter while the previous tile's rows are still in the array. The next tile's
    preload shifts only after the swap wave has passed the last PE
    (``swap_wave_cycles``), and a tile's swap waits for its preload."""
    dut = SystolicArray(config=cfg)
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, (rows_per_tile, cfg.k_per_pass)).astype(np.int8)
          for _ in tiles]
    seq = [(t, p) for t in range(len(tiles)) for p in range(rows_per_tile)]
    got: list[np.ndarray] = []
    lat: list[int] = []
    wave = swap_wave_cycles(cfg) - 1       # shifts start >= swap_wave cycles after the swap

    async def preload(ctx, values, idx):
        for r in reversed(range(cfg.rows)):          # shift chain: last row goes in first
            ctx.set(dut.w_in.as_value(), _row_weights_int(cfg, values[r], idx[r]))
            ctx.set(dut.w_shift, 1)
            await ctx.tick()
        ctx.set(dut.w_shift, 0)

    async def bench(ctx):
        await preload(ctx, *tiles[0])
        cycle = 0
        sent: list[int] = []
        i = 0
        loaded = 1                  # tiles preloaded so far
        shifts: list[int] = []
        swap_at = -10**9            # cycle of the last swap flag
        alone = False               # this tile's swap went on an empty cycle
        while len(got) < len(seq):
            ctx.set(dut.x_swap, 0)
            ctx.set(dut.x_valid, 0)
            ctx.set(dut.x.as_value(), int(rng.integers(0, 2**62)))   # garbage must not matter
            if i < len(seq) and rng.random() < 0.7:
                t, p = seq[i]
                first = p == 0
                if not first or (loaded > t and not shifts):
                    if first and not alone and rng.random() < 0.3:
                        ctx.set(dut.x_swap, 1)          # the swap alone, the row next cycle
                        alone, swap_at = True, cycle
                    else:
                        x = layout.pack_act_entries(cfg, xs[t][p:p + 1])[0]
                        ctx.set(dut.x.as_value(), int.from_bytes(x.tobytes(), "little"))
                        ctx.set(dut.x_valid, 1)
                        if first and not alone:
                            ctx.set(dut.x_swap, 1)
                            swap_at = cycle
                        alone = False
                        sent.append(cycle)
                        i += 1
            nxt = loaded
            if not shifts and nxt < len(tiles) and i > 0 and seq[i - 1][0] == nxt - 1 \
                    and cycle > swap_at + wave:
                shifts = list(reversed(range(cfg.rows)))
            if shifts:                                   # overlap the next tile's preload
                r = shifts.pop(0)
                ctx.set(dut.w_in.as_value(), _row_weights_int(cfg, tiles[nxt][0][r],
                                                              tiles[nxt][1][r]))
                ctx.set(dut.w_shift, 1)
                if not shifts:
                    loaded += 1
            else:
                ctx.set(dut.w_shift, 0)
            if ctx.get(dut.y_valid):
                raw = ctx.get(dut.y.as_value())
                got.append(np.frombuffer(raw.to_bytes(4 * cfg.cols, "little"), "<i4").copy())
                lat.append(cycle - sent[len(got) - 1])
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for t, (values, idx) in enumerate(tiles):
        want = (xs[t].astype(np.int64) @ layout.effective_weights(cfg, values, idx))
        want = want.astype(np.uint32).view(np.int32)
        np.testing.assert_array_equal(np.array(got[t * rows_per_tile:(t + 1) * rows_per_tile]),
                                      want)
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
