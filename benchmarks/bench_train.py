"""Sparse training steps on the model (prints figures; writes JSON when asked).

* ``train-step`` figures (speed-up over dense training, per phase) for ResNet-18, ResNet-50
  and BERT-base at 2:8 Bi-Mask on the training preset and on the plain ``16x16-n2m8``;
* the SAT-style ablation on ResNet-18;
* mask refresh: the host op-count model against sparsa's measured generators, and the
  amortised speed-up for refresh intervals 1..1000, on the host and on the array;
* GPT-2 small decode (batch 1): dense / sparse compute / load-as-sparse at 2:4 on the
  bandwidth-limited ``16x16-n2m4-bw4`` and on ``16x16-n1m16`` with 4 B/cycle.

Run: ``.venv/bin/python benchmarks/bench_train.py [--quick] [--json out.json]``
(``--quick``: ResNet-18 only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from sparsa.hw.config import PRESETS
from sparsa.sim import training
from sparsa.sim.modes import compare_modes


def _step(wl: str, cfg: str, **kw) -> dict:
    t0 = time.perf_counter()
    r = training.train_step(wl, cfg, per_layer=False, **kw)
    r["wall_s"] = round(time.perf_counter() - t0, 1)
    ph = r["phases"]
    print(f"{wl:10} {cfg:18} {r['plan']:32} speed-up {r['speedup']:.3f}x "
          f"(with host {r['speedup_with_host']:.3f}x, ideal {r['ideal_speedup']}) "
          f"fwd {ph['fwd']['cycles']:,} bwd_data {ph['bwd_data']['cycles']:,} "
          f"wgrad {ph['wgrad']['cycles']:,}  [{r['wall_s']} s]", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--full", action="store_true",
                    help="Also the plain 16x16-n2m8 preset, transposable and forward-only.")
    ap.add_argument("--sections", default="steps,ablation,refresh,decode")
    ap.add_argument("--nets", default=None, help="Comma-separated workloads for the steps.")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    sections = set(a.sections.split(","))
    out: dict = {"steps": [], "ablation": None, "refresh": [], "decode": []}
    nets = ["resnet18"] if a.quick else ["resnet18", "resnet50", "bert-base"]
    if a.nets:
        nets = a.nets.split(",")
    for wl in nets if "steps" in sections else []:
        out["steps"].append(_step(wl, "16x16-n2m8-train", method="bimask"))
        if a.full:
            out["steps"].append(_step(wl, "16x16-n2m8", method="bimask"))
            out["steps"].append(_step(wl, "16x16-n2m8-train", method="transposable"))
            out["steps"].append(_step(wl, "16x16-n2m8-train", method="forward-only"))
    if "ablation" in sections:
        print("\nablation, resnet18 on 16x16-n2m8-train")
        out["ablation"] = training.ablation("resnet18", "16x16-n2m8-train")
        for r in out["ablation"]:
            print(f"  {r['setting']:20} {r['total']:>12,} cycles  {r['cost']:.3f}x", flush=True)
    if "refresh" in sections:
        print("\nmask refresh, resnet18 2:8 (cycles per refresh at 500 MHz)")
    if "refresh" in sections:
        cfg = PRESETS["16x16-n2m8-train"]
        base = next((r for r in out["steps"] if r["workload"] == "resnet18"
                     and r["config"] == cfg.name and r["method"] == "bimask"), None) \
            or _step("resnet18", cfg.name, method="bimask")
        from sparsa.compiler import compile_workload
        prog = compile_workload("resnet18", cfg, sparsity=base["plan"], train=True,
                                with_data=False)
        layers = training._weight_layers(prog)
        for method in ("forward-only", "transposable", "bimask"):
            for where, meas in (("host", False), ("host", True), ("array", False)):
                rc = training.refresh_cost(layers, cfg, method, "2:8", "2:8", where=where,
                                           measure=meas)
                key = f"{where}{' measured' if meas else ''}"
                amort = {k: round(base["dense_cycles"] / (base["cycles"] + rc.cycles / k), 3)
                         for k in (1, 10, 100, 1000)}
                out["refresh"].append({"method": method, "where": key,
                                       "cycles_per_refresh": rc.cycles, "amortised": amort})
                print(f"  {method:13} {key:14} {rc.cycles:>14,} cycles/refresh; amortised "
                      f"speed-up (Bi-Mask step) every 1/10/100/1000 steps: "
                      f"{list(amort.values())}", flush=True)
    if "decode" in sections:
        print("\nGPT-2 small decode, batch 1, KV 128, 2:4")
    bw4_n1m16 = dataclasses.replace(PRESETS["16x16-n1m16"], name="16x16-n1m16-bw4",
                                    dram_bytes_per_cycle=4)
    for cfg in (PRESETS["16x16-n2m4-bw4"], bw4_n1m16) if "decode" in sections else ():
        t0 = time.perf_counter()
        rep = compare_modes("gpt2-decode", cfg, "2:4", seq=128)
        rep.pop("layers")
        rep["wall_s"] = round(time.perf_counter() - t0, 1)
        out["decode"].append(rep)
        d = rep["totals"]["dense"]
        for v, x in rep["totals"].items():
            print(f"  {cfg.name:16} {v:12} {x['cycles']:>12,} cycles "
                  f"({d['cycles'] / x['cycles']:.2f}x)  DRAM read {x['dram_read_bytes']:>12,} B")
        print(f"  auto chose {rep['chosen']}  [{rep['wall_s']} s]", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
