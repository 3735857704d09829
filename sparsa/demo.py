"""The flagship demo run by ``make demo``: ``python -m sparsa.demo --out demo-out``.

Stages (each prints a short summary and its wall time; a stage whose dependency is missing
or broken FAILS, the others still run, and the exit code is 1). The rtl stage runs in its
own process alongside simulate (``--serial-rtl`` runs it first, alone):

1. **rtl** — Verilog for the default core (``16x16-n2m4``) with its manifest and a clean
   Verilator lint, and a short RTL check: random GEMM tiles (dense and 2:4) with random
   stalls on every stream and a mid-run reset, compared bit for bit with the numpy
   reference, on the ``4x4-n2m4`` core (``--rtl-config``: compiling the 16x16 core's
   Verilator model alone takes minutes of C++ compilation, more than the demo's budget).
2. **simulate** — one sweep (process pool) of every model point of the demo, shown as four
   tables: ResNet-50 and BERT-base inference, dense and 2:4 on ``32x32-n2m4`` and 2:8 on
   ``32x32-n2m8`` (speed-up over dense on the same core, energy; per-layer utilisation of
   ResNet-50); one sparse training step of ResNet-18 with bidirectional Bi-Mask masks
   (``fwd=2:8,bwd=2:8``) against dense training, per phase; weight-, output- and
   input-stationary arrays; and a small design space (array size x window x sparsity)
   with area and its Pareto front.
3. **report** — every plot and table into ``<out>/report/index.html``.

All model results go to one resumable results directory (``<out>/results``), so a second
run only redoes what changed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sparsa.fileio import write_atomic

__all__ = ["main"]

NETWORKS = ("resnet50", "bert-base")
TRAIN_WORKLOAD = "resnet18"
SWEEP_WORKLOAD = "resnet18"
BIMASK = "fwd=2:8,bwd=2:8,method=bimask"
#: Cores of the model stages: 32x32 (the default core's 16x16 costs the model ~4x more per
#: network, too much for the demo's time budget) with windows 4 and 8.
CORE = "32x32-n2m4"
CORE8: dict[str, Any] = {"preset": "32x32-n2m4", "m": 8, "name": "32x32-n2m8"}


@dataclass
class Demo:
    out: Path
    console: Console
    workers: int = 2
    rtl_config: str = "4x4-n2m4"
    rtl_tiles: int = 4
    networks: tuple[str, ...] = NETWORKS
    train_workload: str = TRAIN_WORKLOAD
    sweep_workload: str = SWEEP_WORKLOAD
    results: Path = field(init=False)

    def __post_init__(self) -> None:
        self.results = self.out / "results"

    # ---- helpers ------------------------------------------------------------------------
    def table(self, title: str, rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]
              ) -> None:
        _derived(rows)
        t = Table(title=title, title_justify="left", header_style="bold")
        for head, _, _ in cols:
            t.add_column(head, justify="left" if head in ("workload", "config", "sparsity",
                                                          "dataflow", "limiting") else "right")
        for r in rows:
            t.add_row(*(format(r.get(k), fmt) if r.get(k) is not None else "-"
                        for _, k, fmt in cols))
        self.console.print(t)

    # ---- stages -------------------------------------------------------------------------
    def stage_rtl(self) -> None:
        from sparsa.hw.config import DEFAULT, resolve_config
        from sparsa.hw.rtl_runner import build_rtl
        from sparsa.hw.verilog import generate, lint
        from sparsa.rtl_suite import run_tiles

        vdir = self.out / "verilog"
        t0 = time.perf_counter()
        manifest = generate(DEFAULT, vdir)
        vfile = vdir / manifest["files"][0]
        lines = vfile.read_text().count("\n")
        t_gen = time.perf_counter() - t0
        warnings = lint(vdir)
        if warnings:
            raise RuntimeError(f"verilator lint: {len(warnings)} warnings, first: {warnings[0]}")
        self.console.print(f"  {vfile} ({lines:,} lines, {len(manifest['ports'])} ports, "
                           f"ISA v{manifest['isa_version']}) in {t_gen:.1f} s; "
                           f"verilator --lint-only -Wall: clean")
        cfg = resolve_config(self.rtl_config)
        t0 = time.perf_counter()
        build_rtl(cfg)
        t_build = time.perf_counter() - t0
        modes = ("dense", f"{cfg.n}:{cfg.m}")
        r = run_tiles(cfg, modes, self.rtl_tiles, stalls="random", seed=0)
        tiles = ", ".join(f"{n} {m}" for m, n in r["tiles"].items())
        self.console.print(f"  RTL check on {cfg.name}: [green]bit-exact[/] on random tiles "
                           f"({tiles}) with random stalls and a mid-run reset, "
                           f"{r['cycles']:,} cycles; Verilator build {t_build:.1f} s")

    # the model points of each section; one sweep evaluates them all (see stage_simulate)
    def inference_points(self) -> list[dict[str, Any]]:
        pts = []
        for wl in self.networks:
            for sp in ("dense", "2:4"):
                pts.append({"workload": wl, "config": CORE, "sparsity": sp,
                            "per_layer": wl == self.networks[0]})
            pts.append({"workload": wl, "config": CORE8, "sparsity": "2:8"})
        return pts

    def training_points(self) -> list[dict[str, Any]]:
        return [{"workload": self.train_workload, "config": CORE8, "sparsity": sp,
                 "train": True} for sp in ("dense", BIMASK)]

    def dataflow_points(self) -> list[dict[str, Any]]:
        return [{"workload": wl, "config": CORE, "sparsity": sp, "dataflow": df,
                 "per_layer": wl == self.networks[0] and df == "ws"}
                for wl in self.networks for sp in ("dense", "2:4") for df in ("ws", "os", "is")]

    def sweep_points(self) -> list[dict[str, Any]]:
        cfgs: list[Any] = ["16x16-n2m4", CORE, CORE8,
                           {**CORE8, "rows": 64, "cols": 64, "name": "64x64-n2m8"}]
        return [{"workload": self.sweep_workload, "config": c, "sparsity": sp}
                for c in cfgs for sp in ("dense", "2:4", "2:8")]

    def stage_simulate(self) -> None:
        from sparsa.reports.plots import pareto_front
        from sparsa.reports.spec import parse_spec
        from sparsa.reports.store import ResultStore
        from sparsa.reports.sweep import run_sweep

        sections = {"inference": self.inference_points(), "training": self.training_points(),
                    "dataflows": self.dataflow_points(), "sweep": self.sweep_points()}
        specs = {k: parse_spec({"name": k, "points": v, "area": True}, f"demo:{k}")
                 for k, v in sections.items()}
        # one sweep of every distinct point, ordered so that each worker gets a workload and
        # core at a time (dense first): programs and dense baselines are then reused
        allp: dict[str, dict[str, Any]] = {}
        for k, spec in specs.items():
            for p, raw in zip(spec.points, sections[k], strict=True):
                allp.setdefault(p.key, raw)
        order = sorted(allp.values(), key=lambda r: (
            r["workload"], str(r["config"]), r.get("train", False),
            r.get("sparsity", "dense") != "dense", r.get("sparsity", "dense"),
            r.get("dataflow", "ws") != "ws"))
        spec = parse_spec({"name": "demo", "points": order, "area": True}, "demo")
        res = run_sweep(spec, self.results, workers=self.workers, console=self.console)
        self.console.print(f"  one sweep of {res.total} design points ({res.skipped} from an "
                           f"earlier run): {res.evaluated} evaluated on {res.backend}, "
                           f"{res.points_per_s:.2f} points/s")
        stored = {r["hash"]: r for r in ResultStore(self.results).rows()}
        bad = [stored[h] for h in allp if stored.get(h, {}).get("status") != "ok"]
        if bad:
            raise RuntimeError(f"{len(bad)} design points failed, first: "
                               f"{bad[0].get('error')}")

        def rows(k: str) -> list[dict[str, Any]]:
            return [dict(stored[p.key]) for p in specs[k].points]

        self.table("inference (weight-stationary; speed-up over dense on the same core)",
                   rows("inference"),
                   [("workload", "workload", ""), ("config", "config", ""),
                    ("sparsity", "sparsity", ""), ("cycles", "cycles", ",d"),
                    ("speed-up", "speedup", ".2f"), ("util", "utilisation", ".2f"),
                    ("energy µJ", "energy_uj", ".0f"), ("TOPS/W", "tops_w", ".2f"),
                    ("limiting", "limiting", "")])
        self.table(f"training step, {self.train_workload} on {CORE8['name']}", rows("training"),
                   [("sparsity", "sparsity", ""), ("cycles", "cycles", ",d"),
                    ("forward", "cycles_fwd", ",d"), ("bwd-data", "cycles_bwd_data", ",d"),
                    ("wgrad", "cycles_wgrad", ",d"), ("speed-up", "speedup", ".2f"),
                    ("energy µJ", "energy_uj", ".0f")])
        self.table(f"dataflows on {CORE}", rows("dataflows"),
                   [("workload", "workload", ""), ("sparsity", "sparsity", ""),
                    ("dataflow", "dataflow", ""), ("cycles", "cycles", ",d"),
                    ("speed-up", "speedup", ".2f"), ("DRAM MB", "dram_mb", ".1f"),
                    ("energy µJ", "energy_uj", ".0f")])
        sw = rows("sweep")
        front = [sw[i] for i in pareto_front([(r["area_total_mm2"], r["cycles"]) for r in sw])]
        self.table(f"design space, {self.sweep_workload}: Pareto-optimal (area vs cycles) of "
                   f"{len(sw)} points", front,
                   [("config", "config", ""), ("sparsity", "sparsity", ""),
                    ("area mm²", "area_total_mm2", ".3f"), ("cycles", "cycles", ",d"),
                    ("energy µJ", "energy_uj", ".0f")])

    def stage_report(self) -> None:
        from sparsa.reports.html import build_report
        from sparsa.reports.plots import KINDS

        index = build_report(self.results, self.out / "report",
                             title="sparsa demo: ResNet-50 and BERT-base on sparse arrays")
        drawn = [k for k in KINDS if (self.out / "report" / f"{k}.png").exists()]
        missing = [k for k in KINDS if k not in drawn]
        if missing:
            raise RuntimeError(f"report is missing plots: {', '.join(missing)}")
        self.console.print(f"  {index} ({len(drawn)} plots: {', '.join(drawn)})")


def _derived(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if r.get("energy_pj") is not None:
            r["energy_uj"] = r["energy_pj"] / 1e6
        if r.get("dram_read_bytes") is not None:
            r["dram_mb"] = (r["dram_read_bytes"] + (r.get("dram_write_bytes") or 0)) / 1e6


STAGES: tuple[tuple[str, str], ...] = (
    ("rtl", "Verilog for the default core, lint, short RTL check"),
    ("simulate", "ResNet-50 and BERT-base at dense/2:4/2:8, a Bi-Mask training step, "
                 "dataflows, a design-space sweep"),
    ("report", "HTML report with every plot"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sparsa.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="demo-out", help="output directory (default demo-out)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--rtl-config", default="4x4-n2m4",
                    help="core of the short RTL check (default 4x4-n2m4: Verilator needs "
                         "minutes of C++ compilation for the 16x16 core)")
    ap.add_argument("--stages", default=",".join(s for s, _ in STAGES),
                    help="comma-separated subset of: " + ", ".join(s for s, _ in STAGES))
    ap.add_argument("--fresh", action="store_true",
                    help="delete earlier results in --out first (default: resume)")
    ap.add_argument("--docs", default=None, metavar="DIR",
                    help="also copy the report's PNG plots into DIR (used for docs/)")
    ap.add_argument("--serial-rtl", action="store_true",
                    help="run the rtl stage on its own instead of alongside simulate")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    if not console.is_terminal:  # logs and CI: wide enough for the tables
        console = Console(width=140)
    demo = Demo(out=out, console=console, workers=args.workers, rtl_config=args.rtl_config)
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in dict(STAGES)]
    if unknown:
        ap.error(f"unknown stage(s) {', '.join(unknown)}; allowed: "
                 f"{', '.join(s for s, _ in STAGES)}")
    done: list[tuple[str, str, float]] = []
    t_all = time.perf_counter()
    child = None
    if {"rtl", "simulate"} <= set(wanted) and not args.serial_rtl:
        # the RTL stage (Verilog, Verilator build, cocotb run) is one process of its own,
        # run alongside the model's worker pool; its output is shown when it is done
        cmd = [sys.executable, "-m", "sparsa.demo", "--out", str(out), "--stages", "rtl",
               "--rtl-config", args.rtl_config, "--child"]
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        console.print(f"rtl: running alongside simulate (pid {child.pid})")
    for name, what in STAGES:
        if name not in wanted or (name == "rtl" and child is not None):
            continue
        console.rule(f"[bold]{name}[/]: {what}")
        t0 = time.perf_counter()
        fn: Callable[[], None] = getattr(demo, f"stage_{name}")
        try:
            fn()
            status = "ok"
        except Exception as e:  # a stage fails loudly; the others still run
            status = "FAILED"
            console.print(f"  [bold red]FAILED[/]: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}")
            console.print(traceback.format_exc(limit=-3), style="dim", markup=False)
        dt = time.perf_counter() - t0
        console.print(f"  [bold]{name}[/]: {status} in {dt:.1f} s")
        done.append((name, status, dt))
        if name == "simulate" and child is not None:
            text, _ = child.communicate()
            m = re.search(r"rtl: \S+ in ([0-9.]+) s", text)   # the child's own stage time
            dt = float(m.group(1)) if m else time.perf_counter() - t_all
            console.print(text.rstrip(), markup=False, highlight=False)
            status = "ok" if child.returncode == 0 else "FAILED"
            if status != "ok":
                console.print(f"  [bold red]rtl FAILED[/] (exit {child.returncode})")
            done.insert(0, ("rtl", status, dt))
    if args.child:
        return 0 if all(s == "ok" for _, s, _ in done) else 1
    total = time.perf_counter() - t_all
    t = Table(title="sparsa demo", title_justify="left", header_style="bold")
    for col in ("stage", "status", "seconds"):
        t.add_column(col, justify="right" if col == "seconds" else "left")
    for name, status, dt in done:
        t.add_row(name, f"[green]{status}[/]" if status == "ok" else f"[red]{status}[/]",
                  f"{dt:.1f}")
    t.add_row("total", "", f"{total:.1f}")
    console.print(t)
    report = out / "report" / "index.html"
    if report.exists():
        console.print(f"report: {report}")
        if args.docs:
            docs = Path(args.docs)
            docs.mkdir(parents=True, exist_ok=True)
            for png in sorted((out / "report").glob("*.png")):
                write_atomic(docs / f"demo-{png.name}", png.read_bytes())
            console.print(f"plots copied to {docs}/demo-*.png")
    return 0 if all(s == "ok" for _, s, _ in done) else 1


if __name__ == "__main__":
    sys.exit(main())
