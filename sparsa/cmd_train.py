"""``sparsa train-step``: one sparse training step on the model, versus dense training."""

from __future__ import annotations

import json
from typing import Any

import click

from sparsa.compiler.options import DATAFLOWS
from sparsa.hw.config import resolve_config

from .cmd_compile import mode_note_lines
from .cmd_sim import check_energy_table, energy_table_text, fmt_count, limits_table
from .sparsity_arg import check_sparsity, check_sparsity_list


def _print_report(r: dict[str, Any], top: int, cfg: Any, energy_table: str | None) -> None:
    from rich.console import Console
    from rich.table import Table
    con = Console(width=140)
    con.print(f"{r['workload']} training step on {r['config']} ({r['config_key']}), "
              f"plan {r['plan']}")
    con.print(energy_table_text(cfg, energy_table))
    t = Table(title="per phase (sparse | dense training on the same core)",
              title_justify="left")
    for h in ("phase", "cycles", "dense cycles", "speed-up", "util", "DRAM B", "dense DRAM B",
              "energy uJ", "dense energy uJ"):
        t.add_column(h, justify="left" if h == "phase" else "right", no_wrap=True)
    for ph in ("fwd", "bwd_data", "wgrad", "other", "host"):
        s, d = r["phases"].get(ph), r["dense_phases"].get(ph)
        if s is None and d is None:
            continue
        s = s or {"cycles": 0, "utilisation": 0, "dram_bytes": 0, "energy_pj": 0}
        d = d or {"cycles": 0, "utilisation": 0, "dram_bytes": 0, "energy_pj": 0}
        sp = d["cycles"] / s["cycles"] if s["cycles"] else float("nan")
        name = "host (non-GEMM)" if ph == "host" else ph
        t.add_row(name, f"{s['cycles']:,}", f"{d['cycles']:,}", f"{sp:.2f}x",
                  "-" if ph == "host" else f"{s['utilisation']:.1%}",
                  fmt_count(s["dram_bytes"]), fmt_count(d["dram_bytes"]),
                  f"{s['energy_pj'] / 1e6:.1f}", f"{d['energy_pj'] / 1e6:.1f}")
    con.print(t)
    con.print(f"core cycles {r['cycles']:,} vs dense {r['dense_cycles']:,}: "
              f"[bold]speed-up {r['speedup']:.3f}x[/bold]"
              + (f" (ideal with a dense weight gradient {r['ideal_speedup']:.2f}x)"
                 if r["ideal_speedup"] else ""))
    con.print(f"with host work ({r['host_cycles']:,} cycles at the model's host rate): "
              f"speed-up {r['speedup_with_host']:.3f}x; utilisation {r['utilisation']:.1%} "
              f"(dense {r['dense_utilisation']:.1%}); DRAM {fmt_count(r['dram_bytes'])}B "
              f"(dense {fmt_count(r['dense_dram_bytes'])}B); energy "
              f"{r['energy_pj'] / 1e6:.1f} uJ (dense {r['dense_energy_pj'] / 1e6:.1f} uJ)")
    for line in mode_note_lines(r.get("mode_notes", []), "mode notes:", 11):
        con.print(line, highlight=False)
    rf = r["refresh"]
    how = " (measured generators)" if rf["measured"] else " (calibrated model)"
    if rf["every"]:
        con.print(f"mask refresh on the {rf['on']}{how}: {rf['cycles_per_refresh']:,} cycles per "
                  f"refresh, every {rf['every']} steps -> {rf['amortised_cycles']:,.0f} "
                  f"cycles per step, amortised speed-up "
                  f"[bold]{rf['amortised_speedup']:.3f}x[/bold]")
    else:
        con.print(f"mask refresh on the {rf['on']}{how}: {rf['cycles_per_refresh']:,} cycles "
                  f"per refresh (not amortised: pass --refresh-every K)")
    if top and r.get("layers"):
        lt = Table(title=f"per layer (the {top} slowest GEMMs)", title_justify="left")
        for h in ("layer", "phase", "mode", "cycles", "dense cycles", "speed-up", "util",
                  "DRAM B", "energy uJ", "limiting"):
            lt.add_column(h, justify="left" if h in ("layer", "phase", "mode", "limiting")
                          else "right", no_wrap=True)
        for x in sorted(r["layers"], key=lambda x: -x["cycles"])[:top]:
            dc = x["dense_cycles"]
            lt.add_row(x["layer"], x["phase"], x["mode"], f"{x['cycles']:,}",
                       "-" if dc is None else f"{dc:,}",
                       "-" if not dc or not x["cycles"] else f"{dc / x['cycles']:.2f}x",
                       f"{x['utilisation']:.1%}", fmt_count(x["dram_bytes"]),
                       f"{x['energy_pj'] / 1e6:.2f}", x["limiting"])
        con.print(lt)


