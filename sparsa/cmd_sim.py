"""``sparsa simulate``, ``sparsa compare``, ``sparsa calibrate``: the SimPy model's verbs."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from typing import Any

import click

from sparsa import heap
from sparsa.compiler.options import DATAFLOWS, SPARSE_MODES, CompileOptions
from sparsa.hw.config import resolve_config

from .cmd_compile import SPARSE_MODE_HELP, mode_note_lines, with_sparse_mode
from .sparsity_arg import check_sparsity, check_sparsity_list

_SPARSITY_HELP = ("Sparsity plan, e.g. 2:4, 'conv1=dense;*=2:4', fwd=2:8,bwd=2:8,method=bimask.")


def _width() -> int:
    """Table width: $COLUMNS (at least 100), 140 when unset or not a number."""
    cols = os.environ.get("COLUMNS", "")
    return max(100, int(cols)) if cols.isdigit() else 140


def _console() -> Any:
    from rich.console import Console
    return Console(width=_width(), highlight=False,
                   markup=False, soft_wrap=False)



def _model_options(dram_sharing: str, dram_beat_cycles: int) -> dict[str, Any]:
    return {"dram_sharing": dram_sharing, "dram_beat_cycles": dram_beat_cycles}


def fmt_count(x: float) -> str:
    """``x`` with a G/M/k suffix (two decimals), as the tables print counts and bytes."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def check_energy_table(ctx: Any, param: Any, value: str | None) -> str | None:
    """Click callback of ``--energy-table``: a bad table fails before any work, naming the
    option."""
    if value is not None:
        from sparsa.sim.energy import resolve_energy_table
        from sparsa.sim.errors import SimError
        try:
            resolve_energy_table(value)
        except SimError as e:
            raise click.BadParameter(str(e).splitlines()[0]) from None
    return value


def _energy_table_text(res: Any) -> Any:
    return _energy_rows_table(res.energy_table, res.config)


