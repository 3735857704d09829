"""Dense vs sparse compute vs load-as-sparse on a skinny (decode-like, batch 1) network, and
the cost-based per-layer choice."""

import dataclasses
import json

import pytest
from sparsa.compiler import compile_workload
from sparsa.compiler.options import CompileOptions
from sparsa.hw.config import PRESETS
from sparsa.sim.api import simulate
from sparsa.sim.limits import limit_rows, pattern_ratio
from sparsa.sim.modes import choose_modes, compare_modes
from sparsa.workloads.graph import GraphBuilder

from sparsa.cli import main


def decode_mlp(width=512, layers=3):
    """GPT-2-like decode step slice: batch 1, one token, a chain of linear layers."""
    b = GraphBuilder("decode-mlp")
    x = b.input("x", (1, width))
    for i in range(layers):
        x = b.op("gelu", b.linear(x, width, name=f"fc{i}"), name=f"act{i}")
    return b.build()


@pytest.fixture(scope="module")
def bw_limited():
    return compare_modes(decode_mlp(), "16x16-n2m4-bw4", "2:4")


def test_load_sparse_beats_dense_on_bandwidth_limited_decode(bw_limited):
    t = bw_limited["totals"]
    assert t["load-sparse"]["dram_read_bytes"] < 0.6 * t["dense"]["dram_read_bytes"]
    assert t["load-sparse"]["cycles"] < t["dense"]["cycles"]
    # on an n2m4 array 2:4 also fits sparse compute, which needs half the tiles
    assert t["sparse"]["cycles"] <= t["load-sparse"]["cycles"]
    assert t["auto"]["cycles"] <= min(t[v]["cycles"] for v in ("dense", "sparse",
                                                               "load-sparse")) * 1.01
    assert bw_limited["chosen"] == {"sparse": 3}


def test_auto_picks_load_sparse_when_the_pattern_does_not_fit():
    """3:4 weights on an n=2, m=4 array: sparse compute is impossible (3 non-zeros per
    4-window, and two passes of 2 would be no faster than dense), load-as-sparse still
    stores 3 of every 4 weights."""
    cfg = PRESETS["16x16-n2m4-bw4"]
    rep = compare_modes(decode_mlp(), cfg, "3:4")
    t = rep["totals"]
    assert t["sparse"]["cycles"] == t["dense"]["cycles"]        # fell back to dense
    assert t["load-sparse"]["cycles"] < 0.8 * t["dense"]["cycles"]
    assert rep["chosen"] == {"load-sparse": 3}
    assert t["auto"]["cycles"] == t["load-sparse"]["cycles"]
    opt = choose_modes(decode_mlp(), cfg, "3:4")
    assert dict(opt.layer_modes) == {f"fc{i}": "load-sparse" for i in range(3)}


def test_pattern_denser_than_n_runs_in_sparse_passes():
    """2:4 weights on an n=1, m=16 array run in sparse mode in 2 passes of 1 per 4-window:
    half the weight tiles, 2x over dense on this memory-bound decode MLP, and faster than
    load-as-sparse (which still computes densely)."""
    cfg = dataclasses.replace(PRESETS["16x16-n1m16"], name="n1m16-bw4", dram_bytes_per_cycle=4)
    rep = compare_modes(decode_mlp(), cfg, "2:4")
    t = rep["totals"]
    assert t["sparse"]["cycles"] < 0.52 * t["dense"]["cycles"]
    assert t["sparse"]["cycles"] < t["load-sparse"]["cycles"]
    assert rep["chosen"] == {"sparse": 3}
    prog = compile_workload(decode_mlp(), cfg, sparsity="2:4", with_data=False)
    gemm = [ly for ly in prog.layers if ly.kind != "host"]
    assert all(ly.meta["passes"] == 2 and ly.meta["window"] == [4] for ly in gemm)
    assert pattern_ratio("2:4", cfg) == 2 and pattern_ratio("4:8", PRESETS["16x16-n2m8"]) == 2
    assert pattern_ratio("3:8", PRESETS["16x16-n2m8"]) == 2
    assert pattern_ratio("3:4", PRESETS["16x16-n2m4"]) == 1     # 2 passes of 2:4 = dense
    assert pattern_ratio("unstructured:0.125", PRESETS["16x16-n2m8"]) == 4   # the array's m/n
    assert pattern_ratio("unstructured:0.125") == 8


def test_load_sparse_is_not_chosen_for_dense_weights():
    prog = compile_workload(decode_mlp(), PRESETS["16x16-n2m4-bw4"], sparsity="dense",
                            with_data=False, options=CompileOptions(sparse_mode="load-sparse"))
    assert {ly.meta["mode"][0] for ly in prog.layers if ly.kind != "host"} == {"dense"}
    assert simulate(prog).cycles > 0


def _topo(tmp_path):
    p = tmp_path / "tiny.csv"
    p.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                 "Channels, Num Filter, Strides,\nconv1, 10, 10, 3, 3, 32, 32, 1,\n"
                 "conv2, 8, 8, 3, 3, 32, 64, 1,\n")
    return str(p)


