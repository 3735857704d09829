"""Running the ``sparsa`` CLI in-process from tests."""

from __future__ import annotations

import pytest

from sparsa.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``sparsa ARGS...`` in this process: ``(exit code, stdout, stderr)``."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, needle: str) -> None:
    """The bad-input contract: exit 2, one ``error:`` line containing ``needle``, no
    traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
