"""Early checks of output paths named on the command line.

A verb checks its ``-o`` (or ``--csv``) path before doing any work, so that a path under a
regular file or in a read-only directory is one ``error:`` line naming the option and the
path (exit code 2) instead of a traceback after minutes of computing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _bad(option: str, path: Path, why: str) -> click.BadParameter:
    return click.BadParameter(f"{str(path)!r}: {why}", param_hint=f"'{option}'")


def _writable(folder: Path) -> str | None:
    """``None`` when a file can be created in ``folder``, else why not. A real probe (a
    temporary file, removed at once): permission bits say nothing for root, nor for
    pseudo file systems such as /proc."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        fd, name = tempfile.mkstemp(prefix=".sparsa-probe-", dir=folder)
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    os.unlink(name)
    return None


def _check_parent(option: str, path: Path, parent: Path) -> None:
    anc = _existing_ancestor(parent)
    if not anc.is_dir():
        raise _bad(option, path, f"{anc} is not a directory")
    why = _writable(anc)
    if why is not None:
        raise _bad(option, path, f"directory {anc} is not writable ({why})")


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
    if not str(path):
        raise click.BadParameter("empty path; give a directory (. for the current one)",
                                 param_hint=f"'{option}'")
    if p.exists():
        if not p.is_dir():
            raise _bad(option, p, "exists and is not a directory")
        why = _writable(p)
        if why is not None:
            raise _bad(option, p, f"directory is not writable ({why})")
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
    if not str(path):
        raise click.BadParameter("empty path; give a file name", param_hint=f"'{option}'")
    if p.is_dir():
        raise _bad(option, p, "is a directory; give a file name")
    if p.exists() and not p.is_file():
        raise _bad(option, p, "exists and is not a regular file (a device or a pipe would "
                              "be replaced); give a file name")
    _check_parent(option, p, p.parent)
    return p
