"""``sparsa workloads list/show/export``: tables, JSON, exports and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run as run_cli
from sparsa.workloads import ZOO_NAMES, load_workload

DATA = Path(__file__).parent / "data" / "scalesim"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "workloads", *args)


def test_list(capsys):
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list(ZOO_NAMES)
    by = {r["name"]: r for r in rows}
    assert by["resnet50"]["macs"] == load_workload("resnet50").total_macs
    assert by["resnet18"]["gemm_layers"] == 21 and by["resnet18"]["params"] > 11e6
    code, out, _ = run(capsys, "list")
    assert code == 0 and "model zoo" in out and "mobilenetv2" in out and "15.470" in out


def test_show_resnet50_json(capsys):
    code, out, _ = run(capsys, "show", "resnet50", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["macs"] / 1e9 == pytest.approx(4.1, rel=0.01)
    gemms = [ly for ly in data["layers"] if "P" in ly]
    assert len(gemms) == 54 and sum(ly["macs"] for ly in data["layers"]) == data["macs"]
    assert gemms[0] == {**gemms[0], "name": "conv1", "P": 12544, "K": 147, "Q": 64,
                        "groups": 1, "out_shape": [1, 64, 112, 112]}


def test_show_table_sparsity_and_train(capsys):
    code, out, _ = run(capsys, "show", "resnet18", "--gemm-only", "--sparsity",
                       "conv1=dense;fc=dense;*=2:4")
    assert code == 0
    lines = out.splitlines()
    assert "density" in lines[2] and any("layer1.0.conv1" in ln and "0.500" in ln
                                         for ln in lines)
    assert "non-zero MACs at nominal density" in out
    code, out, _ = run(capsys, "show", "bert-base", "--seq", "16", "--train", "--json",
                       "--gemm-only", "--sparsity", "2:4")
    data = json.loads(out)
    dens = {ly["name"]: ly["density"] for ly in data["layers"]}
    assert dens["encoder.0.attn.query.fwd"] == 0.5
    assert dens["encoder.0.attn.query.wgrad"] == 1.0
    assert dens["encoder.0.attn.scores.fwd"] == 1.0     # attention: dense unless named
    assert {ly["phase"] for ly in data["layers"]} == {"fwd", "bwd_data", "wgrad"}


def test_show_topology_uses_its_sparsity_column(capsys, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Layer, M, N, K, Sparsity,\nA, 64, 64, 64, 2:4,\nB, 64, 64, 64, 1:1,\n")
    code, out, _ = run(capsys, "show", str(p), "--json")
    data = json.loads(out)
    assert data["sparsity"] == "A=2:4"
    assert [ly["density"] for ly in data["layers"]] == [0.5, 1.0]
    assert data["sparse_macs"] == 64 ** 3 * 3 // 2


def test_show_block_skipped_on_small_layers(capsys):
    # as the compiler: a block larger than a layer leaves that layer its N:M only
    code, out, _ = run(capsys, "show", "resnet18", "--json", "--gemm-only", "--sparsity",
                       "block512x512:0.5+2:4")
    dens = {ly["name"]: ly["density"] for ly in json.loads(out)["layers"]}
    assert code == 0 and dens["conv1"] == 0.5 and dens["layer4.1.conv2"] == 0.25


def test_export_round_trip(capsys, tmp_path):
    out = tmp_path / "r18.csv"
    code, text, _ = run(capsys, "export", "resnet18", "-o", str(out))
    assert code == 0 and "21 rows" in text
    code, text, _ = run(capsys, "show", str(out), "--json")
    assert json.loads(text)["macs"] == load_workload("resnet18").total_macs
    code, text, _ = run(capsys, "export", str(DATA / "gpt2.csv"), "-o",
                        str(tmp_path / "g.csv"), "--format", "gemm")
    assert code == 0
    assert (tmp_path / "g.csv").read_text().splitlines()[1] == "QKT,1024,1024,64,"


@pytest.mark.parametrize(("args", "needle"), [
    (["show", "resnet-9000"], "unknown workload 'resnet-9000'"),
    (["show", "resnet18", "--seq", "4"], "resnet18 takes no seq"),
    (["show", "resnet18", "--sparsity", "5:4"], "5:4"),
    (["export", "bert-base", "-o", "x.txt"], "(.csv) or an ONNX model (.onnx)"),
    (["export", "bert-base", "-o", "x.csv"], "use --format gemm"),
    (["show", "missing/model.onnx"], "does not exist"),
    (["show", "resnet18", "--sparsity", "block1024x1024:0.5"],
     "block 1024x1024 is larger than every layer"),
])
def test_errors_exit_2(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_not_onnx_exit_2(capsys, tmp_path):
    p = tmp_path / "fake.onnx"
    p.write_text("hello")
    code, _, err = run(capsys, "show", str(p))
    assert code == 2 and "fake.onnx: not an ONNX model" in err