def print_report(res: Any, title: str, mode_notes: list[str] | None = None) -> None:
    """Rich report of one :class:`~sparsa.sim.api.SimResult`: per-layer table, units,
    totals and the energy table used; ``mode_notes`` (from
    :meth:`~sparsa.compiler.program.Program.mode_notes`) say why layers run in another mode."""
    from rich.table import Table

    from sparsa.sim.api import compute_share
    from sparsa.sim.energy import COMPONENTS
    con = _console()
    con.print(title)
    con.print(_energy_table_text(res))
    lt = Table(title="per layer", title_justify="left")
    short = {"compute": "compute", "fill-drain": "fill", "DRAM bandwidth": "DRAM",
             "window bandwidth": "window"}
    cols = ["layer", "kind", "mode", "cycles", "exec busy", "exec stall", "util", "MACs",
            "DRAM B", "pJ", "compute", "limit"]
    has_speed = res.dense_cycles is not None
    if has_speed:
        cols.insert(4, "speed-up")
    for c in cols:
        lt.add_column(c, justify="left" if c in ("layer", "kind", "mode", "limit") else "right",
                      no_wrap=True)
    for r in res.per_layer:
        share = compute_share(r)
        row = [r["layer"], r["kind"], r["mode"], str(r["cycles"]), str(r["exec_busy"]),
               str(r["exec_stall"]), f"{r['utilisation']:.1%}", fmt_count(r["macs"]),
               fmt_count(r["dram_read_bytes"] + r["dram_write_bytes"]), fmt_count(r["energy_pj"]),
               "-" if share is None else f"{share:.0%}", short[r["limiting"]]]
        if has_speed:
            sp = r.get("speedup")
            row.insert(4, "-" if sp is None else f"{sp:.2f}x")
        lt.add_row(*row)
    con.print(lt)
    ut = Table(title="units (cycles)", title_justify="left")
    for c in ("unit", "ops", "busy", "stall", "DRAM stall", "idle"):
        ut.add_column(c, justify="left" if c == "unit" else "right")
    for u, row in res.units.items():
        ut.add_row(u, str(row["ops"]), str(row["busy"]), str(row["stall"]),
                   str(row["dram_stall"]), str(row["idle"]))
    con.print(ut)
    s = res.summary()
    et = Table(title="energy (pJ)", title_justify="left")
    for c in (*COMPONENTS, "total"):
        et.add_column(c, justify="right")
    et.add_row(*[fmt_count(res.energy[k]) for k in COMPONENTS], fmt_count(res.energy_pj))
    con.print(et)
    sram = res.sram_bytes
    lines = [
        f"cycles            {res.cycles} ({res.seconds * 1e3:.3f} ms at "
        f"{res.config.clock_mhz:g} MHz)",
        f"utilisation       {res.utilisation:.1%} of the dense-equivalent peak "
        f"({res.peak_macs_per_cycle:g} MAC/cycle); PE {res.pe_utilisation:.1%}",
        f"MACs              {s['macs']} non-zero, {s['dense_macs']} dense-equivalent, "
        f"{s['macs_issued']} issued",
        f"DRAM              {s['dram_read_bytes']} B read, {s['dram_write_bytes']} B written",
        f"SRAM              act {sram['act']} B, wgt+meta {sram['wgt']} B, acc {sram['acc']} B",
        f"energy            {res.energy_pj / 1e6:.3f} uJ, {res.tops_w:.3f} TOPS/W "
        f"(effective), EDP {res.edp:.3e} J*s",
        f"limiting factor   {res.limiting}",
    ]
    if res.dense_cycles is not None:
        lines.append(f"vs dense          {res.speedup:.3f}x faster "
                     f"({res.dense_cycles} cycles), "
                     f"{res.dense_energy_pj / max(1e-12, res.energy_pj):.3f}x less energy")
    if res.host_elements:
        from sparsa.sim.api import HOST_ELEMS_PER_CYCLE
        lines.append(f"non-GEMM work     {res.host_elements} elements = {res.host_cycles} "
                     f"cycles at {HOST_ELEMS_PER_CYCLE}/cycle (on the host, not in cycles)"
                     + ("" if res.speedup_with_host is None else
                        f"; speed-up with it {res.speedup_with_host:.3f}x"))
    if any(r["kind"] in ("fwd", "bwd_data", "wgrad") for r in res.per_layer):
        ph = res.phase_cycles()
        lines.append("training phases   " + ", ".join(f"{k} {v}" for k, v in ph.items()))
    lines += mode_note_lines(mode_notes or [])
    lines.append(f"model wall time   {res.wall_s:.2f} s")
    for line in lines:
        con.print(line)


@click.command("simulate")
@click.argument("target", metavar="WORKLOAD|PROGRAM")
@click.option("--config", "config", default=None, help="Preset name or YAML file.")
@click.option("--sparsity", default=None, callback=check_sparsity,
              help=_SPARSITY_HELP + " Default: the workload's own (a SCALE-Sim topology's "
                   "Sparsity column), else dense.")
@click.option("--train", is_flag=True, help="Simulate a training step.")
@click.option("--dataflow", type=click.Choice(["ws", "os", "is"]), default="ws",
              show_default=True, help="ws: the core; os/is: model-only array variants.")
@click.option("--loop-order", type=click.Choice(DATAFLOWS),
              default="weight-reuse", show_default=True,
              help="The compiler's loop order on the core (auto: the faster of the two per "
                   "GEMM, timed with the static schedule).")
@click.option("--sparse-mode", type=click.Choice((*SPARSE_MODES, "best")), default="auto",
              show_default=True, help=SPARSE_MODE_HELP)
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--vs-dense", is_flag=True,
              help="Also compile and simulate the dense baseline (speed-up, energy ratio).")
@click.option("--energy-table", default=None, callback=check_energy_table,
              help="Energy table preset or YAML (default: the config's energy_table).")
@click.option("--dram-sharing", type=click.Choice(["split", "shared"]), default="split",
              show_default=True, help="Independent or one shared DRAM read/write channel.")
