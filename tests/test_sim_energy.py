"""Energy model: table, YAML override errors, reconciliation and directions."""

import dataclasses

import pytest
from compiler_helpers import ShapeLayer, ShapeWorkload
from sparsa.compiler import compile_workload
from sparsa.hw.config import PRESETS
from sparsa.sim.api import simulate
from sparsa.sim.energy import (
    COMPONENTS,
    ENERGY_PRESETS,
    EnergyTable,
    energy_breakdown,
    load_energy_table,
    resolve_energy_table,
)
from sparsa.sim.errors import SimError

CFG = PRESETS["16x16-n2m4"]


def _net():
    return ShapeWorkload("e", [
        ShapeLayer("c1", "conv", ("x",), (196, 72, 32)),
        ShapeLayer("r1", "relu", ("c1",), out_elements=196 * 32),
        ShapeLayer("c2", "conv", ("r1",), (196, 288, 64)),
        ShapeLayer("fc", "linear", ("c2",), (4, 512, 32))])


def test_default_table_is_the_design_table():
    t = ENERGY_PRESETS["horowitz45"]
    assert t.mac_pj == pytest.approx(0.3)
    assert t.sram_pj(8) == pytest.approx(10)
    assert t.sram_pj(32) == pytest.approx(20)
    assert t.sram_pj(1024) == pytest.approx(100)
    sizes = [1, 4, 8, 16, 32, 64, 256, 1024, 4096]
    vals = [t.sram_pj(s) for s in sizes]
    assert vals == sorted(vals) and 10 < t.sram_pj(16) < 20
    assert t.dram_pj_per_64b == 2000


def test_breakdown_reconciles_per_component_and_per_layer():
    prog = compile_workload(_net(), CFG, sparsity="2:4", with_data=False)
    res = simulate(prog)
    assert set(res.energy) == set(COMPONENTS)
    assert sum(res.energy.values()) == pytest.approx(res.energy_pj)
    assert sum(r["energy_pj"] for r in res.per_layer) == pytest.approx(res.energy_pj, rel=1e-6)
    for k in COMPONENTS:      # per layer and per component, the two sums meet
        assert sum(r[f"energy_{k}_pj"] for r in res.per_layer) == pytest.approx(
            res.energy[k], rel=1e-6, abs=1e-3)
    for r in res.per_layer:
        assert sum(r[f"energy_{k}_pj"] for k in COMPONENTS) == pytest.approx(r["energy_pj"],
                                                                            abs=1e-2)
    # DRAM energy is exactly bytes / 8 * the 64-bit price
    moved = res.totals["dram_read"] + res.totals["dram_write"]
    assert res.energy["dram"] == pytest.approx(moved / 8 * 2000)
    assert res.tops_w == pytest.approx(2 * res.totals["dense_macs"] / res.energy_pj)
    assert res.edp == pytest.approx(res.energy_pj * 1e-12 * res.cycles / 500e6)


def test_energy_moves_in_the_right_direction():
    dense = simulate(compile_workload(_net(), CFG, sparsity="dense", with_data=False))
    sparse = simulate(compile_workload(_net(), CFG, sparsity="2:4", with_data=False))
    assert sparse.totals["pe_ops"] < dense.totals["pe_ops"]
    assert sparse.energy["mac"] < dense.energy["mac"]
    assert sparse.totals["dram_read"] < dense.totals["dram_read"]
    assert sparse.energy["dram"] < dense.energy["dram"]
    assert sparse.energy_pj < dense.energy_pj
    # fewer DRAM bytes, nothing else changed -> less energy
    acts = dict(sparse.totals)
    base = sum(energy_breakdown(acts, CFG, ENERGY_PRESETS["horowitz45"]).values())
    acts["dram_read"] //= 2
    assert sum(energy_breakdown(acts, CFG, ENERGY_PRESETS["horowitz45"]).values()) < base
    # the metadata costs something only because indices are stored
    assert sparse.energy["sram_meta"] > 0


def test_energy_table_yaml_override(tmp_path):
    p = tmp_path / "cheap_dram.yaml"
    p.write_text("preset: horowitz45\nname: cheap\ndram_pj_per_64b: 100\n"
                 "sram_pj_per_64b: {8: 5, 64: 15}\n")
    t = load_energy_table(p)
    assert t.name == "cheap" and t.dram_pj_per_64b == 100 and t.mult_int8_pj == 0.2
    assert t.sram_pj(8) == pytest.approx(5) and t.sram_pj(64) == pytest.approx(15)
    prog = compile_workload(_net(), CFG, sparsity="2:4", with_data=False)
    a = simulate(prog)
    b = simulate(prog, energy_table=str(p))
    assert b.energy["dram"] == pytest.approx(a.energy["dram"] / 20)
    # the config names the table
    cfg = dataclasses.replace(CFG, energy_table=str(p))
    prog2 = compile_workload(_net(), cfg, sparsity="2:4", with_data=False)
    assert simulate(prog2).energy_table.name == "cheap"


@pytest.mark.parametrize("text,match", [
    ("dram_pj: 3\n", r"unknown field 'dram_pj'; allowed: preset, name"),
    ("dram_pj_per_64b: lots\n", r"dram_pj_per_64b='lots' is invalid"),
    ("preset: tsmc5\n", r"preset='tsmc5' is unknown; allowed: horowitz45"),
    ("sram_pj_per_64b: [1, 2]\n", r"sram_pj_per_64b must map SRAM size in KiB"),
    ("sram_pj_per_64b: {8: 10}\n", r"at least two"),
    ("mult_int8_pj: -1\n", r"mult_int8_pj=-1 is invalid"),
    ("a: [1,\n", r"malformed YAML at line"),
    ("- 1\n", r"expected a mapping"),
])
def test_energy_table_errors_name_file_and_field(tmp_path, text, match):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(SimError, match=match) as e:
        load_energy_table(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_unknown_table_name():
    with pytest.raises(SimError, match="neither a preset"):
        resolve_energy_table("nope")
    with pytest.raises(SimError, match="cannot read"):
        resolve_energy_table("/nonexistent/t.yaml")
    assert isinstance(resolve_energy_table(None), EnergyTable)