def _print_ablation(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title="SAT-style optimisations, each switched off alone", title_justify="left")
    for h in ("setting", "core cycles", "fwd", "bwd_data", "wgrad", "host cycles", "total",
              "cost vs all on"):
        t.add_column(h, justify="left" if h == "setting" else "right", no_wrap=True)
    for r in rows:
        t.add_row(r["setting"], f"{r['cycles']:,}", f"{r['cycles_fwd']:,}",
                  f"{r['cycles_bwd_data']:,}", f"{r['cycles_wgrad']:,}",
                  f"{r['host_cycles']:,}", f"{r['total']:,}", f"{r['cost']:.3f}x")
    Console(width=140).print(t)


@click.command("train-step")
@click.argument("workload")
@click.option("--config", "config", default="16x16-n2m8-train", show_default=True,
              help="Preset name or YAML file.")
@click.option("--fwd", default="2:8", show_default=True, help="Forward mask N:M.")
@click.option("--bwd", default="2:8", show_default=True, help="Backward mask N:M.")
@click.option("--method", default="bimask", show_default=True,
              type=click.Choice(["bimask", "transposable", "forward-only", "dense"]))
@click.option("--candidates", default=None, type=click.IntRange(1, 100_000),
              help="Bi-Mask permutation candidates (default 100).")
@click.option("--refresh-every", default=None, type=click.IntRange(1),
              help="Refresh the masks every K steps (amortised into the speed-up).")
@click.option("--refresh-on", default="host", show_default=True,
              type=click.Choice(["host", "array"]))
@click.option("--refresh-cost", "refresh_cost", default="modelled", show_default=True,
              type=click.Choice(["measured", "modelled"]),
              help="Host refresh: per-element CPU times calibrated on sparsa's generators "
                   "(deterministic), or time the generators now (varies run to run).")
@click.option("--dataflow", "--loop-order", "dataflow", default="weight-reuse",
              show_default=True, type=click.Choice(DATAFLOWS),
              help="The compiler's loop order (auto: the faster per GEMM).")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--no-interleave", is_flag=True, help="Switch off interleaved mapping.")
@click.option("--no-pregenerate-bwd", is_flag=True,
              help="Switch off pre-generated backward weights.")
@click.option("--no-reuse-schedule", is_flag=True, help="Switch off offline reuse scheduling.")
@click.option("--ablation", is_flag=True,
              help="Also run with each SAT-style optimisation switched off, one by one.")
@click.option("--layers", "top", default=12, show_default=True, type=click.IntRange(0),
              help="Per-layer rows to print (slowest first; all of them in --json).")
@click.option("--energy-table", default=None, callback=check_energy_table,
              help="Energy table preset or YAML (default: the config's energy_table).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def train_step_cmd(workload: str, config: str, fwd: str, bwd: str, method: str,
                   candidates: int | None, refresh_every: int | None, refresh_on: str,
                   refresh_cost: str, dataflow: str, batch: int, seq: int | None, no_interleave: bool,
                   no_pregenerate_bwd: bool, no_reuse_schedule: bool, ablation: bool,
                   top: int, energy_table: str | None, as_json: bool) -> None:
    """Compile and simulate one training step of WORKLOAD (forward, backward-data and
    weight-gradient GEMMs of every layer) with bidirectional N:M masks; print per-phase
    and per-layer cycles, utilisation, DRAM traffic, energy and the speed-up over dense
    training on the same core."""
    from click.core import ParameterSource

    from sparsa.compiler.options import CompileOptions
    from sparsa.sim import training
    ctx = click.get_current_context()
    given = [f"--{p.replace('_', '-')}" for p in ("fwd", "bwd", "candidates", "refresh_every",
                                                 "refresh_on", "refresh_cost")
             if ctx.get_parameter_source(p) == ParameterSource.COMMANDLINE]
    if method == "dense" and given:
        raise click.BadParameter(f"{' and '.join(given)} has no effect with --method dense "
                                 f"(dense training has no masks); drop it or pick a sparse "
                                 f"method", param_hint="'--method'")
    if method == "forward-only" and "--bwd" in given:
        raise click.BadParameter("--bwd has no effect with --method forward-only (the "
                                 "backward-data GEMM runs dense)", param_hint="'--method'")
    cfg = resolve_config(config)
    opt = CompileOptions(dataflow=dataflow, interleave=not no_interleave,
                         pregenerate_bwd=not no_pregenerate_bwd,
                         reuse_schedule=not no_reuse_schedule)
    rep = training.train_step(workload, cfg, fwd=fwd, bwd=bwd, method=method,
                              refresh_every=refresh_every, refresh_on=refresh_on, options=opt,
                              batch=batch, seq=seq, candidates=candidates,
                              measure_refresh=refresh_cost == "measured",
                              energy_table=energy_table)
    abl = training.ablation(workload, cfg, fwd=fwd, bwd=bwd, method=method, options=opt,
                            batch=batch, seq=seq) if ablation else None
    if as_json:
        if abl is not None:
            rep["ablation"] = abl
        click.echo(json.dumps(rep, indent=1))
        return
    _print_report(rep, top, cfg, energy_table)
    if abl is not None:
        _print_ablation(abl)


