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
``os.replace``), so a killed sweep leaves only complete files behind, besides the temporary
file it was writing when it was killed: :meth:`ResultStore.remove_stale_temps` (called when a
sweep starts) removes those. :meth:`compact` merges
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

from sparsa.fileio import remove_stale_temps, write_atomic

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


#: Columns every successful point (status ``ok``) and every layer row has.
OK_POINT_COLUMNS = ("workload", "config", "sparsity", "dataflow", "cycles")
LAYER_COLUMNS = ("workload", "config", "sparsity", "dataflow")

#: Result columns that hold text.
TEXT_COLUMNS = frozenset({"hash", "status", "workload", "config", "sparsity", "dataflow",
                          "limiting", "energy_table", "config_name", "layer", "kind", "mode",
                          "mode_notes"})
#: Result columns that hold numbers (besides ``energy_*``, ``area_*``, ``cycles_*``,
#: ``*_busy``, ``*_stall``, ``*_bytes``).
NUMERIC_COLUMNS = frozenset({"cycles", "dense_cycles", "speedup", "utilisation",
                             "pe_utilisation", "macs", "dense_macs", "macs_issued", "tops_w",
                             "edp", "dense_energy_pj", "energy_reduction", "point_index",
                             "layer_index", "rows", "cols", "n", "m"})


def _numeric_column(name: str) -> bool:
    if name in NUMERIC_COLUMNS:
        return True
    if name in TEXT_COLUMNS or name == "area_slice_design_hash":
        return False
    return name.startswith(("energy_", "area_", "cycles_")) or \
        name.endswith(("_busy", "_stall", "_bytes"))


def _write_atomic(table: pa.Table, path: Path) -> None:
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


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
    def remove_stale_temps(self) -> list[Path]:
        """Remove the temporary files of writers that were killed mid-write (a part file or
        the compacted table of an earlier, killed sweep); returns them."""
        def ours(name: str) -> bool:
            return name.endswith(".parquet") or name == "spec.yaml"

        return remove_stale_temps(self.root, ours) + remove_stale_temps(self.parts, ours)

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
    def _check_schema(self, f: Path, table: pa.Table, kind: str, report: bool) -> None:
        """Columns the plots and the report compute with must hold numbers (text columns
        text), and for them (``report``) every successful point and every layer names its
        workload, config, sparsity and dataflow: a results file edited or written by
        another tool fails here, with one line naming the file and the column, instead of
        deep inside matplotlib."""
        need = ("hash", "status") if kind == self.POINTS else ("hash", "layer_index")
        missing = [c for c in need if c not in table.column_names]
        if missing:
            raise ReportError(f"{f}: not a sparsa results file (no column {missing[0]!r}; "
                              f"written by 'sparsa sweep')")
        for fld in table.schema:
            name, t = fld.name, fld.type
            if pa.types.is_null(t):
                continue
            if name in TEXT_COLUMNS and not pa.types.is_string(t):
                raise ReportError(f"{f}: column {name!r} has type {t}; allowed text")
            if _numeric_column(name) and not (pa.types.is_integer(t) or
                                               pa.types.is_floating(t)):
                raise ReportError(f"{f}: column {name!r} has type {t}; allowed numbers")
        if "cycles" in table.column_names and _numeric_column("cycles"):
            col = table.column("cycles").to_pylist()
            bad = [v for v in col if v is not None and v < 0]
            if bad:
                raise ReportError(f"{f}: column 'cycles' holds {bad[0]}; allowed >= 0")
        if not report:
            return
        # what the plots and the report group by: in every successful point, every layer
        if kind == self.POINTS:
            status = table.column("status").to_pylist()
            ok = [i for i, v in enumerate(status) if v == "ok"]
            need = OK_POINT_COLUMNS
        else:
            ok, need = list(range(table.num_rows)), LAYER_COLUMNS
        if not ok:
            return
        for c in need:
            if c not in table.column_names:
                raise ReportError(f"{f}: not a sparsa results file (no column {c!r}; "
                                  f"written by 'sparsa sweep')")
            col = table.column(c).to_pylist()
            empty = next((i for i in ok if col[i] is None), None)
            if empty is not None:
                raise ReportError(f"{f}: row {empty} has no {c!r}; every "
                                  f"{'successful point' if kind == self.POINTS else 'layer'} "
                                  f"has one")

    def _read_rows(self, kind: str, parts: Iterable[Path] | None = None,
                   report: bool = False) -> list[dict[str, Any]]:
        files = []
        compacted = self.compacted_path(kind)
        if compacted.exists():
            files.append(compacted)
        files += list(self.part_files(kind) if parts is None else parts)
        by_key: dict[Any, dict[str, Any]] = {}
        for f in files:
            try:
                table = pq.read_table(f)
            except (OSError, pa.ArrowInvalid) as e:
                raise ReportError(f"{f}: unreadable results file ({e})") from None
            self._check_schema(f, table, kind, report)
            rows = table.to_pylist()
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

    def report_rows(self, kind: str = POINTS) -> list[dict[str, Any]]:
        """:meth:`rows` for the plots and the report: also checks that every successful
        point and every layer row has the columns they group by (:data:`OK_POINT_COLUMNS`,
        :data:`LAYER_COLUMNS`)."""
        return self._read_rows(kind, report=True)

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
