"""A plain, self-contained HTML report of a sweep: tables, plots and the energy table used.

:func:`build_report` renders every plot kind the results support (PNG and SVG files next to
the page; the PNGs are also embedded, so ``index.html`` alone shows everything), the Pareto
designs, all results, the error rows, and the per-action energy table of the model. No
external assets (scripts, fonts, stylesheets) are referenced.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparsa.hw.config import PRESETS, AccelConfig, resolve_config

from sparsa.fileio import write_atomic

from . import plots
from .errors import ReportError
from .store import open_results

__all__ = ["CAPTIONS", "build_report", "energy_table_rows"]

Row = dict[str, Any]

#: One sentence per plot kind on what it shows (also used in the README).
CAPTIONS = {
    "speedup": "Speed-up of each sparsity pattern over the same workload run dense on the same "
               "core: the gain the N:M array actually delivers once fill/drain, memory and "
               "non-GEMM work are counted.",
    "energy": "Energy per inference split by component (MACs, window multiplexers, the three "
              "SRAMs, index metadata, DRAM) for each workload and pattern: where sparsity "
              "saves energy and what is left.",
    "pareto-cycles": "Every design point's area against its cycles; the marked step line is "
                     "the Pareto front, the designs no other design beats on both.",
    "pareto-energy": "The same design points with energy instead of cycles: the "
                     "energy-optimal designs need not be the fastest ones.",
    "dataflow": "Cycles of each dataflow relative to weight-stationary for the same workload "
                "and sparsity (below 1 is faster).",
    "layers": "Array utilisation (dense-equivalent MACs over the array's peak) of every layer "
              "of one network, per sparsity pattern: which layers keep the array busy.",
    "training": "One training step split into forward, backward-data and weight-gradient "
                "GEMM phases: sparsity can shorten the first two, the dense weight gradient "
                "bounds the total speed-up.",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:2px 6px}th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}figcaption{font-size:13px;color:#444;max-width:800px}
img{max-width:100%}.err{color:#a00}
"""

