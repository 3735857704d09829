"""``sparsa compile`` on the command line."""

import json
import os
import subprocess
import sys

import pytest


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sparsa", "compile", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_unknown_workload_is_a_one_line_error(tmp_path):
    r = _run("no-such-net", "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_dataflow_is_a_usage_error(tmp_path):
    r = _run("resnet18", "--dataflow", "zigzag", "-o", str(tmp_path))
    assert r.returncode == 2 and "zigzag" in r.stderr


def test_compile_zoo_network(tmp_path):
    pytest.importorskip("sparsa.workloads.zoo", reason="workload zoo not available")
    from sparsa.compiler.program import Program
    r = _run("resnet18", "--sparsity", "2:4", "--no-data", "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "MACs issued" in r.stdout and "non-zero MACs" in r.stdout
    prog = Program.load(tmp_path / "o" / "program.sprg")
    assert prog == Program.load_json(tmp_path / "o" / "program.json")


@pytest.mark.parametrize(("args", "needle"), [
    (["resnet18", "--sparsity", "block4096x4096:0.5", "--no-data"],
     "block 4096x4096 is larger than every layer"),
    (["resnet18", "--sparsity", "5:4"], "5:4"),
    (["resnet18", "--config", "{bad}"], "malformed YAML"),
])
def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, args, needle):
    if "{bad}" in args:
        bad = tmp_path / "bad.yaml"
        bad.write_text("rows: [16\n")
        args = [str(bad) if a == "{bad}" else a for a in args]
    out = tmp_path / "out"
    r = _run(*args, "-o", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["--config", "8x8-n2m8", "--sparsity", "2:8", "--train"],
    ["--config", "8x8-n2m4", "--sparsity", "block8x8:0.5+2:4", "--dataflow", "auto"],
])
def test_output_folder_is_identical_run_to_run(tmp_path, args):
    """Two compiles of the same input write the same bytes, whatever the hash seed (set and
    dict order); summary.json used to hold the compile's wall time."""
    src = tmp_path / "net.csv"
    src.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                   "Channels, Num Filter, Strides,\nconv1,10,10,3,3,8,16,1,\n"
                   "conv2,8,8,3,3,16,16,2,\n")
    outs = []
    for seed in ("0", "123"):
        out = tmp_path / f"out{seed}"
        r = _run(str(src), *args, "-o", str(out), "--json",
                 env={**os.environ, "PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["compile_seconds"] >= 0     # printed, not written
        outs.append(out)
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == ["program.json", "program.sprg", "summary.json"]
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert "compile_seconds" not in json.loads((outs[0] / "summary.json").read_text())


def test_layers_that_cannot_run_their_sparsity_are_reported(tmp_path):
    """A pattern denser than the array's n runs in sparse passes when that pays (3:8 on an
    n=2, m=8 core: 2 passes) and dense when no split does (7:8 would need 4 passes of 2 per
    8-window); the compile summary, summary.json and the program's layer meta say so and
    why, and a hand-edited program whose notes are not strings is rejected."""
    from sparsa.compiler.errors import CompileError
    from sparsa.compiler.program import Program
    src = tmp_path / "g.csv"
    src.write_text("Layer, M, N, K, Sparsity,\nL1, 32, 16, 64, 7:8,\nL2, 32, 16, 64, 2:8,\n"
                   "L3, 32, 16, 64, 3:8,\n")
    r = _run(str(src), "--config", "8x8-n2m8", "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    why = "1 GEMM layer (L1): dense mode: 7:8 has more than 2 non-zeros in some aligned"
    split = "1 GEMM layer (L3): sparse mode in 2 passes of 2 non-zeros per 8-window: 3:8"
    assert "mode notes" in r.stdout and why in r.stdout and split in r.stdout
    summ = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert len(summ["mode_notes"]) == 2 and summ["mode_notes"][0].startswith(why)
    assert summ["mode_notes"][1].startswith(split)
    prog = Program.load(tmp_path / "o" / "program.sprg")
    l1, l2, l3 = (ly for ly in prog.layers if ly.kind != "host")
    assert l1.meta["mode"] == ["dense"] and l1.meta["notes"]
    assert l3.meta["mode"] == ["sparse"] and l3.meta["passes"] == 2 and l3.meta["notes"]
    assert l2.meta["mode"] == ["sparse"] and "notes" not in l2.meta
    doc = json.loads((tmp_path / "o" / "program.json").read_text())
    next(ly for ly in doc["layers"] if ly["name"] == "L1")["meta"]["notes"] = [3]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(CompileError, match=r"meta.notes=\[3\]; allowed a list of strings"):
        Program.load_json(tmp_path / "bad.json")
    doc = json.loads((tmp_path / "o" / "program.json").read_text())
    next(ly for ly in doc["layers"] if ly["name"] == "L3")["meta"]["passes"] = 0
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(CompileError, match=r"meta.passes=0; allowed an integer >= 1"):
        Program.load_json(tmp_path / "bad.json")