@click.option("--dram-beat-cycles", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="DRAM cycles per beat (derates the bandwidth).")
@click.option("--scalesim-parity", is_flag=True,
              help="SCALE-Sim topology .csv only: SCALE-Sim v3's dense compute cycles per "
                   "layer (ideal memory) on the config's rows x cols, for comparison.")
@click.option("--json", "as_json", is_flag=True, help="Print totals and layers as JSON.")
def simulate_cmd(target: str, config: str | None, sparsity: str | None, train: bool,
                 dataflow: str, loop_order: str, sparse_mode: str, batch: int,
                 seq: int | None, vs_dense: bool,
                 energy_table: str | None,
                 dram_sharing: str, dram_beat_cycles: int, scalesim_parity: bool,
                 as_json: bool) -> None:
    """Simulate WORKLOAD (zoo name, .onnx, SCALE-Sim .csv) or a compiled PROGRAM
    (directory from 'sparsa compile', .sprg or .json): cycles, per-layer table, energy."""
    from sparsa.compiler import compile_workload
    from sparsa.sim.api import apply_baseline, load_program, simulate
    from sparsa.sim.errors import SimError
    from sparsa.sim.workers import start_forked
    if scalesim_parity:
        given = [o for o, v in (("--sparsity", sparsity), ("--train", train),
                                ("--batch", batch != 1), ("--seq", seq), ("--vs-dense", vs_dense),
                                ("--energy-table", energy_table),
                                ("--loop-order", loop_order != "weight-reuse"),
                                ("--sparse-mode", sparse_mode != "auto")) if v]
        if given:
            raise SimError(f"--scalesim-parity gives SCALE-Sim's dense compute cycles only; "
                           f"drop {', '.join(given)}")
        _scalesim_parity(target, resolve_config(config), dataflow, as_json)
        return
    if dataflow != "ws" and loop_order != "weight-reuse":
        raise click.UsageError(f"--loop-order is the core's (ws) loop order; the {dataflow} "
                               f"array variant has its own: drop one of them")
    mopts = _model_options(dram_sharing, dram_beat_cycles)
    t0 = time.perf_counter()
    is_prog = os.path.isdir(target) or target.endswith((".sprg", ".json"))
    if is_prog:
        given = [o for o, v in (("--sparsity", sparsity), ("--train", train),
                                ("--batch", batch != 1), ("--seq", seq),
                                ("--loop-order", loop_order != "weight-reuse"),
                                ("--sparse-mode", sparse_mode != "auto")) if v]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise SimError(f"{target}: {', '.join(given)} {verb} to a workload; a compiled "
                           f"program has it built in (recompile with 'sparsa compile')")
        prog = load_program(target)
        if config is not None and resolve_config(config) != prog.config:
            raise SimError(f"{target}: compiled for {prog.config.name!r}, not "
                           f"{resolve_config(config).name!r}; recompile or omit --config")
        cfg = prog.config
        label = f"{target} ({prog.meta.get('workload', 'program')}, "\
                f"{prog.meta.get('sparsity', '?')})"
        if vs_dense:
            raise SimError("--vs-dense needs a workload, not a compiled program")
        res = simulate(prog, cfg, dataflow=dataflow, options=mopts, energy_table=energy_table)
    else:
        cfg = resolve_config(config)
        dense_args = (target, cfg, train, batch, seq, loop_order, dataflow, mopts,
                      energy_table)
        # --vs-dense: the dense baseline compiles and simulates in a forked process while
        # this one handles the sparse program (both are single-threaded Python)
        pending = start_forked(_dense_baseline, *dense_args) \
            if vs_dense and sparsity not in (None, "dense") else None
        try:
            opt = with_sparse_mode(sparse_mode, CompileOptions(dataflow=loop_order), target,
                                   cfg, sparsity, train=train, batch=batch, seq=seq)
            prog = compile_workload(target, cfg, sparsity=sparsity, train=train,
                                    with_data=False, batch=batch, seq=seq, dataflow=loop_order,
                                    options=opt)
            sparsity = prog.meta["sparsity_arg"]
            label = f"{target} ({sparsity}{', train' if train else ''}" \
                    f"{'' if loop_order == 'weight-reuse' else ', ' + loop_order})"
            heap.settle()
            res = simulate(prog, cfg, dataflow=dataflow, options=mopts,
                           energy_table=energy_table)
            if pending is not None:
                apply_baseline(res, pending.get())   # the worker's exception re-raised
            elif vs_dense:
                apply_baseline(res, res if sparsity == "dense" else
                               _dense_baseline(*dense_args))
        finally:
            if pending is not None:
                pending.close()
    total_s = time.perf_counter() - t0
    if as_json:
        out = dict(res.summary(), target=target, sparsity=sparsity if not is_prog else
                   prog.meta.get("sparsity"), train=train, total_wall_s=round(total_s, 3),
                   energy_table_values=res.energy_table.to_dict(), layers=res.per_layer,
                   units=res.units, mode_notes=prog.mode_notes())
        click.echo(json.dumps(out, indent=1, default=str))
        return
    print_report(res, f"{label} on {cfg.name} [{dataflow}] - {total_s:.2f} s total",
                 prog.mode_notes())


