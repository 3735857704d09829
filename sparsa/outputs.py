"""Early checks of output paths named on the command line.

A verb checks its ``-o`` (or ``--csv``) path before doing any work, so that a path under a
regular file or in a read-only directory is one ``error:`` line naming the option and the
path (exit code 2) instead of a traceback after minutes of computing.
"""

from __future__ import annotations

import os
from pathlib import Path

import click


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _bad(option: str, path: Path, why: str) -> click.BadParameter:
    return click.BadParameter(f"{str(path)!r}: {why}", param_hint=f"'{option}'")


def _check_parent(option: str, path: Path, parent: Path) -> None:
    anc = _existing_ancestor(parent)
    if not anc.is_dir():
        raise _bad(option, path, f"{anc} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise _bad(option, path, f"directory {anc} is not writable")


def check_out_dir(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Check that ``path`` is, or can be created as, a writable directory.

    Parameters
    ----------
    path : str or PathLike
        The output directory.
    option : str
        The option that named it, for the message.

    Returns
    -------
    Path

    Raises
    ------
    click.BadParameter
        One line naming ``option``, the path and what is wrong.
    """
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise _bad(option, p, "exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise _bad(option, p, "directory is not writable")
        return p
    _check_parent(option, p, p.parent)
    return p


def check_out_file(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Check that ``path`` can be written as a file (its folder exists or can be created).

    Raises
    ------
    click.BadParameter
        One line naming ``option``, the path and what is wrong.
    """
    p = Path(path)
    if p.is_dir():
        raise _bad(option, p, "is a directory; give a file name")
    _check_parent(option, p, p.parent)
    return p
