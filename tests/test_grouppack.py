"""Group packing (compiler/grouppack.py): block-diagonal GEMMs of several groups."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sparsa.compiler import CompileOptions, compile_workload
from sparsa.compiler.grouppack import group_rows, pack_inputs, pack_run, pack_size, pack_weights
from sparsa.compiler.reference import RefGraph
from sparsa.hw.config import PRESETS


@settings(max_examples=60, deadline=None)
@given(gp=st.integers(1, 6), taps=st.integers(1, 9), cg=st.integers(1, 6), q=st.integers(1, 3),
       m=st.sampled_from([2, 4, 8]), sparse=st.booleans(), seed=st.integers(0, 2**16))
def test_packed_product_is_the_groups_products(gp, taps, cg, q, m, sparse, seed):
    """X_packed @ W_packed = [X_0 @ W_0 | X_1 @ W_1 | ...] for any channels per group,
    taps and padding run; the rows of the groups are disjoint and inside the packed K."""
    rng = np.random.default_rng(seed)
    k = taps * cg
    run = pack_run(cg, m, sparse)
    xs = [rng.integers(-128, 128, (5, k)).astype(np.int64) for _ in range(gp)]
    w = rng.integers(-128, 128, (gp, k, q)).astype(np.int64)
    xp, wp = pack_inputs(xs, cg, run), pack_weights(w, cg, run)
    assert xp.shape == (5, taps * gp * run) and wp.shape == (taps * gp * run, gp * q)
    np.testing.assert_array_equal(xp @ wp, np.concatenate(
        [x @ wj for x, wj in zip(xs, w, strict=True)], 1))
    rows = np.concatenate([group_rows(k, cg, gp, j, run) for j in range(gp)])
    assert len(set(rows.tolist())) == gp * k and rows.max() < taps * gp * run


@settings(max_examples=40, deadline=None)
@given(gp=st.integers(2, 8), taps=st.integers(1, 9), cg=st.integers(1, 12),
       m=st.sampled_from([4, 8]), seed=st.integers(0, 2**16))
def test_packing_keeps_every_groups_pattern_in_its_windows(gp, taps, cg, m, seed):
    """With one channel per group (depthwise) every column of a pack has at most one
    non-zero per aligned m-window of m / gp taps (one when the pack fills a window); with the padded run, a pattern along K whose windows
    hold at most n non-zeros keeps at most n per packed window when a group's K is one
    run (taps = 1) or its channels are a multiple of m."""
    rng = np.random.default_rng(seed)
    def most_per_window(wp):
        padded = np.zeros((-(-wp.shape[0] // m) * m, gp), np.int8)
        padded[:wp.shape[0]] = wp
        return padded.reshape(-1, m, gp).sum(axis=1).max()

    if cg == 1:      # depthwise: dense groups, still one non-zero per window
        assert most_per_window(pack_weights(np.ones((gp, taps, 1), np.int8), 1)) <= \
            -(-m // gp)
        return
    if taps > 1 and cg % m:
        cg = m * (1 + cg // m)
    k = taps * cg
    n = 2
    w = np.zeros((gp, k, 1), np.int8)
    for j in range(gp):        # n random rows of every aligned m-window of each group's K
        for w0 in range(0, k, m):
            rows = rng.choice(np.arange(w0, min(k, w0 + m)), min(n, min(k, w0 + m) - w0),
                              replace=False)
            w[j, rows, 0] = 1
    assert most_per_window(pack_weights(w, cg, pack_run(cg, m, True))) <= n


def test_pack_size_divides_groups_and_fills_the_columns():
    assert pack_size(960, 1, 16) == 16 and pack_size(24, 1, 16) == 12
    assert pack_size(32, 4, 16) == 4 and pack_size(7, 1, 16) == 7
    assert pack_size(8, 16, 16) == 1 and pack_size(13, 2, 16) == 1


def _dw_graph(channels=32, hw=6, seed=0):
    x = np.random.default_rng(seed).integers(-128, 128, (1, hw, hw, channels)).astype(np.int8)
    g = RefGraph("dw", x, seed=seed)
    g.conv("dw", "x", channels, channels, 3, groups=channels)
    g.evaluate("dense")
    return g


def test_packing_is_numerically_invisible_and_saves_tiles_and_bytes():
    """The same depthwise layer with and without packing: equal outputs group by group
    (read by the group's own name), fewer weight tiles, fewer instructions, fewer DRAM
    bytes and fewer model cycles with packing."""
    from sparsa.compiler.executor import run_program
    from sparsa.compiler.gemms import read_output
    from sparsa.sim.api import simulate
    g = _dw_graph()
    cfg = PRESETS["16x16-n2m4"]
    on = compile_workload(g, cfg, sparsity="dense", seed=0)
    off = compile_workload(g, cfg, sparsity="dense", seed=0,
                           options=CompileOptions(pack_groups=False))
    don, doff = run_program(on), run_program(off)
    for gi, want in enumerate(g.gemm_out["dw"]):
        np.testing.assert_array_equal(read_output(on, don, f"dw/g{gi}.y"), want)
        np.testing.assert_array_equal(read_output(off, doff, f"dw/g{gi}.y"), want)
    (lon,), (loff,) = ([ly for ly in p.layers if ly.kind != "host"] for p in (on, off))
    assert lon.meta["ops"] == ["dw/g0-15", "dw/g16-31"] and lon.meta["pack"] == 16
    assert "pack" not in loff.meta and len(loff.meta["ops"]) == 32
    # 2 packs x ceil(144 / 32) sparse tiles (1 non-zero per 4-window) vs 32 x 1
    assert lon.meta["tiles"] == 10 and loff.meta["tiles"] == 32
    assert lon.dense_macs == loff.dense_macs and lon.nonzero_macs == loff.nonzero_macs
    son, soff = on.summary(), off.summary()
    assert son["macs_issued"] < soff["macs_issued"] / 3
    assert son["dram_read_bytes"] + son["dram_write_bytes"] < \
        soff["dram_read_bytes"] + soff["dram_write_bytes"]
    assert simulate(on).cycles < simulate(off).cycles
    assert len(on.instructions) < len(off.instructions)


def test_data_free_packs_do_not_skip_tiles_the_data_would_keep():
    """Without data, 2:4 per group along the taps is stood in for with rows rotated per
    group, so a pack of a depthwise layer has the data's tile count (no all-zero taps)."""
    g = _dw_graph(channels=16, hw=8, seed=2)
    g.evaluate("2:4")
    cfg = PRESETS["16x16-n2m4"]
    a = compile_workload(g, cfg, sparsity="2:4", seed=2)
    b = compile_workload(g, cfg, sparsity="2:4", seed=2, with_data=False)
    ta, tb = ([ly.meta["tiles"] for ly in p.layers if ly.kind != "host"] for p in (a, b))
    assert ta == tb == [5]


def test_mobilenetv2_depthwise_layers_speed_up():
    """MobileNetV2 (batch 1) on 16x16-n2m4: packing cuts the whole network's model cycles
    and DRAM bytes (its depthwise layers were two thirds of the cycles)."""
    from sparsa.sim.api import simulate
    cfg = PRESETS["16x16-n2m4"]
    on = simulate(compile_workload("mobilenetv2", cfg, with_data=False))
    off = simulate(compile_workload("mobilenetv2", cfg, with_data=False,
                                    options=CompileOptions(pack_groups=False)))
    assert on.cycles * 1.4 < off.cycles       # measured 1.45x
    def traffic(r):
        return r.totals["dram_read"] + r.totals["dram_write"]
    assert traffic(on) < traffic(off) / 2      # measured 44.0 MB vs 95.8 MB


def test_auto_mode_times_a_narrower_window_for_padded_k():
    """A depthwise pack of 16 channels has K = 144; on 16x16-n1m16 the widest window's
    sparse tile is 256 entries, so it would stream 112 entries of padding per row:
    sparse_mode="auto" times the narrower windows and dense mode and takes a faster one
    (noted), sparse_mode="sparse" keeps the widest; both compute the same outputs."""
    from sparsa.compiler.executor import run_program
    from sparsa.compiler.gemms import read_output
    from sparsa.sim.api import simulate
    g = _dw_graph(channels=16, hw=40, seed=4)
    cfg = PRESETS["16x16-n1m16"]
    auto = compile_workload(g, cfg, sparsity="dense", seed=4)
    widest = compile_workload(g, cfg, sparsity="dense", seed=4,
                              options=CompileOptions(sparse_mode="sparse"))
    (la,), (lw,) = ([ly for ly in p.layers if ly.kind != "host"] for p in (auto, widest))
    assert lw.meta["mode"] == ["sparse"] and lw.meta["window"] == [16]
    assert la.meta["window"] != [16] and any("timed" in n for n in la.meta["notes"])
    assert simulate(auto).cycles < simulate(widest).cycles
    for p in (auto, widest):
        dram = run_program(p)
        for gi, want in enumerate(g.gemm_out["dw"]):
            np.testing.assert_array_equal(read_output(p, dram, f"dw/g{gi}.y"), want)


def test_os_and_is_models_run_the_packed_gemms():
    """The output- and input-stationary models read a packed layer's packed shape (its
    mode and window are the packed GEMM's): packing cuts their cycles too, and a program
    whose meta names an impossible pack is rejected when loaded."""
    import pytest
    from sparsa.compiler.errors import CompileError
    from sparsa.compiler.program import Program
    from sparsa.sim.api import simulate
    cfg = PRESETS["16x16-n2m4"]
    on = compile_workload("mobilenetv2", cfg, with_data=False)
    off = compile_workload("mobilenetv2", cfg, with_data=False,
                           options=CompileOptions(pack_groups=False))
    for df in ("os", "is"):
        assert simulate(on, dataflow=df).cycles < simulate(off, dataflow=df).cycles
    g = _dw_graph(channels=16, hw=4)
    prog = compile_workload(g, cfg, sparsity="dense", seed=0)
    (ly,) = [ly for ly in prog.layers if ly.kind != "host"]
    ly.meta["pack"] = 3
    with pytest.raises(CompileError, match="meta.pack=3; allowed an integer >= 1 dividing"):
        Program.from_bytes(prog.to_bytes())


def test_compile_cli_packs_unless_told_not_to(tmp_path):
    """`sparsa compile` packs by default (the layer meta has ``pack``) and runs group by
    group with --no-pack-groups (one GEMM per group, more instructions)."""
    import json

    from click.testing import CliRunner

    from sparsa.cli import cli
    counts = {}
    for flag in ((), ("--no-pack-groups",)):
        out = tmp_path / ("off" if flag else "on")
        run = CliRunner().invoke(cli, ["compile", "mobilenetv2", "--no-data", "-o", str(out),
                                       "--json", *flag])
        assert run.exit_code == 0, run.output
        prog = json.loads((out / "program.json").read_text())
        dw = [ly for ly in prog["layers"] if ly["name"] == "block0.dw"][0]
        assert ("pack" in dw["meta"]) == (not flag)
        counts[bool(flag)] = json.loads(run.output)["instructions"]
    assert counts[False] < counts[True]