def _dense_baseline(target: str, cfg: Any, train: bool, batch: int, seq: int | None,
                    loop_order: str, dataflow: str, mopts: dict[str, Any],
                    energy_table: str | None) -> Any:
    """Compile ``target`` dense and simulate it: the ``--vs-dense`` baseline."""
    from sparsa.compiler import compile_workload
    from sparsa.sim.api import simulate
    dprog = compile_workload(target, cfg, sparsity="dense", train=train, with_data=False,
                             batch=batch, seq=seq, dataflow=loop_order)
    heap.settle()
    res = simulate(dprog, cfg, dataflow=dataflow, options=mopts, energy_table=energy_table)
    res.stats = None   # per-operation arrays: not needed for the baseline, costly to send
    return res


def _scalesim_parity(target: str, cfg: Any, dataflow: str, as_json: bool) -> None:
    from sparsa.sim.errors import SimError
    from sparsa.sim.scalesim_parity import simulate_topology
    if not target.lower().endswith(".csv"):
        raise SimError(f"--scalesim-parity reads a SCALE-Sim topology .csv, not {target!r}")
    rows = simulate_topology(target, cfg.rows, cfg.cols, dataflow)
    if as_json:
        click.echo(json.dumps({"rows": cfg.rows, "cols": cfg.cols, "dataflow": dataflow,
                               "layers": rows}, indent=1))
        return
    from rich.table import Table
    t = Table(title=f"{target}: SCALE-Sim v3 compute cycles, {cfg.rows}x{cfg.cols} "
                    f"{dataflow.upper()}, ideal memory", title_justify="left")
    for h in ("layer", "M", "N", "K", "folds", "cycles/fold", "cycles"):
        t.add_column(h, justify="left" if h == "layer" else "right", no_wrap=True)
    for r in rows:
        t.add_row(r["layer"], str(r["M"]), str(r["N"]), str(r["K"]), str(r["folds"]),
                  str(r["fold_cycles"]), str(r["cycles"]))
    con = _console()
    con.print(t)
    con.print(f"total {sum(r['cycles'] for r in rows)} cycles over {len(rows)} layers")


