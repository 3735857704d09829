"""More bad input found by fuzzing: one ``error:`` line naming the file, the field and what
is allowed, exit code 2, no traceback, nothing half-written (see test_cli_bad_input.py)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from cli_helpers import one_line_error, run
from sparsa.compiler.errors import CompileError
from sparsa.compiler.program import _PRE, Program


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled program folder (one host im2col layer, one GEMM) of a tiny workload."""
    from sparsa.cli import main

    d = tmp_path_factory.mktemp("prog")
    (d / "tiny.csv").write_text("Layer, M, N, K\ng1,8,8,8\n")
    try:   # capsys is per test: the CLI in this process, output left to pytest
        main(["compile", str(d / "tiny.csv"), "--config", "4x4-n2m4", "-o", str(d / "p")])
    except SystemExit as e:
        assert not e.code
    return d / "p"


def edited_json(prog: Path, tmp_path: Path, name: str, edit) -> Path:
    doc = json.loads((prog / "program.json").read_text())
    edit(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def edited_binary(prog: Path, tmp_path: Path, name: str, edit) -> Path:
    """The program binary with its JSON header edited and the CRC recomputed."""
    data = (prog / "program.sprg").read_bytes()
    magic, fver, iver, hlen = _PRE.unpack_from(data)
    head = json.loads(data[_PRE.size:_PRE.size + hlen])
    edit(head)
    h = json.dumps(head).encode()
    body = _PRE.pack(magic, fver, iver, len(h)) + h + data[_PRE.size + hlen:-4]
    path = tmp_path / name
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    return path


def first_compute(doc: dict) -> int:
    return next(i for i, x in enumerate(doc["instructions"]) if x["op"] == "Compute")


@pytest.mark.parametrize("macs", [2**63, 2**62, 129])
def test_useful_macs_beyond_what_the_instruction_issues(prog, tmp_path, capsys, macs):
    """A COMPUTE of 8 rows on a 4x4 array issues 128 MACs: more useful MACs than that (2**63
    was an OverflowError in the simulator's int64 arrays) is rejected by both loaders."""
    doc = json.loads((prog / "program.json").read_text())
    i = first_compute(doc)
    assert doc["instructions"][i]["count"] == 8

    def edit(d: dict) -> None:
        d["notes"]["useful_macs"][i] = macs

    needle = (f"notes entry {i} (layer 1, useful_macs {macs}) is out of range (layer -1..1, "
              f"useful_macs 0..128")
    for path in (edited_json(prog, tmp_path, "p.json", edit),
                 edited_binary(prog, tmp_path, "p.sprg", edit)):
        with pytest.raises(CompileError, match="^" + str(path)):
            Program.load_json(path) if path.suffix == ".json" else Program.load(path)
        code, _, err = run(capsys, "simulate", str(path))
        one_line_error(code, err, f"{path}: {needle}")


def test_useful_macs_on_an_instruction_without_macs(prog, tmp_path, capsys):
    doc = json.loads((prog / "program.json").read_text())
    assert doc["instructions"][0]["op"] == "Load"
    path = edited_json(prog, tmp_path, "p.json",
                       lambda d: d["notes"]["useful_macs"].__setitem__(0, 1))
    code, _, err = run(capsys, "simulate", str(path))
    one_line_error(code, err, "useful_macs 0..0: at most the MACs instructions[0] (LOAD)")
    # the compiled program itself: exactly the issued MACs where the weights are dense
    code, out, err = run(capsys, "simulate", str(prog / "program.json"), "--json")
    assert code == 0, err


@pytest.mark.parametrize("elements", ["x", None, float("nan"), float("inf"), -1, 2.5, "5",
                                      True, 2**62])
def test_host_layer_elements_not_a_count(prog, tmp_path, capsys, elements):
    """A host layer's meta.elements was int()-ed by the simulator: a ValueError/TypeError
    traceback, or '5', 2.5, -1 and true silently taken as counts."""
    doc = json.loads((prog / "program.json").read_text())
    assert doc["layers"][0]["kind"] == "host"

    def edit(d: dict) -> None:
        d["layers"][0]["meta"]["elements"] = elements

    for path in (edited_json(prog, tmp_path, "p.json", edit),
                 edited_binary(prog, tmp_path, "p.sprg", edit)):
        code, _, err = run(capsys, "simulate", str(path))
        one_line_error(code, err, f"{path}: layers[0] ('g1.im2col') meta.elements=")
        assert "allowed an integer in 0..2**62-1" in err


def test_host_layer_without_elements_still_loads(prog, tmp_path, capsys):
    path = edited_json(prog, tmp_path, "p.json",
                       lambda d: d["layers"][0]["meta"].pop("elements"))
    code, out, err = run(capsys, "simulate", str(path), "--json")
    assert code == 0 and json.loads(out)["host_elements"] == 0, err


@pytest.mark.parametrize("table", ["5", "[horowitz45]", "{a: 1}", "true", "''"])
def test_sweep_energy_table_not_a_name(tmp_path, capsys, table):
    """options.energy_table of a sweep spec that is no string: an AttributeError/TypeError
    traceback from the energy-table lookup; now one line naming the key, before any work."""
    (tmp_path / "tiny.csv").write_text("Layer, M, N, K\ng1,8,8,8\n")
    spec = tmp_path / "et.yaml"
    spec.write_text(f"name: x\nworkloads: [{tmp_path / 'tiny.csv'}]\nconfigs: [4x4-n2m4]\n"
                    f"options: {{energy_table: {table}}}\n")
    code, _, err = run(capsys, "sweep", str(spec), "-o", str(tmp_path / "res"), "--no-progress")
    one_line_error(code, err, f"{spec}: options: energy_table=")
    assert "is invalid; allowed a built-in table name (horowitz45" in err
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("table", [5, ["horowitz45"], {"a": 1}, True, ""])
def test_point_options_and_resolver_reject_a_non_name_energy_table(table):
    from sparsa.sim.api import check_point_options
    from sparsa.sim.energy import resolve_energy_table
    from sparsa.sim.errors import SimError
    with pytest.raises(SimError, match=r"^spec: energy_table=.* is invalid; allowed a built-in"):
        check_point_options({"energy_table": table}, "spec")
    with pytest.raises(SimError, match=r"^energy_table=.* is invalid; allowed a built-in"):
        resolve_energy_table(table)


def test_onnx_export_names_the_weights_file_in_the_way(tmp_path, capsys):
    """A directory named like the weights file: the error named the .onnx file."""
    src = tmp_path / "small.csv"
    src.write_text("Layer, M, N, K\ng1,8,64,64\n")
    (tmp_path / "x9.weights.bin").mkdir()
    out = tmp_path / "x9.onnx"
    code, _, err = run(capsys, "workloads", "export", str(src), "-o", str(out), "--weights")
    one_line_error(code, err, f"cannot write '{tmp_path / 'x9.weights.bin'}' (the weights of "
                              f"'{out}'): Is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.csv", "x9.weights.bin"]


def test_sweep_into_the_results_of_another_spec(tmp_path, capsys):
    """A second spec run into a results folder overwrote the first's spec.yaml and mixed
    both specs' points; re-running the same spec (also with per_layer or area turned on,
    or a single value for a list) still resumes."""
    (tmp_path / "tiny.csv").write_text("Layer, M, N, K\ng1,8,8,8\n")
    common = f"workloads: [{tmp_path / 'tiny.csv'}]\nconfigs: [4x4-n2m4]\narea: false\n"
    one, two, same = (tmp_path / n for n in ("one.yaml", "two.yaml", "same.yaml"))
    one.write_text("name: one\n" + common + "sparsity: [dense]\n")
    two.write_text("name: one\n" + common + "sparsity: ['2:4']\n")
    same.write_text("name: one\n" + common + "sparsity: dense\nper_layer: true\n")
    res = tmp_path / "res"
    args = ("-o", str(res), "--workers", "1", "--no-progress", "--json")
    code, _, err = run(capsys, "sweep", str(one), *args)
    assert code == 0, err
    spec_copy, points = (res / "spec.yaml").read_bytes(), (res / "points.parquet").read_bytes()
    code, _, err = run(capsys, "sweep", str(two), *args)
    one_line_error(code, err, f"results folder {res} holds the results of another sweep spec "
                              f"({res / 'spec.yaml'} differs from {two} in sparsity)")
    assert (res / "spec.yaml").read_bytes() == spec_copy
    assert (res / "points.parquet").read_bytes() == points
    code, out, err = run(capsys, "sweep", str(one), *args)
    assert code == 0 and json.loads(out)["skipped"] == 1, err
    code, out, err = run(capsys, "sweep", str(same), *args)
    assert code == 0 and json.loads(out)["total"] == 1, err
    # a damaged copy cannot tell which spec the results are of
    (res / "spec.yaml").write_text("name: [1\n")
    code, _, err = run(capsys, "sweep", str(one), *args)
    one_line_error(code, err, f"({res / 'spec.yaml'} is not a readable sweep spec)")


SPARSITY_CASES = [
    # (verb arguments before --sparsity, value, the one line after 'error: ')
    (("simulate", "{d}/tiny.csv", "--config", "4x4-n2m4"), "3:2",
     "--sparsity 3:2: n must be in 1..m=2, not 3"),
    (("compare", "{d}/tiny.csv", "--config", "4x4-n2m4"), "dense,3:2",
     "--sparsity 3:2: n must be in 1..m=2, not 3"),
    (("compare", "{d}/tiny.csv", "--config", "4x4-n2m4"), "dense,fwd=2:4,bwd=2:4,method=x",
     "--sparsity fwd=2:4,bwd=2:4,method=x: method must be one of"),
    (("limits", "{d}/tiny.csv", "--config", "4x4-n2m4"), "2:4,2:0",
     "--sparsity 2:0: m must be a power of two in 2..1024, not 0"),
    (("weight-modes", "{d}/tiny.csv", "--config", "4x4-n2m4"), "g1=3:2",
     "--sparsity g1=3:2: n must be in 1..m=2, not 3"),
    (("weight-modes", "{d}/tiny.csv", "--config", "4x4-n2m4"), "2:4,1:8",
     "--sparsity 2:4,1:8: '2:4,1:8' lists several patterns"),
    (("workloads", "show", "{d}/tiny.csv"), "abc", "--sparsity abc: unknown sparsity spec"),
    (("compile", "{d}/tiny.csv", "-o", "{d}/never"), "3:2",
     "--sparsity 3:2: n must be in 1..m=2, not 3"),
    (("workloads", "export", "{d}/tiny.csv", "--format", "gemm", "-o", "{d}/x.csv"), "3:2",
     "--sparsity 3:2: n must be in 1..m=2, not 3"),
]


@pytest.mark.parametrize("args,value,line", SPARSITY_CASES,
                         ids=[f"{a[0]}-{v}" for a, v, _ in SPARSITY_CASES])
def test_sparsity_errors_name_the_option(tmp_path, capsys, args, value, line):
    """A malformed --sparsity was reported by the spec alone ('error: 3:2: n must be ...'),
    as if it came from a file; now the option is named, before any work."""
    (tmp_path / "tiny.csv").write_text("Layer, M, N, K\ng1,8,8,8\n")
    code, _, err = run(capsys, *(a.format(d=tmp_path) for a in args), "--sparsity", value)
    one_line_error(code, err, line)
    assert err.startswith("error: " + line)
    assert not (tmp_path / "x.csv").exists()
