"""``sparsa verify``: run the RTL system suite (cocotb on Verilator) for one configuration."""

from __future__ import annotations

import json
import os
import time

import click

from sparsa.hw.config import resolve_config


def _modes(cfg) -> tuple[str, ...]:
    modes = ["dense", f"{cfg.n}:{cfg.m}"]
    if cfg.n > 1:
        modes.append(f"1:{cfg.m}")
    # narrower windows the core runs at (2:4 on an m = 8 core)
    modes += [f"{cfg.n}:{w}" for w in cfg.windows if cfg.n < w < cfg.m]
    return tuple(modes)


def register(group: click.Group) -> None:
    """Add ``verify`` to the top-level group."""

    @group.command("verify")
    @click.option("--config", "config", default=None,
                  help="Preset name or YAML file (default: 16x16-n2m4).")
    @click.option("--waves", is_flag=True, help="Dump VCD waves (one per run, into build/rtl/<key>_waves/runs/; the paths are "
                       "printed).")
    @click.option("--tiles", type=click.IntRange(1, 100000), default=20, show_default=True,
                  help="Random tiles per sparsity mode and stall kind.")
    @click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Stall/data seed.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    def verify(config: str | None, waves: bool, tiles: int, seed: int, as_json: bool) -> None:
        """Run random GEMM tiles (all modes, stalls on every stream, a mid-run reset), the
        cycle-formula checks and, where defined, the sparse speed-up on the generated RTL;
        every output is compared bit for bit with the numpy reference."""
        from sparsa.hw.rtl_runner import rtl_available

        cfg = resolve_config(config)
        if not rtl_available():
            raise click.ClickException("the core's Verilog generator (sparsa.hw.verilog) is "
                                       "not installed in this checkout")
        saved = os.environ.get("WAVES")
        os.environ["WAVES"] = "1" if waves else "0"
        try:
            _verify(cfg, waves, tiles, seed, as_json)
        finally:
            if saved is None:
                os.environ.pop("WAVES", None)
            else:
                os.environ["WAVES"] = saved


def _verify(cfg, waves: bool, tiles: int, seed: int, as_json: bool) -> None:
    """The body of ``verify`` (``WAVES`` already set for the builds and runs)."""
    from sparsa.hw.rtl_runner import RtlMismatch, build_rtl
    from sparsa.rtl_suite import (
        NARROW_SPEEDUP_GEMM,
        SPEEDUP_GEMMS,
        run_speedup,
        run_tiles,
        run_timing,
    )

    t0, wall0 = time.perf_counter(), time.time()
    build = build_rtl(cfg)
    t_build = time.perf_counter() - t0
    summary: dict = {"config": cfg.name, "key": cfg.key, "build_s": round(t_build, 1),
                     "tiles": [], "timing": [], "speedup": None, "ok": True}
    modes = _modes(cfg)
    for stalls in ("random", "cycle"):
        try:
            r = run_tiles(cfg, modes, tiles, stalls=stalls, seed=seed)
            summary["tiles"].append({"stalls": stalls, **r, "bit_exact": True})
        except (RtlMismatch, AssertionError) as e:
            summary["ok"] = False
            summary["tiles"].append({"stalls": stalls, "bit_exact": False,
                                     "error": str(e)[:500]})
    summary["timing"] = run_timing(cfg)
    if any(r["measured"] != r["formula"] for r in summary["timing"]):
        summary["ok"] = False
    if cfg.name in SPEEDUP_GEMMS:
        sp = run_speedup(cfg)
        summary["speedup"] = sp
        summary["ok"] &= sp["ratio"] <= sp["bound"]
    narrow = [w for w in cfg.windows if cfg.n < w < cfg.m]
    if narrow:      # the widest narrow window: 2:4 on an m = 8 core
        w = narrow[-1]
        _, P, K, Q, _ = NARROW_SPEEDUP_GEMM
        sp = run_speedup(cfg, (f"{cfg.n}:{w}", P, K, Q, round(cfg.n / w + 0.02, 3)))
        summary["narrow_speedup"] = sp
        summary["ok"] &= sp["ratio"] <= sp["bound"]
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    if waves:
        summary["waves"] = sorted(str(f) for f in build.runs_dir.glob("*/dump.vcd")
                                  if f.stat().st_mtime >= wall0 - 1)
    if as_json:
        click.echo(json.dumps(summary, indent=1, default=str))
    else:
        _print(summary)
    if not summary["ok"]:
        raise click.exceptions.Exit(1)


def _print(s: dict) -> None:
    click.echo(f"RTL verification of {s['config']} ({s['key']}), build {s['build_s']} s")
    click.echo(f"{'stalls':<8} {'mode':<8} {'tiles':>6} {'bit-exact':>10}")
    for t in s["tiles"]:
        if not t["bit_exact"]:
            click.echo(f"{t['stalls']:<8} {'*':<8} {'-':>6} {'NO':>10}  {t['error']}")
            continue
        for mode, n in t["tiles"].items():
            click.echo(f"{t['stalls']:<8} {mode:<8} {n:>6} {'yes':>10}")
    click.echo(f"\n{'instruction timing case':<34} {'measured':>9} {'formula':>8}")
    for r in s["timing"]:
        flag = "" if r["measured"] == r["formula"] else "  MISMATCH"
        click.echo(f"{r['label']:<34} {r['measured']:>9} {r['formula']:>8}{flag}")
    speedups = [(what, s[key]) for key, what in (("speedup", "sparse speed-up"),
                                                 ("narrow_speedup", "narrow window"))
                if s.get(key)]
    if speedups:
        click.echo("")
    for what, sp in speedups:
        click.echo(f"{what} ({sp['mode']} vs dense, same GEMM): {sp['sparse']} / "
                   f"{sp['dense']} cycles = {sp['ratio']:.3f} (bound {sp['bound']})")
    if "waves" in s:
        click.echo(f"\nwaves ({len(s['waves'])} VCD files, one per run):")
        for f in s["waves"]:
            click.echo(f"  {f}")
    click.echo(f"\n{'PASS' if s['ok'] else 'FAIL'} in {s['wall_s']} s")