def compare_rows(workload: str, config: str | None, dataflows: list[str],
                 sparsities: list[str], *, train: bool = False, batch: int = 1,
                 seq: int | None = None, options: dict[str, Any] | None = None,
                 progress: bool = False) -> list[dict[str, Any]]:
    """One :func:`~sparsa.sim.api.run_point` per (sparsity, dataflow) (computed by
    :func:`~sparsa.sim.api.run_points`: two at a time on two cores), as table rows, with
    ``dram_bytes``, ``energy_uj`` and :func:`~sparsa.sim.limits.limit_row`'s figures (ideal
    speed-up, share of the array's time per limit, what stops the speed-up following m/n)."""
    from sparsa.sim.api import run_points
    from sparsa.sim.limits import LIMIT_NAMES, limit_row
    cfg = resolve_config(config)
    points = [(sp, df) for sp in sparsities for df in dataflows]
    bar = None
    if progress:
        # refreshed as points finish, not by a thread of its own: with another thread
        # running, run_points would not fork its workers
        from rich.progress import Progress
        bar = Progress(transient=True, console=_console_err(), auto_refresh=False)
        bar.start()
        task = bar.add_task("simulating", total=len(points))

    def advance(k: int) -> None:
        bar.advance(task, k)
        bar.refresh()
    try:
        rows = run_points(workload, cfg, points, train=train, batch=batch, seq=seq,
                          options=options, done=None if bar is None else advance)
    finally:
        if bar is not None:
            bar.stop()
    for (sp, _), r in zip(points, rows, strict=True):
        r["dram_bytes"] = r["dram_read_bytes"] + r["dram_write_bytes"]
        r["energy_uj"] = round(r["energy_pj"] / 1e6, 3)
        lim = limit_row(sp, cfg, cycles=r["cycles"], dense_cycles=r["dense_cycles"],
                        limits={k: r[f"limit_{k}_cycles"] for k in LIMIT_NAMES},
                        train=train)
        del lim["speedup"]      # run_point's, unrounded
        r.update(lim)
    return rows


def limits_table(rows: list[dict[str, Any]], title: str, *, dataflow: bool = False) -> Any:
    """Where the speed-up stops following ``m/n``: a rich table of
    :func:`~sparsa.sim.limits.limit_rows` rows; ``dataflow``: of :func:`compare_rows` rows
    (which carry :func:`~sparsa.sim.limits.limit_row`'s figures), with a dataflow column
    and without the cycles and DRAM bytes its main table shows."""
    from rich.table import Table
    t = Table(title=title, title_justify="left")
    heads = (("dataflow", "sparsity", "speed-up") if dataflow else
             ("sparsity", "cycles", "speed-up")) + (
        "ideal m/n", "of ideal", "compute", "fill-drain", "DRAM", "window") + (
        () if dataflow else ("DRAM B",)) + ("stops m/n",)
    for h in heads:
        t.add_column(h, justify="left" if h in ("dataflow", "sparsity", "stops m/n")
                     else "right", no_wrap=True)
    for r in rows:
        t.add_row(*((r["dataflow"], r["sparsity"]) if dataflow else
                    (r["sparsity"], f"{r['cycles']:,}")),
                  f"{r['speedup']:.2f}x", f"{r['ideal']:.3g}x", f"{r['of_ideal']:.0%}",
                  *(f"{r['share_' + k]:.0%}" for k in ("compute", "fill-drain", "DRAM",
                                                       "window")),
                  *(() if dataflow else (fmt_count(r["dram_bytes"]),)), r["stops_m_over_n"])
    return t


def _console_err() -> Any:
    from rich.console import Console
    return Console(stderr=True)


def _split(value: str, allowed: tuple[str, ...] | None, what: str) -> list[str]:
    if allowed is None:         # sparsity plans: a bidirectional spec keeps its commas
        from sparsa.workloads.sparsity import split_plans
        items = split_plans(value)
    else:
        items = [v.strip() for v in value.split(",") if v.strip()]
    items = list(dict.fromkeys(items))       # a repeated item is one row
    if not items:
        raise click.BadParameter(f"give at least one {what}")
    if allowed is not None:
        for v in items:
            if v not in allowed:
                raise click.BadParameter(f"{what} {v!r} is not one of {', '.join(allowed)}")
    return items


@click.command("compare")
@click.argument("workload")
@click.option("--dataflows", default="ws", show_default=True,
              help="Comma-separated subset of ws,os,is.")
@click.option("--sparsity", "sparsities", default="dense,2:4", show_default=True,
              callback=check_sparsity_list,
              help="Comma-separated sparsity specs (each one plan, e.g. 2:4 or 1:16).")
