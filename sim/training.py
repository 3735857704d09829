"""Sparse training steps on the model: per-phase figures, SAT-style ablation, mask refresh.

:func:`train_step` compiles one training step (forward, backward-data and weight-gradient
GEMM of every weight layer, :mod:`sparsa.compiler`), simulates it and the same step compiled
dense on the same core (:func:`sparsa.sim.api.simulate`), and reports cycles, utilisation,
DRAM traffic and energy per phase and per layer, the speed-up over dense training, the
host (non-GEMM) work, and the cost of refreshing the masks amortised over a refresh
interval.

Host work
---------
Layers the core does not run (im2col relayout, pooling, norms, ReLU derivatives, the
on-the-fly pruning of ``W^T`` when backward weights are not pre-generated...) are counted in
elements; they are turned into cycles at ``host_elems_per_cycle`` elements per core cycle
(default 16: one 128-bit int8 SIMD lane at the core's clock). The speed-up is quoted for the
core (``speedup``, what the SAT paper counts) and for the step including host work
(``speedup_with_host``).

Mask refresh (:func:`refresh_cost`)
-----------------------------------
Sparse training recomputes its masks every ``K`` steps. One refresh of a weight
``W[K, Q]`` (``E = K*Q`` elements, forward window ``m``) costs, in simple operations:

* ``forward-only`` (magnitude re-prune): ``E * (1 + log2 m)`` (magnitudes, top-n per window);
* ``transposable``: ``E * (1 + 2 log2 m)`` with the greedy solver (sort every ``m x m``
  block), ``E * (1 + m log2 m)`` with the exact min-cost-flow solver (``O(m^3 log m)`` per
  block);
* ``bimask``: the forward mask, then per permutation candidate a permuted top-n along the
  other axis and a count of surviving weights: ``E * (1 + log2 m) + C * E * (2 + log2 m)``
  (``C`` candidates, default 100).

On the ``host`` a refresh takes ``E`` times a per-element CPU time
(:data:`HOST_NS_PER_ELEMENT`, calibrated against sparsa's own generators on the 2-core
reference machine: forward-only 50 ns, transposable 700 ns exact / 100 ns greedy, Bi-Mask
45 ns + 0.75 ns per candidate; ``host_ops_per_s``, when given, replaces it by the op count
above at that rate), and the compressed forward (and backward) tiles are then written into
the core's DRAM at its write bandwidth. On the ``array`` the core reads the dense weights
from DRAM, the ``rows x cols`` PEs perform one operation each per cycle, and the compressed
tiles are written back: ``max(DRAM beats, ops / (rows*cols))`` cycles. Both are
deterministic models; with ``measure=True`` the host cost is instead the CPU time of
sparsa's generators measured now (:func:`measure_host_seconds`; varies run to run), and
``benchmarks/bench_train.py`` compares the two. The amortised step is
``step + refresh / K``; dense training refreshes nothing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sparsa.compiler.options import CompileOptions
from sparsa.hw.config import AccelConfig, resolve_config

from .api import HOST_ELEMS_PER_CYCLE, apply_baseline, host_elements
from .errors import SimError
from .workers import map_forked, start_forked

__all__ = ["METHODS", "REFRESH_ON", "SAT_OPTIMISATIONS", "RefreshCost", "train_plan",
           "refresh_cost", "measure_host_seconds", "host_elements", "train_step", "ablation"]

METHODS = ("bimask", "transposable", "forward-only", "dense")
REFRESH_ON = ("host", "array")
#: the SAT accelerator's dataflow optimisations, as CompileOptions fields
SAT_OPTIMISATIONS = ("interleave", "pregenerate_bwd", "reuse_schedule")
HOST_OPS_PER_S = 2e9
#: host CPU nanoseconds per weight element of one refresh, measured (``time.process_time``)
#: on sparsa's generators on the 2-core reference machine: ``method -> (ns, ns per
#: Bi-Mask candidate)``; transposable by solver
HOST_NS_PER_ELEMENT = {"forward-only": (50.0, 0.0), "transposable-exact": (700.0, 0.0),
                       "transposable-greedy": (100.0, 0.0), "bimask": (45.0, 0.75)}


def _nm(text: str, what: str) -> tuple[int, int]:
    try:
        n, m = (int(x) for x in str(text).split(":"))
    except ValueError:
        raise SimError(f"{what}={text!r} is invalid: expected N:M, e.g. 2:8") from None
    if not (1 <= n <= m <= 32 and m & (m - 1) == 0):
        raise SimError(f"{what}={text!r} is invalid: need 1 <= N <= M <= 32, M a power of two")
    return n, m


def train_plan(fwd: str, bwd: str, method: str, candidates: int | None = None) -> str:
    """The sparsity plan of a training step: ``"dense"`` or a bidirectional spec
    (``fwd=2:8,bwd=2:8,method=bimask``)."""
    if method not in METHODS:
        raise SimError(f"method={method!r} is invalid; allowed: {', '.join(METHODS)}")
    if candidates is not None and method != "bimask":
        # as the plan parser says of candidates= (it was silently dropped here)
        raise SimError(f"--candidates {candidates} applies only to --method bimask (the "
                       f"permutation search), not {method}")
    if method == "dense":
        return "dense"
    _nm(fwd, "--fwd")
    _nm(bwd, "--bwd")
    plan = f"fwd={fwd},bwd={bwd},method={method}"
    if candidates is not None:
        plan += f",candidates={candidates}"
    return plan


@dataclass
class RefreshCost:
    """Cost of one mask refresh of every weight layer (see the module docstring)."""

    method: str
    where: str
    cycles: int
    ops: int
    dram_beats: int
    per_layer: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _refresh_ops(method: str, e: int, m: int, candidates: int, solver: str) -> int:
    lg = math.log2(max(2, m))
    if method == "forward-only":
        return int(e * (1 + lg))
    if method == "transposable":
        return int(e * (1 + (2 * lg if solver == "greedy" else m * lg)))
    if method == "bimask":
        return int(e * (1 + lg) + candidates * e * (2 + lg))
    return 0


def refresh_cost(layers: list[tuple[str, int, int]], config: AccelConfig, method: str,
                 fwd: str, bwd: str, *, where: str = "host", candidates: int = 100,
                 solver: str = "exact", host_ops_per_s: float | None = None,
                 measure: bool = False) -> RefreshCost:
    """Cycles (at the core's clock) of one refresh of the masks of ``layers``.

    Parameters
    ----------
    layers : list of (name, K, Q)
        Weight layers (``K`` the forward reduction axis, groups folded into ``Q``).
    config : AccelConfig
    method : {"bimask", "transposable", "forward-only", "dense"}
    fwd, bwd : str
        ``N:M`` of the forward and backward masks.
    where : {"host", "array"}
    candidates : int
        Bi-Mask permutation candidates.
    solver : {"exact", "greedy"}
        Transposable solver.
    host_ops_per_s : float, optional
        Host throughput in simple operations per second: the op-count model instead of the
        calibrated per-element times (:data:`HOST_NS_PER_ELEMENT`).
    measure : bool
        Host only: time sparsa's real generators instead of the model
        (:func:`measure_host_seconds`; not deterministic, cached per shape).
    """
    if where not in REFRESH_ON:
        raise SimError(f"refresh-on={where!r} is invalid; allowed: {', '.join(REFRESH_ON)}")
    if method not in METHODS:
        raise SimError(f"method={method!r} is invalid; allowed: {', '.join(METHODS)}")
    if method == "dense":
        return RefreshCost(method, where, 0, 0, 0, [])
    nf, mf = _nm(fwd, "--fwd")
    nb, mb = _nm(bwd, "--bwd")
    cfg = config
    hz = cfg.clock_mhz * 1e6
    wbeats = cfg.beats(cfg.wgt_entry_bytes)
    rows = []
    tot_c = tot_o = tot_b = 0
    for name, k, q in layers:
        e = k * q
        ops = _refresh_ops(method, e, mf, candidates, solver)
        # compressed tiles written: forward (n/m of K) and, unless forward-only, backward
        out_entries = math.ceil(k * nf / mf / cfg.n) * math.ceil(q / cfg.cols) * cfg.n
        if method != "forward-only":
            out_entries += math.ceil(q * nb / mb / cfg.n) * math.ceil(k / cfg.cols) * cfg.n
        write_beats = out_entries * wbeats
        if where == "host":
            beats = write_beats
            if measure:
                sec = measure_host_seconds(k, q, method, fwd, bwd, candidates)
            elif host_ops_per_s:
                sec = ops / host_ops_per_s
            else:
                base, per_cand = HOST_NS_PER_ELEMENT[
                    method if method != "transposable" else f"transposable-{solver}"]
                sec = e * (base + per_cand * (candidates if method == "bimask" else 0)) * 1e-9
            cyc = math.ceil(sec * hz) + beats
        else:
            beats = cfg.beats(e) + write_beats
            cyc = max(beats, math.ceil(ops / (cfg.rows * cfg.cols)))
        rows.append({"layer": name, "elements": e, "ops": ops, "dram_beats": beats,
                     "cycles": cyc})
        tot_c += cyc
        tot_o += ops
        tot_b += beats
    return RefreshCost(method, where, tot_c, tot_o, tot_b, rows)


_MEASURED: dict[tuple, float] = {}
MEASURE_COLS = 1024
MEASURE_ELEMENTS = 2_500_000


def measure_host_seconds(k: int, q: int, method: str, fwd: str, bwd: str,
                         candidates: int = 100, seed: int = 0) -> float:
    """Measured CPU seconds of sparsa's own mask generators
    (:func:`sparsa.workloads.sparsity.make_masks`) for one refresh of a ``K x Q`` weight:
    timed on a seeded Gaussian sub-matrix of at most ``MEASURE_COLS`` columns and
    ``MEASURE_ELEMENTS`` elements and scaled by the element count (every generator's work
    is linear in the elements); cached per shape."""
    import time

    import numpy as np
    from sparsa.workloads.sparsity import make_masks
    if method == "dense":
        return 0.0
    nf, mf = _nm(fwd, "--fwd")
    nb, mb = _nm(bwd, "--bwd")
    mm = max(mf, mb)
    qs = max(mm, min(q, MEASURE_COLS) // mm * mm)
    ks = max(mm, min(k, MEASURE_ELEMENTS // qs) // mm * mm)
    spec = f"{fwd}" if method == "forward-only" else train_plan(
        fwd, bwd, method, candidates if method == "bimask" else None)
    key = (ks, qs, spec)
    per_elem = _MEASURED.get(key)
    if per_elem is None:
        w = np.random.default_rng(seed).standard_normal((ks, qs))
        t0 = time.process_time()     # CPU time: robust to other jobs on the machine
        make_masks(w, spec, seed=seed)
        per_elem = (time.process_time() - t0) / (ks * qs)
        _MEASURED[key] = per_elem
    return per_elem * k * q


def _weight_layers(program: Any) -> list[tuple[str, int, int]]:
    out = []
    for ly in program.layers:
        if ly.kind == "fwd" and ly.meta.get("stationary", "weight") == "weight":
            out.append((str(ly.meta.get("source", ly.name)), int(ly.meta["K"]),
                        int(ly.meta["Q"]) * int(ly.meta.get("groups", 1))))
    return out


def _compile(workload: Any, cfg: AccelConfig, plan: str, opt: CompileOptions, batch: int,
             seq: int | None, seed: int) -> Any:
    from sparsa.compiler import compile_workload
    return compile_workload(workload, cfg, sparsity=plan, train=True, dataflow=opt.dataflow,
                            options=opt, with_data=False, seed=seed, batch=batch, seq=seq)


def _dense_step(workload: Any, cfg: AccelConfig, opt: CompileOptions, batch: int,
                seq: int | None, seed: int, energy_table: str | None
                ) -> tuple[Any, dict[str, int]]:
    """The dense training step of :func:`train_step`: its simulation (without the
    per-operation ``stats``) and its host elements."""
    from .api import simulate
    dprog = _compile(workload, cfg, "dense", opt, batch, seq, seed)
    dres = simulate(dprog, energy_table=energy_table)
    dres.stats = None
    return dres, host_elements(dprog)


def _ablation_row(workload: Any, cfg: AccelConfig, plan: str, opt: CompileOptions,
                  batch: int, seq: int | None, seed: int, host_epc: float) -> dict[str, Any]:
    """One setting of :func:`ablation`: core, host and per-phase cycles."""
    from .api import simulate
    prog = _compile(workload, cfg, plan, opt, batch, seq, seed)
    res = simulate(prog)
    hc = math.ceil(sum(host_elements(prog).values()) / host_epc)
    ph = res.phase_cycles()
    return {"cycles": res.cycles, "host_cycles": hc, "total": res.cycles + hc,
            **{f"cycles_{k}": v for k, v in ph.items()}}


def _phase_rows(res: Any, host: dict[str, int], host_epc: float) -> dict[str, dict[str, Any]]:
    peak = res.peak_macs_per_cycle
    ph: dict[str, dict[str, Any]] = {}
    for r in res.per_layer:
        k = r["kind"] if r["kind"] in ("fwd", "bwd_data", "wgrad") else "other"
        d = ph.setdefault(k, {"cycles": 0, "dense_macs": 0, "macs": 0, "dram_bytes": 0,
                              "energy_pj": 0.0})
        d["cycles"] += r["cycles"]
        d["dense_macs"] += r["dense_macs"]
        d["macs"] += r["macs"]
        d["dram_bytes"] += r["dram_read_bytes"] + r["dram_write_bytes"]
        d["energy_pj"] += r["energy_pj"]
    for d in ph.values():
        d["utilisation"] = round(d["dense_macs"] / max(1.0, peak * d["cycles"]), 4)
        d["energy_pj"] = round(d["energy_pj"], 1)
    helems = sum(host.values())
    ph["host"] = {"cycles": math.ceil(helems / host_epc), "elements": helems,
                  "dense_macs": 0, "macs": 0, "dram_bytes": 0, "energy_pj": 0.0,
                  "utilisation": 0.0}
    return ph


def train_step(workload: Any, config: AccelConfig | str | None = None, *, fwd: str = "2:8",
               bwd: str = "2:8", method: str = "bimask", refresh_every: int | None = None,
               refresh_on: str = "host", options: CompileOptions | None = None,
               batch: int = 1, seq: int | None = None, seed: int = 0,
               candidates: int | None = None,
               host_elems_per_cycle: float = HOST_ELEMS_PER_CYCLE,
               host_ops_per_s: float | None = None, measure_refresh: bool = False,
               per_layer: bool = True, energy_table: str | None = None) -> dict[str, Any]:
    """Compile and simulate one training step and its dense baseline on the same core.

    Returns a JSON-able dict: ``workload, config, plan, cycles, dense_cycles, speedup``
    (core cycles), ``host_cycles, speedup_with_host``, ``phases`` / ``dense_phases``
    (``fwd, bwd_data, wgrad, host``: cycles, utilisation, DRAM bytes, energy),
    ``utilisation, dram_bytes, energy_pj`` (and dense ones), ``refresh`` (cost per refresh,
    ``every``, amortised cycles and speed-up), ``layers`` (per-layer rows) and
    ``energy_table`` / ``energy_table_values`` (the table used: ``energy_table``, a preset
    name or YAML file, else the config's).
    """
    from .api import simulate
    cfg = resolve_config(config)
    opt = options or CompileOptions()
    plan = train_plan(fwd, bwd, method, candidates)
    if refresh_every is not None and refresh_every < 1:
        raise SimError(f"--refresh-every={refresh_every} is invalid: allowed an integer >= 1")
    # the dense baseline compiles and simulates in a forked worker beside the sparse step
    dense_args = (workload, cfg, opt, batch, seq, seed, energy_table)
    pending = start_forked(_dense_step, *dense_args) if plan != "dense" else None
    try:
        prog = _compile(workload, cfg, plan, opt, batch, seq, seed)
        res = simulate(prog, energy_table=energy_table)
        if plan == "dense":
            dres, dhost = res, host_elements(prog)
        else:
            dres, dhost = pending.get() if pending is not None else _dense_step(*dense_args)
            apply_baseline(res, dres)
    finally:
        if pending is not None:
            pending.close()
    host = host_elements(prog)
    phases = _phase_rows(res, host, host_elems_per_cycle)
    dphases = _phase_rows(dres, dhost, host_elems_per_cycle)
    hc, dhc = phases["host"]["cycles"], dphases["host"]["cycles"]
    wl_name = workload if isinstance(workload, str) else getattr(workload, "name", "workload")
    out: dict[str, Any] = {
        "workload": wl_name, "config": cfg.name, "config_key": cfg.key, "plan": plan,
        "method": method, "fwd": fwd, "bwd": bwd, "options": opt.to_dict(),
        "cycles": res.cycles, "dense_cycles": dres.cycles,
        "speedup": round(dres.cycles / max(1, res.cycles), 4),
        "host_cycles": hc, "dense_host_cycles": dhc,
        "speedup_with_host": round((dres.cycles + dhc) / max(1, res.cycles + hc), 4),
        "utilisation": round(res.utilisation, 4),
        "dense_utilisation": round(dres.utilisation, 4),
        "dram_bytes": res.totals["dram_read"] + res.totals["dram_write"],
        "dense_dram_bytes": dres.totals["dram_read"] + dres.totals["dram_write"],
        "energy_pj": round(res.energy_pj, 1), "dense_energy_pj": round(dres.energy_pj, 1),
        "phases": phases, "dense_phases": dphases,
        "ideal_speedup": None,
        "energy_table": res.energy_table.name,
        "energy_table_values": res.energy_table.to_dict(),
        "mode_notes": prog.mode_notes(),
    }
    # the bound of the SAT paper: fwd and bwd_data at density d, wgrad dense
    if method != "dense":
        nf, mf = _nm(fwd, "--fwd")
        nb, mb = _nm(bwd, "--bwd")
        from sparsa.compiler.wformat import spec_passes

        def eff(n: int, m: int) -> float:
            # the array's rate for n:m: n*s/w at the widest window w it fits (s passes when
            # it is denser than the array's n), else dense
            w, passes = spec_passes(cfg, n, m)
            return max(n / m, cfg.n * passes / w) if w else 1.0
        eff_f = eff(nf, mf)
        eff_b = eff(nb, mb) if method != "forward-only" else 1.0
        out["ideal_speedup"] = round(3 / (1 + eff_f + eff_b), 4)
    # mask refresh
    rc = refresh_cost(_weight_layers(prog), cfg, method, fwd, bwd, where=refresh_on,
                      candidates=candidates or 100, host_ops_per_s=host_ops_per_s,
                      measure=measure_refresh and refresh_on == "host")
    every = refresh_every
    step = res.cycles + (rc.cycles / every if every else 0.0)
    out["refresh"] = {"on": refresh_on, "measured": measure_refresh and refresh_on == "host",
                      "cycles_per_refresh": rc.cycles, "ops": rc.ops,
                      "dram_beats": rc.dram_beats, "every": every,
                      "amortised_cycles": round(step, 1),
                      "amortised_speedup": round(dres.cycles / max(1.0, step), 4)}
    if per_layer:
        dl = {r["layer"]: r for r in dres.per_layer}
        out["layers"] = [{"layer": r["layer"], "phase": r["kind"], "mode": r["mode"],
                          "cycles": r["cycles"],
                          "dense_cycles": dl.get(r["layer"], {}).get("cycles"),
                          "utilisation": r["utilisation"],
                          "dram_bytes": r["dram_read_bytes"] + r["dram_write_bytes"],
                          "energy_pj": r["energy_pj"], "limiting": r["limiting"]}
                         for r in res.per_layer]
    return out


def ablation(workload: Any, config: AccelConfig | str | None = None, *, fwd: str = "2:8",
             bwd: str = "2:8", method: str = "bimask", options: CompileOptions | None = None,
             batch: int = 1, seq: int | None = None, seed: int = 0,
             host_elems_per_cycle: float = HOST_ELEMS_PER_CYCLE) -> list[dict[str, Any]]:
    """Cycles with every SAT-style optimisation on, then with each one switched off.

    Rows: ``setting`` (``all on`` / ``no <option>``), ``cycles``, ``host_cycles``,
    ``total`` (core + host), ``cost`` (``total`` over the all-on total) and the per-phase
    core cycles.
    """
    cfg = resolve_config(config)
    base = options or CompileOptions()
    plan = train_plan(fwd, bwd, method)
    settings = [("all on", base)] + [
        (f"no {o}", dataclasses.replace(base, **{o: False})) for o in SAT_OPTIMISATIONS]
    # the settings compile and simulate in forked workers, two at a time on two cores
    rows = [{"setting": name, **r} for (name, _), r in zip(settings, map_forked(
        _ablation_row, [(workload, cfg, plan, opt, batch, seq, seed, host_elems_per_cycle)
                        for _, opt in settings]), strict=True)]
    ref = rows[0]["total"]
    for r in rows:
        r["cost"] = round(r["total"] / max(1, ref), 4)
    return rows
