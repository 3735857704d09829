"""run_point / simulate API and the ``sparsa simulate`` CLI."""

import json
import math

import numpy as np
import pytest
from compiler_helpers import ShapeLayer, ShapeWorkload
from sparsa.compiler import compile_workload
from sparsa.compiler.reference import TrainGraph
from sparsa.hw.config import PRESETS
from sparsa.sim.api import run_point, simulate
from sparsa.sim.energy import COMPONENTS
from sparsa.sim.errors import SimError

from sparsa.cli import main

CFG = PRESETS["16x16-n2m4"]
WL = ShapeWorkload("api", [
    ShapeLayer("c1", "conv", ("x",), (196, 72, 32)),
    ShapeLayer("r1", "relu", ("c1",), out_elements=196 * 32),
    ShapeLayer("c2", "conv", ("r1",), (196, 288, 64)),
    ShapeLayer("fc", "linear", ("c2",), (4, 512, 32))])

KEYS = ["workload", "config", "rows", "cols", "n", "m", "sparsity", "dataflow", "train",
        "cycles", "dense_cycles", "speedup", "utilisation", "macs", "dram_read_bytes",
        "dram_write_bytes", "sram_bytes", "energy_pj", "tops_w", "edp", "runtime_s"]


def test_run_point_is_flat_json_scalars():
    r = run_point(WL, CFG, "2:4")
    for k in KEYS + [f"energy_{c}_pj" for c in COMPONENTS]:
        assert k in r, k
    for k, v in r.items():
        assert v is None or isinstance(v, str | int | float | bool), k
    json.dumps(r)
    assert r["config"] == CFG.key and r["dataflow"] == "ws" and r["train"] is False
    assert r["speedup"] == pytest.approx(r["dense_cycles"] / r["cycles"], rel=1e-5)
    assert 1.2 < r["speedup"] <= 2.0
    assert r["energy_pj"] == pytest.approx(sum(r[f"energy_{c}_pj"] for c in COMPONENTS),
                                           rel=1e-6)
    peak = CFG.rows * CFG.cols * CFG.m / CFG.n
    assert r["utilisation"] == pytest.approx(r["dense_macs"] / (peak * r["cycles"]), rel=1e-5)
    d = run_point(WL, CFG, "dense")
    assert d["speedup"] == 1.0 and d["cycles"] == r["dense_cycles"]
    # a dense workload can use at most n/m of the sparse array's dense-equivalent peak
    assert d["utilisation"] <= CFG.n / CFG.m


def test_non_gemm_work_is_counted_beside_the_core():
    prog = compile_workload(WL, CFG, sparsity="2:4", with_data=False)
    host = [ly for ly in prog.layers if ly.kind == "host"]
    elems = sum(int(ly.meta["elements"]) for ly in host)
    assert {ly.name for ly in host} >= {"r1", "c2.im2col"} and elems > 196 * 32
    res = simulate(prog, baseline=simulate(compile_workload(WL, CFG, sparsity="dense",
                                                            with_data=False)))
    assert res.host_elements == elems and res.host_cycles == math.ceil(elems / 16)
    # the same host work on both sides dilutes the speed-up, never reverses it
    assert 1.0 < res.speedup_with_host < res.speedup
    assert res.speedup_with_host == pytest.approx(
        (res.dense_cycles + res.host_cycles) / (res.cycles + res.host_cycles))
    r = run_point(WL, CFG, "2:4")
    assert r["host_cycles"] == res.host_cycles
    assert r["speedup_with_host"] == pytest.approx(res.speedup_with_host, rel=1e-5)


def test_run_point_training_phases():
    x = np.random.default_rng(5).integers(-128, 128, (10, 24)).astype(np.int8)
    ref = TrainGraph(x, [24, 32, 32, 16], "2:4", seed=0)
    r = run_point(ref, PRESETS["8x8-n2m4"], "2:4", train=True)
    for k in ("cycles_fwd", "cycles_bwd_data", "cycles_wgrad"):
        assert r[k] > 0
    assert r["cycles_fwd"] + r["cycles_bwd_data"] + r["cycles_wgrad"] <= r["cycles"]


def test_run_point_errors():
    with pytest.raises(SimError, match="unknown key 'bogus'"):
        run_point(WL, CFG, options={"bogus": 1})
    with pytest.raises(SimError, match="dataflow='rs' is invalid; allowed: ws, os, is"):
        run_point(WL, CFG, dataflow="rs")
    with pytest.raises(SimError, match="unknown model option"):
        run_point(WL, CFG, options={"model": {"dram_speed": 2}})


def test_simulate_rejects_other_config():
    prog = compile_workload(WL, CFG, sparsity="2:4", with_data=False)
    with pytest.raises(SimError, match="differs from the program's config"):
        simulate(prog, PRESETS["16x16-n2m8"])


