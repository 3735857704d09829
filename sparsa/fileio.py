"""Atomic file output shared by every verb: nothing half-written is ever left behind.

:func:`write_atomic` writes one file through a temporary file next to it and a rename;
:func:`write_files` writes a set of files that belong together (a compiled program's
``program.sprg``, ``program.json`` and ``summary.json``; the core's Verilog and its manifest)
so that a failure leaves the folder as it was: every target is checked first, every
temporary file is written before the first rename, and errors name the target file, not a
temporary one.

A writer killed mid-write (SIGKILL, the OOM killer, a power cut) cannot remove its temporary
file; :func:`remove_stale_temps` does, for a process that no longer runs. Every write here
calls it for its targets, and the sweep's results store for its part files, so such
leftovers go away on the next run instead of piling up. Nothing ever reads a temporary
file, so a half-written one is never trusted.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["remove_stale_temps", "temp_dir", "write_atomic", "write_files"]

#: Name of a temporary file of :func:`write_atomic`: ``.<target name>.<writer pid>.tmp``, or
#: of a writer's private temporary folder: the same name ending in ``.tmp.d``.
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.tmp(?P<dir>\.d)?$")


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def temp_dir(path: Path) -> Path:
    """Name of this process's private temporary folder next to ``path`` (for writers that
    produce several files and rename each into place); :func:`remove_stale_temps` removes
    it once the process is gone."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp.d")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:         # exists, owned by someone else (EPERM); or cannot tell: keep
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str],
                       targets: Callable[[str], bool] | None = None) -> list[Path]:
    """Remove the temporary files that writers killed mid-write left in ``folder``.

    A file counts when it is named like this module's temporary files, its writer process
    no longer runs, and ``targets`` (default: every name) accepts the name of the file it
    was to become. A writer's private temporary folder (``.tmp.d``, see :func:`temp_dir`)
    counts the same way and goes with its contents. Files of a running writer (a
    concurrent sweep) are left alone.

    Returns the removed paths.
    """
    out = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(out.iterdir())
    except OSError:         # no folder (nothing to clean) or unreadable (not ours to clean)
        return removed
    for p in entries:
        m = _TMP_NAME.match(p.name)
        if m is None or (targets is not None and not targets(m["name"])):
            continue
        is_dir = bool(m["dir"])
        if p.is_symlink() or not (p.is_dir() if is_dir else p.is_file()) \
                or _running(int(m["pid"])):
            continue
        try:
            if is_dir:
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            continue
        except OSError:     # read-only folder: the leftover stays, the write fails later
            continue
        removed.append(p)
    return removed


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory; cannot write the file there",
                                str(path))
    if path.exists() and not path.is_file():
        raise OSError(errno.EEXIST, "exists and is not a regular file", str(path))


def _write_tmp(path: Path, data: bytes | Callable[[Path], None]) -> Path:
    tmp = _tmp(path)
    try:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[Path], None]) -> Path:
    """Write ``data`` (bytes, or a function writing the file at the path it is given) to
    ``path`` through a temporary file and a rename; creates the folder."""
    return write_files(Path(path).parent, {Path(path).name: data})[0]


def write_files(folder: str | os.PathLike[str],
                files: dict[str, bytes | Callable[[Path], None]]) -> list[Path]:
    """Write every ``name: data`` of ``files`` into ``folder`` (created if needed), renamed
    into place in the given order only after all of them were written. Returns the paths.

    Raises
    ------
    OSError
        Naming the target file (a directory in the way, a full disk, no permission); no
        temporary file and no new target is left behind.
    """
    out = Path(folder)
    targets = [out / name for name in files]
    for t in targets:
        _check_target(t)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, files.__contains__)
    tmps: list[Path] = []
    try:
        for t, data in zip(targets, files.values(), strict=True):
            tmps.append(_write_tmp(t, data))
        for tmp, t in zip(tmps, targets, strict=True):
            try:
                os.replace(tmp, t)
            except OSError as e:
                raise OSError(e.errno, e.strerror or str(e), str(t)) from None
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return targets
