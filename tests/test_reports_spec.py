"""Sweep specs: expansion, content hashes, and one-line errors before any work starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sparsa.hw.config import PRESETS
from sparsa.reports.errors import ReportError
from sparsa.reports.spec import load_spec, parse_spec

from sparsa.cli import main


def test_cross_product_order_and_configs() -> None:
    s = parse_spec({"workloads": ["resnet50", "bert-base"],
                    "configs": {"rows": [8, 16], "cols": 16, "m": [4, 8],
                                "scratchpad_kib": [32], "dram_bytes_per_cycle": [8, 16]},
                    "sparsity": ["dense", "2:4"], "dataflows": ["ws", "os"],
                    "train": [False, True]})
    assert len(s) == 2 * (2 * 2 * 2) * 2 * 2 * 2
    p0, p1 = s.points[0], s.points[1]
    assert (p0.workload, p0.train, p1.train) == ("resnet50", False, True)
    assert p0.config.rows == 8 and p0.config.cols == 16 and p0.config.m == 4
    assert p0.config.wgt_sp_kib == p0.config.act_sp_kib == p0.config.acc_sp_kib == 32
    assert [p.index for p in s.points] == list(range(len(s)))
    assert len({p.key for p in s.points}) == len(s)


def test_explicit_config_list_and_points() -> None:
    s = parse_spec({"workloads": "resnet50", "configs": [
        "16x16-n2m4", {"preset": "8x8-n2m8", "dram_bytes_per_cycle": 8}]})
    assert [p.config.name for p in s.points] == ["16x16-n2m4", "8x8-n2m8"]
    assert s.points[1].config.dram_bytes_per_cycle == 8
    s2 = parse_spec({"points": [{"workload": "bert-base", "config": "8x8-n2m8",
                                 "sparsity": "2:8", "dataflow": "os", "train": True}]})
    p = s2.points[0]
    assert (p.sparsity, p.dataflow, p.train, p.config.m) == ("2:8", "os", True, 8)


def test_different_designs_never_share_a_name() -> None:
    # plots and tables group rows by config name: fields outside the key must not merge
    s = parse_spec({"workloads": ["resnet18"],
                    "configs": {"dram_latency_cycles": [10, 200], "clock_mhz": [500, 1000]}})
    names = [p.config.name for p in s.points]
    assert len(set(names)) == 4
    assert names[1] == "16x16_n2m4_b16_w64a64c64+dram_latency_cycles=10+clock_mhz=1000"
    s = parse_spec({"workloads": ["resnet18"], "configs": [
        {"preset": "8x8-n2m8", "dram_latency_cycles": 10}, "8x8-n2m8", "8x8-n2m4"]})
    assert [p.config.name for p in s.points] == [
        "8x8-n2m8+dram_latency_cycles=10", "8x8-n2m8+dram_latency_cycles=8", "8x8-n2m4"]
    s = parse_spec({"points": [{"workload": "resnet18", "config": "8x8-n2m8"},
                               {"workload": "resnet18", "config": {
                                   "preset": "8x8-n2m8", "clock_mhz": 250}}]})
    assert [p.config.name for p in s.points] == ["8x8-n2m8+clock_mhz=500",
                                                 "8x8-n2m8+clock_mhz=250"]


def test_hash_is_content_not_name() -> None:
    a = parse_spec({"workloads": ["resnet50"], "configs": ["16x16-n2m4"]}).points[0]
    renamed = dataclasses.replace(a, config=dataclasses.replace(PRESETS["16x16-n2m4"],
                                                                name="other"))
    assert renamed.key == a.key
    assert dataclasses.replace(a, dataflow="os").key != a.key
    assert dataclasses.replace(a, config=PRESETS["16x16-n2m8"]).key != a.key
    # stable across processes and runs (resume depends on it): a pinned value
    assert a.key == parse_spec({"workloads": ["resnet50"]}).points[0].key == "077abee201b0bc8c"


@pytest.mark.parametrize(("data", "needle"), [
    ({"workloads": ["resnet50"], "bogus": 1}, "s.yaml: bogus: unknown key"),
    ({"workloads": ["resnet50"], "configs": {"rowz": [8]}}, "s.yaml: configs.rowz: unknown key"),
    ({"points": [{"workload": "resnet50", "config": "16x16-n2m4", "sparse": "2:4"}]},
     "s.yaml: points[0].sparse: unknown key"),
    ({"workloads": ["resnet50"], "configs": {"rows": [8, 12], "n": [8], "m": [8]}},
     "s.yaml: configs: impossible config (base=16x16-n2m4, rows=12, n=8, m=8): rows=12"),
    ({"workloads": ["resnet50"], "configs": {"rows": [64], "scratchpad_kib": [1]}},
     "s.yaml: configs: impossible config"),
    ({"workloads": ["resnet50"], "configs": [{"rows": 7}]}, "s.yaml: configs[0]: rows=7"),
    ({"workloads": ["resnet50"], "configs": ["nope"]}, "s.yaml: configs[0]: config 'nope'"),
    ({"workloads": ["resnet50"], "configs": {"base": ["nope"]}},
     "s.yaml: configs.base: unknown preset 'nope'"),
    ({"workloads": []}, "s.yaml: workloads: empty list: the cross product has no points"),
    ({"workloads": ["resnet50"], "sparsity": []}, "s.yaml: sparsity: empty list"),
    ({"workloads": ["resnet50"], "configs": {"m": []}}, "s.yaml: configs.m: empty list"),
    ({"workloads": ["resnet50"], "configs": {"rows": [12], "n": [8], "m": [8],
                                             "skip_invalid": True}},
     "s.yaml: configs: every combination is an impossible config"),
    ({"points": []}, "s.yaml: points: empty list"),
    ({"workloads": ["resnet50"], "sparsity": ["3:2"]}, "s.yaml: sparsity: "),
    ({"workloads": ["resnet50"], "dataflows": ["rs"]},
     "s.yaml: dataflows: unknown dataflow 'rs'; allowed: ws, os, is"),
    ({"workloads": ["resnet51"]}, "s.yaml: workloads: unknown workload 'resnet51'"),
    ({"workloads": ["resnet50"], "train": ["maybe"]}, "s.yaml: train[0]: "),
    ({"workloads": ["resnet50"], "batch": [0]}, "s.yaml: batch: must be >= 1"),
    ({"configs": ["16x16-n2m4"]}, "s.yaml: workloads: missing"),
    ({"workloads": ["resnet50"], "points": [{"workload": "resnet50", "config": "16x16-n2m4"}]},
     "s.yaml: workloads: give either points or the axes"),
    ({"workloads": ["resnet50"], "configs": ["16x16-n2m4", "16x16-n2m4"]},
     "s.yaml: configs: design point 1 repeats point 0"),
    (["resnet50"], "s.yaml: expected a mapping"),
])
def test_bad_specs_name_the_key(data: object, needle: str) -> None:
    with pytest.raises(ReportError) as e:
        parse_spec(data, "s.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(needle), msg


def test_skip_invalid_drops_impossible_configs() -> None:
    s = parse_spec({"workloads": ["resnet50"],
                    "configs": {"rows": [8, 12], "n": [8], "m": [8], "skip_invalid": True}})
    assert [p.config.rows for p in s.points] == [8]


def test_load_spec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot read sweep spec"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("workloads: [resnet50\n")
    with pytest.raises(ReportError, match=r"bad.yaml: malformed YAML at line"):
        load_spec(bad)


def test_cli_rejects_bad_spec_before_any_work(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("workloads: [resnet50]\nconfigs: {rows: [8, 16], mm: [4]}\n")
    out = tmp_path / "res"
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "-o", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().startswith(f"error: {spec}: configs.mm: unknown key; allowed: base, ")
    assert not out.exists()


def test_seq_axis_applies_to_sequence_models_only() -> None:
    """``seq`` is ignored by CNNs and SCALE-Sim topologies (as the schema says): a CNN runs
    once with no seq instead of once per value as a failing point."""
    s = parse_spec({"workloads": ["resnet18", "bert-base", "gpt2-block"], "seq": [16, 32],
                    "configs": ["8x8-n2m4"]})
    got = [(p.workload, p.seq) for p in s.points]
    assert got == [("resnet18", None), ("bert-base", 16), ("bert-base", 32), ("gpt2-block", 16),
                   ("gpt2-block", 32)]
    assert [p.index for p in s.points] == list(range(5))
