"""Public entry point: :func:`compile_workload`."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from typing import Any

from sparsa.hw.config import AccelConfig

from .allocate import AllocatePass
from .encode import EncodePass
from .errors import CompileError
from .frontend import ImportPass, SparsifyPass, TrainingExpandPass
from .grouppack import GroupPackPass
from .ir import CGraph
from .lower import LowerPass
from .options import CompileOptions
from .pipeline import Pipeline
from .program import Program
from .schedule import SchedulePass
from .tiling import TilePass

__all__ = ["compile_workload", "build_pipeline", "PASS_NAMES"]

PASS_NAMES = ("import", "train", "sparsify", "pack", "lower", "tile", "schedule", "allocate", "encode")


def _workload(workload: Any, batch: int, seq: int | None) -> Any:
    if isinstance(workload, str):
        try:
            from sparsa.workloads import load_workload
        except ImportError:
            raise CompileError(f"workload {workload!r}: loading workloads by name needs "
                               f"sparsa.workloads.load_workload, which is not available") \
                from None
        return load_workload(workload, batch=batch, seq=seq)
    if not hasattr(workload, "layers"):
        raise CompileError(f"workload must be a name or a Workload, not "
                           f"{type(workload).__name__}")
    return workload


def build_pipeline(workload: Any, plan: Any, train: bool, *, dump_after: str | None = None,
                   dump: Callable[[str], None] | None = None,
                   dump_format: str = "text") -> Pipeline:
    """The pass pipeline ``import -> train -> sparsify -> pack -> lower -> tile -> schedule ->
    allocate -> encode``."""
    return Pipeline([ImportPass(workload), TrainingExpandPass(workload, train),
                     SparsifyPass(plan), GroupPackPass(), LowerPass(), TilePass(), SchedulePass(),
                     AllocatePass(), EncodePass()],
                    dump_after=dump_after, dump=dump, dump_format=dump_format)


def compile_workload(workload: Any, config: AccelConfig, *, sparsity: str | None = None,
                     train: bool = False, dataflow: str = "weight-reuse",
                     options: CompileOptions | None = None, with_data: bool = True,
                     seed: int = 0, batch: int = 1, seq: int | None = None,
                     dump_after: str | None = None,
                     dump: Callable[[str], None] | None = None,
                     dump_format: str = "text") -> Program:
    """Compile a workload into a :class:`Program` for ``config``.

    Parameters
    ----------
    workload : str or Workload
        A zoo name / file understood by :func:`sparsa.workloads.load_workload`, or a
        workload object.
    config : AccelConfig
    sparsity : str, optional
        A sparsity plan (``"2:4"``, ``"conv1=dense;*=2:4"``,
        ``"fwd=2:8,bwd=2:8,method=bimask"``...). ``None``: the workload's own plan when it
        carries one (a SCALE-Sim topology's ``Sparsity`` column), else dense.
    train : bool
        Compile a training step (forward, backward-data and weight-gradient GEMMs).
    dataflow : {"weight-reuse", "act-reuse", "auto"}
        Loop order (overrides ``options.dataflow``; ``auto``: the faster per GEMM, see
        :class:`CompileOptions`).
    options : CompileOptions, optional
    with_data : bool
        ``False``: no weight values or activations — the DRAM image is empty
        (``meta["dram_beats"]`` gives its size), non-zero counts are analytic; the
        instruction stream has the same shape as with data (for N:M and dense specs).
    seed : int
        Seed of synthetic weights, activations, block choices and Bi-Mask's search.
    batch, seq : int
        Passed to :func:`sparsa.workloads.load_workload`.
    dump_after : str, optional
        Dump the graph after this pass (one of :data:`PASS_NAMES`) to ``dump``.

    Returns
    -------
    Program
        With data, ``program.expected`` maps every GEMM output tensor to its expected
        int8/int32 values (numpy from the GEMM inputs), for checking a final DRAM image
        (:func:`sparsa.compiler.gemms.read_output`).
    """
    from sparsa.workloads.sparsity import SparsityPlan
    opt = options or CompileOptions()
    if dataflow != opt.dataflow:
        opt = dataclasses.replace(opt, dataflow=dataflow)
    wl = _workload(workload, batch, seq)
    if sparsity is None:
        own = getattr(wl, "sparsity_plan", None)     # workload objects without one: dense
        sparsity = (own() if callable(own) else None) or "dense"
    plan = SparsityPlan.parse(sparsity)
    g = CGraph(config, opt, with_data=with_data, seed=seed)
    pipe = build_pipeline(wl, plan, train, dump_after=dump_after, dump=dump,
                          dump_format=dump_format)
    # The passes allocate hundreds of thousands of small acyclic objects (one per
    # instruction); the cyclic garbage collector's scans of them cost ~40 % of a
    # whole-network compile and find nothing, so it is paused while the pipeline runs.
    # Resumed, its next scan of the youngest generation would go through every object
    # the pipeline allocated (~0.3 s for ResNet-50): they are moved to the oldest
    # generation first, without a scan (unless objects are frozen already: then the
    # unfreeze would release those too).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        g = pipe.run(g)
    finally:
        if gc_was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
    prog = g.program
    prog.meta.update(sparsity=str(plan), sparsity_arg=sparsity, train=train)
    prog.pass_seconds = {k: round(v, 4) for k, v in pipe.times.items()}
    prog.meta.pop("expected_outputs", None)
    prog.expected = dict(g.results)
    return prog
