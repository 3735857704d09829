"""Test-session set-up: the tests cache nothing across runs.

The area model's synthesis results normally persist in the user's cache
(:func:`sparsa.hw.area.cache_dir`); every test process gets a fresh, temporary one instead,
so each run synthesises what it measures. (Verilator builds live in the checkout's
``build/``, which a fresh clone does not have.)
"""

from __future__ import annotations

import os
import shutil
import tempfile

_AREA_CACHE: str | None = None


def pytest_configure(config) -> None:  # noqa: ARG001 - pytest hook signature
    global _AREA_CACHE
    _AREA_CACHE = tempfile.mkdtemp(prefix="sparsa-test-area-")
    os.environ["SPARSA_AREA_CACHE"] = _AREA_CACHE


def pytest_unconfigure(config) -> None:  # noqa: ARG001
    if _AREA_CACHE:
        shutil.rmtree(_AREA_CACHE, ignore_errors=True)
