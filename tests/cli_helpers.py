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
