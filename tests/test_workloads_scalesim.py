"""SCALE-Sim topology import/export on SCALE-Sim's own topology files (tests/data/scalesim,
copied from the SCALE-Sim v3 project, MIT)."""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import astuple
from pathlib import Path

import pytest
from sparsa.workloads import WorkloadError, load_workload
from sparsa.workloads.scalesim import export_topology, import_topology, topology_rows
from sparsa.workloads.sparsity import SparsityPlan

DATA = Path(__file__).parent / "data" / "scalesim"


def scalesim_layers(path):
    """(name, ofmap_h, ofmap_w, macs) per row, by SCALE-Sim's topo_calc_hyperparams."""
    out = []
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    for r in rows:
        if not r or not r[0].strip():
            continue
        h, w, fh, fw, c, nf, s = (int(v) for v in r[1:8])
        oh, ow = math.ceil((h - fh + s) / s), math.ceil((w - fw + s) / s)
        out.append((r[0].strip(), oh, ow, oh * ow * fh * fw * c * nf))
    return out


@pytest.mark.parametrize("topo", ["Resnet18.csv", "Resnet50.csv", "mobilenet.csv"])
def test_conv_topology_matches_scalesim(topo):
    wl = load_workload(str(DATA / topo))
    ref = scalesim_layers(DATA / topo)
    assert [ly.name for ly in wl.layers()] == [r[0] for r in ref]
    for ly, (_, oh, ow, macs) in zip(wl.layers(), ref, strict=True):
        assert ly.out_shape[2:] == (oh, ow)
        assert ly.macs == macs
        p = ly.gemm().P
        assert p == oh * ow
    assert wl.total_macs == sum(r[3] for r in ref)
    assert wl.attrs["format"] == "conv" and wl.sparsity_plan() is None


def test_resnet18_topology_layers():
    wl = import_topology(DATA / "Resnet18.csv", batch=2)
    c1 = wl.layer("Conv1")
    # SCALE-Sim: ceil((224 - 7 + 2) / 2) = 110 (the last window overhangs), not 109
    assert c1.in_shapes == ((2, 3, 224, 224),) and c1.out_shape == (2, 64, 110, 110)
    assert astuple(c1.gemm()) == (2 * 110 * 110, 147, 64, 1, "weight")
    assert wl.layer("Conv3_s").out_shape[2:] == (29, 29)      # 1x1, stride 2 on 56
    # the layers stand inside a network: training gives each one its input gradient
    tw = wl.expand_training()
    assert sum(ly.attrs["phase"] == "bwd_data" for ly in tw.layers()) == 21
    fc = wl.layer("FC").gemm()
    assert (fc.P, fc.K, fc.Q) == (2, 512, 1000)


def test_gemm_topology_mapping():
    wl = load_workload(str(DATA / "gpt2.csv"))
    assert wl.attrs["format"] == "gemm"
    with open(DATA / "gpt2.csv") as f:
        rows = [r for r in csv.reader(f)][1:]
    for ly, r in zip(wl.layers(), rows, strict=True):
        m, n, k = (int(v) for v in r[1:4])
        d = ly.gemm()
        assert (ly.name, d.P, d.K, d.Q) == (r[0], m, k, n)
        assert ly.macs == m * n * k
    assert import_topology(DATA / "gpt2.csv", batch=3).total_macs == 3 * wl.total_macs


def test_sparsity_column_and_depthwise(tmp_path):
    p = tmp_path / "sp.csv"
    p.write_text("Layer, M, N, K, Sparsity,\nqkv, 128, 2304, 768, 2:4,\n"
                 "proj*, 128, 768, 768, 1:1,\nfc1, 128, 3072, 768, 1:8,\n")
    wl = load_workload(str(p))
    assert wl.layer("qkv").attrs["sparsity"] == "2:4"
    assert "sparsity" not in wl.layer("proj*").attrs
    assert wl.sparsity_plan() == "qkv=2:4;fc1=1:8"
    plan = SparsityPlan.parse(wl.sparsity_plan())
    assert str(plan.spec_for("qkv")) == "2:4" and plan.spec_for("proj*").kind == "dense"
    head, rows = topology_rows(wl, "gemm")
    assert head[-1] == "Sparsity" and [r[-1] for r in rows] == ["2:4", "1:1", "1:8"]
    # SCALE-Sim's positional 5th field: N:M without a header, or a head count
    pos = tmp_path / "pos.csv"
    pos.write_text("Layer, M, N, K,\nqk, 128, 128, 64, 12,\nff, 128, 512, 128, 2:4,\n")
    wp = load_workload(str(pos))
    assert astuple(wp.layer("qk").gemm()) == (128, 64, 128, 12, "act")
    assert wp.total_macs == 12 * 128 * 128 * 64 + 128 * 512 * 128
    assert wp.sparsity_plan() == "ff=2:4"
    dp = tmp_path / "dw.csv"
    dp.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                  "Channels, Num Filter, Strides,\nConv_DP1, 113, 113, 3, 3, 32, 1, 2,\n"
                  "C2, 56, 56, 1, 1, 32, 64, 1, 1:4,\n")
    dwl = load_workload(str(dp))
    assert dwl.sparsity_plan() == "C2=1:4"
    d = dwl.layer("Conv_DP1")
    assert astuple(d.gemm()) == (56 * 56, 9, 1, 32, "weight") and d.out_shape == (1, 32, 56, 56)


