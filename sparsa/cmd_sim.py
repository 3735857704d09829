"""``sparsa simulate``, ``sparsa compare``, ``sparsa calibrate``: the SimPy model's verbs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from sparsa.hw.config import resolve_config

_SPARSITY_HELP = ("Sparsity plan, e.g. 2:4, 'conv1=dense;*=2:4', fwd=2:8,bwd=2:8,method=bimask.")


def _console() -> Any:
    from rich.console import Console
    return Console(width=max(100, int(os.environ.get("COLUMNS", "140"))), highlight=False,
                   soft_wrap=False)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _model_options(dram_sharing: str, dram_beat_cycles: int) -> dict[str, Any]:
    return {"dram_sharing": dram_sharing, "dram_beat_cycles": dram_beat_cycles}


def _fmt(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def _energy_table_text(res: Any) -> Any:
    from rich.table import Table
    t = Table(title="energy table", show_header=False, title_justify="left", box=None)
    t.add_column(style="dim")
    t.add_column()
    for a, b in res.energy_table.rows(res.config):
        t.add_row(a, b)
    return t


def print_report(res: Any, title: str) -> None:
    """Rich report of one :class:`~sparsa.sim.api.SimResult`: per-layer table, units,
    totals and the energy table used."""
    from rich.table import Table

    from sparsa.sim.energy import COMPONENTS
    con = _console()
    con.print(title)
    con.print(_energy_table_text(res))
    lt = Table(title="per layer", title_justify="left")
    short = {"compute": "compute", "fill-drain": "fill", "DRAM bandwidth": "DRAM",
             "window bandwidth": "window"}
    cols = ["layer", "kind", "mode", "cycles", "exec busy", "exec stall", "util", "MACs",
            "DRAM B", "pJ", "limit"]
    has_speed = res.dense_cycles is not None
    if has_speed:
        cols.insert(4, "speed-up")
    for c in cols:
        lt.add_column(c, justify="left" if c in ("layer", "kind", "mode", "limit") else "right",
                      no_wrap=True)
    for r in res.per_layer:
        row = [r["layer"], r["kind"], r["mode"], str(r["cycles"]), str(r["exec_busy"]),
               str(r["exec_stall"]), f"{r['utilisation']:.1%}", _fmt(r["macs"]),
               _fmt(r["dram_read_bytes"] + r["dram_write_bytes"]), _fmt(r["energy_pj"]),
               short[r["limiting"]]]
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
    et.add_row(*[_fmt(res.energy[k]) for k in COMPONENTS], _fmt(res.energy_pj))
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
    if any(r["kind"] in ("fwd", "bwd_data", "wgrad") for r in res.per_layer):
        ph = res.phase_cycles()
        lines.append("training phases   " + ", ".join(f"{k} {v}" for k, v in ph.items()))
    lines.append(f"model wall time   {res.wall_s:.2f} s")
    for line in lines:
        con.print(line)


@click.command("simulate")
@click.argument("target", metavar="WORKLOAD|PROGRAM")
@click.option("--config", "config", default=None, help="Preset name or YAML file.")
@click.option("--sparsity", default="dense", show_default=True, help=_SPARSITY_HELP)
@click.option("--train", is_flag=True, help="Simulate a training step.")
@click.option("--dataflow", type=click.Choice(["ws", "os", "is"]), default="ws",
              show_default=True, help="ws: the core; os/is: model-only array variants.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--vs-dense", is_flag=True,
              help="Also compile and simulate the dense baseline (speed-up, energy ratio).")
@click.option("--energy-table", default=None,
              help="Energy table preset or YAML (default: the config's energy_table).")
@click.option("--dram-sharing", type=click.Choice(["split", "shared"]), default="split",
              show_default=True, help="Independent or one shared DRAM read/write channel.")
@click.option("--dram-beat-cycles", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="DRAM cycles per beat (derates the bandwidth).")
@click.option("--json", "as_json", is_flag=True, help="Print totals and layers as JSON.")
def simulate_cmd(target: str, config: str | None, sparsity: str, train: bool, dataflow: str,
                 batch: int, seq: int | None, vs_dense: bool, energy_table: str | None,
                 dram_sharing: str, dram_beat_cycles: int, as_json: bool) -> None:
    """Simulate WORKLOAD (zoo name, .onnx, SCALE-Sim .csv) or a compiled PROGRAM
    (directory from 'sparsa compile', .sprg or .json): cycles, per-layer table, energy."""
    from sparsa.compiler import compile_workload
    from sparsa.sim.api import load_program, simulate
    from sparsa.sim.errors import SimError
    mopts = _model_options(dram_sharing, dram_beat_cycles)
    t0 = time.perf_counter()
    is_prog = os.path.isdir(target) or target.endswith((".sprg", ".json"))
    if is_prog:
        prog = load_program(target)
        if config is not None and resolve_config(config) != prog.config:
            raise SimError(f"{target}: compiled for {prog.config.name!r}, not "
                           f"{resolve_config(config).name!r}; recompile or omit --config")
        cfg = prog.config
        label = f"{target} ({prog.meta.get('workload', 'program')}, "\
                f"{prog.meta.get('sparsity', '?')})"
        baseline = None
        if vs_dense:
            raise SimError("--vs-dense needs a workload, not a compiled program")
    else:
        cfg = resolve_config(config)
        prog = compile_workload(target, cfg, sparsity=sparsity, train=train, with_data=False,
                                batch=batch, seq=seq)
        label = f"{target} ({sparsity}{', train' if train else ''})"
        baseline = None
        if vs_dense:
            dprog = prog if sparsity == "dense" else compile_workload(
                target, cfg, sparsity="dense", train=train, with_data=False, batch=batch,
                seq=seq)
            baseline = simulate(dprog, cfg, dataflow=dataflow, options=mopts,
                                energy_table=energy_table)
    res = simulate(prog, cfg, dataflow=dataflow, options=mopts, energy_table=energy_table,
                   baseline=baseline)
    total_s = time.perf_counter() - t0
    if as_json:
        out = dict(res.summary(), target=target, sparsity=sparsity if not is_prog else
                   prog.meta.get("sparsity"), train=train, total_wall_s=round(total_s, 3),
                   energy_table_values=res.energy_table.to_dict(), layers=res.per_layer,
                   units=res.units)
        click.echo(json.dumps(out, indent=1, default=str))
        return
    print_report(res, f"{label} on {cfg.name} [{dataflow}] - {total_s:.2f} s total")


def register(group: click.Group) -> None:
    """Add ``simulate`` (and ``compare``, ``calibrate``) to the top-level group."""
    group.add_command(simulate_cmd)
