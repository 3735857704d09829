"""Where the speed-up stops following ``m/n``: a table of limiting factors per sparsity.

For each sparsity pattern, :func:`limit_rows` compiles and simulates the workload and its
dense baseline on the same core and reports

* ``ideal``: the speed-up the array could give this pattern — ``m/n`` of the pattern,
  capped by the array's own ``m/n`` (a 1:32 pattern on an ``n1m16`` array runs at the
  1:16 rate) or by the widest of the array's windows it fits (1:8 on ``n1m16`` runs at
  window 8, 8x; 2:4 on ``n2m8`` at window 4, 2x); a pattern denser than the array's ``n``
  runs in ``s`` passes at window ``w`` at ``w/(n*s)`` (4:8 on ``n2m8``: 2x; 2:4 on
  ``n1m16``: 2x, see :mod:`sparsa.compiler.wformat`), and at 1 when no split beats dense
  mode; for a training step, the three GEMMs of a layer (equal MACs) at the forward and
  backward-data rates and a dense weight gradient (2x for Bi-Mask 2:8 both ways, 4/3x for
  a forward-only 2:8);
* ``speedup``: the measured one (dense cycles / cycles) and ``of_ideal`` = speedup / ideal;
* the share of the array's time spent on each limit of :func:`sparsa.sim.api.simulate`:
  ``compute`` (streaming rows), ``fill-drain`` (pipeline fill/drain per pass and waiting for
  weight preloads), ``DRAM`` (waiting for loads/stores), ``window`` (activation-window
  links of the model-only dataflows), and the dominant non-compute limit, which is what
  stops the speed-up from following ``m/n``;
* ``mode_notes``: the program's :meth:`~sparsa.compiler.program.Program.mode_notes` (which
  layers run another mode than the pattern suggests, and why).

Sparse passes reduce over ``rows*m/n`` values of K in the same cycles a dense pass reduces
over ``rows``, so compute time shrinks by ``m/n`` while the fill/drain of every pass, the
weight preloads and the activation bytes per output row do not: the higher the sparsity,
the larger their share.
"""

from __future__ import annotations

from typing import Any

from sparsa.hw.config import AccelConfig, resolve_config

__all__ = ["LIMIT_NAMES", "pattern_ratio", "limit_row", "limit_rows"]

LIMIT_NAMES = {"compute": "compute", "fill_drain": "fill-drain", "dram_bw": "DRAM",
               "window_bw": "window"}


def pattern_ratio(sparsity: str, config: AccelConfig | None = None, *,
                  train: bool = False) -> float:
    """``m/n`` of the plan's (forward) N:M pattern (block density folded in); 1 for dense.
    With ``config``: the rate the array can give it — capped at ``w/n`` for the widest of
    the array's windows ``w`` the pattern fits (``m/n`` when it fits ``n:m``; 2 for 2:4 on
    an ``m = 8`` array), at ``w/(n*s)`` when it runs in ``s`` passes, and 1 when it runs in
    dense mode. Unstructured sparsity (``block1x1``) skips no whole tile: its rate is capped
    at the array's ``m/n``. ``train``: the ideal of a training step, whose three GEMMs per
    layer have equal MACs: ``3 / (1/r_fwd + 1/r_bwd + 1)`` with the forward and
    backward-data rates (the backward one 1 unless the plan is a Bi-Mask or transposable
    bidirectional spec) and a dense weight gradient (2x for 2:8 both ways, as
    ``sparsa train-step`` reports)."""
    from sparsa.workloads.sparsity import SparsityPlan
    plan = SparsityPlan.parse(sparsity)
    specs = [s for _, s in plan.rules]
    if not specs:
        return 1.0
    if not train:
        return _spec_ratio(specs[-1].forward, config)
    rf = _spec_ratio(specs[-1].forward, config)
    rb = _spec_ratio(specs[-1].backward, config)
    return 3 / (1 / rf + 1 / rb + 1)


def _spec_ratio(s: Any, config: AccelConfig | None) -> float:
    """:func:`pattern_ratio` of one GEMM's spec."""
    from sparsa.compiler.wformat import spec_passes
    r = 1.0
    if s.n is not None:
        r = s.m / s.n
        if config is not None:
            w, passes = spec_passes(config, s.n, s.m)
            if not w:
                return 1.0
            r = min(r, w / (config.n * passes))
    if s.block is not None:
        r /= s.block_density
        if s.block == (1, 1) and config is not None:
            r = min(r, config.m / config.n)
    return r


def limit_row(sparsity: str, config: AccelConfig, *, cycles: int, dense_cycles: int,
              limits: dict[str, int], train: bool = False) -> dict[str, Any]:
    """The limiting-factor figures of one run of ``sparsity`` on ``config`` (see the module
    docstring): ``ideal``, ``speedup``, ``of_ideal``, ``share_<limit>`` (of the array's
    time) and ``stops_m_over_n``, from its cycles, its dense baseline's and its limit cycles
    (:attr:`sparsa.sim.api.SimResult.limits`); ``train``: of a training step."""
    tot = max(1, sum(limits.values()))
    ideal = pattern_ratio(sparsity, config, train=train)
    sp_up = dense_cycles / max(1, cycles)
    non_compute = {k: v for k, v in limits.items() if k != "compute"}
    stop = max(non_compute, key=lambda k: non_compute[k])
    return {"speedup": round(sp_up, 4), "ideal": round(ideal, 4),
            "of_ideal": round(sp_up / ideal, 4),
            **{f"share_{LIMIT_NAMES[k]}": round(v / tot, 4) for k, v in limits.items()},
            "stops_m_over_n": LIMIT_NAMES[stop] if non_compute[stop] > 0 else "-"}


def limit_rows(workload: Any, config: AccelConfig | str | None, sparsities: list[str], *,
               train: bool = False, batch: int = 1, seq: int | None = None,
               seed: int = 0) -> list[dict[str, Any]]:
    """One row per sparsity (see the module docstring); the sparsities compile and simulate
    in worker processes (:func:`sparsa.sim.api.simulate_points`)."""
    from .api import simulate_points
    cfg = resolve_config(config)
    got = simulate_points(workload, cfg, [(sp, "ws") for sp in sparsities], train=train,
                          batch=batch, seq=seq, options={"seed": seed})
    rows = []
    for sp in sparsities:
        res, notes, _ = got[sp, "ws"]
        lim = limit_row(sp, cfg, cycles=res.cycles, dense_cycles=res.dense_cycles,
                        limits=res.limits, train=train)
        rows.append({
            "sparsity": sp, "cycles": res.cycles, "dense_cycles": res.dense_cycles,
            "speedup": lim.pop("speedup"), "ideal": lim.pop("ideal"),
            "of_ideal": lim.pop("of_ideal"), **lim,
            "dram_bytes": res.totals["dram_read"] + res.totals["dram_write"],
            "limiting": res.limiting,
            "mode_notes": [] if sp == "dense" else notes,
        })
    return rows

