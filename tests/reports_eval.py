"""A small, real, deterministic evaluation function for the sweep-engine tests.

It computes cycles with the hardware's own timing formulas (:mod:`sparsa.hw.timing`) for a
fixed list of GEMMs per workload name, tiled over the array (weight-stationary: one PRELOAD
and one COMPUTE of ``P`` rows per (K, Q) tile). It is not the SimPy model: it lets the engine
(resume, error rows, Dask) be tested without depending on the model's speed.

``SPARSA_EVAL_LOG=path`` appends one line per evaluation (to count recomputations);
``SPARSA_EVAL_SLEEP=s`` sleeps per evaluation (to kill a sweep midway).
"""

from __future__ import annotations

import os
import time
from typing import Any

from sparsa.hw.config import AccelConfig
from sparsa.hw.timing import compute_cycles, preload_cycles

#: (P, K, Q) GEMMs per workload name.
GEMMS = {
    "resnet50": [(3136, 576, 64), (784, 1152, 128), (196, 2304, 256), (49, 4608, 512)],
    "bert-base": [(128, 768, 768), (128, 768, 3072), (128, 3072, 768)],
}


def analytic_point(task: dict[str, Any]) -> dict[str, Any]:
    """Cycles of the workload's GEMMs on ``task["config"]`` from the timing formulas."""
    log = os.environ.get("SPARSA_EVAL_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{task['hash']}\n")
    delay = float(os.environ.get("SPARSA_EVAL_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    if task["dataflow"] == "is":
        raise ValueError("input-stationary is not in the analytic model")
    cfg = AccelConfig(**task["config"])
    sp = task["sparsity"]
    n, m = (int(x) for x in sp.split(":")) if ":" in sp else (cfg.n, cfg.n)
    dense_k = cfg.rows
    k_tile = dense_k if sp == "dense" else cfg.groups * cfg.m * n // max(n, cfg.n)

    def cycles(k_per_tile: int) -> int:
        total = 0
        for p, k, q in GEMMS[task["workload"]]:
            tiles = -(-k // k_per_tile) * -(-q // cfg.cols)
            total += tiles * (compute_cycles(cfg, p * task["batch"]) + preload_cycles(cfg))
        return total

    cyc, dense = cycles(k_tile), cycles(dense_k)
    phases = {}
    if task["train"]:  # backward-data at the same rate, weight gradient dense
        phases = {"cycles_fwd": cyc, "cycles_bwd_data": cyc, "cycles_wgrad": dense}
        cyc, dense = cyc * 2 + dense, dense * 3
    macs = sum(p * k * q for p, k, q in GEMMS[task["workload"]]) * task["batch"]
    if task["dataflow"] == "os":
        cyc = cyc + cyc // 10
    return {"cycles": cyc, "dense_cycles": dense, "speedup": dense / cyc, "macs": macs,
            "utilisation": macs * (n / m if sp != "dense" else 1) / (cyc * cfg.rows * cfg.cols),
            "energy_mac_pj": 0.3 * macs, "energy_dram_pj": 2000.0 * sum(
                k * q for _, k, q in GEMMS[task["workload"]]) / 8,
            "runtime_s": cyc / (cfg.clock_mhz * 1e6), **phases}


def tiny_workloads() -> dict[str, Any]:
    """Two small real networks (graph IR) for sweeps through the real model in seconds."""
    from sparsa.workloads import GraphBuilder

    b = GraphBuilder("tiny-cnn")
    x = b.input("input", (1, 16, 16, 16))
    x = b.relu(b.conv(x, 32, 3, name="conv1"), name="relu1")
    x = b.relu(b.conv(x, 64, 3, stride=2, name="conv2"), name="relu2")
    x = b.relu(b.conv(x, 64, 1, name="conv3"), name="relu3")
    x = b.op("globalavgpool", x, name="pool")
    x = b.op("flatten", x, name="flatten", axis=1)
    b.linear(x, 32, name="fc")
    cnn = b.build(batch=1)

    b = GraphBuilder("tiny-mlp")
    x = b.input("input", (1, 32, 64))
    h = b.op("gelu", b.linear(x, 128, name="fc1"), name="gelu")
    b.linear(h, 64, name="fc2")
    return {"tiny-cnn": cnn, "tiny-mlp": b.build(batch=1)}
