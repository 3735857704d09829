"""Bad input on every ``sparsa`` verb: one ``error:`` line naming the culprit, exit code 2,
no traceback, nothing half-written (the adversarial audit's cases, kept as regressions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import one_line_error, run
from sparsa.compiler.errors import CompileError
from sparsa.compiler.program import Program
from sparsa.sim.api import check_point_options
from sparsa.sim.errors import SimError
from sparsa.workloads.sparsity import split_plans


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of broken inputs (and one small good workload, ``tiny.csv``)."""
    import onnx
    import pyarrow as pa
    import pyarrow.parquet as pq
    from onnx import TensorProto, helper

    d = tmp_path_factory.mktemp("bad")
    (d / "tiny.csv").write_text("Layer, M, N, K\ng1,8,8,8\n")
    (d / "regfile").write_text("not a folder\n")
    (d / "dir.onnx").mkdir()
    (d / "emptydir").mkdir()
    (d / "trunc.onnx").write_bytes(b"\x08\x07\x12\x06sparsa\x3a\xff\xff")
    conv = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, " \
           "Num Filter, Strides,\n"
    (d / "zero.csv").write_text(conv + "conv1,0,8,3,3,4,4,1,\n")
    (d / "huge.csv").write_text("Layer, M, N, K\ng1,99999999999999999999,4,4\n")
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 3, 3], [0.0] * 144)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], strides=[0, 0])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
              str(d / "stride0.onnx"))
    neg = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "neg",
                            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, -3, 8])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(neg, opset_imports=[helper.make_opsetid("", 17)]),
              str(d / "negdim.onnx"))
    (d / "bad.yaml").write_text("rows: [1\n")
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00rows: 4")
    (d / "rows.yaml").write_text('rows: "8"\n')
    (d / "name.yaml").write_text("name: 5\n")
    (d / "empty.yaml").write_text("")
    (d / "inf.yaml").write_text("sram_pj_per_64b: {8: .inf, 32: 20}\n")
    (d / "noetable.yaml").write_text("preset: 4x4-n2m4\nenergy_table: nosuch.yaml\n")
    sweep = f"workloads: [{d / 'tiny.csv'}]\nconfigs: [4x4-n2m4]\n"
    (d / "sweep.yaml").write_text("name: ok\n" + sweep)
    (d / "opts.yaml").write_text("name: x\n" + sweep + "options: {model: {dram_beat_cycles: 0}}\n")
    (d / "escape.yaml").write_text("name: ../../x\n" + sweep)
    (d / "pointbatch.yaml").write_text(
        f"name: x\npoints:\n  - {{workload: {d / 'tiny.csv'}, config: 4x4-n2m4, batch: 0}}\n")
    (d / "results").mkdir()
    pq.write_table(pa.table({"hash": ["h1", "h2"], "status": ["error", "error"]}),
                   d / "results" / "points.parquet")
    (d / "list.json").write_text("[1, 2]\n")
    (d / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (d / "deep.yaml").write_text("a: " + "[" * 100000 + "]" * 100000 + "\n")
    (d / "dup.yaml").write_text("preset: 4x4-n2m4\nrows: 4\nrows: 8\n")
    (d / "dupsweep.yaml").write_text(f"name: x\nworkloads: [{d / 'tiny.csv'}]\n"
                                     "configs: {base: 4x4-n2m4, rows: [4], rows: [8]}\n")
    (d / "bigint.yaml").write_text("sram_pj_per_64b: {8: 10, 1" + "0" * 400 + ": 20}\n")
    (d / "steep.yaml").write_text("sram_pj_per_64b: {1.0: 1.0, 1.0000001: 1000000.0}\n")
    (d / "presetlist.yaml").write_text("preset: [1]\n")
    (d / "progdir").mkdir()
    (d / "progdir" / "program.sprg").write_bytes(b"x")
    (d / "unknownkey.yaml").write_text("name: x\n" + f"workloads: [{d / 'tiny.csv'}]\n"
                                       "configs: {rowz: [4]}\n")
    (d / "strres").mkdir()
    pq.write_table(pa.table({"hash": ["h1"], "status": ["ok"], "cycles": ["x"]}),
                   d / "strres" / "points.parquet")
    (d / "alienres").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), d / "alienres" / "points.parquet")
    ok = {"hash": ["h1"], "status": ["ok"], "workload": ["w"], "config": ["4x4-n2m4"],
          "sparsity": ["dense"], "dataflow": ["ws"], "cycles": [10]}
    (d / "nocfgres").mkdir()
    pq.write_table(pa.table({k: v for k, v in ok.items() if k != "config"}),
                   d / "nocfgres" / "points.parquet")
    (d / "nullres").mkdir()
    pq.write_table(pa.table(dict(ok, dataflow=pa.array([None], pa.string()))),
                   d / "nullres" / "points.parquet")
    (d / "etres").mkdir()
    pq.write_table(pa.table(dict(ok, energy_table=[str(d / "gone.yaml")])),
                   d / "etres" / "points.parquet")
    (d / "spdir.yaml").write_text(f"name: x\nworkloads: [{d / 'emptydir'}]\n")
    (d / "seed.yaml").write_text("name: x\n" + sweep + "options: {seed: -1}\n")
    return d


