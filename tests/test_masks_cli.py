"""``sparsa masks compare``: table, JSON and one-line user errors (exit 2)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run


def test_compare_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "masks", "compare", "--layer-shape", "64,48", "--n", "2",
                       "--m", "8", "--candidates", "1,10", "--seed", "3", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["shape"] == [64, 48] and data["seed"] == 3
    methods = [r["method"] for r in data["rows"]]
    assert methods == ["forward-only", "transposable-greedy", "transposable-exact",
                       "bimask-1", "bimask-10"]
    for r in data["rows"]:
        assert 0 < r["fwd_density"] <= 0.25 and 0 < r["both_fraction"] <= 1
    # Same seed, same figures (timings aside).
    _, out2, _ = run(capsys, "masks", "compare", "--layer-shape", "64,48", "--candidates",
                     "1,10", "--seed", "3", "--json")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in data["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"}
                     for r in json.loads(out2)["rows"]]


def test_compare_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "masks", "compare", "--layer-shape", "32,32", "--n", "1",
                       "--m", "4", "--candidates", "5", "--no-exact")
    assert code == 0
    lines = out.splitlines()
    assert "1:4" in lines[0] and "W[K=32, Q=32]" in lines[0]
    assert lines[1].split()[:3] == ["method", "fwd", "dens"] and "both/fwd" in lines[1]
    assert [ln.split()[0] for ln in lines[2:]] == ["forward-only", "transposable-greedy",
                                                  "bimask-5"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--n", "5", "--m", "4"], "n must be in 1..m=4"),
    (["--m", "6"], "m must be a power of two"),
    (["--layer-shape", "8"], "--layer-shape must be K,Q"),
    (["--candidates", "0"], "--candidates must be integers >= 1"),
    (["--workload", "resnet18"], "--workload and --layer go together"),
    (["--layer-shape", "8,8", "--workload", "x", "--layer", "y"], "not both"),
])
def test_compare_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                               needle: str) -> None:
    code, out, err = run(capsys, "masks", "compare", *args)
    assert code == 2
    assert err.startswith("error: ") and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_compare_unknown_workload_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "masks", "compare", "--workload", "no-such-model", "--layer",
                       "conv1", "--candidates", "1", "--no-exact")
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_compare_on_a_workload_layer(capsys: pytest.CaptureFixture[str]) -> None:
    workloads = pytest.importorskip("sparsa.workloads")
    if not hasattr(workloads, "load_workload"):
        pytest.skip("sparsa.workloads.load_workload is not available yet")
    layers = list(workloads.load_workload("resnet18").layers())
    layer = next(ly for ly in layers if getattr(ly.gemm_weight(), "ndim", 0) == 2)
    w = layer.gemm_weight()
    code, out, err = run(capsys, "masks", "compare", "--workload", "resnet18", "--layer",
                         layer.name, "--candidates", "1,3", "--no-exact", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["shape"] == list(w.shape) and data["source"] == f"resnet18:{layer.name}"
    code, _, err = run(capsys, "masks", "compare", "--workload", "resnet18", "--layer",
                       "no-such-layer", "--candidates", "1", "--no-exact")
    assert code == 2 and "has no layer 'no-such-layer'" in err
