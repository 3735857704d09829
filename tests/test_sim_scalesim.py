"""SCALE-Sim parity preset: per-layer compute cycles equal SCALE-Sim 3.0.0's COMPUTE_REPORT.

The expected numbers are the ``Total Cycles`` column SCALE-Sim 3.0.0 wrote for these exact
files on an 8x8 array (``InterfaceBandwidth: CALC``, no sparsity), and they follow from the
fold formulas of its compute modules (``2R + C + T - 2`` for WS/IS, ``R + C + T - 2`` for
OS, times the folds, minus one). ``benchmarks/bench_scalesim.py`` re-runs SCALE-Sim on
ResNet-18 and a GEMM topology.
"""

from pathlib import Path

import pytest
from sparsa.sim.errors import SimError
from sparsa.sim.scalesim_parity import (
    ScaleSimLayer,
    layer_cycles,
    read_topology,
    simulate_topology,
)

GEMM = "Layer,M,N,K,\ng1,20,12,30,\ng2,64,16,16,\n"
CONV = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\nc1,10,10,3,3,4,12,1,\nc2DP,9,9,3,3,3,1,2,\n")
# SCALE-Sim 3.0.0 COMPUTE_REPORT "Total Cycles", 8x8 array
REPORTED = {
    ("gemm", "ws"): [335, 343], ("gemm", "os"): [263, 479], ("gemm", "is"): [407, 607],
    ("conv", "ws"): [859, 75, 75, 75], ("conv", "os"): [799, 45, 45, 45],
    ("conv", "is"): [1359, 91, 91, 91],
}
REF = Path("/work/shared/ref/scalesim/topologies")


@pytest.mark.parametrize("kind,df", sorted(REPORTED))
def test_matches_scalesim_compute_report(tmp_path, kind, df):
    p = tmp_path / f"{kind}.csv"
    p.write_text(GEMM if kind == "gemm" else CONV)
    rows = simulate_topology(p, 8, 8, df)
    assert [r["cycles"] for r in rows] == REPORTED[(kind, df)]
    if kind == "conv":
        assert [r["layer"] for r in rows] == ["c1", "c2DPChannel_0", "c2DPChannel_1",
                                              "c2DPChannel_2"]


def test_512_cubed_gemm_on_32x32():
    # SCALE-Sim reports 155,135 for this GEMM (256 folds of 606 cycles)
    ly = ScaleSimLayer("g", 512, 512, 512)
    assert layer_cycles(32, 32, "ws", ly) == 155_135
    assert simulate_topology([ly], 32, 32, "ws")[0]["cycles"] == 155_135


def _topology(name):
    for d in (REF,):
        if (d / name).exists():
            return d / name
    pytest.skip(f"{name} not available")


@pytest.mark.parametrize("df", ["ws", "os", "is"])
def test_resnet18_topology_model_equals_closed_form(df):
    path = _topology("Resnet18.csv")
    layers = read_topology(path)
    assert len(layers) == 21
    assert layers[0] == ScaleSimLayer("Conv1", 110 * 110, 64, 147)   # ceil((224-7+2)/2)
    rows = simulate_topology(path, 32, 32, df)
    assert [r["cycles"] for r in rows] == [layer_cycles(32, 32, df, ly) for ly in layers]


@pytest.mark.parametrize("text,match", [
    ("Layer,M,N,K,\ng,4,x,2,\n", r":2: N='x' is not an integer"),
    ("Layer,M,N,K,\ng,4,0,2,\n", r":2: N=0 must be >= 1"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
     "Num Filter, Strides,\nc,4,4,3,3,1,\n", r":2: a convolution row needs 8 fields"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
     "Num Filter, Strides,\nc,2,2,3,3,1,4,1,\n", r"filter 3x3 larger than the 2x2 IFMAP"),
    ("", r"empty topology file"),
])
def test_topology_errors(tmp_path, text, match):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(SimError, match=match):
        read_topology(p)


def test_cli_parity_preset(tmp_path, capsys):
    import json

    from sparsa.cli import main
    p = tmp_path / "gemm.csv"
    p.write_text(GEMM)
    main(["simulate", str(p), "--config", "8x8-n2m4", "--dataflow", "os", "--scalesim-parity",
          "--json"])
    out = json.loads(capsys.readouterr().out)
    assert [r["cycles"] for r in out["layers"]] == REPORTED[("gemm", "os")]
    with pytest.raises(SystemExit) as e:
        main(["simulate", "resnet18", "--scalesim-parity"])
    assert e.value.code == 2


def test_separate_width_stride(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                 "Num Filter, Strides, Stride width,\nc,56,56,3,3,8,16,2,1,\n")
    (ly,) = read_topology(p)
    assert ly.M == 28 * 54 and ly.K == 72 and ly.N == 16