@pytest.mark.parametrize("net", ["resnet18", "mobilenetv2", "vgg16"])
def test_zoo_conv_round_trip(net, tmp_path):
    wl = load_workload(net)
    out = tmp_path / f"{net}.csv"
    n = export_topology(wl, out, "conv")
    back = load_workload(str(out))
    assert n == len(back.layers()) == len(wl.gemm_layers())
    assert back.total_macs == wl.total_macs
    assert Counter(astuple(ly.gemm()) for ly in back.layers()) == \
        Counter(astuple(ly.gemm()) for ly in wl.gemm_layers())
    # and the file written from the re-import is the same file
    again = tmp_path / "again.csv"
    export_topology(back, again, "conv")
    assert again.read_text() == out.read_text()


def test_file_round_trip_is_exact(tmp_path):
    for topo, fmt in (("Resnet18.csv", "conv"), ("gpt2.csv", "gemm")):
        wl = load_workload(str(DATA / topo))
        out = tmp_path / topo
        export_topology(wl, out, fmt)
        with open(DATA / topo) as f:
            orig = [[c.strip() for c in r[:8 if fmt == "conv" else 4]]
                    for r in csv.reader(f)][1:]
        with open(out) as f:
            mine = [[c.strip() for c in r[:8 if fmt == "conv" else 4]]
                    for r in csv.reader(f)][1:]
        assert mine == orig


def test_gemm_round_trip_transformer(tmp_path):
    wl = load_workload("bert-base", seq=64)
    out = tmp_path / "bert.csv"
    export_topology(wl, out, "gemm", sparsity="*attn.scores=dense;*attn.context=dense;*=2:4")
    back = load_workload(str(out))
    assert back.total_macs == wl.total_macs
    assert len(back.layers()) == 12 * (4 + 2 + 2 * 12)   # attention matmuls per head
    assert back.layer("encoder.0.attn.query").attrs["sparsity"] == "2:4"
    assert "sparsity" not in back.layer("encoder.0.attn.scores.g3").attrs
    with pytest.raises(WorkloadError, match="no SCALE-Sim conv form; use --format gemm"):
        export_topology(wl, tmp_path / "x.csv", "conv")
    with pytest.raises(WorkloadError, match="N:M along K only"):
        topology_rows(wl, "gemm", sparsity="block16x16:0.5")


@pytest.mark.parametrize(("text", "needle"), [
    ("Name, A, B\nx, 1, 2\n", "not a SCALE-Sim topology"),
    ("Layer, M, N, K,\nL0, 12, x, 4,\n", "line 2: N must be a positive integer, not 'x'"),
    ("Layer, M, N, K,\nL0, 12, 4,\n", "line 2: layer 'L0' needs 3 numbers"),
    ("Layer, M, N, K, Sparsity,\nL0, 8, 8, 8, 5:4,\n", "line 2: Sparsity '5:4'"),
    ("Layer, M, N, K, Sparsity,\nL0, 8, 8, 8, half,\n", "Sparsity must be N:M"),
    ("Layer, M, N, K,\nL0, 8, 8, 8,\nL0, 8, 8, 8,\n", "line 3: duplicate layer name 'L0'"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
     "Num Filter, Strides,\nC, 5, 5, 7, 7, 3, 8, 1,\n", "filter 7x7 of 'C' is larger"),
])
def test_errors(tmp_path, text, needle):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(WorkloadError, match="bad.csv") as e:
        load_workload(str(p))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_sparsity_column_is_the_default_plan(tmp_path):
    """`sparsa compile/simulate FILE.csv` without --sparsity uses the file's Sparsity
    column; an explicit --sparsity overrides it."""
    from click.testing import CliRunner
    from sparsa.compiler import compile_workload
    from sparsa.hw.config import PRESETS

    from sparsa.cli import cli
    f = tmp_path / "g.csv"
    f.write_text("Layer, M, N, K, Sparsity,\nL1, 64, 32, 64, 2:4,\nL2, 64, 32, 32, 1:1,\n")
    cfg = PRESETS["8x8-n2m4"]
    own = compile_workload(str(f), cfg, with_data=False)
    dense = compile_workload(str(f), cfg, sparsity="dense", with_data=False)
    assert own.meta["sparsity_arg"] == "L1=2:4"
    l1 = {ly.name: ly for ly in own.layers}["L1"]
    assert l1.nonzero_macs * 2 == l1.dense_macs
    assert {ly.name: ly for ly in dense.layers}["L1"].nonzero_macs == l1.dense_macs
    res = CliRunner().invoke(cli, ["simulate", str(f), "--config", "8x8-n2m4"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].startswith(f"{f} (L1=2:4) on 8x8-n2m4")