def _split(value: str) -> list[str]:
    from sparsa.workloads.sparsity import split_plans
    items = split_plans(value)
    if not items:
        raise click.BadParameter("give at least one sparsity")
    return items


@click.command("limits")
@click.argument("workload")
@click.option("--config", "config", default="16x16-n1m32", show_default=True,
              help="Preset name or YAML file.")
@click.option("--sparsity", "sparsities", default="dense,2:4,1:8,1:16,1:32",
              show_default=True, callback=check_sparsity_list,
              help="Comma-separated sparsity plans.")
@click.option("--train", is_flag=True, help="Training steps instead of inference.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def limits_cmd(workload: str, config: str, sparsities: str, train: bool, batch: int,
               seq: int | None, as_json: bool) -> None:
    """Speed-up per sparsity versus its ideal m/n, and the share of the array's time each
    limit takes (compute, fill-drain, DRAM, window): where the speed-up stops following
    m/n."""
    from sparsa.sim.limits import limit_rows
    cfg = resolve_config(config)
    rows = limit_rows(workload, cfg, _split(sparsities), train=train, batch=batch, seq=seq)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    t = limits_table(rows, f"{workload} on {cfg.name} ({cfg.key}): limiting factors")
    con = Console(width=140)
    con.print(t)
    for r in rows:       # layers that do not run the mode the sparsity suggests, and why
        for x in r["mode_notes"]:
            con.print(f"{r['sparsity']}: {x}", highlight=False)


@click.command("weight-modes")
@click.argument("workload")
@click.option("--config", "config", default="16x16-n2m4-bw4", show_default=True,
              help="Preset name or YAML file.")
@click.option("--sparsity", default="2:4", show_default=True, callback=check_sparsity,
              help="Sparsity plan.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--layers", "top", default=8, show_default=True, type=click.IntRange(0),
              help="Per-layer rows to print (all of them in --json).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def weight_modes_cmd(workload: str, config: str, sparsity: str, batch: int, seq: int | None,
                     top: int, as_json: bool) -> None:
    """Dense, sparse compute and load-as-sparse/compute-as-dense side by side (DRAM bytes,
    cycles), and the per-layer cheapest choice (sparse_mode auto with the model's cost),
    compiled and simulated."""
    from sparsa.sim.modes import compare_modes
    cfg = resolve_config(config)
    rep = compare_modes(workload, cfg, sparsity, batch=batch, seq=seq)
    if as_json:
        click.echo(json.dumps(rep, indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    con = Console(width=140)
    con.print(energy_table_text(cfg))
    t = Table(title=f"{workload} on {cfg.name} ({cfg.key}), {sparsity}", title_justify="left")
    for h in ("weights", "cycles", "vs dense", "DRAM read B", "energy uJ", "limiting"):
        t.add_column(h, justify="left" if h in ("weights", "limiting") else "right",
                     no_wrap=True)
    d = rep["totals"]["dense"]["cycles"]
    names = {"dense": "dense", "sparse": "sparse compute",
             "load-sparse": "load-as-sparse, compute dense", "auto": "auto (per layer)"}
    for v, x in rep["totals"].items():
        t.add_row(names[v], f"{x['cycles']:,}", f"{d / max(1, x['cycles']):.2f}x",
                  fmt_count(x["dram_read_bytes"]), f"{x['energy_pj'] / 1e6:.1f}", x["limiting"])
    con.print(t)
    con.print("auto chose: " + ", ".join(f"{k} for {v} layers" for k, v in
                                         sorted(rep["chosen"].items())))
    if top:
        lt = Table(title=f"per layer (the {top} slowest dense layers)", title_justify="left")
        for h in ("layer", "dense", "sparse", "load-sparse", "chosen"):
            lt.add_column(h, justify="left" if h in ("layer", "chosen") else "right")
        for x in sorted(rep["layers"], key=lambda x: -x["dense_cycles"])[:top]:
            lt.add_row(x["layer"], *(f"{x.get(v + '_cycles', 0):,}" for v in
                                     ("dense", "sparse", "load-sparse")), x["chosen"])
        con.print(lt)


def register(group: click.Group) -> None:
    """Add ``train-step``, ``limits`` and ``weight-modes`` to the top-level group."""
    group.add_command(train_step_cmd)
    group.add_command(limits_cmd)
    group.add_command(weight_modes_cmd)