RESULT_COLUMNS = ("point_index", "workload", "config", "sparsity", "dataflow", "train",
                  "cycles", "speedup", "utilisation", "energy_pj", "tops_w", "edp",
                  "dram_read_bytes", "dram_write_bytes")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return f"{v:.4g}"
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    cols = [c for c in columns if any(r.get(c) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cls = ' class="n"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def energy_table_rows(name: str, config: str | AccelConfig | None = None) -> list[Row]:
    """The model's per-action energy table ``name`` as rows of ``item``, ``value``, with the
    SRAM energies interpolated for ``config`` (default: the default core)."""
    from sparsa.sim.energy import resolve_energy_table

    cfg = config if isinstance(config, AccelConfig) else resolve_config(config)
    return [{"item": a, "value": b} for a, b in resolve_energy_table(name).rows(cfg)]


def _pareto_rows(rows: Sequence[Row]) -> tuple[list[Row], str | None]:
    ok = [r for r in rows if r.get("status") == "ok" and r.get("cycles") is not None
          and not r.get("train")]
    try:
        acol = plots.area_column(ok)
    except ReportError:
        return [], None
    out = []
    for wl in dict.fromkeys(r["workload"] for r in ok):
        pts = [r for r in ok if r["workload"] == wl and r.get(acol) is not None]
        front = plots.pareto_front([(float(r[acol]), float(r["cycles"])) for r in pts])
        out += [pts[i] for i in front]
    return out, acol


def build_report(results: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 title: str | None = None) -> Path:
    """Write ``<out_dir>/index.html`` (and the plot files) for a results directory.

    Everything that can fail on the results (their schema, the reference config, the
    energy tables they name) is worked out before the first file is written.

    Returns the path of ``index.html``.
    """
    store = open_results(results)
    rows = store.report_rows()
    layers = store.report_rows("layers")
    ok = [r for r in rows if r.get("status") == "ok"]
    errs = [r for r in rows if r.get("status") != "ok"]
    ref = plots.reference_config(rows) if ok else None
    energy = _energy_sections(store.root, rows, ok, ref)
    pareto, acol = _pareto_rows(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = plots.render_all(rows, layers, out)
    spec_name = None
    spec_file = store.root / "spec.yaml"
    if spec_file.exists():
        import yaml
        try:        # only the title comes from it: a damaged copy falls back to the folder
            raw = yaml.safe_load(spec_file.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
            raw = {}
        spec_name = raw.get("name") if isinstance(raw, dict) else None
    title = title or f"sparsa design-space report: {spec_name or store.root.name}"

    def distinct(col: str) -> str:
        return ", ".join(html.escape(str(v)) for v in dict.fromkeys(r.get(col) for r in rows))

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{len(rows)} design points: {len(ok)} ok, {len(errs)} errors. "
             f"Workloads: {distinct('workload')}. Configs: {distinct('config')}. "
             f"Sparsity: {distinct('sparsity')}. Dataflows: {distinct('dataflow')}.</p>",
             "<h2>Plots</h2>"]
    for kind, paths in written.items():
        png = paths[0].read_bytes()
        b64 = base64.b64encode(png).decode()
        parts.append(f"<figure id='{kind}'><img alt='{kind}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption><b>{kind}</b>: {html.escape(CAPTIONS[kind])} "
                     f"(<a href='{paths[1].name}'>SVG</a>)</figcaption></figure>")
    if skipped:
        parts.append("<p>Not drawn (no data in this sweep): " + "; ".join(
            f"<b>{k}</b> ({html.escape(v)})" for k, v in skipped.items()) + "</p>")
    if pareto:
        parts.append("<h2>Pareto-optimal designs (area vs cycles, per workload)</h2>"
                     + _table(pareto, ("workload", "config", "sparsity", "dataflow", acol,
                                       "cycles", "energy_pj", "utilisation")))
    parts.append("<h2>Results</h2>" + _table(ok, [*RESULT_COLUMNS, *(
        [acol] if acol else [])]))
    cols = ("workload", "config", "sparsity", "mode_notes")
    noted = list({tuple(r.get(c) for c in cols): r for r in ok
                  if r.get("mode_notes")}.values())
    if noted:     # layers that do not run the mode their sparsity suggests, and why
        parts.append("<h2>Layers in another mode than their sparsity suggests</h2>"
                     + _table(noted, cols))
    if errs:
        parts.append("<h2 class='err'>Failed design points</h2>"
                     + _table(errs, ("point_index", "workload", "config", "sparsity",
                                     "dataflow", "train", "error")))
    for name, table in energy:
        where = f", SRAM values for {ref}" if ref else ""
        parts.append(f"<h2>Energy table used ({html.escape(str(name))}{html.escape(where)})"
                     f"</h2>" + _table(table, ("item", "value")))
    parts.append("</body></html>\n")
    return write_atomic(out / "index.html", "\n".join(parts).encode())


_CONFIG_FIELDS = ("rows", "cols", "n", "m", "wgt_sp_kib", "act_sp_kib", "acc_sp_kib",
                  "dram_bytes_per_cycle", "dram_latency_cycles", "clock_mhz")


def _energy_sections(root: Path, rows: Sequence[Row], ok: Sequence[Row],
                     ref: str | None) -> list[tuple[str, list[Row]]]:
    """``(name, rows)`` of every energy table the results name, with the SRAM values of the
    reference config ``ref``; a config or table the results cannot give is a one-line
    :class:`ReportError` naming the results folder."""
    from sparsa.hw.config import ConfigError
    from sparsa.sim.errors import SimError

    ref_row = next((r for r in ok if r["config"] == ref), None)
    cfg = None
    try:
        if ref_row is not None:
            cfg = PRESETS.get(ref_row["config"])
            if cfg is None:
                missing = [k for k in _CONFIG_FIELDS if ref_row.get(k) is None]
                if missing:
                    raise ReportError(f"{root}: config {ref!r} has no {missing[0]!r} in the "
                                      f"results (written by 'sparsa sweep')")
                cfg = AccelConfig(**{k: ref_row[k] for k in _CONFIG_FIELDS})
    except ConfigError as e:
        raise ReportError(f"{root}: config {ref!r} in the results: {e}") from None
    tables = list(dict.fromkeys(r.get("energy_table") or "horowitz45" for r in rows))
    try:
        return [(name, energy_table_rows(name, cfg)) for name in tables]
    except SimError as e:
        raise ReportError(f"{root}: energy table in the results: {e}") from None