TINY = "{d}/tiny.csv"
SMALL = ("--config", "4x4-n2m4")

CASES = [
    # (verb arguments, text the one line must contain)
    (("workloads", "show", "nosuch"), "'nosuch'"),
    (("workloads", "show", "{d}/trunc.onnx"), "trunc.onnx: not an ONNX model"),
    (("workloads", "show", "{d}/dir.onnx"), "'{d}/dir.onnx' is a directory"),
    (("workloads", "show", "{d}/zero.csv"), "zero.csv: line 2: IFMAP Height"),
    (("workloads", "show", "{d}/huge.csv"), "M must be a positive integer up to"),
    (("workloads", "show", "{d}/stride0.onnx"), "stride must be >= 1"),
    (("workloads", "show", "{d}/stride0.onnx", "--seq", "5"), "seq=5 has no effect"),
    (("workloads", "show", "{d}/negdim.onnx"), "input 'x' dimension 1 is -3"),
    (("workloads", "show", "resnet18", "--sparsity", "block99x99:2"), "block density"),
    (("workloads", "show", "bert-base", "--seq", "100000000"), "seq must be in 1..512"),
    (("workloads", "show", "gpt2-decode", "--seq", "99999"), "must be in 2..1024"),
    (("workloads", "export", TINY, "-o", "{d}/regfile/x.csv"), "'-o'"),
    (("workloads", "show", TINY, "--sparsity", "g9=2:4"), "no rule matches a GEMM layer"),
    (("workloads", "export", TINY, "-o", "{d}/x.onnx", "--sparsity", "2:4"), "--sparsity"),
    (("workloads", "export", TINY, "-o", "{d}/x.csv", "--weights"), "--weights applies"),
    (("masks", "compare", "--layer-shape", "100000,100000"), "--layer-shape"),
    (("masks", "compare", "--layer-shape", "8,8", "--n", "3", "--m", "2"), "3:2"),
    (("masks", "compare", "--layer-shape", "8,8", "--candidates", "1,10**9"), "--candidates"),
    (("masks", "compare", "--layer-shape", "8,8", "--candidates", "1,1000000000"),
     "--candidates 1000000000 is too many"),
    (("train-step", TINY, *SMALL, "--candidates", "1000000000"), "'--candidates'"),
    (("compile", TINY, *SMALL, "-o", "{d}/c", "--train", "--sparsity",
      "fwd=2:4,bwd=2:4,method=bimask,candidates=1000000"), "candidates must be at most"),
    (("verilog", "--config", "{d}/bad.yaml", "-o", "{d}/v"), "bad.yaml: malformed YAML"),
    (("verilog", *SMALL, "-o", "{d}/regfile/v"), "{d}/regfile is not a directory"),
    (("area", "--kind", "foo"), "--kind"),
    (("verify", "--config", "{d}/rows.yaml"), "rows='8' is invalid"),
    (("compile", TINY, *SMALL, "-o", "{d}/regfile/c"), "'-o'"),
    # /proc: permission bits say writable for root, creating a file there still fails
    (("compile", TINY, *SMALL, "-o", "/proc/sparsa-out"), "'-o': '/proc/sparsa-out': "
                                                          "directory /proc is not writable"),
    (("compare", TINY, *SMALL, "--csv", "/proc/x.csv"), "'--csv'"),
    (("compile", TINY, "--config", "{d}/name.yaml", "-o", "{d}/c"), "name=5 is invalid"),
    (("compile", TINY, *SMALL, "-o", "{d}/c", "--sparsity", "fwd=2:8"), "lacks bwd="),
    (("compile", TINY, *SMALL, "-o", "{d}/c", "--sparsity", "g2=2:4"), "no rule matches"),
    (("compile", TINY, *SMALL, "-o", "{d}/c", "--batch", "0"), "'--batch'"),
    (("compile", TINY, *SMALL, "-o", "{d}/c", "--dump-format", "json"), "add --dump-after"),
    (("simulate", "resnet50", "--batch", "1024"), "use a smaller --batch/--seq"),
    (("simulate", "{d}/emptydir"), "emptydir: no program.sprg"),
    (("simulate", "{d}/list.json"), "list.json: expected a program JSON object"),
    (("simulate", "{d}/deep.json"), "deep.json: not a program JSON (nested too deeply)"),
    (("simulate", TINY, *SMALL, "--energy-table", "{d}/inf.yaml"), "sram_pj_per_64b"),
    (("simulate", TINY, *SMALL, "--seq", "-1"), "'--seq'"),
    (("simulate", TINY, "--config", "{d}/noetable.yaml"),
     "noetable.yaml: energy_table='nosuch.yaml' is neither a preset"),
    (("simulate", TINY, "--scalesim-parity", "--sparsity", "2:4"), "drop --sparsity"),
    (("compare", TINY, *SMALL, "--csv", "{d}/regfile/x.csv"), "'--csv'"),
    (("compare", TINY, *SMALL, "--dataflows", "ws,xs"), "'xs'"),
    (("compare", TINY, *SMALL, "--sparsity", "abc"), "'abc'"),
    (("calibrate", "--tolerance", "nan"), "'--tolerance'"),
    # --quick was ignored
    (("calibrate", "--quick", "--program", "{d}/progdir"), "'--quick'"),
    (("limits", TINY, *SMALL, "--sparsity", "2:0"), "2:0"),
    (("weight-modes", "nosuch", *SMALL), "'nosuch'"),
    (("train-step", TINY, *SMALL, "--fwd", "3:2"), "--fwd='3:2'"),
    (("train-step", TINY, *SMALL, "--refresh-every", "0"), "'--refresh-every'"),
    (("sweep", "{d}/opts.yaml", "-o", "{d}/s"), "opts.yaml: options.model: dram_beat_cycles"),
    (("sweep", "{d}/escape.yaml", "-o", "{d}/s"), "escape.yaml: name:"),
    (("sweep", "{d}/pointbatch.yaml", "-o", "{d}/s"), "points[0].batch"),
    (("sweep", "{d}/empty.yaml", "-o", "{d}/s"), "empty.yaml"),
    (("sweep", "{d}/binary.yaml", "-o", "{d}/s"), "binary.yaml: sweep spec is not UTF-8"),
    (("simulate", TINY, *SMALL, "--energy-table", "{d}/binary.yaml"), "binary.yaml"),
    (("sweep", "{d}/sweep.yaml", "-o", "{d}/s", "--workers", "0"), "--workers"),
    (("sweep", "{d}/sweep.yaml", "-o", "{d}/regfile"), "exists and is not a directory"),
    (("plot", "{d}/nosuch"), "no sweep results"),
    (("plot", "{d}/emptydir"), "emptydir: no sweep results"),
    (("plot", "{d}/results", "--kind", "foo"), "'foo' is unknown"),
    (("report", "{d}/results", "-o", "{d}/regfile/r"), "'-o'"),
    (("nosuchverb",), "nosuchverb"),
    # thousands of local workers exhaust memory: bounded by the machine's CPUs
    (("sweep", "{d}/sweep.yaml", "-o", "{d}/s", "--workers", "100000"),
     "--workers 100000: allowed 1.."),
    # a device is never replaced by the atomic rename
    (("compare", TINY, *SMALL, "--csv", "/dev/null"), "not a regular file"),
    (("compile", TINY, *SMALL, "-o", ""), "'-o': empty path"),
    (("verilog", *SMALL, "-o", ""), "'-o': empty path"),
    (("compile", TINY, *SMALL, "-o", "{d}/c", "--seed", "-1"), "'--seed'"),
    (("simulate", TINY, "--config", "{d}/presetlist.yaml"), "preset=[1] is unknown"),
    (("simulate", TINY, *SMALL, "--energy-table", "{d}/presetlist.yaml"), "[1]"),
    (("compile", TINY, *SMALL, "-o", "{d}/c", "--batch", "100000000"), "out of memory"),
    (("plot", "{d}/strres"), "column 'cycles' has type string; allowed numbers"),
    (("report", "{d}/alienres"), "not a sparsa results file"),
    (("train-step", TINY, *SMALL, "--fwd", "2:4", "--method", "dense"),
     "--fwd has no effect with --method dense"),
    # ignored: only Bi-Mask searches permutations; dense training refreshes no masks
    (("train-step", TINY, *SMALL, "--fwd", "2:4", "--bwd", "2:4", "--method", "transposable",
      "--candidates", "5"), "--candidates 5 applies only to --method bimask"),
    (("train-step", TINY, *SMALL, "--method", "dense", "--refresh-every", "10"),
     "--refresh-every has no effect with --method dense"),
    (("sweep", "{d}/sweep.yaml", "-o", "{d}/progdir"), "not a sweep results folder"),
    (("workloads", "export", TINY, "-o", "{d}/g.csv", "--format", "gemm", "--sparsity",
      "fwd=2:8,bwd=2:8,method=bimask"), "holds one N:M (inference)"),
    (("sweep", "{d}/unknownkey.yaml", "-o", "{d}/s"),
     "unknownkey.yaml: configs.rowz: unknown key; allowed: base, rows"),
    # the plots and the report indexed these columns: KeyError tracebacks
    (("plot", "{d}/nocfgres"), "nocfgres/points.parquet: not a sparsa results file (no "
                               "column 'config'"),
    (("report", "{d}/nocfgres", "-o", "{d}/s"), "no column 'config'"),
    (("plot", "{d}/nullres"), "row 0 has no 'dataflow'; every successful point has one"),
    # found after the plots were drawn: a report folder without index.html was left
    (("report", "{d}/etres", "-o", "{d}/s"), "etres: energy table in the results: "),
    # '-o ""' wrote to the default folder
    (("plot", "{d}/results", "-o", ""), "'-o': empty path"),
    (("report", "{d}/results", "-o", ""), "'-o': empty path"),
    (("sweep", "{d}/sweep.yaml", "-o", ""), "'-o': empty path"),
    # next to 'all', an unknown kind was ignored
    (("plot", "{d}/results", "--kind", "all", "--kind", "foo"), "'foo' is unknown"),
    # found only when the point ran: an error row, exit code 1
    (("sweep", "{d}/spdir.yaml", "-o", "{d}/s"),
     "spdir.yaml: workloads: '{d}/emptydir' is a directory, not a workload"),
    (("sweep", "{d}/seed.yaml", "-o", "{d}/s"), "seed.yaml: options: seed=-1 is invalid"),
    # a key given twice: YAML kept the last one silently
    (("simulate", TINY, "--config", "{d}/dup.yaml"),
     "dup.yaml: line 3: key 'rows' is given twice"),
    (("sweep", "{d}/dupsweep.yaml", "-o", "{d}/s"),
     "dupsweep.yaml: line 3: key 'rows' is given twice"),
    # RecursionError tracebacks in the YAML parser
    (("simulate", TINY, "--config", "{d}/deep.yaml"), "deep.yaml: malformed YAML (nested"),
    (("sweep", "{d}/deep.yaml", "-o", "{d}/s"), "deep.yaml: malformed YAML (nested"),
    # an integer beyond float range (OverflowError), a power law that overflows between
    # the scratchpad sizes a config may have
    (("simulate", TINY, *SMALL, "--energy-table", "{d}/bigint.yaml"),
     "bigint.yaml: sram_pj_per_64b holds a number too large"),
    (("compare", TINY, *SMALL, "--energy-table", "{d}/bigint.yaml"),
     "bigint.yaml: sram_pj_per_64b holds a number too large"),
    (("simulate", TINY, *SMALL, "--energy-table", "{d}/steep.yaml"),
     "sram_pj_per_64b gives 0 pJ at 0.25 KiB; allowed (0, 1e7) pJ"),
    # a list of patterns where one plan is expected
    (("weight-modes", TINY, *SMALL, "--sparsity", "2:4,1:8"),
     "'2:4,1:8' lists several patterns where one sparsity plan is expected"),
    # an unknown table names the option, before any work
    *((((verb, TINY, *SMALL, "--energy-table", "nosuch"),
        "Invalid value for '--energy-table': energy_table='nosuch' is neither a preset"))
      for verb in ("simulate", "compare", "train-step")),
]


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(a[:2]) + f"#{i}"
                                                     for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line(capsys, d, args, needle):
    code, out, err = run(capsys, *(a.format(d=d) for a in args))
    one_line_error(code, err, needle.format(d=d))
    # nothing was written where the verb would have written its output
    for p in ("c", "s", "v", "x.csv", "x.onnx"):
        assert not (d / p).exists()


