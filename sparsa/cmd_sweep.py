"""``sparsa sweep``, ``sparsa plot``, ``sparsa report``: design-space exploration."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _interrupted(spec: Any, results: Path) -> NoReturn:
    """Ctrl-C or SIGTERM: one line saying what is saved and how to go on; exit code 130."""
    from sparsa.reports.store import ResultStore

    try:
        keys = {p.key for p in spec.points}
        saved = f"{len(keys & ResultStore(results).finished())} of {len(keys)} design points"
    except Exception:     # an unreadable store is reported by the re-run, not here
        saved = "the finished design points"
    lead = "\n" if sys.stderr.isatty() else ""     # after the terminal's ^C
    click.echo(f"{lead}interrupted: {saved} saved in {results}; run the same command again "
               f"to resume", err=True)
    sys.exit(130)


def register(group: click.Group) -> None:
    """Add ``sweep``, ``plot`` and ``report`` to the top-level group."""

    @group.command("sweep")
    @click.argument("spec", type=click.Path(dir_okay=False))
    @click.option("-o", "--out", "out", default=None, metavar="RESULTS",
                  help="Results directory (default: sweeps/<spec name>); re-running resumes.")
    @click.option("--workers", type=int, default=2, show_default=True,
                  help="Local worker processes (1 = in-process), or Dask workers with --dask.")
    @click.option("--dask", "use_dask", is_flag=True,
                  help="Run on a Dask LocalCluster of --workers processes.")
    @click.option("--scheduler", default=None, metavar="ADDRESS",
                  help="Run on an existing Dask cluster (e.g. tcp://host:8786).")
    @click.option("--retry-errors", is_flag=True, help="Re-evaluate points stored as errors.")
    @click.option("--no-progress", is_flag=True, help="No progress bar.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    def sweep(spec: str, out: str | None, workers: int, use_dask: bool, scheduler: str | None,
              retry_errors: bool, no_progress: bool, as_json: bool) -> None:
        """Evaluate every design point of SPEC (YAML: configs x sparsity x dataflows x
        workloads x train, or a points list) into a Parquet results directory.

        Finished points are written as they complete; an interrupted sweep resumes where it
        stopped, and a failing point becomes an error row while the sweep goes on (its
        message is printed; the exit code is 1 when every evaluated point failed).
        """
        from sparsa.outputs import check_out_dir
        from sparsa.reports.spec import load_spec
        from sparsa.reports.sweep import check_same_spec, run_sweep

        s = load_spec(spec)
        results = check_out_dir(out) if out is not None else Path("sweeps") / s.name
        check_same_spec(s, results)
        old = signal.signal(signal.SIGTERM, _sigterm)
        try:
            res = run_sweep(s, results, workers=workers, scheduler=scheduler, dask=use_dask,
                            retry_errors=retry_errors, progress=not no_progress and not as_json)
        except KeyboardInterrupt:
            _interrupted(s, results)
        finally:
            signal.signal(signal.SIGTERM, old)
        if as_json:
            click.echo(json.dumps(res.to_dict(), indent=1))
        else:
            click.echo(f"{res.total} design points: {res.skipped} already done, "
                       f"{res.evaluated} evaluated ({res.errors} errors) in {res.seconds:.1f} s "
                       f"on {res.backend}: {res.points_per_s:.2f} points/s")
            click.echo(f"results: {res.results / 'points.parquet'}")
            if res.stale:
                click.echo(f"({res.stale} finished points evaluated again: computed by other "
                           f"sparsa sources or from another version of a workload file)")
        for e in res.first_errors:
            click.echo(f"failed point: {e}", err=True)
        if res.evaluated and res.errors == res.evaluated:
            click.echo(f"error: all {res.evaluated} evaluated points failed (error rows in "
                       f"{res.results}; --retry-errors re-runs them)", err=True)
            sys.exit(1)

    @group.command("plot")
    @click.argument("results", type=click.Path())
    @click.option("--kind", "kinds", multiple=True, default=("all",), show_default=True,
                  help="speedup, energy, pareto-cycles, pareto-energy, dataflow, layers, "
                       "training or all (repeatable).")
    @click.option("-o", "--out", "out", default=None, metavar="DIR",
                  help="Output directory (default: RESULTS/plots).")
    @click.option("--json", "as_json", is_flag=True, help="Print written files as JSON.")
    def plot(results: str, kinds: tuple[str, ...], out: str | None, as_json: bool) -> None:
        """Draw design-space plots of a sweep's RESULTS as PNG and SVG."""
        from sparsa.outputs import check_out_dir
        from sparsa.reports import plots
        from sparsa.reports.store import open_results

        for k in kinds:         # every one, also next to 'all'
            if k != "all" and k not in plots.KINDS:
                raise click.BadParameter(
                    f"{k!r} is unknown; allowed: {', '.join(plots.KINDS)}, all",
                    param_hint="--kind")
        store = open_results(results)
        out_dir = check_out_dir(out if out is not None else store.root / "plots")
        rows, layers = store.report_rows(), store.report_rows("layers")
        if "all" in kinds:
            written, skipped = plots.render_all(rows, layers, out_dir)
        else:
            written = plots.render_kinds(kinds, rows, layers, out_dir)
            skipped = {}
        if as_json:
            click.echo(json.dumps({"written": {k: [str(p) for p in v] for k, v in
                                               written.items()}, "skipped": skipped}, indent=1))
            return
        for k, paths in written.items():
            click.echo(f"{k:<14} {paths[0]}  {paths[1].name}")
        for k, why in skipped.items():
            click.echo(f"{k:<14} not drawn: {why}")

    @group.command("report")
    @click.argument("results", type=click.Path())
    @click.option("-o", "--out", "out", default=None, metavar="DIR",
                  help="Output directory (default: RESULTS/report).")
    def report(results: str, out: str | None) -> None:
        """Write a self-contained HTML report (tables, plots, energy table) of RESULTS."""
        from sparsa.outputs import check_out_dir
        from sparsa.reports.html import build_report
        from sparsa.reports.store import open_results

        store = open_results(results)
        index = build_report(store.root, check_out_dir(out if out is not None
                                                       else store.root / "report"))
        click.echo(f"report: {index}")
