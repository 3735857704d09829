"""Calibration: the same programs on the RTL (Verilator) and on the model, cycle error.

:func:`calibration_programs` builds the suite for a config: single tiles (dense, the array's
``n:m``, sparser patterns), multi-tile GEMMs, DRAM-bandwidth-bound tiles (few rows, many
passes: the LOAD unit is the bottleneck), small compiled layers (convolution, linear,
depthwise, with and without interleaving; a load-as-sparse linear layer whose weights stay
compressed in DRAM; a ResNet-18 3x3 convolution and a BERT projection slice from the
compiler's RTL list), and MLP training steps (forward, backward-data
and weight-gradient GEMMs). :func:`calibrate` runs them in one Verilator process
(:func:`sparsa.hw.rtl_runner.run_jobs`, no stalls, final DRAM image checked against the
reference executor) and through :func:`sparsa.sim.api.simulate`, and reports the RTL's
``cycles`` counter, the model's cycles and the relative error per program.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sparsa.hw.config import AccelConfig
from sparsa.hw.isa import Compute

from .api import simulate

__all__ = ["calibration_programs", "calibrate", "QUICK"]

#: names of the programs the quick suite (``make test``) runs
QUICK = ("tile-dense-p4", "tile-sparse-p8", "dram-bound-sparse", "layer-conv-2:4",
         "layer-linear-load-sparse", "resnet18-conv3x3", "mlp-train-dense")


def _shape_workload(name: str, layers: list[tuple]) -> Any:
    """A workload given by GEMM shapes (the layer protocol the compiler reads)."""
    from sparsa.compiler.reference import GemmDims

    class _Layer:
        def __init__(self, lname: str, kind: str, inputs: tuple, dims: tuple | None,
                     out_elements: int = 0) -> None:
            self.name, self.kind, self.inputs = lname, kind, inputs
            self.dims, self.out_elements, self.stationary = dims, out_elements, "weight"
            self.attrs: dict[str, Any] = {}

        @property
        def is_gemm(self) -> bool:
            return self.dims is not None

        def gemm(self) -> Any:
            return GemmDims(*self.dims, stationary=self.stationary)

        def gemm_weight(self) -> None:
            return None

    class _Workload:
        def __init__(self) -> None:
            self.name = name
            self._layers = [_Layer(*ly) for ly in layers]

        def layers(self) -> list[Any]:
            return list(self._layers)

    return _Workload()


def calibration_programs(cfg: AccelConfig, quick: bool = False) -> list[tuple[str, Any]]:
    """``(name, program)`` pairs of the calibration suite for ``cfg`` (all with data)."""
    from sparsa.compiler import CompileOptions, compile_workload
    from sparsa.compiler.reference import TrainGraph
    from sparsa.compiler.tilegen import (
        GemmSpec,
        build_gemm_program,
        random_gemm_specs,
        random_nm_weights,
    )
    rng = np.random.default_rng(2026)
    nm = f"{cfg.n}:{cfg.m}"
    sparser = f"1:{cfg.m}"
    R, C = cfg.rows, cfg.cols
    out: list[tuple[str, Any]] = []

    def tile(name: str, mode: str, P: int, passes: int, qblocks: int, **kw: Any) -> None:
        n, m = (1, 1) if mode == "dense" else (int(v) for v in mode.split(":"))
        kp = R if mode == "dense" else cfg.act_row_bytes(m)
        K = passes * kp
        x = rng.integers(-128, 128, (P, K)).astype(np.int8)
        if mode == "dense":
            w = rng.integers(-128, 128, (K, qblocks * C)).astype(np.int8)
        else:
            w = random_nm_weights(rng, K, qblocks * C, n, m)
        out.append((name, build_gemm_program(cfg, [GemmSpec(x=x, w=w, mode=mode, **kw)])))

    tile("tile-dense-p1", "dense", 1, 1, 1)
    tile("tile-dense-p4", "dense", 4, 1, 1, requant=1, shift=8)
    tile("tile-dense-p32", "dense", 32, 1, 1, relu=1)
    tile("tile-sparse-p8", nm, 8, 1, 1)
    tile("tile-sparser-p16", sparser, 16, 1, 1, requant=1, shift=6)
    tile("gemm-dense-3x2", "dense", 24, 3, 2, requant=1, shift=12)
    tile("gemm-sparse-4x2", nm, 20, 4, 2)
    # DRAM-bandwidth bound: 1-2 rows per pass, every pass loads a weight tile
    tile("dram-bound-dense", "dense", 1, 6, 2)
    tile("dram-bound-sparse", nm, 2, 6, 2, load_stride_extra=1)
    tile("dram-bound-strided", nm, 1, 4, 1, load_stride_extra=1, store_stride_extra=1)
    specs = random_gemm_specs(cfg, rng, 3, nm, max_p=20)
    out.append(("random-gemms-sparse", build_gemm_program(cfg, specs)))
    specs = random_gemm_specs(cfg, rng, 3, "dense", max_p=20)
    out.append(("random-gemms-dense", build_gemm_program(cfg, specs)))
    net = [("c1", "conv", ("x",), (36, 27, 2 * C)),
           ("r1", "relu", ("c1",), None, 36 * 2 * C),
           ("c2", "conv", ("r1",), (36, 2 * C, C)),
           ("fc", "linear", ("c2",), (2, 36 * C, C))]
    for spec in ("dense", nm, sparser):
        out.append((f"layer-conv-{spec}", compile_workload(
            _shape_workload("calib-net", net), cfg, sparsity=spec, seed=1)))
    dw = [("dw", "conv", ("x",), (25, 9, 1, 4)), ("pw", "conv", ("dw",), (25, 4, 2 * C))]
    out.append(("layer-depthwise", compile_workload(_shape_workload("calib-dw", dw), cfg,
                                                    sparsity="dense", seed=2)))
    out.append(("layer-conv-fenced", compile_workload(
        _shape_workload("calib-net", net), cfg, sparsity=nm, seed=3,
        options=CompileOptions(interleave=False))))
    out.append(("layer-conv-act-reuse", compile_workload(
        _shape_workload("calib-net", net), cfg, sparsity=nm, seed=4, dataflow="act-reuse")))
    # load-as-sparse: 2:4-style weights compressed in DRAM, expanded by the weight LOAD
    from sparsa.compiler.reference import RefGraph
    xl = np.random.default_rng(6).integers(-128, 128, (6, 8 * R)).astype(np.int8)
    g = RefGraph("calib-ls-linear", xl, seed=6)
    g.linear("fc", "x", 8 * R, 2 * C)
    g.evaluate(nm)
    out.append(("layer-linear-load-sparse", compile_workload(
        g, cfg, sparsity=nm, seed=6, options=CompileOptions(sparse_mode="load-sparse"))))
    # from the compiler's RTL list: a ResNet-18 3x3 conv (reading its padded image with a
    # LOAD per output row, implicit im2col) and a BERT projection slice
    xr = np.random.default_rng(1).integers(-128, 128, (1, 4, 4, 64)).astype(np.int8)
    g = RefGraph("resnet18-l1-conv", xr, seed=1)
    g.conv("l1.conv1", "x", 64, 64, 3)
    g.relu("l1.relu", "l1.conv1")
    g.evaluate(nm)
    out.append(("resnet18-conv3x3", compile_workload(g, cfg, sparsity=nm, seed=1)))
    if not quick:
        xb = np.random.default_rng(2).integers(-128, 128, (8, 768)).astype(np.int8)
        g = RefGraph("bert-q-slice", xb, seed=2)
        g.linear("q", "x", 768, 64)
        g.evaluate(nm)
        out.append(("bert-q-slice", compile_workload(g, cfg, sparsity=nm, seed=2)))
    x = np.random.default_rng(5).integers(-128, 128, (10, 3 * R)).astype(np.int8)
    for spec in ("dense", f"fwd={nm},bwd={nm},method=bimask"):
        ref = TrainGraph(x, [3 * R, 4 * C, 2 * C], spec, seed=0)
        label = "mlp-train-dense" if spec == "dense" else "mlp-train-bimask"
        out.append((label, compile_workload(ref, cfg, sparsity=spec, train=True, seed=0)))
    # a training step with packed grouped GEMMs (compiler.grouppack): the depthwise
    # forward and weight gradient block-diagonal, the backward data side by side
    from sparsa.workloads.graph import GraphBuilder
    b = GraphBuilder("calib-dw-train")
    h = b.relu(b.conv(b.input("x", (1, C // 2, 6, 6)), 2 * C, 1, name="pw1"), name="r1")
    h = b.relu(b.conv(h, 2 * C, 3, groups=2 * C, name="dw"), name="r2")
    b.conv(h, C, 1, name="pw2")
    out.append(("train-depthwise-packed", compile_workload(
        b.build(), cfg, sparsity=f"fwd={nm},bwd={nm},method=bimask", train=True, seed=2)))
    # narrow windows (2:4 on an m = 8 core): compact rows spread by LOAD expand=1, cmp_m=w
    for w in (w for w in cfg.windows if cfg.n < w < cfg.m):
        tile(f"tile-window{w}", f"{cfg.n}:{w}", 12, 3, 2, requant=1, shift=9)
        out.append((f"layer-conv-{cfg.n}:{w}", compile_workload(
            _shape_workload("calib-net", net), cfg, sparsity=f"{cfg.n}:{w}", seed=7)))
    if 2 * cfg.n < cfg.m:
        # a pattern denser than the array's n: sparse passes sharing each activation tile
        dense_nm = f"{cfg.n + 1}:{cfg.m}"
        out.append((f"layer-conv-{dense_nm}-passes", compile_workload(
            _shape_workload("calib-net", net), cfg, sparsity=dense_nm, seed=8)))
        # unstructured: K tiles keep as many pass tiles as their fullest window needs
        out.append(("layer-conv-unstructured", compile_workload(
            _shape_workload("calib-net", net), cfg, sparsity="unstructured:0.125", seed=9)))
    if quick:
        out = [p for p in out if p[0] in QUICK]
    return out


def calibrate(cfg: AccelConfig, programs: list[tuple[str, Any]] | None = None, *,
              quick: bool = False, check_outputs: bool = True) -> list[dict[str, Any]]:
    """Run ``programs`` (default: :func:`calibration_programs`) on Verilator and on the
    model; one row per program: ``name, instructions, rtl_cycles, model_cycles, error``
    (relative, model vs RTL), ``load_busy``/``exec_busy`` (model) and ``dram_bound`` (the
    load unit busier than the array's streaming of rows)."""
    from sparsa.compiler.executor import execute
    from sparsa.hw.rtl_runner import RtlJob, run_jobs
    progs = programs if programs is not None else calibration_programs(cfg, quick)
    jobs = []
    for _, prog in progs:
        exp = execute(cfg, prog.instructions, prog.dram).dram if check_outputs else None
        jobs.append(RtlJob(prog.instructions, prog.dram, expected=exp))
    t0 = time.perf_counter()
    results = run_jobs(cfg, jobs, stalls="none", name="calibrate")
    rtl_s = time.perf_counter() - t0
    rows = []
    for (name, prog), res in zip(progs, results, strict=True):
        sim = simulate(prog)
        rtl = int(res.cycles)
        rows.append({
            "name": name, "instructions": len(prog.instructions), "rtl_cycles": rtl,
            "model_cycles": sim.cycles, "error": (sim.cycles - rtl) / max(1, rtl),
            "load_busy": sim.units["load"]["busy"], "exec_busy": sim.units["exec"]["busy"],
            # the array streams one row per cycle; DRAM-bound when loading takes longer
            "dram_bound": sim.units["load"]["busy"] > sum(
                i.count for i in prog.instructions if isinstance(i, Compute)),
            "model_s": round(sim.wall_s, 4),
        })
    for r in rows:
        r["rtl_batch_s"] = round(rtl_s, 2)
    return rows
