"""Public API of the model: :func:`simulate` a program, :func:`run_point` for sweeps.

Figures (all in :class:`SimResult` and the flat dict of :func:`run_point`):

``cycles``
    Total cycles from the first issue until every unit is idle.
``utilisation``
    Effective array utilisation: dense-equivalent MACs of the workload divided by the
    array's dense-equivalent peak times cycles. The peak of the sparse array is
    ``rows * cols * m / n`` dense-equivalent MACs per cycle (each pass reduces over
    ``rows * m / n`` values of K). A workload at the array's own N:M ratio can reach 1.0; a
    dense workload at most ``n / m`` (its windows carry ``n`` useful values of ``m``).
``pe_utilisation``
    Non-zero MACs / (``rows * cols`` * cycles): the fraction of PE-cycles doing useful work.
``speedup``
    Cycles of the same workload compiled dense on the same core (same dataflow) divided by
    ``cycles``.
``limiting``
    What holds the run (or layer) back: ``compute`` when streaming rows take at least
    ``COMPUTE_BOUND_SHARE`` (95%) of the array's time, else the largest overhead of
    ``fill-drain`` (pipeline fill/drain per pass and waiting for the weight preload),
    ``DRAM bandwidth`` (waiting for LOAD/STORE), ``window bandwidth`` (dataflow variants
    whose activation-window links cannot keep up). Sparsity shrinks only the streaming,
    so only a ``compute``-limited layer gets close to the ideal ``m/n`` speed-up.
``energy_*``
    See :mod:`sparsa.sim.energy`.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import numbers
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sparsa.hw.config import AccelConfig, resolve_config
from sparsa.hw.isa import Unit

from .energy import (
    COMPONENTS,
    EnergyTable,
    energy_breakdown,
    energy_table_kind_error,
    resolve_energy_table,
)
from .errors import SimError
from .model import (
    ACTIONS,
    CoreModel,
    ModelOptions,
    OpStream,
    RunStats,
    ops_from_program,
)

__all__ = ["SimResult", "simulate", "apply_baseline", "run_point", "run_points",
           "simulate_points", "DATAFLOWS", "LIMITS", "COMPUTE_BOUND_SHARE", "compute_share",
           "load_program", "HOST_ELEMS_PER_CYCLE", "host_elements"]

DATAFLOWS = ("ws", "os", "is")
LIMITS = ("compute", "fill-drain", "DRAM bandwidth", "window bandwidth")
_LOAD, _PRE, _EXEC, _STORE = int(Unit.LOAD), int(Unit.PRE), int(Unit.EXEC), int(Unit.STORE)


@dataclass
class SimResult:
    """Result of :func:`simulate`.

    ``per_layer`` rows (dicts): ``layer``, ``kind``, ``mode``, ``cycles`` (the layer's share
    of the critical path: cycles from the previous layer's last completion to its own),
    ``exec_busy``, ``load_busy``, ``preload_busy``, ``store_busy``, ``exec_stall`` (array
    idle before the layer's computes), ``dram_stall``, ``macs`` (non-zero), ``dense_macs``,
    ``utilisation``, ``dram_read_bytes``, ``dram_write_bytes``, ``energy_pj`` and its
    components ``energy_<component>_pj`` (:data:`~sparsa.sim.energy.COMPONENTS`), the limit
    cycles (``compute``, ``fill_drain``, ``dram_bw``, ``window_bw``) and ``limiting``; with a
    dense baseline also ``dense_cycles`` and ``speedup``.
    """

    config: AccelConfig
    dataflow: str
    cycles: int
    units: dict[str, dict[str, int]]
    dram_channels: dict[str, dict[str, int]]
    per_layer: list[dict[str, Any]]
    totals: dict[str, int]
    energy: dict[str, float]
    energy_table: EnergyTable
    limits: dict[str, int]
    options: ModelOptions
    stats: RunStats = field(repr=False)
    dense_cycles: int | None = None
    dense_energy_pj: float | None = None
    wall_s: float = 0.0
    host_elements: int = 0
    dense_host_elements: int | None = None

    # ---- non-GEMM work -----------------------------------------------------------------
    @property
    def host_cycles(self) -> int:
        """Non-GEMM work (the program's host layers: im2col relayout, pooling, norms,
        softmax, ...) in core cycles at :data:`HOST_ELEMS_PER_CYCLE`; not in ``cycles``."""
        return math.ceil(self.host_elements / HOST_ELEMS_PER_CYCLE)

    @property
    def speedup_with_host(self) -> float | None:
        """Speed-up over the dense baseline with both runs' non-GEMM work added."""
        if not self.dense_cycles:
            return None
        dense_host = math.ceil((self.dense_host_elements or 0) / HOST_ELEMS_PER_CYCLE)
        return (self.dense_cycles + dense_host) / max(1, self.cycles + self.host_cycles)

    # ---- derived figures -----------------------------------------------------------
    @property
    def peak_macs_per_cycle(self) -> float:
        """Dense-equivalent MACs per cycle of the sparse array: ``rows*cols*m/n``."""
        c = self.config
        return c.rows * c.cols * c.m / c.n

    @property
    def energy_pj(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def seconds(self) -> float:
        return self.cycles / (self.config.clock_mhz * 1e6)

    @property
    def utilisation(self) -> float:
        return self.totals["dense_macs"] / max(1.0, self.peak_macs_per_cycle * self.cycles)

    @property
    def pe_utilisation(self) -> float:
        c = self.config
        return self.totals["nonzero_macs"] / max(1, c.rows * c.cols * self.cycles)

    @property
    def speedup(self) -> float | None:
        return None if not self.dense_cycles else self.dense_cycles / max(1, self.cycles)

    @property
    def tops_w(self) -> float:
        """Effective TOPS/W: 2 x dense-equivalent MACs per pJ."""
        return 2.0 * self.totals["dense_macs"] / max(1e-12, self.energy_pj)

    @property
    def edp(self) -> float:
        """Energy-delay product in J*s."""
        return self.energy_pj * 1e-12 * self.seconds

    @property
    def limiting(self) -> str:
        return _limiting(self.limits)

    @property
    def sram_bytes(self) -> dict[str, int]:
        t = self.totals
        return {"act": t["sram_act_read"] + t["sram_act_write"],
                "wgt": t["sram_wgt_read"] + t["sram_wgt_write"]
                + t["sram_meta_read"] + t["sram_meta_write"],
                "acc": t["sram_acc_read"] + t["sram_acc_write"]}

    def phase_cycles(self) -> dict[str, int]:
        """Cycles per training phase (``fwd``, ``bwd_data``, ``wgrad``) from the layers."""
        out = {"fwd": 0, "bwd_data": 0, "wgrad": 0}
        for r in self.per_layer:
            if r["kind"] in out:
                out[r["kind"]] += r["cycles"]
        return out

    def summary(self) -> dict[str, Any]:
        """Flat dict of JSON scalars (the figures :func:`run_point` reports)."""
        c = self.config
        d: dict[str, Any] = {
            "config": c.key, "config_name": c.name, "rows": c.rows, "cols": c.cols,
            "n": c.n, "m": c.m, "dataflow": self.dataflow, "cycles": self.cycles,
            "dense_cycles": self.dense_cycles,
            "speedup": None if self.speedup is None else round(self.speedup, 6),
            "utilisation": round(self.utilisation, 6),
            "pe_utilisation": round(self.pe_utilisation, 6),
            "macs": self.totals["nonzero_macs"], "dense_macs": self.totals["dense_macs"],
            "macs_issued": self.totals["pe_ops"],
            "dram_read_bytes": self.totals["dram_read"],
            "dram_write_bytes": self.totals["dram_write"],
            "sram_bytes": sum(self.sram_bytes.values()),
            "sram_act_bytes": self.sram_bytes["act"], "sram_wgt_bytes": self.sram_bytes["wgt"],
            "sram_acc_bytes": self.sram_bytes["acc"],
            "energy_pj": round(self.energy_pj, 3),
            "host_elements": self.host_elements, "host_cycles": self.host_cycles,
            "speedup_with_host": None if self.speedup_with_host is None
            else round(self.speedup_with_host, 6),
        }
        for k in COMPONENTS:
            d[f"energy_{k}_pj"] = round(self.energy[k], 3)
        d["dense_energy_pj"] = (None if self.dense_energy_pj is None
                                else round(self.dense_energy_pj, 3))
        d["energy_reduction"] = (None if not self.dense_energy_pj
                                 else round(self.dense_energy_pj / max(1e-12, self.energy_pj), 6))
        d["tops_w"] = round(self.tops_w, 6)
        d["edp"] = self.edp
        d["seconds"] = self.seconds
        d["limiting"] = self.limiting
        for k, v in self.limits.items():
            d[f"limit_{k}_cycles"] = v
        d["energy_table"] = self.energy_table.name
        for u, row in self.units.items():
            d[f"{u}_busy"] = row["busy"]
            d[f"{u}_stall"] = row["stall"] + row["dram_stall"]
        return d


#: A run (or layer) is ``compute``-limited when streaming rows take at least this share of
#: the array's time; below it, the largest overhead is what holds it back. Sparsity shrinks
#: only the streaming: a sparse run of time 1 at share ``s`` whose dense version has the
#: same overhead (``1 - s``) and twice the streaming takes ``1 + s`` dense, so at this share
#: a 2:4 layer gains about 1.95x. (The sparse run often pays more DRAM overhead than the
#: dense one, which halves its streaming only; at 90% some ResNet-50 layers gain 1.83x.)
COMPUTE_BOUND_SHARE = 0.95


_LIMIT_KEYS = dict(zip(("compute", "fill_drain", "dram_bw", "window_bw"), LIMITS, strict=True))


def compute_share(limits: dict[str, int]) -> float | None:
    """Share of the array's time spent streaming rows (``limits``: a run's or a per-layer
    row's ``compute``/``fill_drain``/``dram_bw``/``window_bw`` cycles); ``None`` when the
    array had no time at all."""
    total = sum(limits.get(k, 0) for k in _LIMIT_KEYS)
    return limits.get("compute", 0) / total if total else None


def _limiting(limits: dict[str, int]) -> str:
    share = compute_share(limits)
    worst = max((k for k in _LIMIT_KEYS if k != "compute"), key=lambda k: limits.get(k, 0))
    if share is None or share >= COMPUTE_BOUND_SHARE or limits.get(worst, 0) == 0:
        return "compute"
    return _LIMIT_KEYS[worst]


def _ops_for(program: Any, cfg: AccelConfig, dataflow: str, options: dict[str, Any]) -> OpStream:
    if dataflow == "ws":
        return ops_from_program(program, cfg)
    from .dataflows import variant_ops
    return variant_ops(program, cfg, dataflow, **options)


def simulate(program: Any, config: AccelConfig | str | None = None, *, dataflow: str = "ws",
             options: ModelOptions | dict[str, Any] | None = None,
             energy_table: str | EnergyTable | None = None,
             baseline: SimResult | None = None,
             variant_options: dict[str, Any] | None = None) -> SimResult:
    """Run a compiled program through the model.

    Parameters
    ----------
    program : Program
        From :func:`sparsa.compiler.compile_workload` (with or without data) or
        :func:`sparsa.compiler.tilegen.build_gemm_program`.
    config : AccelConfig or str, optional
        Defaults to ``program.config``; a different config is an error (the program is
        encoded for its own core).
    dataflow : {"ws", "os", "is"}
        ``ws``: the program's own instructions on the weight-stationary core. ``os`` /
        ``is``: the model-only output-/input-stationary arrays run the program's GEMMs
        (:mod:`sparsa.sim.dataflows`).
    options : ModelOptions or dict, optional
        Memory-system knobs (:class:`~sparsa.sim.model.ModelOptions`).
    energy_table : str or EnergyTable, optional
        Defaults to ``config.energy_table``.
    baseline : SimResult, optional
        The same workload compiled dense (same core, same dataflow): fills
        ``dense_cycles``, per-layer speed-ups and ``dense_energy_pj``.
    variant_options : dict, optional
        Options of the ``os``/``is`` generators (see :func:`sparsa.sim.dataflows.variant_ops`).

    Returns
    -------
    SimResult
    """
    t0 = time.perf_counter()
    cfg = program.config if config is None else resolve_config(config)
    if cfg != program.config:
        raise SimError(f"config {cfg.name!r} ({cfg.key}) differs from the program's config "
                       f"{program.config.name!r} ({program.config.key}); compile for it first")
    if dataflow not in DATAFLOWS:
        raise SimError(f"dataflow={dataflow!r} is invalid; allowed: {', '.join(DATAFLOWS)}")
    opts = options if isinstance(options, ModelOptions) else ModelOptions.from_dict(options)
    table = resolve_energy_table(energy_table if energy_table is not None else cfg.energy_table)
    # Like the compiler, the model builds many small acyclic objects per instruction: the
    # cyclic garbage collector is paused while it runs (it finds nothing and costs ~30 %).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        ops = _ops_for(program, cfg, dataflow, variant_options or {})
        stats = CoreModel(cfg, ops, opts).run()
        per_layer, totals, energy, limits = _breakdown(cfg, ops, stats, table)
    finally:
        if gc_was_enabled:
            gc.enable()
    res = SimResult(config=cfg, dataflow=dataflow, cycles=stats.total, units=stats.units,
                    dram_channels=stats.dram, per_layer=per_layer, totals=totals,
                    energy=energy, energy_table=table, limits=limits, options=opts,
                    stats=stats, host_elements=sum(host_elements(program).values()))
    if baseline is not None:
        apply_baseline(res, baseline)
    res.wall_s = time.perf_counter() - t0
    return res


#: Non-GEMM (host) work is counted in elements and turned into cycles at this rate
#: (elements per core cycle): a host or vector unit streaming 16 int8 lanes per cycle.
HOST_ELEMS_PER_CYCLE = 16


def host_elements(program: Any) -> dict[str, int]:
    """Elements of host (non-GEMM) work per phase (``inf`` for inference) of a compiled
    program: its ``kind="host"`` layers' ``elements``."""
    out: dict[str, int] = {}
    for ly in getattr(program, "layers", ()):
        if ly.kind == "host":
            ph = str(ly.meta.get("phase", "inf"))
            out[ph] = out.get(ph, 0) + int(ly.meta.get("elements", 0))
    return out


def apply_baseline(res: SimResult, baseline: SimResult) -> None:
    """Fill ``res``'s dense-baseline fields (totals and per layer) from ``baseline``."""
    res.dense_cycles = baseline.cycles
    res.dense_energy_pj = baseline.energy_pj
    res.dense_host_elements = baseline.host_elements
    dense_by_name = {r["layer"]: r["cycles"] for r in baseline.per_layer}
    for r in res.per_layer:
        dc = dense_by_name.get(r["layer"])
        r["dense_cycles"] = dc
        r["speedup"] = None if dc is None else round(dc / max(1, r["cycles"]), 4)


def _breakdown(cfg: AccelConfig, ops: OpStream, st: RunStats, table: EnergyTable
               ) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, float], dict[str, int]]:
    nl = max(1, len(ops.layers))
    lay = np.asarray(ops.layer, np.int64)
    lay = np.where(lay < 0, 0, lay)
    unit = np.asarray(ops.unit, np.int64)
    cyc = np.asarray(ops.cycles, np.int64)
    stream = np.asarray(ops.stream, np.int64)
    win = (np.asarray(ops.window_cycles, np.int64) if ops.window_cycles is not None
           else np.zeros(len(ops), np.int64))

    def per(mask: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.bincount(lay[mask], weights=w[mask].astype(np.float64),
                           minlength=nl).astype(np.int64)[:nl]

    # per op: its share of its unit's busy time (the pipelined units overlap their ops)
    busy = {u: per(unit == u, st.busy_share) for u in (_LOAD, _PRE, _EXEC, _STORE)}
    dstall = per(np.isin(unit, (_LOAD, _STORE)), st.stall_share)
    # array idle time before each compute (after the previous one's rows), by what held it
    acc_c = np.asarray(ops.accept, np.int64) if ops.accept is not None else cyc
    ex = np.nonzero(unit == _EXEC)[0]
    gaps = np.zeros(len(ops), np.int64)
    drain = np.zeros(len(ops), np.int64)
    if ex.size:
        fed = st.issue[ex] + acc_c[ex]
        gaps[ex] = st.issue[ex] - np.concatenate(([0], fed[:-1]))
        drain[ex[-1]] = st.end[ex[-1]] - fed[-1]     # the last pass's drain overlaps nothing
    blk = st.blocker
    exm = unit == _EXEC
    exec_stall = per(exm, gaps)
    dram_bw = per(exm & np.isin(blk, (_LOAD, _STORE)), gaps)
    fill = per(exm, acc_c - stream - win + drain) + per(exm & np.isin(blk, (_PRE, _EXEC)), gaps)
    compute = per(exm, stream)
    window = per(exm, win)
    # critical-path share of every layer: up to the end of its last array pass's rows (the
    # pipelined array drains a pass while the next layer's rows stream), or of its last
    # instruction for a layer without passes; the run's tail goes to the last layer
    ends = np.zeros(nl, np.int64)
    has = np.zeros(nl, bool)
    if len(ops):
        bound = st.end.copy()
        if ex.size:
            bound[ex] = st.issue[ex] + acc_c[ex]
        with_ex = np.zeros(nl, bool)
        with_ex[lay[ex]] = True
        keep = exm | ~with_ex[lay]
        np.maximum.at(ends, lay[keep], bound[keep])
        has[np.unique(lay)] = True
    lcycles = np.zeros(nl, np.int64)
    running = 0
    last = -1
    for j in range(nl):
        if not has[j]:
            continue
        lcycles[j] = max(0, int(ends[j]) - running)
        running = max(running, int(ends[j]))
        last = j
    if last >= 0:
        lcycles[last] += st.total - running
    rows: list[dict[str, Any]] = []
    totals = {k: 0 for k in ACTIONS}
    totals["dense_macs"] = 0
    energy = {k: 0.0 for k in COMPONENTS}
    limits = {"compute": 0, "fill_drain": 0, "dram_bw": 0, "window_bw": 0}
    peak = cfg.rows * cfg.cols * cfg.m / cfg.n
    for j, sp in enumerate(ops.layers):
        e = energy_breakdown(sp.actions, cfg, table)
        for k in COMPONENTS:
            energy[k] += e[k]
        for k in ACTIONS:
            totals[k] += sp.actions.get(k, 0)
        totals["dense_macs"] += sp.dense_macs
        lim = {"compute": int(compute[j]), "fill_drain": int(fill[j]),
               "dram_bw": int(dram_bw[j]), "window_bw": int(window[j])}
        for k, v in lim.items():
            limits[k] += v
        rows.append({
            "layer": sp.name, "kind": sp.kind, "mode": sp.mode, "cycles": int(lcycles[j]),
            "exec_busy": int(busy[_EXEC][j]), "load_busy": int(busy[_LOAD][j]),
            "preload_busy": int(busy[_PRE][j]), "store_busy": int(busy[_STORE][j]),
            "exec_stall": int(exec_stall[j]), "dram_stall": int(dstall[j]),
            "macs": int(sp.actions.get("nonzero_macs", sp.nonzero_macs)),
            "dense_macs": int(sp.dense_macs),
            "utilisation": round(sp.dense_macs / max(1.0, peak * int(lcycles[j])), 6)
            if lcycles[j] else 0.0,
            "dram_read_bytes": int(sp.actions.get("dram_read", 0)),
            "dram_write_bytes": int(sp.actions.get("dram_write", 0)),
            "energy_pj": round(sum(e.values()), 3),
            **{f"energy_{k}_pj": round(e[k], 3) for k in COMPONENTS},
            **lim, "limiting": _limiting(lim),
        })
    return rows, totals, energy, limits


# ---- sweeps: one call per design point --------------------------------------------------
_PROGRAMS: OrderedDict[tuple, Any] = OrderedDict()
_BASELINES: OrderedDict[tuple, tuple[Any, SimResult]] = OrderedDict()
_CACHE_PROGRAMS = 2
_CACHE_BASELINES = 32
_POINT_OPTIONS = {"model", "compile", "energy_table", "variant", "seed", "baseline", "layers"}


def check_point_options(options: dict[str, Any] | None, source: str = "run_point options") -> None:
    """Check :func:`run_point`'s ``options`` without running anything: known keys, model
    and compile options, energy table. Raises :class:`SimError` (one line, naming
    ``source`` and the key) so a sweep can reject a bad spec before its first point."""
    from sparsa.compiler import CompileOptions
    from sparsa.compiler.errors import CompileError
    if options is None:
        return
    if not isinstance(options, dict):
        raise SimError(f"{source}: expected a mapping, got {type(options).__name__}")
    for k in options:
        if k not in _POINT_OPTIONS:
            raise SimError(f"{source}: unknown key {k!r}; allowed: "
                           f"{', '.join(sorted(_POINT_OPTIONS))}")
    for k in ("model", "compile", "variant"):
        v = options.get(k)
        if v is not None and not isinstance(v, dict):
            raise SimError(f"{source}: {k} must be a mapping, not {v!r}")
    try:
        ModelOptions.from_dict(options.get("model"), "model")
    except SimError as e:
        raise SimError(f"{source}.model: {str(e).removeprefix('options: ')}") from None
    copts = dict(options.get("compile") or {})
    names = [f.name for f in dataclasses.fields(CompileOptions)]
    for k in copts:
        if k not in names:
            raise SimError(f"{source}.compile: unknown key {k!r}; allowed: {', '.join(names)}")
    try:
        CompileOptions(**copts)
    except (CompileError, TypeError) as e:
        raise SimError(f"{source}.compile: {e}") from None
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SimError(f"{source}: seed={seed!r} is invalid; allowed an integer >= 0")
    for k in ("baseline", "layers"):
        if not isinstance(options.get(k, False), bool):
            raise SimError(f"{source}: {k}={options[k]!r} is invalid; allowed true or false")
    from .dataflows import check_variant_options
    try:
        check_variant_options(options.get("variant") or {})
    except SimError as e:
        raise SimError(f"{source}.variant: {e}") from None
    table = options.get("energy_table")
    why = energy_table_kind_error(table)
    if why:     # as a config's energy_table: a number or a list was a traceback
        raise SimError(f"{source}: {why}")
    if table is not None:
        try:
            resolve_energy_table(options["energy_table"])
        except SimError as e:
            raise SimError(f"{source}.energy_table: {e}") from None


def _compile_cached(workload: Any, cfg: AccelConfig, sparsity: str, train: bool, batch: int,
                    seq: int | None, compile_opts: dict[str, Any], seed: int) -> Any:
    from sparsa.compiler import CompileOptions, compile_workload
    from sparsa.compiler.errors import CompileError
    wkey = workload if isinstance(workload, str) else id(workload)
    key = (wkey, cfg, sparsity, train, batch, seq, tuple(sorted(compile_opts.items())), seed)
    hit = _PROGRAMS.get(key)
    if hit is not None:
        _PROGRAMS.move_to_end(key)
        return hit[1]
    try:
        copt = CompileOptions(**compile_opts)
    except TypeError as e:
        raise SimError(f"options.compile: {e}") from None
    except CompileError as e:
        raise SimError(f"options.compile: {e}") from None
    prog = compile_workload(workload, cfg, sparsity=sparsity, train=train,
                            dataflow=copt.dataflow, options=copt, with_data=False, seed=seed,
                            batch=batch, seq=seq)
    _PROGRAMS[key] = (workload, prog)     # holding the workload keeps its id() unique
    while len(_PROGRAMS) > _CACHE_PROGRAMS:
        _PROGRAMS.popitem(last=False)
    return prog


def run_point(workload: str, config: AccelConfig | str, sparsity: str = "dense",
              dataflow: str = "ws", train: bool = False, batch: int = 1,
              seq: int | None = None, options: dict | None = None) -> dict:
    """Compile (without data) and simulate one design point; return a flat dict.

    Parameters
    ----------
    workload : str
        Zoo name or file understood by :func:`sparsa.workloads.load_workload` (a workload
        object also works; it is cached by identity).
    config : AccelConfig or str
        Config or preset name / YAML path.
    sparsity : str
        Sparsity plan (``"dense"``, ``"2:4"``, ``"fwd=2:8,bwd=2:8,method=bimask"``...).
    dataflow : {"ws", "os", "is"}
    train : bool
        A training step (forward, backward-data, weight-gradient GEMMs).
    batch, seq : int
        Workload size.
    options : dict, optional
        ``model`` (:class:`~sparsa.sim.model.ModelOptions` fields), ``compile``
        (:class:`~sparsa.compiler.options.CompileOptions` fields), ``energy_table``
        (preset or YAML path), ``variant`` (``os``/``is`` generator options), ``seed``,
        ``baseline`` (``False`` skips the dense baseline: ``dense_cycles`` and ``speedup``
        are then ``None``), ``layers`` (``True`` adds ``"layers"``: the per-layer rows of
        :attr:`SimResult.per_layer`, the one entry that is not a scalar).

    Returns
    -------
    dict
        JSON scalars: ``workload, config, config_name, rows, cols, n, m, sparsity,
        dataflow, train, batch, cycles, dense_cycles, speedup, utilisation,
        pe_utilisation, macs, dense_macs, macs_issued, dram_read_bytes, dram_write_bytes,
        sram_bytes`` (+ per scratchpad), ``energy_pj, energy_<component>_pj`` (mac, mux,
        sram_act, sram_wgt, sram_meta, sram_acc, dram), ``dense_energy_pj,
        energy_reduction, tops_w, edp, seconds, limiting, energy_table``, the limit cycles
        ``limit_<limit>_cycles`` (``compute``, ``fill_drain``, ``dram_bw``, ``window_bw``:
        :attr:`SimResult.limits`), per-unit
        ``<unit>_busy``/``<unit>_stall``, ``runtime_s`` (wall time of this call) and, when
        ``train``, ``cycles_fwd, cycles_bwd_data, cycles_wgrad``; ``mode_notes``: the
        program's :meth:`~sparsa.compiler.program.Program.mode_notes` joined by ``"; "``
        (empty when every GEMM runs the mode its sparsity suggests).
    """
    t0 = time.perf_counter()
    opts, cfg, mopts, copts, seed, table, variant = _point_setup(options, config, [dataflow])
    prog = _compile_cached(workload, cfg, sparsity, train, batch, seq, copts, seed)
    baseline = None
    same: SimResult | None = None
    if opts.get("baseline", True):
        bkey = (workload if isinstance(workload, str) else id(workload), cfg, train, batch, seq,
                tuple(sorted(copts.items())), seed, dataflow, mopts, str(table),
                tuple(sorted(variant.items())))
        hit = _BASELINES.get(bkey)
        baseline = None if hit is None else hit[1]
        if baseline is None:
            if sparsity == "dense":
                dprog = prog
            else:
                dprog = _compile_cached(workload, cfg, "dense", train, batch, seq, copts, seed)
            baseline = simulate(dprog, cfg, dataflow=dataflow, options=mopts,
                                energy_table=table, variant_options=variant)
            if dprog is prog:   # a dense point is its own baseline: simulate it once
                same = dataclasses.replace(baseline, per_layer=[dict(r) for r in
                                                                baseline.per_layer])
            empty = np.zeros(0, np.int64)     # the cache keeps totals and layers only
            baseline.stats = dataclasses.replace(baseline.stats, issue=empty, end=empty,
                                                 extra=empty, blocker=empty)
            _BASELINES[bkey] = (workload, baseline)
            while len(_BASELINES) > _CACHE_BASELINES:
                _BASELINES.popitem(last=False)
    if same is not None:
        res = same
        apply_baseline(res, baseline)
    else:
        res = simulate(prog, cfg, dataflow=dataflow, options=mopts, energy_table=table,
                       baseline=baseline, variant_options=variant)
    return _point_row(workload, sparsity, train, batch, res, prog.mode_notes(),
                      bool(opts.get("layers")), time.perf_counter() - t0)


def _point_setup(options: dict | None, config: AccelConfig | str, dataflows: list[str]
                 ) -> tuple[dict, AccelConfig, ModelOptions, dict, int, Any, dict]:
    """Checked options of :func:`run_point` / :func:`run_points`: ``(options, config,
    model options, compile options, seed, energy table, variant options)``."""
    check_point_options(options)
    opts = dict(options or {})
    cfg = resolve_config(config)
    for dataflow in dataflows:
        if dataflow not in DATAFLOWS:
            raise SimError(f"dataflow={dataflow!r} is invalid; allowed: "
                           f"{', '.join(DATAFLOWS)}")
    mopts = ModelOptions.from_dict(opts.get("model"), "options.model")
    return (opts, cfg, mopts, dict(opts.get("compile") or {}), int(opts.get("seed", 0)),
            opts.get("energy_table"), dict(opts.get("variant") or {}))


def _point_row(workload: Any, sparsity: str, train: bool, batch: int, res: SimResult,
               mode_notes: list[str], layers: bool, seconds: float) -> dict[str, Any]:
    """:func:`run_point`'s flat dict of a simulated point."""
    out: dict[str, Any] = {"workload": workload if isinstance(workload, str)
                           else getattr(workload, "name", "workload"),
                           "sparsity": sparsity, "train": bool(train), "batch": batch}
    out.update(res.summary())
    # why layers run another mode than the sparsity suggests (e.g. 3:8 dense on n=2)
    out["mode_notes"] = "; ".join(mode_notes)
    if train:
        for k, v in res.phase_cycles().items():
            out[f"cycles_{k}"] = v
    if layers:
        out["layers"] = [dict(r) for r in res.per_layer]
    out["runtime_s"] = round(seconds, 4)
    return out


def _simulate_group(workload: Any, cfg: AccelConfig, sparsity: str, dfs: list[str],
                    train: bool, batch: int, seq: int | None, copts: dict, seed: int,
                    mopts: ModelOptions, table: Any, variant: dict
                    ) -> list[tuple[str, str, SimResult, list[str], float]]:
    """Compile one sparsity (once) and simulate it with each of the dataflows ``dfs``,
    without a baseline: ``(sparsity, dataflow, result, mode notes, seconds)``."""
    out = []
    for df in dfs:
        t0 = time.perf_counter()
        prog = _compile_cached(workload, cfg, sparsity, train, batch, seq, copts, seed)
        res = simulate(prog, cfg, dataflow=df, options=mopts, energy_table=table,
                       variant_options=variant)
        res.stats = None        # per-operation arrays: not needed, costly to send back
        out.append((sparsity, df, res, prog.mode_notes(), time.perf_counter() - t0))
    return out


def run_points(workload: Any, config: AccelConfig | str, points: list[tuple[str, str]], *,
               train: bool = False, batch: int = 1, seq: int | None = None,
               options: dict | None = None, jobs: int | None = None,
               done: Callable[[int], None] | None = None) -> list[dict]:
    """:func:`run_point` of every ``(sparsity, dataflow)`` of ``points`` (the same dicts,
    in that order; ``runtime_s`` is the point's own compile and simulation), computed by
    :func:`simulate_points`."""
    opts = dict(options or {})
    got = simulate_points(workload, config, points, train=train, batch=batch, seq=seq,
                          options=options, jobs=jobs, done=done)
    return [_point_row(workload, sp, train, batch, *got[sp, df][:2],
                       bool(opts.get("layers")), got[sp, df][2]) for sp, df in points]


def simulate_points(workload: Any, config: AccelConfig | str, points: list[tuple[str, str]],
                    *, train: bool = False, batch: int = 1, seq: int | None = None,
                    options: dict | None = None, jobs: int | None = None,
                    done: Callable[[int], None] | None = None
                    ) -> dict[tuple[str, str], tuple[SimResult, list[str], float]]:
    """Compile and simulate every ``(sparsity, dataflow)`` of ``points`` (options as
    :func:`run_point`'s) in ``jobs`` forked worker processes: each compiles one sparsity
    once and simulates it with each of its dataflows; the dense runs (one per dataflow,
    computed once) are every point's baseline. Returns ``{point: (result, the program's
    mode notes, seconds)}`` (results without their per-operation ``stats``). ``jobs``:
    default :func:`sparsa.compiler.tiling.timing_jobs` (2 on this 2-core machine in a
    top-level process, else 1: then one after the other in this process). ``done(k)``:
    called as ``k`` more points are finished (a progress bar)."""
    from .workers import imap_forked
    opts, cfg, mopts, copts, seed, table, variant = _point_setup(
        options, config, [df for _, df in points])
    groups: dict[str, list[str]] = {}
    for sp, df in points:
        groups.setdefault(sp, [])
        if df not in groups[sp]:
            groups[sp].append(df)
    with_base = opts.get("baseline", True)
    if with_base:    # the baselines: the dense run of every dataflow
        dense = groups.setdefault("dense", [])
        dense.extend(df for _, df in points if df not in dense)
    order = sorted(groups, key=lambda sp: sp != "dense")    # dense (the longest) first
    results: dict[tuple[str, str], tuple] = {}
    wanted = set(points)
    for got in imap_forked(_simulate_group, [
            (workload, cfg, sp, groups[sp], train, batch, seq, copts, seed, mopts, table,
             variant) for sp in order], jobs=jobs):
        for sp, df, res, notes, secs in got:
            results[sp, df] = (res, notes, secs)
        if done is not None:
            done(sum((sp, df) in wanted for sp, df, *_ in got))
    if with_base:
        for sp, df in points:
            apply_baseline(results[sp, df][0], results["dense", df][0])
    return {p: results[p] for p in points}


def load_program(path: str) -> Any:
    """A compiled program from ``sparsa compile``'s output directory, a ``.sprg`` binary or
    a program ``.json``."""
    import os

    from sparsa.compiler.program import Program
    if os.path.isdir(path):
        cand = os.path.join(path, "program.sprg")
        if os.path.exists(cand):
            return Program.load(cand)
        cand = os.path.join(path, "program.json")
        if os.path.exists(cand):        # the readable form alone (e.g. a hand-edited copy)
            return Program.load_json(cand)
        raise SimError(f"{path}: no program.sprg or program.json in this directory (write "
                       f"one with 'sparsa compile WORKLOAD -o {path}')")
    if path.endswith(".json"):
        return Program.load_json(path)
    return Program.load(path)

