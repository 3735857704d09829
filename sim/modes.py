"""Dense, sparse compute or load-as-sparse: the three weight modes side by side, and the
cost-based per-layer choice (``--sparse-mode auto`` with the model's cost).

:func:`compare_modes` compiles a workload three times — every GEMM in ``dense`` mode, in
the compiler's ``auto`` mode (sparse compute where the pattern fits the array's ``n:m``),
and in ``load-sparse`` mode (weights compressed in DRAM, expanded on chip, dense compute:
:mod:`sparsa.compiler.loadsparse`) — simulates each, and picks per layer the mode with the
fewest cycles (ties: fewer DRAM bytes). The mixed program is then compiled with those
per-layer choices (``CompileOptions.layer_modes``) and simulated too, so the figures of the
choice are measured, not summed. The compiler cannot do this itself: it must not import the
model (``compiler/`` sits below ``sim/``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sparsa.compiler.options import CompileOptions
from sparsa.hw.config import AccelConfig, resolve_config

__all__ = ["MODES", "compare_modes", "choose_modes"]

#: variant name -> CompileOptions.sparse_mode
MODES = {"dense": "dense", "sparse": "auto", "load-sparse": "load-sparse"}


def _run(workload: Any, cfg: AccelConfig, sparsity: str, opt: CompileOptions, train: bool,
         batch: int, seq: int | None, seed: int) -> tuple[Any, Any]:
    from sparsa.compiler import compile_workload

    from .api import simulate
    prog = compile_workload(workload, cfg, sparsity=sparsity, train=train,
                            dataflow=opt.dataflow, options=opt, with_data=False, seed=seed,
                            batch=batch, seq=seq)
    return prog, simulate(prog)


def _layer_rows(res: Any) -> dict[str, dict[str, Any]]:
    return {r["layer"]: {"cycles": r["cycles"], "mode": r["mode"],
                         "dram_bytes": r["dram_read_bytes"] + r["dram_write_bytes"],
                         "limiting": r["limiting"]} for r in res.per_layer}


def _totals(res: Any) -> dict[str, Any]:
    return {"cycles": res.cycles,
            "dram_bytes": res.totals["dram_read"] + res.totals["dram_write"],
            "dram_read_bytes": res.totals["dram_read"],
            "energy_pj": round(res.energy_pj, 1), "limiting": res.limiting}


def compare_modes(workload: Any, config: AccelConfig | str | None, sparsity: str, *,
                  options: CompileOptions | None = None, train: bool = False,
                  batch: int = 1, seq: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The three modes side by side and the per-layer best (see the module docstring).

    Returns
    -------
    dict
        ``totals``: ``{variant: {cycles, dram_bytes, dram_read_bytes, energy_pj,
        limiting}}`` for ``dense``, ``sparse``, ``load-sparse`` and ``auto`` (the per-layer
        choice, compiled and simulated); ``layers``: rows with each variant's cycles and
        DRAM bytes and the ``chosen`` mode; ``layer_modes``: the choice as
        ``CompileOptions.layer_modes``.
    """
    cfg = resolve_config(config)
    base = options or CompileOptions()
    per: dict[str, dict[str, dict[str, Any]]] = {}
    totals: dict[str, dict[str, Any]] = {}
    for name, mode in MODES.items():
        _, res = _run(workload, cfg, sparsity, dataclasses.replace(base, sparse_mode=mode),
                      train, batch, seq, seed)
        per[name] = _layer_rows(res)
        totals[name] = _totals(res)
    rows = []
    choice: list[tuple[str, str]] = []
    for layer in per["dense"]:
        cand = {v: per[v][layer] for v in MODES if layer in per[v]}
        best = min(cand, key=lambda v: (cand[v]["cycles"], cand[v]["dram_bytes"]))
        # the mode the layer really ran in (a pattern that does not fit, or weights that
        # do not compress, fall back to dense in the "sparse" / "load-sparse" variants)
        mode = cand[best]["mode"]
        mode = "dense" if mode not in ("sparse", "load-sparse") else mode
        choice.append((layer, mode))
        rows.append({"layer": layer, **{f"{v}_cycles": c["cycles"] for v, c in cand.items()},
                     **{f"{v}_dram_bytes": c["dram_bytes"] for v, c in cand.items()},
                     "chosen": mode})
    _, res = _run(workload, cfg, sparsity, dataclasses.replace(base, sparse_mode="auto",
                                                               layer_modes=tuple(choice)),
                  train, batch, seq, seed)
    totals["auto"] = _totals(res)
    counts: dict[str, int] = {}
    for _, m in choice:
        counts[m] = counts.get(m, 0) + 1
    wl = workload if isinstance(workload, str) else getattr(workload, "name", "workload")
    return {"workload": wl, "config": cfg.name, "sparsity": sparsity, "totals": totals,
            "layers": rows, "layer_modes": [list(c) for c in choice], "chosen": counts}


def choose_modes(workload: Any, config: AccelConfig | str | None, sparsity: str,
                 **kw: Any) -> CompileOptions:
    """``CompileOptions`` whose ``layer_modes`` hold the per-layer cheapest mode."""
    rep = compare_modes(workload, config, sparsity, **kw)
    base = kw.get("options") or CompileOptions()
    return dataclasses.replace(base, sparse_mode="auto",
                               layer_modes=tuple(tuple(x) for x in rep["layer_modes"]))
