"""Output-/input-stationary model variants and ``sparsa compare``."""

import csv
import json

import pytest
from compiler_helpers import ShapeLayer, ShapeWorkload
from sparsa.compiler import compile_workload
from sparsa.hw.config import PRESETS
from sparsa.hw.isa import Unit
from sparsa.hw.timing import COMPUTE_OVERHEAD, compute_cycles
from sparsa.sim.api import simulate
from sparsa.sim.dataflows import variant_ops
from sparsa.sim.errors import SimError

from sparsa.cli import main

CFG = PRESETS["16x16-n2m4"]
P, K, Q = 200, 256, 64
ONE = ShapeWorkload("one", [ShapeLayer("g", "linear", ("x",), (P, K, Q))])


def _prog(spec, cfg=CFG, wl=ONE):
    return compile_workload(wl, cfg, sparsity=spec, with_data=False)


def _exec(ops):
    return [c for u, c in zip(ops.unit, ops.cycles, strict=True) if u == int(Unit.EXEC)]


@pytest.mark.parametrize("spec", ["dense", "2:4"])
def test_output_stationary_folds(spec):
    ops = variant_ops(_prog(spec), CFG, "os")
    sparse = spec != "dense"
    T = -(-K // CFG.m) * CFG.n if sparse else K
    ex = _exec(ops)
    assert len(ex) == -(-P // CFG.rows) * -(-Q // CFG.cols)
    assert set(ex) == {T + CFG.rows + CFG.cols + COMPUTE_OVERHEAD}
    assert sum(ops.window_cycles) == 0


@pytest.mark.parametrize("spec", ["dense", "2:4"])
def test_input_stationary_passes(spec):
    ops = variant_ops(_prog(spec), CFG, "is")
    kp = CFG.k_per_pass if spec != "dense" else CFG.rows
    ex = _exec(ops)
    assert len(ex) == -(-P // CFG.cols) * -(-K // kp)
    assert set(ex) == {compute_cycles(CFG, Q)}


def _loads(ops):
    return [b for u, b in zip(ops.unit, ops.beats, strict=True) if u == int(Unit.LOAD)]


def test_output_stationary_picks_the_order_that_reads_less():
    """Weights too big to stay on chip whole, one Q block of them small, all activations
    small: Q blocks outermost read each operand once (P blocks outermost would re-read
    the weights for each of the 16 P blocks)."""
    p, k, q = 256, 64, 1024
    wl = ShapeWorkload("wide", [ShapeLayer("g", "linear", ("x",), (p, k, q))])
    half = CFG.wgt_entries // 2
    assert -(-q // CFG.cols) * k > half >= k            # all weights do not fit, a block does
    ops = variant_ops(_prog("dense", wl=wl), CFG, "os")
    once = p * CFG.beats(k) + -(-q // CFG.cols) * k * CFG.beats(CFG.wgt_entry_bytes)
    assert sum(_loads(ops)) == once


def test_output_stationary_splits_deep_k_and_shares_weights_across_p_blocks():
    """A P block whose activations do not fit half the activation scratchpad: K is split
    into chunks whose partial sums accumulate (one STORE per output block, after the last
    chunk), and each weight block serves a super-block of P blocks."""
    from sparsa.sim.dataflows import _os_order
    p, k, q = 256, 4096, 64
    wl = ShapeWorkload("deep", [ShapeLayer("g", "linear", ("x",), (p, k, q))])
    ops = variant_ops(_prog("dense", wl=wl), CFG, "os")
    npb, nqb = p // CFG.rows, q // CFG.cols
    act_half = (CFG.act_entries // 2) * CFG.act_entry_bytes
    assert CFG.rows * k > act_half
    plan = _os_order(CFG, p, npb, nqb, 1, k, 1, CFG.wgt_entries // 2, act_half,
                     CFG.acc_entries // 2)
    kind, sup, units, qgroup, _ = plan
    assert kind == "t" and sup > 1 and units < k and qgroup == nqb
    stores = [u for u in ops.unit if u == int(Unit.STORE)]
    assert len(stores) == npb * nqb
    assert len(_exec(ops)) == npb * nqb * -(-k // units)
    # activations read once, weights once per super-block
    w_beats = nqb * k * CFG.beats(CFG.wgt_entry_bytes)
    a_beats = p * (k // units) * CFG.beats(units)
    assert sum(_loads(ops)) == a_beats + w_beats * -(-npb // sup)


def test_input_stationary_streams_each_weight_chunk_once_per_p_super_block():
    """Weights that do not stay on chip are streamed once for as many P blocks as the
    accumulator half holds partial sums of, not once per P block; the Q chunk is the one
    that reads the fewest bytes."""
    from sparsa.sim.dataflows import _is_chunks
    p, k, q = 16 * 64, 2048, 128
    wl = ShapeWorkload("deep", [ShapeLayer("g", "linear", ("x",), (p, k, q))])
    ops = variant_ops(_prog("dense", wl=wl), CFG, "is")
    nk, npb, half = k // CFG.rows, p // CFG.cols, CFG.acc_entries // 2
    w_entry = CFG.rows + -(-CFG.rows * CFG.idx_bits // 8)
    assert nk * q > CFG.wgt_entries // 2                # not resident

    def beats(qc, sup):      # DRAM beats read with Q chunks of qc and super-blocks of sup
        nq = -(-q // qc)
        return (-(-npb // sup) * nk * q * CFG.beats(w_entry)
                + nq * npb * nk * CFG.cols * CFG.beats(CFG.rows))
    qc, sup = _is_chunks(CFG, p, q, npb, nk, CFG.rows, w_entry, False,
                         CFG.wgt_entries // 2, half)
    assert sup > 1 and sup * qc <= half
    assert len(_exec(ops)) == npb * nk * -(-q // qc)
    assert sum(_loads(ops)) == beats(qc, sup)
    # better than one chunk of all Q (4 P blocks per super-block) and than 1 P block
    assert beats(qc, sup) < beats(q, half // q) < beats(q, 1)


@pytest.mark.parametrize("df", ["ws", "os", "is"])
def test_sparsity_speeds_up_every_dataflow_and_energy_reconciles(df):
    dense = simulate(_prog("dense"), dataflow=df)
    sparse = simulate(_prog("2:4"), dataflow=df, baseline=dense)
    assert 1.3 < sparse.speedup < 3  # > 2 when DRAM-bound: half the weight tiles to load
    assert sparse.totals["nonzero_macs"] == dense.totals["nonzero_macs"] // 2
    assert sparse.energy_pj < dense.energy_pj
    assert sum(sparse.energy.values()) == pytest.approx(sparse.energy_pj)
    assert sum(r["cycles"] for r in sparse.per_layer) == sparse.cycles


def test_narrow_window_link_limits_output_stationary():
    cfg = PRESETS["16x16-n2m8"]
    prog = _prog("2:8", cfg)
    wide = simulate(prog, dataflow="os")
    narrow = simulate(prog, dataflow="os", variant_options={"link_bytes_per_row": 1})
    assert narrow.cycles > wide.cycles
    assert narrow.limits["window_bw"] > 0 and wide.limits["window_bw"] == 0
    assert narrow.limiting == "window bandwidth"
    with pytest.raises(SimError, match="link_bytes_per_row=0 is invalid"):
        simulate(prog, dataflow="os", variant_options={"link_bytes_per_row": 0})


def test_variants_need_gemm_shapes():
    import numpy as np
    from sparsa.compiler.tilegen import build_gemm_program, random_gemm_specs
    prog = build_gemm_program(CFG, random_gemm_specs(CFG, np.random.default_rng(0), 1, "dense"))
    with pytest.raises(SimError, match="need GEMM shapes"):
        simulate(prog, dataflow="os")


def test_compare_rows_and_cli(tmp_path, capsys):
    from sparsa.cmd_sim import compare_rows
    net = ShapeWorkload("cmp", [ShapeLayer("c1", "conv", ("x",), (196, 144, 32)),
                                ShapeLayer("fc", "linear", ("c1",), (4, 512, 32))])
    rows = compare_rows(net, "16x16-n2m4", ["ws", "os", "is"], ["dense", "2:4"])
    assert [(r["dataflow"], r["sparsity"]) for r in rows] == [
        (d, s) for s in ("dense", "2:4") for d in ("ws", "os", "is")]
    for r in rows:
        assert r["limiting"] in ("compute", "fill-drain", "DRAM bandwidth", "window bandwidth")
        assert r["dram_bytes"] == r["dram_read_bytes"] + r["dram_write_bytes"]
        if r["sparsity"] == "dense":
            assert r["speedup"] == 1.0
        else:
            assert r["speedup"] > 1.0
    with pytest.raises(SystemExit) as e:
        main(["compare", "resnet18", "--dataflows", "ws,xs"])
    assert e.value.code == 2
    assert "dataflow 'xs' is not one of ws, os, is" in capsys.readouterr().err


def test_compare_cli_writes_csv(tmp_path, capsys):
    pytest.importorskip("sparsa.workloads.scalesim", reason="SCALE-Sim topology importer")
    topo = tmp_path / "small_gemm.csv"
    topo.write_text("Layer,M,N,K,\nfc,64,32,256,\n")
    out = tmp_path / "cmp.csv"
    main(["compare", str(topo), "--dataflows", "ws,is", "--sparsity", "dense,2:4",
          "--csv", str(out), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    with open(out) as f:
        got = list(csv.DictReader(f))
    assert [g["dataflow"] for g in got] == ["ws", "is", "ws", "is"]
    assert int(got[2]["cycles"]) == rows[2]["cycles"]


def test_compare_progress_bar_leaves_the_points_in_workers(monkeypatch):
    """The progress bar runs no thread of its own (with another thread running, the
    compiler keeps to one process: timing_jobs), so compare still forks its workers."""
    import threading

    import sparsa.sim.api as api

    from sparsa.cmd_sim import compare_rows
    seen = []
    real = api.run_points

    def spy(*a, **k):
        seen.append(threading.active_count())
        return real(*a, **k)
    monkeypatch.setattr(api, "run_points", spy)
    net = ShapeWorkload("bar", [ShapeLayer("fc", "linear", ("x",), (16, 64, 32))])
    before = threading.active_count()
    rows = compare_rows(net, "8x8-n2m4", ["ws"], ["dense", "2:4"], progress=True)
    assert seen == [before] and [r["sparsity"] for r in rows] == ["dense", "2:4"]