def test_limits_rows_and_cli(tmp_path, capsys):
    cfg = PRESETS["16x16-n1m16"]
    assert pattern_ratio("1:32", cfg) == 16 and pattern_ratio("2:4", cfg) == 2
    assert pattern_ratio("2:4", PRESETS["16x16-n2m4"]) == 2
    rows = limit_rows(_topo(tmp_path), cfg, ["dense", "2:4", "1:16"])
    by = {r["sparsity"]: r for r in rows}
    # two sparse passes of 1 per 4-window: 2x fewer array passes, the input read twice
    assert by["2:4"]["ideal"] == 2 and 1.05 < by["2:4"]["speedup"] <= 2.0
    assert by["dense"]["mode_notes"] == [] and by["1:16"]["mode_notes"] == []
    assert any("sparse mode in 2 passes of 1 non-zero per 4-window: 2:4 has more than 1 "
               "non-zero in some aligned 2-window; every activation tile is read by 2 weight tiles (a core "
               "with n = 2 and m = 4 runs it at 2x)" in x for x in by["2:4"]["mode_notes"])
    # 1:16 reads every activation of the 16-wide windows but computes 16x fewer passes: on
    # these small convolutions it runs faster than dense until DRAM bandwidth stops it
    assert by["1:16"]["speedup"] > 1.3 and by["1:16"]["ideal"] == 16
    assert by["1:16"]["limiting"] == "DRAM bandwidth"
    for r in rows:
        shares = [r[k] for k in r if k.startswith("share_")]
        assert abs(sum(shares) - 1) < 0.01
    main(["limits", _topo(tmp_path), "--config", "16x16-n1m16", "--sparsity", "dense,1:16",
          "--json"])
    out = json.loads(capsys.readouterr().out)
    assert [r["sparsity"] for r in out] == ["dense", "1:16"]




def test_training_ideal_counts_the_dense_weight_gradient(tmp_path):
    """A training step's ideal is that of its three GEMMs (equal MACs per layer): forward
    and backward-data at their patterns' rates, the weight gradient dense."""
    cfg = PRESETS["16x16-n2m8"]
    bi = "fwd=2:8,bwd=2:8,method=bimask"
    assert pattern_ratio(bi, cfg) == 4 and pattern_ratio(bi, cfg, train=True) == 2
    assert pattern_ratio("2:8", cfg, train=True) == pytest.approx(4 / 3)   # forward-only
    assert pattern_ratio("dense", cfg, train=True) == 1
    rows = limit_rows(_topo(tmp_path), cfg, ["dense", bi], train=True)
    assert rows[1]["ideal"] == 2 and 1.2 < rows[1]["speedup"] <= 2.0
    assert rows[1]["of_ideal"] == round(rows[1]["speedup"] / 2, 4)

def test_compare_prints_the_limiting_factors(tmp_path, capsys, monkeypatch):
    """``sparsa compare`` carries the table of ``sparsa limits`` (per point, with the same
    figures): speed-up against the ideal m/n and the share of the array's time per limit."""
    from sparsa.cmd_sim import compare_rows
    sps = ["dense", "2:4", "1:16"]
    want = {r["sparsity"]: r for r in limit_rows(_topo(tmp_path), "16x16-n1m16", sps)}
    got = compare_rows(_topo(tmp_path), "16x16-n1m16", ["ws"], sps)
    keys = ["ideal", "of_ideal", "stops_m_over_n", "share_compute", "share_fill-drain",
            "share_DRAM", "share_window", "cycles", "dense_cycles", "dram_bytes"]
    for r in got:
        assert {k: r[k] for k in keys} == {k: want[r["sparsity"]][k] for k in keys}
        assert round(r["speedup"], 4) == want[r["sparsity"]]["speedup"]
    assert got[2]["stops_m_over_n"] == "DRAM" and got[2]["of_ideal"] < 0.5
    monkeypatch.setenv("COLUMNS", "140")     # header cells unwrapped
    main(["compare", _topo(tmp_path), "--config", "16x16-n1m16", "--sparsity", "dense,1:16"])
    out = capsys.readouterr().out
    assert "limiting factors" in out and "ideal m/n" in out and "stops m/n" in out
    assert "16x" in out and "DRAM" in out

def test_weight_modes_cli(tmp_path, capsys):
    main(["weight-modes", _topo(tmp_path), "--config", "16x16-n2m4-bw4", "--layers", "2"])
    out = capsys.readouterr().out
    assert "load-as-sparse" in out and "auto chose" in out
    assert "energy table" in out and "horowitz45" in out


def test_sparse_mode_best_in_compile_and_simulate(tmp_path, capsys):
    """``--sparse-mode best``: the model's per-layer choice, as a program and in simulate."""
    topo = tmp_path / "decode.csv"
    topo.write_text("Layer, M, N, K\nfc0, 1, 512, 512\nfc1, 1, 512, 512\n")
    cfg = tmp_path / "n2m4-bw4.yaml"
    cfg.write_text("preset: 16x16-n2m4\nname: n2m4-bw4\ndram_bytes_per_cycle: 4\n")
    args = [str(topo), "--config", str(cfg), "--sparsity", "3:4"]
    main(["simulate", *args, "--json"])
    auto = json.loads(capsys.readouterr().out)
    main(["simulate", *args, "--sparse-mode", "best", "--json"])
    best = json.loads(capsys.readouterr().out)
    assert {r["mode"] for r in auto["layers"]} == {"dense"}      # 3:4 does not fit n2m4
    assert {r["mode"] for r in best["layers"]} == {"load-sparse"}
    assert best["cycles"] < auto["cycles"]
    assert best["dram_read_bytes"] < 0.85 * auto["dram_read_bytes"]
    main(["compile", *args, "--sparse-mode", "best", "--no-data", "-o", str(tmp_path / "p")])
    capsys.readouterr()
    from sparsa.sim.api import load_program
    prog = load_program(str(tmp_path / "p"))
    assert [ly.meta["mode"] for ly in prog.layers if ly.kind != "host"] == \
        [["load-sparse"], ["load-sparse"]]
    assert simulate(prog).cycles == best["cycles"]
