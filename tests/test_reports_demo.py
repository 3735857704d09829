"""``python -m sparsa.demo``: stage selection, and a failing stage fails loudly (exit 1).

The full demo (minutes) runs with ``make demo``; here only what is cheap."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsa.demo import main


def test_unknown_stage_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path), "--stages", "rtl,bogus"])
    assert e.value.code == 2


def test_failing_stage_is_reported_and_exits_1(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # the report stage without any results: must fail, not be skipped
    code = main(["--out", str(tmp_path / "d"), "--stages", "report"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in out and "no sweep results" in out
    assert "report" in out.split("sparsa demo")[-1]