def test_slower_dram_costs_cycles_not_energy():
    a = run_point(WL, CFG, "2:4")
    b = run_point(WL, CFG, "2:4", options={"model": {"dram_beat_cycles": 4}})
    assert b["cycles"] > a["cycles"]
    assert b["energy_pj"] == pytest.approx(a["energy_pj"])
    assert b["edp"] > a["edp"]


def test_cli_simulate_program_dir(tmp_path, capsys):
    prog = compile_workload(WL, CFG, sparsity="2:4", with_data=False)
    prog.save(tmp_path / "program.sprg")
    main(["simulate", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["cycles"] == simulate(prog).cycles
    assert [r["layer"] for r in out["layers"]] == ["c1", "c2", "fc"]
    assert out["energy_table_values"]["dram_pj_per_64b"] == 2000
    main(["simulate", str(tmp_path / "program.sprg")])
    text = capsys.readouterr().out
    assert "energy table" in text and "horowitz45" in text and "per layer" in text
    assert f"cycles            {out['cycles']}" in text
    # a folder holding only the readable form runs it
    js = tmp_path / "json-only"
    js.mkdir()
    (js / "program.json").write_bytes(prog.json_bytes())
    main(["simulate", str(js), "--json"])
    assert json.loads(capsys.readouterr().out)["cycles"] == out["cycles"]


def test_cli_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["simulate", str(tmp_path)])
    assert e.value.code == 2
    assert "no program.sprg" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["simulate", str(tmp_path / "x.sprg"), "--energy-table", "nope"])
    assert e.value.code == 2


def test_per_layer_cycles_add_up():
    prog = compile_workload(WL, CFG, sparsity="2:4", with_data=False)
    res = simulate(prog)
    assert sum(r["cycles"] for r in res.per_layer) == res.cycles
    assert all(r["cycles"] >= 0 for r in res.per_layer)
    assert not math.isnan(res.utilisation)


def test_limiting_factor_follows_the_bottleneck():
    prog = compile_workload(WL, CFG, sparsity="2:4", with_data=False)
    fast = simulate(prog, options={"dram_beat_cycles": 1})
    slow = simulate(prog, options={"dram_beat_cycles": 16})
    assert slow.limiting == "DRAM bandwidth"
    assert slow.limits["dram_bw"] > fast.limits["dram_bw"]
    assert slow.limits["compute"] == fast.limits["compute"]     # same rows streamed


def test_cli_vs_dense_forked_equals_inline(tmp_path, capsys, monkeypatch):
    """--vs-dense runs the dense baseline in a forked worker when there are two cores; the
    report is the same as running it inline, and matches the dense program simulated."""
    csv = tmp_path / "net.csv"
    csv.write_text("Layer name, M, N, K,\nfc1, 64, 96, 128,\nfc2, 64, 32, 96,\n")
    args = ["simulate", str(csv), "--config", "8x8-n2m4", "--sparsity", "2:4", "--vs-dense",
            "--json"]

    def report() -> dict:
        main(args)
        out = json.loads(capsys.readouterr().out)
        out.pop("total_wall_s")
        out.pop("runtime_s", None)
        return out

    forked = report()
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    inline = report()
    assert forked == inline
    dense = simulate(compile_workload(str(csv), PRESETS["8x8-n2m4"], sparsity="dense",
                                      with_data=False))
    assert forked["dense_cycles"] == dense.cycles
    assert all(r["speedup"] is not None for r in forked["layers"] if r["kind"] == "gemm")


