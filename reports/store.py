"""The results store of a sweep: Parquet, one row per design point, keyed by content hash.

Layout of a results directory::

    RESULTS/
      spec.yaml              the spec the sweep ran (copied on start)
      points.parquet         compacted rows, sorted by point index
      layers.parquet         compacted per-layer rows (only with ``per_layer: true``)
      parts/                 one part file per finished batch, written while the sweep runs
        points-<ns>-<pid>-<seq>.parquet
        layers-<ns>-<pid>-<seq>.parquet

Every file is written atomically (temporary name in the same directory, then
``os.replace``), so a killed sweep leaves only complete files behind. :meth:`compact` merges
the part files into the compacted table and deletes them; reading merges both, so a store is
always readable, compacted or not. When a hash appears more than once (a point retried after
an error, or a crash between compaction and deleting the parts) the last written row wins.

Column types are inferred over all rows of a table at once (so an integer column that holds a
float anywhere becomes float64 everywhere), which makes the compacted table independent of how
the rows were split into part files.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ReportError

__all__ = ["ResultStore", "open_results", "rows_to_table"]

_SEQ = itertools.count()


def rows_to_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """A table with the union of the rows' keys (in order of first appearance)."""
    cols: dict[str, None] = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    arrays = {}
    for c in cols:
        vals = [r.get(c) for r in rows]
        try:
            arrays[c] = pa.array(vals)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[c] = pa.array([None if v is None else str(v) for v in vals], pa.string())
    return pa.table(arrays) if arrays else pa.table({})


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class ResultStore:
    """A sweep's results directory (see the module docstring).

    Parameters
    ----------
    root : path
        The directory; created on the first write.
    """

    POINTS = "points"
    LAYERS = "layers"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.parts = self.root / "parts"

    # ---- paths --------------------------------------------------------------------------
    def compacted_path(self, kind: str = POINTS) -> Path:
        return self.root / f"{kind}.parquet"

    def part_files(self, kind: str = POINTS) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(p for p in self.parts.glob(f"{kind}-*.parquet"))

    def exists(self) -> bool:
        return self.compacted_path().exists() or bool(self.part_files())

    # ---- writing ------------------------------------------------------------------------
    def write_part(self, rows: Sequence[dict[str, Any]],
                   layers: Sequence[dict[str, Any]] = ()) -> Path | None:
        """Write one batch of finished rows (and their per-layer rows) as part files.

        The layer part is written first, so that a point whose row is on disk always has
        its layers on disk too.
        """
        if not rows:
            return None
        self.parts.mkdir(parents=True, exist_ok=True)
        stem = f"{time.time_ns():020d}-{os.getpid()}-{next(_SEQ):06d}"
        if layers:
            _write_atomic(rows_to_table(layers), self.parts / f"{self.LAYERS}-{stem}.parquet")
        path = self.parts / f"{self.POINTS}-{stem}.parquet"
        _write_atomic(rows_to_table(rows), path)
        return path

    def compact(self) -> Path | None:
        """Merge the part files into ``points.parquet`` (and ``layers.parquet``)."""
        out = None
        for kind in (self.LAYERS, self.POINTS):
            parts = self.part_files(kind)
            if not parts:
                continue
            rows = self._read_rows(kind, parts)
            path = self.compacted_path(kind)
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomic(rows_to_table(rows), path)
            for p in parts:
                p.unlink(missing_ok=True)
            if kind == self.POINTS:
                out = path
        return out

    # ---- reading ------------------------------------------------------------------------
    def _read_rows(self, kind: str, parts: Iterable[Path] | None = None) -> list[dict[str, Any]]:
        files = []
        compacted = self.compacted_path(kind)
        if compacted.exists():
            files.append(compacted)
        files += list(self.part_files(kind) if parts is None else parts)
        by_key: dict[Any, dict[str, Any]] = {}
        for f in files:
            try:
                rows = pq.read_table(f).to_pylist()
            except (OSError, pa.ArrowInvalid) as e:
                raise ReportError(f"{f}: unreadable results file ({e})") from None
            for r in rows:
                key = (r.get("hash"), r.get("layer_index")) if kind == self.LAYERS \
                    else r.get("hash")
                by_key[key] = r
        if kind == self.LAYERS:
            return sorted(by_key.values(), key=lambda r: (r.get("point_index", 0),
                                                          r.get("layer_index", 0)))
        return sorted(by_key.values(), key=lambda r: (r.get("point_index", 0), r.get("hash")))

    def rows(self, kind: str = POINTS) -> list[dict[str, Any]]:
        """All rows (compacted and parts, last write per key wins), sorted by point index."""
        return self._read_rows(kind)

    def table(self, kind: str = POINTS) -> pa.Table:
        return rows_to_table(self.rows(kind))

    def finished(self, *, include_errors: bool = True) -> set[str]:
        """Hashes of the points that have a row (``include_errors=False``: ok rows only)."""
        out: set[str] = set()
        files = ([self.compacted_path()] if self.compacted_path().exists() else []) \
            + self.part_files()
        for f in files:
            try:
                t = pq.read_table(f, columns=["hash", "status"])
            except (OSError, pa.ArrowInvalid, KeyError) as e:
                raise ReportError(f"{f}: unreadable results file ({e})") from None
            for h, s in zip(t.column("hash").to_pylist(), t.column("status").to_pylist(),
                            strict=True):
                if include_errors or s == "ok":
                    out.add(h)
                else:
                    out.discard(h)
        return out


def open_results(path: str | os.PathLike[str]) -> ResultStore:
    """A :class:`ResultStore` for a results directory that must exist (or its ``points.parquet``)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        p = p.parent
    store = ResultStore(p)
    if not store.exists():
        raise ReportError(f"{path}: no sweep results here (expected points.parquet or "
                          f"parts/); run `sparsa sweep SPEC -o {path}` first")
    return store
