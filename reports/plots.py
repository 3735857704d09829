"""Design-space plots: each kind is a data-extraction function and a drawing function.

Drawing functions take plain data (lists of sweep rows, see :mod:`sparsa.reports.sweep`) and
return ``(fig, ax)``. They build :class:`matplotlib.figure.Figure` objects directly (no
``pyplot``, no global state) inside :func:`matplotlib.rc_context`, so importing or calling
them never changes the caller's matplotlib settings.

Kinds (:data:`KINDS`):

``speedup``
    speed-up over dense vs sparsity pattern, one bar group per pattern, one bar per workload.
``energy``
    energy breakdown per component (stacked bars) for each workload and sparsity pattern.
``pareto-cycles``, ``pareto-energy``
    area vs cycles / energy of every design point of each workload, Pareto front marked.
``dataflow``
    cycles of each dataflow relative to weight-stationary, per workload and pattern.
``layers``
    per-layer array utilisation (needs a sweep with ``per_layer: true``).
``training``
    training step cycles split into forward, backward-data and weight-gradient phases.

:func:`render` writes a kind as PNG and SVG (atomically).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sparsa.fileio import write_atomic

from .errors import ReportError

__all__ = ["KINDS", "RC", "area_column", "pareto_front", "plot_dataflow", "plot_energy",
           "plot_layers", "plot_pareto", "plot_speedup", "plot_training", "reference_config",
           "render", "render_all", "render_kinds"]

Row = dict[str, Any]

#: rc settings used by every plot (applied with ``rc_context``, never globally).
RC = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "svg.hashsalt": "sparsa",  # deterministic SVG ids
    "svg.fonttype": "none",
}

#: Area columns in order of preference (from :func:`sparsa.hw.area.estimate_area`).
AREA_COLUMNS = ("area_total_mm2", "area_total_um2", "area_um2", "area_mm2", "area_cells",
                "area_total_cells", "area")

AREA_LABELS = {"area_total_mm2": "area (mm², PE array + scratchpads, estimate)",
               "area_total_um2": "area (µm², PE array + scratchpads, estimate)"}

PHASES = (("cycles_fwd", "forward"), ("cycles_bwd_data", "backward-data"),
          ("cycles_wgrad", "weight-gradient"))


# ---- data extraction -----------------------------------------------------------------------
def _ok(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.get("status", "ok") == "ok" and r.get("cycles") is not None]


def _unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def reference_config(rows: Sequence[Row]) -> str:
    """The config most points were evaluated on (first in order among equals)."""
    counts: dict[str, int] = defaultdict(int)
    for r in _ok(rows):
        counts[r["config"]] += 1
    if not counts:
        raise ReportError("no successful design points in the results")
    best = max(counts.values())
    tied = [c for c, k in counts.items() if k == best]
    return "16x16-n2m4" if "16x16-n2m4" in tied else tied[0]


def _select(rows: Sequence[Row], *, config: str | None, dataflow: str | None = "ws",
            train: bool | None = False) -> list[Row]:
    ok = _ok(rows)
    if train is not None:
        ok = [r for r in ok if bool(r.get("train")) == train]
    if dataflow is not None:
        dfs = _unique(r["dataflow"] for r in ok)
        df = dataflow if dataflow in dfs else (dfs[0] if dfs else dataflow)
        ok = [r for r in ok if r["dataflow"] == df]
    if config is None and ok:
        config = reference_config(ok)
    return [r for r in ok if r["config"] == config]


def _need(rows: Sequence[Row], kind: str, what: str) -> None:
    if not rows:
        raise ReportError(f"plot {kind}: the results have no {what}")


def area_column(rows: Sequence[Row]) -> str:
    """The area column present in the rows (see :data:`AREA_COLUMNS`)."""
    cols = set().union(*(r.keys() for r in rows)) if rows else set()
    for c in AREA_COLUMNS:
        if c in cols and any(r.get(c) is not None for r in rows):
            return c
    raise ReportError("the results have no area column; run the sweep with area: true")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (x, y), both minimised; sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True)
class _Grouped:
    groups: list[str]          # x tick labels
    series: list[str]          # one bar per series in each group
    values: dict[tuple[str, str], float]


def _grouped(rows: Sequence[Row], group: Callable[[Row], str], series: Callable[[Row], str],
             value: Callable[[Row], float | None]) -> _Grouped:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        v = value(r)
        if v is not None:
            acc[(group(r), series(r))].append(float(v))
    groups = _unique(g for g, _ in acc)
    series_ = _unique(s for _, s in acc)
    return _Grouped(groups, series_, {k: _mean(v) for k, v in acc.items()})


def _bars(ax: Axes, g: _Grouped, *, colors: Sequence[Any] | None = None,
          label_fmt: str | None = None) -> None:
    width = 0.8 / max(1, len(g.series))
    for j, s in enumerate(g.series):
        xs = [i + (j - (len(g.series) - 1) / 2) * width for i in range(len(g.groups))]
        ys = [g.values.get((grp, s), float("nan")) for grp in g.groups]
        bars = ax.bar(xs, ys, width * 0.95, label=s,
                      color=None if colors is None else colors[j % len(colors)])
        if label_fmt:
            ax.bar_label(bars, fmt=label_fmt, fontsize=7, padding=1)
    ax.set_xticks(range(len(g.groups)), g.groups)


def _figure(w: float = 6.4, h: float = 3.8) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.subplots()


# ---- plot kinds ----------------------------------------------------------------------------
def _nm_of(sparsity: str) -> int | None:
    head = sparsity.split("+")[-1].split("@")[0]
    if ":" in head and "=" not in head:
        try:
            return int(head.split(":")[1])
        except ValueError:
            return None
    return None


def _pattern_rows(rows: Sequence[Row], config: str | None) -> list[Row]:
    """Inference ws rows with, per sparsity pattern, one config: ``config`` if given, else
    the reference config, or (for an N:M pattern the reference config does not have or whose
    window differs) the config whose window ``m`` matches the pattern and has most points."""
    sel = _select(rows, config=None, dataflow="ws")
    sel = [r for r in _ok(rows) if not r.get("train")
           and r["dataflow"] == (sel[0]["dataflow"] if sel else "ws")]
    if config is not None:
        return [r for r in sel if r["config"] == config]
    ref = reference_config(sel) if sel else None
    out = []
    for sp in _unique(r["sparsity"] for r in sel):
        cands = [r for r in sel if r["sparsity"] == sp]
        m = _nm_of(sp)
        matching = [r for r in cands if m is None or r.get("m") == m]
        pool = matching or cands
        cfgs = [r["config"] for r in pool]
        pick = ref if ref in cfgs else max(_unique(cfgs), key=cfgs.count)
        out += [r for r in pool if r["config"] == pick]
    return out


def _label(r: Row, ref: str) -> str:
    return r["sparsity"] if r["config"] == ref else f"{r['sparsity']}\n({r['config']})"


def plot_speedup(rows: Sequence[Row], *, config: str | None = None) -> tuple[Figure, Axes]:
    """Speed-up over dense on the same core vs sparsity pattern, one bar per workload.

    Each pattern is shown on the reference config (most points) or, when its window
    differs, on the config built for it (tick label names the config)."""
    sel = _pattern_rows(rows, config)
    _need(sel, "speedup", "inference points")
    ref = reference_config(sel)
    g = _grouped(sel, lambda r: _label(r, ref), lambda r: r["workload"],
                 lambda r: r.get("speedup"))
    with matplotlib.rc_context(RC):
        fig, ax = _figure()
        _bars(ax, g, label_fmt="%.2f")
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        ax.set_xlabel("sparsity pattern")
        ax.set_ylabel("speed-up over dense, same core (x)")
        ax.set_title(f"Speed-up vs sparsity ({ref}, {sel[0]['dataflow']})")
        ax.legend(title="workload")
    return fig, ax


def _energy_columns(rows: Sequence[Row]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("energy_") and k.endswith("_pj") and k != "energy_pj" \
                    and v is not None:
                cols.setdefault(k, None)
    return list(cols)


def plot_energy(rows: Sequence[Row], *, config: str | None = None) -> tuple[Figure, Axes]:
    """Energy per component, stacked, for each workload and sparsity pattern (µJ or mJ)."""
    sel = _pattern_rows(rows, config)
    _need(sel, "energy", "inference points")
    comps = _energy_columns(sel)
    if not comps:
        raise ReportError("plot energy: the results have no energy_<component>_pj columns")
    ref = reference_config(sel)
    # average repeated (workload, pattern) points (e.g. several batch sizes)
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    wl_order = _unique(r["workload"] for r in sel)
    sel = sorted(sel, key=lambda r: wl_order.index(r["workload"]))  # bars by workload
    for r in sel:
        groups[(r["workload"], _label(r, ref))].append(r)
    sel = [{**grp[0], **{c: _mean([x.get(c) or 0.0 for x in grp]) for c in comps}}
           for grp in groups.values()]
    labels = [f"{w}\n{lab}" for w, lab in groups]
    top = max(sum(r.get(c) or 0.0 for c in comps) for r in sel)
    unit, div = ("mJ", 1e9) if top >= 1e10 else ("µJ", 1e6)
    with matplotlib.rc_context(RC):
        fig, ax = _figure(max(6.4, 0.95 * len(sel) + 2.5), 4.4)
        bottom = [0.0] * len(sel)
        cmap = matplotlib.colormaps["tab20"]
        for j, c in enumerate(comps):
            vals = [(r.get(c) or 0.0) / div for r in sel]
            ax.bar(range(len(sel)), vals, 0.7, bottom=bottom, label=c[7:-3],
                   color=cmap(j % 20))
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xticks(range(len(sel)), labels, fontsize=7)
        ax.set_ylabel(f"energy per inference ({unit})")
        ax.set_title(f"Energy breakdown ({ref}, {sel[0]['dataflow']})")
        ax.legend(title="component", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig, ax


def plot_pareto(rows: Sequence[Row], *, metric: str = "cycles") -> tuple[Figure, Axes]:
    """Area vs ``metric`` (``cycles`` or ``energy_pj``) per workload; Pareto front marked."""
    sel = [r for r in _ok(rows) if not r.get("train") and r.get(metric) is not None]
    kind = "pareto-energy" if metric == "energy_pj" else f"pareto-{metric}"
    _need(sel, kind, f"inference points with {metric}")
    acol = area_column(sel)
    sel = [r for r in sel if r.get(acol) is not None]
    unit = "µJ" if metric == "energy_pj" else "cycles"
    scale = 1e-6 if metric == "energy_pj" else 1.0
    with matplotlib.rc_context(RC):
        fig, ax = _figure(6.4, 4.4)
        cmap = matplotlib.colormaps["tab10"]
        for j, wl in enumerate(_unique(r["workload"] for r in sel)):
            pts = [r for r in sel if r["workload"] == wl]
            xy = [(float(r[acol]), float(r[metric]) * scale) for r in pts]
            color = cmap(j % 10)
            ax.scatter([x for x, _ in xy], [y for _, y in xy], s=12, color=color, alpha=0.35,
                       label=f"{wl} (all points)")
            front = pareto_front(xy)
            fx = [xy[i][0] for i in front]
            fy = [xy[i][1] for i in front]
            ax.step(fx, fy, where="post", color=color, lw=1.2)
            ax.scatter(fx, fy, s=40, color=color, edgecolor="black", linewidth=0.8, zorder=3,
                       label=f"{wl} Pareto ({len(front)})")
        ax.set_yscale("log")
        ax.set_xlabel(AREA_LABELS.get(acol, acol.replace("_", " ")))
        ax.set_ylabel(f"{'energy' if metric == 'energy_pj' else 'cycles'} per inference "
                      f"({unit}, log)")
        ax.set_title(f"Area vs {'energy' if metric == 'energy_pj' else 'cycles'}: "
                     "Pareto-optimal designs")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig, ax


def plot_dataflow(rows: Sequence[Row], *, config: str | None = None) -> tuple[Figure, Axes]:
    """Cycles of each dataflow relative to weight-stationary (per workload and pattern)."""
    sel = _select(rows, config=config, dataflow=None)
    dfs = _unique(r["dataflow"] for r in sel)
    if len(dfs) < 2:
        raise ReportError("plot dataflow: the results have fewer than two dataflows")
    base_df = "ws" if "ws" in dfs else dfs[0]
    n_df: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in sel:
        n_df[(r["workload"], r["sparsity"])].add(r["dataflow"])
    base = {(r["workload"], r["sparsity"]): r["cycles"] for r in sel
            if r["dataflow"] == base_df and len(n_df[(r["workload"], r["sparsity"])]) > 1}
    g = _grouped([r for r in sel if (r["workload"], r["sparsity"]) in base],
                 lambda r: f"{r['workload']}\n{r['sparsity']}", lambda r: r["dataflow"],
                 lambda r: r["cycles"] / base[(r["workload"], r["sparsity"])])
    with matplotlib.rc_context(RC):
        fig, ax = _figure(max(6.4, 0.9 * len(g.groups) + 2), 3.8)
        _bars(ax, g, label_fmt="%.2f")
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        ax.set_ylabel(f"cycles relative to {base_df.upper()}")
        ax.set_title(f"Dataflow comparison ({sel[0]['config']}; lower is faster)")
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(title="dataflow")
    return fig, ax


def plot_layers(layers: Sequence[Row], *, workload: str | None = None,
                config: str | None = None) -> tuple[Figure, Axes]:
    """Per-layer array utilisation of one workload, one line per sparsity pattern."""
    sel = [r for r in layers if r.get("utilisation") is not None and not r.get("train")]
    _need(sel, "layers", "per-layer rows (run the sweep with per_layer: true)")
    dfs = _unique(r["dataflow"] for r in sel)
    sel = [r for r in sel if r["dataflow"] == ("ws" if "ws" in dfs else dfs[0])]
    workload = workload or sel[0]["workload"]
    sel = [r for r in sel if r["workload"] == workload]
    config = config or reference_config([{**r, "cycles": 1} for r in sel])
    sel = [r for r in sel if r["config"] == config]
    _need(sel, "layers", f"per-layer rows for {workload} on {config}")
    with matplotlib.rc_context(RC):
        fig, ax = _figure(7.2, 3.6)
        names: dict[int, str] = {}
        for sp in _unique(r["sparsity"] for r in sel):
            pts = sorted((r for r in sel if r["sparsity"] == sp), key=lambda r: r["layer_index"])
            ax.plot([r["layer_index"] for r in pts], [r["utilisation"] for r in pts],
                    marker="o", ms=2.5, lw=1, label=sp)
            names.update({r["layer_index"]: str(r.get("layer", r["layer_index"])) for r in pts})
        if len(names) <= 16:
            ticks = sorted(names)
            ax.set_xticks(ticks, [names[i] for i in ticks], rotation=30, ha="right", fontsize=7)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("layer (network order)")
        ax.set_ylabel("utilisation (dense-equivalent MACs / peak)")
        ax.set_title(f"Per-layer utilisation: {workload} on {config}")
        ax.legend(title="sparsity")
    return fig, ax


def plot_training(rows: Sequence[Row], *, config: str | None = None) -> tuple[Figure, Axes]:
    """Training-step cycles per phase (stacked), per workload and sparsity."""
    sel = [r for r in _select(rows, config=config, train=True)
           if all(r.get(c) is not None for c, _ in PHASES)]
    _need(sel, "training", "training points with per-phase cycles (train: [true])")
    labels = [f"{r['workload']}\n{r['sparsity'].replace(',method=', chr(10))}" for r in sel]
    with matplotlib.rc_context(RC):
        fig, ax = _figure(max(6.4, 0.8 * len(sel) + 2), 4.2)
        bottom = [0.0] * len(sel)
        for (col, name), color in zip(PHASES, ("#4c72b0", "#dd8452", "#55a868"), strict=True):
            vals = [r[col] / 1e6 for r in sel]
            ax.bar(range(len(sel)), vals, 0.7, bottom=bottom, label=name, color=color)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xticks(range(len(sel)), labels, fontsize=7)
        ax.set_ylabel("cycles per training step (millions)")
        ax.set_title(f"Training step by phase ({sel[0]['config']}, {sel[0]['dataflow']})")
        ax.legend(title="phase")
    return fig, ax


#: kind -> (function, which table it reads: "points" or "layers").
KINDS: dict[str, tuple[Callable[..., tuple[Figure, Axes]], str, dict[str, Any]]] = {
    "speedup": (plot_speedup, "points", {}),
    "energy": (plot_energy, "points", {}),
    "pareto-cycles": (plot_pareto, "points", {"metric": "cycles"}),
    "pareto-energy": (plot_pareto, "points", {"metric": "energy_pj"}),
    "dataflow": (plot_dataflow, "points", {}),
    "layers": (plot_layers, "layers", {}),
    "training": (plot_training, "points", {}),
}


def _save(fig: Figure, path: Path) -> None:
    fmt = path.suffix[1:]
    # SVG metadata carries the time of writing unless told otherwise (and so the report's
    # SVG files differed on every run); PNG has none
    meta = {"Date": None} if fmt == "svg" else None

    def save(tmp: Path) -> None:
        with matplotlib.rc_context(RC):
            fig.savefig(tmp, format=fmt, metadata=meta)
    write_atomic(path, save)


def _draw(kind: str, rows: Sequence[Row], layers: Sequence[Row], **kwargs: Any) -> Figure:
    if kind not in KINDS:
        raise ReportError(f"--kind {kind!r} is unknown; allowed: {', '.join(KINDS)}, all")
    fn, table, fixed = KINDS[kind]
    fig, _ = fn(layers if table == "layers" else rows, **fixed, **kwargs)
    return fig


def _write(kind: str, fig: Figure, out_dir: str | os.PathLike[str]) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{kind}.png", out / f"{kind}.svg"]
    for p in paths:
        _save(fig, p)
    return paths


def render(kind: str, rows: Sequence[Row], layers: Sequence[Row], out_dir: str | os.PathLike[str],
           **kwargs: Any) -> list[Path]:
    """Draw ``kind`` and write ``<out_dir>/<kind>.png`` and ``.svg``; returns both paths."""
    return _write(kind, _draw(kind, rows, layers, **kwargs), out_dir)


def render_kinds(kinds: Sequence[str], rows: Sequence[Row], layers: Sequence[Row],
                 out_dir: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """:func:`render` every kind of ``kinds``, drawing them all before writing the first
    file: a kind the data cannot give is a :class:`ReportError` that leaves ``out_dir`` as
    it was."""
    figs = {k: _draw(k, rows, layers) for k in kinds}
    return {k: _write(k, fig, out_dir) for k, fig in figs.items()}


def render_all(rows: Sequence[Row], layers: Sequence[Row], out_dir: str | os.PathLike[str]
               ) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Render every kind the data supports; returns ``(written, skipped-with-reason)``."""
    written: dict[str, list[Path]] = {}
    skipped: dict[str, str] = {}
    for kind in KINDS:
        try:
            written[kind] = render(kind, rows, layers, out_dir)
        except ReportError as e:
            skipped[kind] = str(e)
    return written, skipped