def test_cli_simulate_loop_order(tmp_path, capsys):
    """--loop-order reaches the compiler: auto is never slower than weight-reuse here, and a
    compiled program rejects the option (its loop order is built in)."""
    csv = tmp_path / "net.csv"
    csv.write_text("Layer name, M, N, K,\nfc1, 512, 32, 1024,\nfc2, 512, 64, 32,\n")
    cycles = {}
    for order in ("weight-reuse", "act-reuse", "auto"):
        main(["simulate", str(csv), "--config", "16x16-n2m4", "--sparsity", "2:4",
              "--loop-order", order, "--json"])
        cycles[order] = json.loads(capsys.readouterr().out)["cycles"]
    assert cycles["auto"] <= min(cycles.values())
    assert cycles["act-reuse"] != cycles["weight-reuse"]
    prog = compile_workload(WL, CFG, sparsity="2:4", with_data=False)
    prog.save(tmp_path / "p.sprg")
    with pytest.raises(SystemExit) as e:
        main(["simulate", str(tmp_path / "p.sprg"), "--loop-order", "auto"])
    assert e.value.code == 2 and "--loop-order applies to a workload" in capsys.readouterr().err
    # the os/is variants have their own order: a --loop-order with them would be ignored
    with pytest.raises(SystemExit) as e:
        main(["simulate", "resnet18", "--dataflow", "os", "--loop-order", "act-reuse"])
    assert e.value.code == 2 and "the os array variant has its own" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["compile", "resnet18", "--no-pregenerate", "-o", str(tmp_path / "never")])
    assert e.value.code == 2 and "add --train" in capsys.readouterr().err
    for extra, says in ((["--train"], "drop --train"),
                        (["--no-implicit-im2col"], "drop --no-implicit-im2col")):
        with pytest.raises(SystemExit) as e:
            main(["compile", "resnet18", "--store-image", *extra, "-o", str(tmp_path / "never")])
        assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_resnet50_compute_bound_layers_reach_the_ideal_2x():
    """ResNet-50 inference on 16x16 n2m4 at 2:4: every layer the model calls compute-bound
    (streaming rows take >= COMPUTE_BOUND_SHARE of its array time) runs >= 95% of the
    ideal 2x faster than dense; the others name the overhead (fill/drain, DRAM) that
    sparsity does not shrink."""
    from sparsa.sim.api import COMPUTE_BOUND_SHARE
    dense = simulate(compile_workload("resnet50", CFG, sparsity="dense", with_data=False))
    res = simulate(compile_workload("resnet50", CFG, sparsity="2:4", with_data=False),
                   baseline=dense)
    gemm = [r for r in res.per_layer if r["dense_macs"] > 0]
    bound = [r for r in gemm if r["limiting"] == "compute"]
    assert len(gemm) == 54 and len(bound) >= 5
    for r in bound:
        assert r["compute"] >= COMPUTE_BOUND_SHARE * r["cycles"] * 0.99, r["layer"]
        assert r["speedup"] >= 0.95 * 2.0, (r["layer"], r["speedup"])
    for r in gemm:
        if r["limiting"] != "compute":
            assert r["compute"] < COMPUTE_BOUND_SHARE * (
                r["compute"] + r["fill_drain"] + r["dram_bw"] + r["window_bw"]), r["layer"]
    assert 1.45 < res.speedup < 2.0 and res.dense_energy_pj > 1.5 * res.energy_pj


def test_run_point_says_which_layers_cannot_run_their_sparsity():
    """3:8 does not fit the 16x16-n2m4 core's 2:4 windows: every GEMM runs dense, the
    speed-up is 1 and ``mode_notes`` says why; at 2:4 it is empty."""
    r = run_point(WL, CFG, "3:8")
    assert r["speedup"] == pytest.approx(1.0)
    assert r["mode_notes"].startswith("3 GEMM layers (c1, c2, ...): dense mode: 3:8 has more "
                                      "than 2 non-zeros")
    assert run_point(WL, CFG, "2:4")["mode_notes"] == ""


@pytest.mark.parametrize("train", [False, True])
def test_run_points_in_workers_equal_run_point(train, tmp_path):
    """run_points (forked workers, one sparsity each, the dense runs shared as baselines)
    gives run_point's dicts, in the points' order, in workers and inline alike."""
    from sparsa.sim.api import run_points
    wl = WL
    if train:       # a training step expands a real workload
        wl = str(tmp_path / "mlp.csv")
        (tmp_path / "mlp.csv").write_text("Layer, M, N, K\nfc1, 64, 96, 128\nfc2, 64, 32, 96\n")
    sps = ["2:4", "dense"] if not train else ["fwd=2:4,bwd=2:4,method=transposable"]
    points = [(sp, df) for sp in sps for df in ("ws", "os", "is")]
    opts = {"layers": True}
    one = [run_point(wl, CFG, sp, df, train=train, options=opts) for sp, df in points]
    seen: list[int] = []
    for jobs in (2, 1):
        many = run_points(wl, CFG, points, train=train, options=opts, jobs=jobs,
                          done=seen.append)
        assert [{k: v for k, v in r.items() if k != "runtime_s"} for r in many] == \
            [{k: v for k, v in r.items() if k != "runtime_s"} for r in one]
        assert sum(seen) == len(points)
        seen.clear()
    bare = run_points(wl, CFG, points[:1], train=train, options={"baseline": False})
    assert bare[0]["speedup"] is None and bare[0]["cycles"] == one[0]["cycles"]
    with pytest.raises(SimError, match="dataflow='xs' is invalid"):
        run_points(WL, CFG, [("2:4", "xs")])


def test_forked_workers_keep_order_raise_errors_and_pickle_nothing_in():
    from sparsa.sim.workers import map_forked, start_forked
    lock = __import__("threading").Lock()     # unpicklable: reaches the workers by fork
    assert map_forked(lambda x, lk: (x * x, lk is lock), [(i, lock) for i in range(5)],
                      jobs=2) == [(i * i, True) for i in range(5)]

    def bad(x: int) -> int:
        raise SimError(f"point {x} is bad")
    with pytest.raises(SimError, match="point 3 is bad"):
        map_forked(bad, [(3,), (3,)], jobs=2)
    job = start_forked(bad, 7, jobs=2)
    assert job is not None
    try:
        with pytest.raises(SimError, match="point 7 is bad"):
            job.get()
    finally:
        job.close()
    assert start_forked(bad, 7, jobs=1) is None
