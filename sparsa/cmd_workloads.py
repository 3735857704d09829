"""``sparsa workloads``: list the model zoo, show a workload's layers, export it (SCALE-Sim
CSV or ONNX)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from sparsa.workloads import ZOO_NAMES, Workload, WorkloadError, load_workload

from .sparsity_arg import check_sparsity


def _width() -> int:
    """Table width: $COLUMNS (at least 100), 140 when unset or not a number."""
    cols = os.environ.get("COLUMNS", "")
    return max(100, int(cols)) if cols.isdigit() else 140


def _console() -> Any:
    from rich.console import Console
    return Console(width=_width(), highlight=False,
                   soft_wrap=False)


def _default_input(wl: Workload) -> str:
    if "input_ids" in wl.inputs:
        s = wl.attrs.get("seq")
        return f"seq {s}" if wl.name != "gpt2-decode" else f"1 token, KV {s}"
    if "hidden" in wl.inputs:
        return f"seq {wl.attrs.get('seq')}"
    shape = next(iter(wl.inputs.values()))
    return f"{shape[-2]}x{shape[-1]}"


def _zoo_rows() -> list[dict[str, Any]]:
    rows = []
    for name in ZOO_NAMES:
        wl = load_workload(name)
        s = wl.summary()
        rows.append({"name": name, "layers": s["layers"], "gemm_layers": s["gemm_layers"],
                     "macs": s["macs"], "params": s["params"], "input": _default_input(wl)})
    return rows


@click.group("workloads")
def workloads() -> None:
    """Networks: the model zoo, ONNX models and SCALE-Sim topologies."""


@workloads.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """The model zoo (batch 1): layers, GEMM layers, GEMM MACs and parameters."""
    rows = _zoo_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from rich.table import Table
    t = Table(title="model zoo (batch 1, GEMM MACs)", title_justify="left",
              header_style="bold")
    for col in ("name", "input", "layers", "GEMM layers", "GMACs", "params (M)"):
        t.add_column(col, justify="left" if col in ("name", "input") else "right")
    for r in rows:
        t.add_row(r["name"], r["input"], str(r["layers"]), str(r["gemm_layers"]),
                  f"{r['macs'] / 1e9:.3f}", f"{r['params'] / 1e6:.2f}")
    _console().print(t)


def _densities(wl: Workload, sparsity: str | None) -> dict[str, float] | None:
    """Nominal forward weight density per GEMM layer under a plan (attention matmuls stay
    dense unless a rule names them, as in the compiler)."""
    plan_text = sparsity or wl.sparsity_plan()
    if not plan_text:
        return None
    import fnmatch

    from sparsa.workloads.sparsity import BlockFit, SparsityPlan
    plan = SparsityPlan.parse(plan_text)
    plan.check_matches((str(ly.attrs.get("source", ly.name)) for ly in wl.gemm_layers()),
                       wl.name)
    explicit = [p for p, _ in plan.rules if p != "*"]
    out = {}
    fit = BlockFit()
    for ly in wl.gemm_layers():
        src = str(ly.attrs.get("source", ly.name))
        spec = plan.spec_for(src)
        dims = ly.gemm()
        unnamed_act = dims.stationary != "weight" and \
            not any(fnmatch.fnmatchcase(src, p) for p in explicit)
        if unnamed_act or ly.attrs.get("phase") == "wgrad":
            out[ly.name] = 1.0
        elif ly.attrs.get("phase") == "bwd_data":
            out[ly.name] = float(spec.backward.density)
        else:
            out[ly.name] = float(spec.density_on(dims.K, dims.Q))
            fit.add(spec, dims.K, dims.Q)
    fit.check()         # as the compiler: a block that fits none of its layers is a mistake
    return out


@workloads.command("show")
@click.argument("spec", metavar="NAME|FILE")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1),
              help="Sequence length (transformers; gpt2-decode: KV length).")
@click.option("--sparsity", default=None, callback=check_sparsity,
              help="Sparsity plan for the density column, e.g. 2:4 or 'conv1=dense;*=2:4' "
                   "(default: the workload's own, e.g. a SCALE-Sim Sparsity column).")
@click.option("--train", is_flag=True, help="Show the training step (fwd, bwd_data, wgrad).")
@click.option("--gemm-only", is_flag=True, help="Only GEMM layers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(spec: str, batch: int, seq: int | None, sparsity: str | None, train: bool,
             gemm_only: bool, as_json: bool) -> None:
    """Layers of a zoo network, an .onnx model or a SCALE-Sim .csv topology: GEMM dims
    (P, K, Q, groups), MACs, output shapes."""
    wl = load_workload(spec, batch=batch, seq=seq)
    if train:
        wl = wl.expand_training()
    dens = _densities(wl, sparsity)
    layers = [ly for ly in wl.layers() if ly.is_gemm or not gemm_only]
    sparse_macs = None if dens is None else \
        round(sum(ly.macs * dens[ly.name] for ly in wl.gemm_layers()))
    if as_json:
        out = {**wl.summary(), "batch": batch, "seq": wl.attrs.get("seq", seq),
               "sparsity": sparsity or wl.sparsity_plan(), "sparse_macs": sparse_macs,
               "layers": []}
        for ly in layers:
            d = ly.as_dict()
            if dens is not None and ly.is_gemm:
                d["density"] = dens[ly.name]
            out["layers"].append(d)
        click.echo(json.dumps(out, indent=1))
        return
    from rich.table import Table
    t = Table(title=f"{wl.name}: {len(wl.layers())} layers, "
                    f"{len(wl.gemm_layers())} GEMM, {wl.total_macs / 1e9:.3f} GMAC, "
                    f"{wl.params / 1e6:.2f} M params", title_justify="left",
              header_style="bold")
    cols = ["name", "kind", "P", "K", "Q", "groups", "MACs", "out shape"]
    if dens is not None:
        cols.insert(7, "density")
    for c in cols:
        t.add_column(c, justify="left" if c in ("name", "kind", "out shape") else "right")
    for ly in layers:
        kind = ly.kind + (f" ({ly.attrs['phase']})" if "phase" in ly.attrs else "")
        if ly.is_gemm:
            d = ly.gemm()
            row = [ly.name, kind, str(d.P), str(d.K), str(d.Q), str(d.groups), f"{ly.macs:,}"]
        else:
            row = [ly.name, kind, "", "", "", "", ""]
        if dens is not None:
            row.append(f"{dens[ly.name]:.3f}" if ly.is_gemm else "")
        row.append("x".join(str(v) for v in ly.out_shape))
        t.add_row(*row)
    con = _console()
    con.print(t)
    if sparse_macs is not None:
        con.print(f"non-zero MACs at nominal density: {sparse_macs:,} "
                  f"({sparse_macs / max(1, wl.total_macs):.1%} of dense)")


@workloads.command("export")
@click.argument("spec", metavar="NAME|FILE")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output: a SCALE-Sim topology .csv or an .onnx model.")
@click.option("--format", "fmt", type=click.Choice(["conv", "gemm"]), default="conv",
              show_default=True, help="SCALE-Sim topology format (.csv).")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--sparsity", default=None, callback=check_sparsity,
              help="GEMM format: sparsity plan written to the Sparsity column (N:M only).")
@click.option("--weights", is_flag=True,
              help=".onnx: write the int8 weights (to <stem>.weights.bin); default shapes "
                   "only.")
def export_cmd(spec: str, out: str, fmt: str, batch: int, seq: int | None,
               sparsity: str | None, weights: bool) -> None:
    """Write a workload as a SCALE-Sim topology CSV or an ONNX model."""
    low = out.lower()
    if not low.endswith((".csv", ".onnx")):
        raise WorkloadError(f"-o {out!r}: write a SCALE-Sim topology (.csv) or an ONNX "
                            f"model (.onnx)")
    from sparsa.outputs import check_out_file
    check_out_file(out)
    given = click.get_current_context().get_parameter_source("fmt")
    if low.endswith(".onnx") and (sparsity or given == click.core.ParameterSource.COMMANDLINE):
        raise WorkloadError(f"-o {out!r}: --format and --sparsity apply to a SCALE-Sim .csv "
                            f"export, not to .onnx")
    if low.endswith(".csv") and weights:
        raise WorkloadError(f"-o {out!r}: --weights applies to an .onnx export; a SCALE-Sim "
                            f".csv holds shapes only")
    wl = load_workload(spec, batch=batch, seq=seq)
    if low.endswith(".onnx"):
        from sparsa.workloads.onnx_export import export_onnx
        export_onnx(wl, out, with_weights=weights)
        click.echo(f"{wl.name}: {len(wl.layers())} layers ({wl.total_macs / 1e9:.3f} GMAC, "
                   f"{'with' if weights else 'no'} weight data) -> {out}")
        return
    from sparsa.workloads.scalesim import export_topology
    n = export_topology(wl, out, fmt, sparsity)
    click.echo(f"{wl.name}: {n} rows ({fmt} format, {wl.total_macs / 1e9:.3f} GMAC) -> {out}")


def register(group: click.Group) -> None:
    """Add ``workloads`` to the top-level group."""
    group.add_command(workloads)