@click.option("--config", "config", default=None, help="Preset name or YAML file.")
@click.option("--train", is_flag=True, help="Compare training steps.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--energy-table", default=None, callback=check_energy_table,
              help="Energy table preset or YAML.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="Also write every figure of every point to this CSV file.")
@click.option("--json", "as_json", is_flag=True, help="Print the points as JSON.")
def compare_cmd(workload: str, dataflows: str, sparsities: str, config: str | None,
                train: bool, batch: int, seq: int | None, energy_table: str | None,
                csv_path: str | None, as_json: bool) -> None:
    """Compare dataflows and sparsity patterns on WORKLOAD side by side: cycles,
    utilisation, DRAM bytes, energy, speed-up versus dense and the limiting factor, then
    the table of limiting factors (speed-up against the ideal m/n, the share of the
    array's time per limit, what stops the speed-up following m/n)."""
    if csv_path is not None:
        from sparsa.outputs import check_out_file
        check_out_file(csv_path, "--csv")
    dfs = _split(dataflows, ("ws", "os", "is"), "dataflow")
    sps = _split(sparsities, None, "sparsity")
    opts = {"energy_table": energy_table} if energy_table else None
    t0 = time.perf_counter()
    rows = compare_rows(workload, config, dfs, sps, train=train, batch=batch, seq=seq,
                        options=opts, progress=not as_json and sys.stderr.isatty())
    if csv_path is not None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)
        from sparsa.fileio import write_atomic
        write_atomic(csv_path, buf.getvalue().encode())
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from rich.table import Table
    cfg = resolve_config(config)
    con = _console()
    con.print(f"{workload} on {cfg.name}{' (train)' if train else ''}: "
              f"{len(rows)} points in {time.perf_counter() - t0:.1f} s")
    con.print(energy_table_text(cfg, energy_table))
    t = Table(title="dataflow x sparsity", title_justify="left")
    heads = ("dataflow", "sparsity", "cycles", "speed-up", "util", "DRAM B", "energy uJ",
             "energy /dense", "TOPS/W", "limiting factor")
    for h in heads:
        t.add_column(h, justify="left" if h in ("dataflow", "sparsity", "limiting factor")
                     else "right", no_wrap=True)
    for r in rows:
        red = r["energy_reduction"]
        t.add_row(r["dataflow"], r["sparsity"], str(r["cycles"]), f"{r['speedup']:.3f}x",
                  f"{r['utilisation']:.1%}", fmt_count(r["dram_bytes"]), f"{r['energy_uj']:.1f}",
                  "-" if red is None else f"{1 / red:.3f}", f"{r['tops_w']:.3f}",
                  r["limiting"])
    con.print(t)
    con.print(limits_table(rows, "limiting factors (share of the array's time; what stops "
                           "the speed-up following m/n)", dataflow=True))
    seen = set()
    for r in rows:       # one line per sparsity whose layers do not all run as it suggests
        if r.get("mode_notes") and r["sparsity"] not in seen:
            seen.add(r["sparsity"])
            con.print(f"{r['sparsity']}: {r['mode_notes']}", highlight=False)
    if csv_path:
        con.print(f"wrote {csv_path}")


def energy_table_text(cfg: Any, energy_table: str | None = None) -> Any:
    """The energy table a report prints: ``energy_table`` (preset or YAML), else the
    config's, with the SRAM values of ``cfg``."""
    from sparsa.sim.energy import resolve_energy_table
    return _energy_rows_table(resolve_energy_table(energy_table or cfg.energy_table), cfg)


def _energy_rows_table(table: Any, cfg: Any) -> Any:
    from rich.table import Table
    t = Table(title="energy table", show_header=False, title_justify="left", box=None)
    t.add_column(style="dim")
    t.add_column()
    for a, b in table.rows(cfg):
        t.add_row(a, b)
    return t


@click.command("calibrate")
@click.option("--config", "config", default=None,
              help="Preset name or YAML file (one Verilator build per config). Default: "
                   "4x4-n2m4, or the config the --program files were compiled for.")
@click.option("--quick", is_flag=True, help="Only the quick subset (the one make test runs).")
@click.option("--program", "programs", multiple=True, metavar="PROGRAM",
              help="Run this compiled program (a 'sparsa compile' directory, .sprg or .json, "
                   "compiled with data) instead of the built-in set; repeatable.")