def test_console_script_exit_code_and_one_line(d):
    """The installed entry point, in a fresh process: exit 2, one stderr line."""
    r = subprocess.run([sys.executable, "-m", "sparsa", "compile", str(d / "tiny.csv"),
                        "--config", "4x4-n2m4", "-o", str(d / "regfile" / "c")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: Invalid value for '-o'") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_simulate_program_rejects_workload_options(tmp_path, d, capsys):
    """--sparsity/--train/--batch/--seq on a compiled program were silently ignored."""
    out = tmp_path / "prog"
    code, _, err = run(capsys, "compile", str(d / "tiny.csv"), "--config", "4x4-n2m4",
                       "--no-data", "-o", str(out))
    assert code == 0, err
    code, _, err = run(capsys, "simulate", str(out), "--sparsity", "2:4", "--train")
    one_line_error(code, err, "--sparsity, --train apply to a workload")
    code, _, err = run(capsys, "simulate", str(out / "program.sprg"), "--batch", "2")
    one_line_error(code, err, "--batch applies to a workload")


def test_non_numeric_columns_env(d, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "wide")
    code, out, err = run(capsys, "workloads", "show", str(d / "tiny.csv"))
    assert code == 0 and "g1" in out, err


def test_hand_edited_program_json(tmp_path, d, capsys):
    """A program JSON with a wrong field type or a broken cross-reference is a one-line
    CompileError naming the field; an intact one still simulates."""
    out = tmp_path / "prog"
    code, _, err = run(capsys, "compile", str(d / "tiny.csv"), "--config", "4x4-n2m4",
                       "-o", str(out))
    assert code == 0, err
    good = json.loads((out / "program.json").read_text())

    def broken(edit, name: str) -> Path:
        doc = json.loads(json.dumps(good))
        edit(doc)
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        return path

    cases = [
        (lambda x: x["layers"][0].update(first_instr="x"), "layers[0].first_instr='x'"),
        (lambda x: x["layers"][1].update(end_instr=10**6), "layers[1] ('g1') instruction range"),
        (lambda x: x["layers"][1].update(meta=3), "layers[1].meta=3 is not a dict"),
        (lambda x: x.update(tensors=None), "malformed program header"),
        (lambda x: x["instructions"][0].update(wait=1.5), "wait=1.5 is not an integer"),
        (lambda x: x["notes"]["layer"].__setitem__(0, 99), "notes entry 0"),
        (lambda x: x.pop("isa_version"), "isa_version None"),
        (lambda x: x.update(format_version=7), "format_version 7 is not 1"),
        (lambda x: x.update(n_instr=3), "n_instr=3 but"),
        (lambda x: x["instructions"][0].update(target="XYZ"), "allowed ACT, WGT"),
        (lambda x: next(i for i in x["instructions"] if i.get("target") == "ACT")
         .update(cmp_n=5), "LOAD ACT cmp_n=5 cmp_m=0"),
        # addresses that fit their fields but not this core's scratchpads or the image
        (lambda x: _first(x, "Load").update(sp_addr=60000),
         "instructions[0] LOAD ACT entries 60000..60007 are beyond the scratchpad "
         "(entries 0..127)"),
        (lambda x: _first(x, "Preload").update(wsp_addr=65535), "PRELOAD WGT entries 65535"),
        (lambda x: _first(x, "Compute").update(acc_addr=65535), "COMPUTE ACC entries 65535"),
        (lambda x: _first(x, "Store").update(dram_addr=2**32 - 1),
         "STORE DRAM beats 4294967295..4294967309 are beyond the DRAM image (beats 0..47)"),
        (lambda x: _first(x, "Load", "WGT").update(expand=1, cmp_n=2, cmp_m=4, count=15),
         "LOAD WGT count=15; allowed a multiple of cmp_n=2"),
        # a field left out took the dataclass default (count=1)
        (lambda x: _first(x, "Store").pop("count"), "missing field 'count'"),
        (lambda x: x.update(isa_version=4.0), "isa_version 4.0 is not 4"),
        # invalid base64 decoded to an empty image: a data-less program
        (lambda x: x.update(dram_base64="!!!"), "dram_base64 is not base64 text"),
        (lambda x: x.update(dram_bytes=5), "dram_bytes=5 but dram_base64 holds 384 bytes"),
        (lambda x: x["meta"].update(dram_beats="x"), "meta.dram_beats='x'"),
        (lambda x: x["tensors"]["g1.w"].update(addr=10**6), "tensors.g1.w: beats 1000000"),
        (lambda x: x["layers"][1].update(kind="conv"), "layers[1].kind='conv'; allowed gemm"),
        # the os/is models read the GEMM shape: a traceback (or a hang) before
        (lambda x: x["layers"][1]["meta"].update(P="x"), "meta.P='x'; allowed an integer"),
        (lambda x: x["layers"][1]["meta"].update(P=10**12), "P*K*Q*groups = 64000000000000 but dense_macs=512"),
        (lambda x: x["layers"][1]["meta"].update(window=[3]), "meta.window=[3]; allowed"),
    ]
    for i, (edit, needle) in enumerate(cases):
        path = broken(edit, f"p{i}.json")
        with pytest.raises(CompileError, match="^" + str(path).replace("[", r"\[")) as e:
            Program.load_json(path)
        assert needle in str(e.value) and "\n" not in str(e.value)
        code, _, err = run(capsys, "simulate", str(path))
        one_line_error(code, err, needle)
    code, out_text, err = run(capsys, "simulate", str(out / "program.json"), "--json")
    assert code == 0 and json.loads(out_text)["cycles"] > 0


def _first(doc: dict, op: str, target: str | None = None) -> dict:
    """The first instruction of ``op`` (and ``target``) of a program JSON."""
    return next(i for i in doc["instructions"]
                if i["op"] == op and target in (None, i.get("target")))


def test_damaged_program_binary(tmp_path, d, capsys):
    """Binary programs whose CRC is intact but whose header or image is wrong."""
    import struct
    import zlib

    from sparsa.compiler.program import _PRE
    out = tmp_path / "prog"
    code, _, err = run(capsys, "compile", str(d / "tiny.csv"), "--config", "4x4-n2m4",
                       "-o", str(out))
    assert code == 0, err
    data = (out / "program.sprg").read_bytes()
    magic, fver, iver, hlen = _PRE.unpack_from(data)
    head = json.loads(data[_PRE.size:_PRE.size + hlen])
    rest = data[_PRE.size + hlen:-4]

    def blob(h: bytes, tail: bytes = b"") -> bytes:
        body = _PRE.pack(magic, fver, iver, len(h)) + h + rest + tail
        return body + struct.pack("<I", zlib.crc32(body))

    odd = dict(head, dram_bytes=head["dram_bytes"] + 3)
    cases = [
        (blob(json.dumps(dict(head, n_instr=13.5)).encode()), "n_instr=13.5 is not an integer"),
        (blob(json.dumps(odd).encode(), b"\0\0\0"),
         "DRAM image of 387 bytes is not a whole number of 8-byte beats"),
        (blob(b"[" * 100000 + b"]" * 100000), "program header is not valid JSON"),
        (blob(b"[1, 2]"), "program header is not a JSON object"),
    ]
    for i, (raw, needle) in enumerate(cases):
        path = tmp_path / f"b{i}.sprg"
        path.write_bytes(raw)
        code, _, err = run(capsys, "simulate", str(path))
        one_line_error(code, err, f"{path}: ")
        assert needle in err, err


def test_split_plans_keeps_bidirectional_specs_whole():
    assert split_plans("dense, 2:4,fwd=2:8,bwd=2:8,method=bimask,candidates=3,1:8") == \
        ["dense", "2:4", "fwd=2:8,bwd=2:8,method=bimask,candidates=3", "1:8"]
    assert split_plans("conv1=fwd=2:4,bwd=2:4,method=transposable,solver=greedy,,") == \
        ["conv1=fwd=2:4,bwd=2:4,method=transposable,solver=greedy"]
    assert split_plans(" , ") == []


def test_limits_accepts_a_bidirectional_spec_in_its_list(capsys, d):
    code, out, err = run(capsys, "limits", str(d / "tiny.csv"), "--config", "4x4-n2m4",
                         "--train", "--sparsity", "dense,fwd=2:4,bwd=2:4,method=bimask",
                         "--json")
    assert code == 0, err
    assert [r["sparsity"] for r in json.loads(out)] == \
        ["dense", "fwd=2:4,bwd=2:4,method=bimask"]


def test_check_point_options():
    check_point_options({"seed": 3, "model": {"dram_beat_cycles": 2},
                         "compile": {"weight_batch": 2}, "energy_table": "horowitz45"})
    for opts, needle in (({"foo": 1}, "unknown key 'foo'"),
                         ({"model": {"burst_beats": 0}}, "spec.model: burst_beats=0"),
                         ({"compile": {"nope": 1}}, "spec.compile: unknown key 'nope'"),
                         ({"seed": "1"}, "seed='1'"),
                         ({"seed": -1}, "seed=-1 is invalid; allowed an integer >= 0"),
                         # found only when an os/is point ran (an error row), or ignored
                         ({"variant": {"foo": 1}}, "spec.variant: unknown variant option"),
                         ({"variant": {"link_bytes_per_row": 0}},
                          "spec.variant: variant option link_bytes_per_row=0 is invalid"),
                         ({"baseline": "no"}, "baseline='no' is invalid; allowed true or false"),
                         ({"layers": 1}, "layers=1 is invalid"),
                         ({"energy_table": "nosuch"}, "spec.energy_table:")):
        with pytest.raises(SimError, match="^spec") as e:
            check_point_options(opts, "spec")
        assert needle in str(e.value)


def test_onnx_reexport_with_weights_replaces_both_files(tmp_path, d, capsys, monkeypatch):
    """Exporting with --weights twice to the same path (from the folder it writes to)
    replaces the model and its weights; no temp files are left behind."""
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "small.csv"
    src.write_text("Layer, M, N, K\ng1,8,64,64\ng2,8,64,32\n")
    for _ in range(2):
        code, _, err = run(capsys, "workloads", "export", str(src), "-o", "m.onnx", "--weights")
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.weights.bin",
                                                          "small.csv"]
    assert (tmp_path / "m.weights.bin").stat().st_mode & 0o044   # readable like m.onnx
    code, out, err = run(capsys, "workloads", "show", "m.onnx", "--json")
    assert code == 0 and len(json.loads(out)["layers"]) >= 2
    # weights all under onnx's 1 KiB external-data threshold: no weights file at all
    code, _, err = run(capsys, "workloads", "export", str(d / "tiny.csv"), "-o", "t.onnx",
                       "--weights")
    assert code == 0 and (tmp_path / "t.onnx").is_file(), err
    assert not (tmp_path / "t.weights.bin").exists()


def test_sweep_bad_scheduler_address(tmp_path, d, capsys):
    code, _, err = run(capsys, "sweep", str(d / "sweep.yaml"), "-o", str(tmp_path / "r"),
                       "--scheduler", "garbage", "--no-progress")
    one_line_error(code, err, "--scheduler 'garbage' is not a Dask scheduler address")


def test_failed_compile_or_verilog_leaves_nothing_behind(tmp_path, d, capsys):
    """A target that cannot be written (here a directory named like the file): one line
    naming that file, and none of the set's other files (nor temporary ones) appear."""
    for verb, args, blocker in (
            ("compile", (str(d / "tiny.csv"), "--config", "4x4-n2m4"), "summary.json"),
            ("verilog", ("--config", "4x4-n2m4"), "manifest.json")):
        out = tmp_path / verb
        (out / blocker).mkdir(parents=True)
        code, _, err = run(capsys, verb, *args, "-o", str(out))
        one_line_error(code, err, f"{out / blocker}: is a directory")
        assert [p.name for p in out.iterdir()] == [blocker]


def test_failed_plot_kind_leaves_no_plots(tmp_path, capsys):
    """'--kind speedup --kind training' on inference-only results: the speedup plot was
    written before training failed; now every kind is drawn before the first file."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    res = tmp_path / "res"
    res.mkdir()
    pq.write_table(pa.table({"hash": ["h1", "h2"], "status": ["ok", "ok"],
                             "workload": ["w", "w"], "config": ["4x4-n2m4"] * 2,
                             "sparsity": ["dense", "2:4"], "dataflow": ["ws", "ws"],
                             "cycles": [10, 5], "speedup": [1.0, 2.0], "train": [False] * 2}),
                   res / "points.parquet")
    out = tmp_path / "plots"
    code, _, err = run(capsys, "plot", str(res), "--kind", "speedup", "--kind", "training",
                       "-o", str(out))
    one_line_error(code, err, "plot training: the results have no training points")
    assert not out.exists()
    code, _, err = run(capsys, "plot", str(res), "--kind", "speedup", "-o", str(out))
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["speedup.png",
                                                                    "speedup.svg"], err


def test_compile_killed_mid_write_then_rerun_leaves_no_temporary_file(tmp_path, d, capsys):
    """A compile SIGKILLed while writing its files leaves only temporary files (never a
    half-written program.json that a later run would trust); the next write into the folder
    removes them, but not a running writer's or another file's."""
    import os
    import signal

    out = tmp_path / "prog"
    code = (
        "import os, pathlib, signal, sys\n"
        "real = pathlib.Path.write_bytes\n"
        "def write_bytes(self, data):\n"
        "    if self.name.startswith('.program.json.'):\n"
        "        real(self, data[:len(data) // 2])\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(self, data)\n"
        "pathlib.Path.write_bytes = write_bytes\n"
        "from sparsa.cli import main\n"
        "main(sys.argv[1:])\n")
    r = subprocess.run([sys.executable, "-c", code, "compile", str(d / "tiny.csv"),
                        "--config", "4x4-n2m4", "-o", str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr
    left = sorted(p.name for p in out.iterdir())
    assert [n.split(".")[1:3] for n in left] == [["program", "json"], ["program", "sprg"]]
    dead = left[0].split(".")[-2]
    (out / f".summary.json.{os.getppid()}.tmp").write_text("a running writer's")
    (out / f".notes.txt.{dead}.tmp").write_text("not a file compile writes")
    code, _, err = run(capsys, "compile", str(d / "tiny.csv"), "--config", "4x4-n2m4", "-o",
                       str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        f".notes.txt.{dead}.tmp", f".summary.json.{os.getppid()}.tmp", "program.json",
        "program.sprg", "summary.json"]
    assert Program.load(out / "program.sprg") == Program.load_json(out / "program.json")


def test_report_survives_a_damaged_spec_copy(tmp_path, d, capsys):
    """The results folder's spec.yaml only gives the report its title."""
    import shutil
    res = tmp_path / "res"
    shutil.copytree(d / "results", res)
    (res / "spec.yaml").write_text("name: [1\n")
    code, out, err = run(capsys, "report", str(res))
    assert code == 0, err
    assert "design-space report: res" in (res / "report" / "index.html").read_text()


def test_bare_group_prints_help(capsys):
    """'sparsa' / 'sparsa workloads' without a command: the full help (not squeezed into
    one error line), exit code 2 as click does."""
    for args in ((), ("workloads",)):
        code, _, err = run(capsys, *args)
        assert code == 2 and err.startswith("Usage: sparsa") and "Commands:" in err
        assert len(err.splitlines()) > 5


def test_workload_name_vs_local_paths(tmp_path, capsys, monkeypatch):
    """A folder named like a zoo network (e.g. after 'compile resnet18 -o resnet18') does not
    shadow the zoo; any other folder or extension-less file is named in the error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet18").mkdir()
    (tmp_path / "prog").mkdir()
    (tmp_path / "notes").write_text("hello\n")
    code, out, err = run(capsys, "workloads", "show", "resnet18", "--json")
    assert code == 0 and json.loads(out)["name"] == "resnet18", err
    code, _, err = run(capsys, "workloads", "show", "prog")
    one_line_error(code, err, "prog: a directory, not a workload")
    code, _, err = run(capsys, "workloads", "show", "notes")
    one_line_error(code, err, "notes: workload files must end in .onnx or .csv")


def test_program_whose_energy_table_file_moved(tmp_path, capsys, monkeypatch):
    """A compiled program keeps its config's energy-table path; once that file has moved
    the program still loads: --energy-table replaces the table, and without it the
    simulation names the missing file in one line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text("preset: horowitz45\nname: mine\n")
    (tmp_path / "c.yaml").write_text("preset: 4x4-n2m4\nname: c\nenergy_table: my.yaml\n")
    (tmp_path / "t.csv").write_text("Layer, M, N, K\ng1,8,8,8\n")
    code, _, err = run(capsys, "compile", "t.csv", "--config", "c.yaml", "--no-data", "-o", "p")
    assert code == 0, err
    (tmp_path / "my.yaml").rename(tmp_path / "moved.yaml")
    code, out, err = run(capsys, "simulate", "p", "--energy-table", "moved.yaml", "--json")
    assert code == 0, err
    assert json.loads(out)["energy_table"] == "mine"
    code, _, err = run(capsys, "simulate", "p")
    one_line_error(code, err, "my.yaml: cannot read energy table")
