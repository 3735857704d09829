"""``sparsa compile`` on the command line."""

import subprocess
import sys

import pytest


def _run(*args):
    return subprocess.run([sys.executable, "-m", "sparsa", "compile", *args],
                          capture_output=True, text=True, timeout=300)


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
