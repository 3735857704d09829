"""AccelConfig validation/YAML and ISA encode/decode round trips."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparsa.hw.config import DEFAULT, PRESETS, ConfigError, load_config, resolve_config
from sparsa.hw.isa import (
    INSTR_BITS,
    Compute,
    Fence,
    ISAError,
    Load,
    Preload,
    Store,
    Target,
    decode,
    encode,
)


def test_presets_required_by_issue():
    for name in ("8x8-n2m4", "16x16-n2m4", "16x16-n2m8", "32x32-n2m4"):
        assert name in PRESETS
    c = PRESETS["16x16-n2m8"]
    assert (c.rows, c.cols, c.n, c.m, c.idx_bits, c.k_per_pass) == (16, 16, 2, 8, 3, 64)


@pytest.mark.parametrize("field,value,needle", [
    ("rows", 15, "rows=15 is invalid: must be a multiple of n=2"),
    ("m", 6, "m=6 is invalid"),
    ("n", 9, "n=9 is invalid: allowed 1..m=4"),
    ("dram_bytes_per_cycle", 12, "power of two"),
    ("acc_bits", 16, "acc_bits=16"),
])
def test_invalid_fields_name_field_and_range(field, value, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        dataclasses.replace(DEFAULT, **{field: value})


def test_yaml_round_trip_and_errors(tmp_path):
    p = tmp_path / "c.yaml"
    PRESETS["8x8-n2m8"].to_yaml(p)
    assert load_config(p) == PRESETS["8x8-n2m8"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML"):
        load_config(bad)
    unk = tmp_path / "unk.yaml"
    unk.write_text("rowz: 8\n")
    with pytest.raises(ConfigError, match=r"unk.yaml: unknown field 'rowz'"):
        load_config(unk)
    pre = tmp_path / "pre.yaml"
    pre.write_text("preset: 8x8-n2m4\ncols: 4\n")
    assert resolve_config(str(pre)).cols == 4
    with pytest.raises(ConfigError, match="neither a preset"):
        resolve_config("nope")


@given(st.integers(0, 15), st.integers(0, 65535), st.integers(0, 65535),
       st.integers(0, 2**32 - 1), st.integers(0, 65535), st.integers(0, 1), st.integers(0, 31))
def test_isa_round_trip(wait, a, b, dram, stride, flag, shift):
    for ins in (
        Load(wait=wait, target=Target(flag), sp_addr=a, count=b, dram_addr=dram,
             dram_stride=stride, expand=flag),
        Preload(wait=wait, wsp_addr=a),
        Compute(wait=wait, asp_addr=a, acc_addr=b, count=stride, accumulate=flag, swap=1 - flag),
        Store(wait=wait, acc_addr=a, count=b, dram_addr=dram, dram_stride=stride, relu=flag,
              requant=1 - flag, shift=shift),
        Fence(wait=wait),
    ):
        w = encode(ins)
        assert 0 <= w < 2**INSTR_BITS
        assert decode(w) == ins


def test_isa_rejects_out_of_range_and_bad_words():
    with pytest.raises(ISAError, match="count=65536 does not fit in 16 bits"):
        Compute(count=65536)
    with pytest.raises(ISAError, match="unknown opcode"):
        decode(0xF)
    # a bit no field of the opcode uses (a FENCE has only op and wait; a PRELOAD's payload
    # ends long before the word does) is reserved: the core would ignore it, the loader not
    for ins in (Fence(wait=3), Preload(wsp_addr=5)):
        with pytest.raises(ISAError, match=f"{ins.OP.name} word sets reserved bits"):
            decode(encode(ins) | 1 << (INSTR_BITS - 1))
        assert decode(encode(ins)) == ins


def test_isa_layouts_are_built_from_the_format_tables_and_only_when_asked():
    """The hardware's amaranth layouts place every field where the software's tables do,
    and compiling/simulating a workload never imports Amaranth (the layouts are built on
    first use; the command line's start is a quarter of a second shorter for it)."""
    import subprocess
    import sys
    from pathlib import Path

    from sparsa.hw import isa
    from sparsa.hw.isa import _field_offsets
    topology = Path(__file__).parent / "data" / "scalesim" / "Resnet18.csv"
    for name, fmt in isa.FORMATS.items():
        lay = getattr(isa, f"{name.upper()}_LAYOUT")
        assert {n: (f.offset, f.width) for n, f in lay} == _field_offsets(fmt)
        assert isa.PAYLOAD_LAYOUT.size == isa.PAYLOAD_BITS >= lay.size
    assert isa.INSTR_LAYOUT.size == isa.INSTR_BITS
    code = ("import sys\n"
            "from sparsa.compiler import compile_workload\n"
            "from sparsa.hw.config import PRESETS\n"
            "from sparsa.sim.api import simulate\n"
            "cfg = PRESETS['32x32-n2m4']\n"
            f"p = compile_workload({str(topology)!r}, cfg, sparsity='2:4',\n"
            "                     with_data=False)\n"
            "simulate(p, cfg)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
