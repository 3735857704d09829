"""``sparsa verify --waves``: the RTL suite from the command line writes one VCD per run and
prints where (and leaves ``WAVES`` as it found it)."""

import json
import os
from pathlib import Path

import pytest

from sparsa.cli import main


@pytest.mark.xdist_group("4x4-n2m4-waves")
def test_verify_waves_writes_vcd_files(capsys, monkeypatch):
    monkeypatch.delenv("WAVES", raising=False)
    main(["verify", "--config", "4x4-n2m4", "--waves", "--tiles", "1", "--json"])
    s = json.loads(capsys.readouterr().out)
    assert s["ok"] and all(t["bit_exact"] for t in s["tiles"])
    assert len(s["waves"]) == 3               # random stalls, cycle stalls, timing cases
    for f in s["waves"]:
        head = Path(f).read_text(errors="replace")[:2000]
        assert head.startswith("$version") and " clk $end" in head and "instr__valid" in head
    assert "WAVES" not in os.environ