@click.option("--tolerance", default=0.01, show_default=True, type=float,
              help="Largest accepted relative cycle error.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def calibrate_cmd(config: str | None, quick: bool, programs: tuple[str, ...], tolerance: float,
                  as_json: bool) -> None:
    """Run the calibration programs (or your own, --program) on Verilator and on the model:
    per-program cycle error, every final DRAM image checked bit for bit against the
    reference executor. Exits with 1 when a program is off by more than --tolerance."""
    from sparsa.hw.rtl_runner import RtlMismatch, rtl_available
    from sparsa.sim.calibrate import calibrate
    from sparsa.sim.errors import SimError
    if not 0 <= tolerance < 1:      # also rejects nan, which would accept any error
        raise click.BadParameter(f"{tolerance} is not a fraction in [0, 1), e.g. 0.01",
                                 param_hint="'--tolerance'")
    if quick and programs:
        raise click.BadParameter("--quick picks the built-in programs; it has no effect with "
                                 "--program", param_hint="'--quick'")
    if not rtl_available():
        raise SimError("calibrate needs the core's RTL generator (sparsa.hw.verilog, "
                       "sparsa.hw.core), which is not in this checkout")
    progs = _user_programs(programs, config) if programs else None
    cfg = progs[0][1].config if progs else resolve_config(config or "4x4-n2m4")
    t0 = time.perf_counter()
    try:
        rows = calibrate(cfg, progs, quick=quick)
    except RtlMismatch as e:      # a hardware/compiler bug, not bad input: exit 1
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        click.echo(f"error: RTL disagrees with the reference executor: {first}", err=True)
        raise SystemExit(1) from None
    worst = max(abs(r["error"]) for r in rows)
    if as_json:
        click.echo(json.dumps({"config": cfg.name, "max_abs_error": worst, "rows": rows},
                              indent=1))
    else:
        from rich.table import Table
        con = _console()
        con.print(f"calibration on {cfg.name}: {len(rows)} program"
                  f"{'' if len(rows) == 1 else 's'}, RTL (Verilator, no "
                  f"stalls) vs model, {time.perf_counter() - t0:.1f} s")
        t = Table()
        for h in ("program", "instrs", "RTL cycles", "model cycles", "error", "DRAM-bound"):
            t.add_column(h, justify="left" if h == "program" else "right", no_wrap=True)
        for r in rows:
            t.add_row(r["name"], str(r["instructions"]), str(r["rtl_cycles"]),
                      str(r["model_cycles"]), f"{r['error']:+.3%}",
                      "yes" if r["dram_bound"] else "no")
        con.print(t)
        con.print(f"max |error| {worst:.3%} (tolerance {tolerance:.1%}); every final DRAM "
                  f"image bit-identical to the reference executor's")
    if worst > tolerance:
        raise SystemExit(1)


def _user_programs(paths: tuple[str, ...], config: str | None) -> list[tuple[str, Any]]:
    """``--program`` files, loaded and checked: compiled with data, all for one core (the
    ``--config`` one when given)."""
    from sparsa.sim.api import load_program
    from sparsa.sim.errors import SimError
    out = []
    for path in paths:
        prog = load_program(path)
        if not prog.has_data:
            raise SimError(f"{path}: compiled without data (--no-data); the RTL needs the DRAM "
                           f"image: compile it again without --no-data")
        out.append((os.path.basename(os.path.normpath(path)), prog))
    want = resolve_config(config) if config else out[0][1].config
    for path, (_, prog) in zip(paths, out, strict=True):
        if prog.config.key != want.key:
            raise SimError(f"{path}: compiled for {prog.config.name} ({prog.config.key}), not "
                           f"{want.name} ({want.key}); calibrate runs one core at a time")
    return out


def register(group: click.Group) -> None:
    """Add ``simulate``, ``compare`` and ``calibrate`` to the top-level group."""
    group.add_command(simulate_cmd)
    group.add_command(compare_cmd)
    group.add_command(calibrate_cmd)
