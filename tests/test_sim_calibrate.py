"""Model vs RTL: the same programs on Verilator and on the SimPy model agree within 1%.

The quick subset (:data:`sparsa.sim.calibrate.QUICK`: a dense and a sparse single tile, a
DRAM-bandwidth-bound tile sequence, a compiled 2:4 layer stack, a compiled load-as-sparse
linear layer, a compiled 3x3 convolution that reads its padded image in place (implicit
im2col) and an MLP training step) runs here; ``sparsa calibrate`` runs the full suite (24
programs on this core).
"""

import pytest
from sparsa.hw.config import PRESETS
from sparsa.hw.rtl_runner import rtl_available
from sparsa.sim.calibrate import QUICK, calibrate, calibration_programs

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not rtl_available(), reason="the core's RTL generator is "
                                 "not in this checkout")]

CFG = PRESETS["4x4-n2m4"]


def test_suite_has_the_required_programs():
    progs = calibration_programs(CFG)
    names = [n for n, _ in progs]
    assert len(progs) >= 20 and len(set(names)) == len(names)
    assert set(QUICK) <= set(names)
    assert any(n.startswith("dram-bound") for n in names)
    assert any(n.startswith("mlp-train") for n in names)
    ls = dict(progs)["layer-linear-load-sparse"]
    assert any(getattr(i, "cmp_n", 0) for i in ls.instructions)   # load-as-sparse LOADs
    conv = dict(progs)["resnet18-conv3x3"]
    assert "image" in conv.tensors["l1.conv1.x"].meta       # strided LOADs from the image


@pytest.mark.xdist_group("4x4-n2m4")
def test_model_within_one_percent_of_rtl_quick():
    rows = calibrate(CFG, quick=True)
    assert [r["name"] for r in rows] == list(QUICK)
    assert any(r["dram_bound"] for r in rows) and any(not r["dram_bound"] for r in rows)
    bad = [r for r in rows if abs(r["error"]) > 0.01]
    assert not bad, bad


@pytest.mark.xdist_group("8x8-n2m8")
def test_narrow_window_programs_match_rtl():
    """2:4 on the m = 8 core runs at window 4 (compact rows spread by ``LOAD expand=1,
    cmp_m=4``): a tile sequence and a compiled layer stack, bit-exact on Verilator (the
    calibration checks outputs against the executor) with the model within 1%."""
    cfg = PRESETS["8x8-n2m8"]
    progs = [p for p in calibration_programs(cfg) if p[0] in ("tile-window4", "layer-conv-2:4")]
    assert len(progs) == 2
    layer = dict(progs)["layer-conv-2:4"]
    assert {w for ly in layer.layers if ly.kind != "host" for w in ly.meta["window"]} == {4}
    assert any(getattr(i, "cmp_m", 0) == 4 and i.expand for i in layer.instructions)
    rows = calibrate(cfg, progs)
    bad = [r for r in rows if abs(r["error"]) > 0.01]
    assert not bad, bad


@pytest.mark.xdist_group("8x8-n2m8")
def test_pass_programs_match_rtl():
    """Patterns denser than the array's n run in sparse passes: 3:8 (two pass tiles per K
    tile) and unstructured weights (each K tile keeps the pass tiles its fullest window
    needs, the empty ones are skipped), bit-exact on Verilator with the model within 1%."""
    cfg = PRESETS["8x8-n2m8"]
    progs = [p for p in calibration_programs(cfg)
             if p[0] in ("layer-conv-3:8-passes", "layer-conv-unstructured")]
    assert len(progs) == 2
    for _, prog in progs:
        assert any(ly.meta.get("passes", 1) > 1 for ly in prog.layers)
    rows = calibrate(cfg, progs)
    bad = [r for r in rows if abs(r["error"]) > 0.01]
    assert not bad, bad


@pytest.mark.xdist_group("4x4-n2m4")
def test_calibrate_runs_a_users_compiled_program(tmp_path, capsys):
    """``sparsa calibrate --program DIR``: a program from ``sparsa compile`` (a SCALE-Sim
    GEMM topology with per-layer N:M) runs on Verilator bit-exact against the executor, with
    the model's cycles equal to the RTL's; a data-less program or a program for another core
    is refused with one line and exit 2."""
    import json

    from sparsa.cli import main
    topo = tmp_path / "g.csv"
    topo.write_text("Layer, M, N, K, Sparsity,\nL1, 32, 16, 64, 2:4,\nL2, 32, 24, 16, 1:4,\n")
    main(["compile", str(topo), "--config", "4x4-n2m4", "-o", str(tmp_path / "prog")])
    main(["compile", str(topo), "--config", "4x4-n2m4", "--no-data", "-o", str(tmp_path / "nd")])
    capsys.readouterr()
    main(["calibrate", "--program", str(tmp_path / "prog"), "--json"])
    out = json.loads(capsys.readouterr().out)
    (row,) = out["rows"]
    assert out["config"] == "4x4-n2m4" and row["name"] == "prog"
    assert row["rtl_cycles"] > 1000 and row["model_cycles"] == row["rtl_cycles"]
    for args, msg in ((["--program", str(tmp_path / "nd")], "compiled without data"),
                      (["--program", str(tmp_path / "prog"), "--config", "8x8-n2m8"],
                       "compiled for 4x4-n2m4")):
        with pytest.raises(SystemExit) as e:
            main(["calibrate", *args])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and msg in err and len(err.splitlines()) == 1
