"""``sparsa masks``: sparsity masks of weight layers and their quality."""

from __future__ import annotations

import json
from typing import Any

import click
import numpy as np

from sparsa.workloads.sparsity import MAX_CANDIDATES, SparsityError, compare_methods

#: Largest synthetic layer (K x Q weights): 64 MiB as float32, seconds per method.
_MAX_ELEMENTS = 1 << 24

_HEADERS = ("method", "fwd dens", "bwd dens", "|W| kept fwd", "|W| kept bwd",
            "both/fwd", "time s")


def _parse_shape(text: str) -> tuple[int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        k, q = (int(p) for p in parts)
    except ValueError:
        raise SparsityError(
            f"--layer-shape must be K,Q with positive integers, not {text!r}") from None
    if k < 1 or q < 1:
        raise SparsityError(f"--layer-shape must be K,Q with positive integers, not {text!r}")
    if k * q > _MAX_ELEMENTS:
        raise SparsityError(f"--layer-shape {text!r} has {k * q:,} weights; allowed at most "
                            f"{_MAX_ELEMENTS:,} (K x Q)")
    return k, q


def _parse_candidates(text: str) -> list[int]:
    try:
        vals = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise SparsityError(
            f"--candidates must be integers >= 1 separated by commas, not {text!r}") from None
    if not vals or min(vals) < 1:
        raise SparsityError(
            f"--candidates must be integers >= 1 separated by commas, not {text!r}")
    if max(vals) > MAX_CANDIDATES:
        raise SparsityError(f"--candidates {max(vals)} is too many; allowed at most "
                            f"{MAX_CANDIDATES}")
    return vals


def _workload_weight(name: str, layer_name: str) -> np.ndarray:
    """The GEMM weight ``W[K, Q]`` of one layer of a workload."""
    try:
        from sparsa.workloads import load_workload
    except ImportError:
        raise SparsityError(
            "--workload needs sparsa.workloads.load_workload, which is not available; "
            "use --layer-shape K,Q") from None
    layers = list(load_workload(name).layers())
    by_name = {layer.name: layer for layer in layers}
    if layer_name not in by_name:
        names = [layer.name for layer in layers]
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise SparsityError(f"workload {name!r} has no layer {layer_name!r}; layers: {shown}")
    w = np.asarray(by_name[layer_name].gemm_weight())
    if w.ndim != 2:
        raise SparsityError(
            f"layer {layer_name!r} of {name!r} has weights of shape {w.shape}, "
            "not one GEMM weight W[K, Q]; pick a non-grouped layer")
    return w


def _table(rows: list[dict[str, Any]]) -> str:
    body = [(r["method"], f"{r['fwd_density']:.4f}", f"{r['bwd_density']:.4f}",
             f"{r['fwd_magnitude_kept']:.4f}", f"{r['bwd_magnitude_kept']:.4f}",
             f"{r['both_fraction']:.4f}", f"{r['seconds']:.3f}") for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(_HEADERS)]
    lines = ["  ".join(h.ljust(wd) if i == 0 else h.rjust(wd)
                       for i, (h, wd) in enumerate(zip(_HEADERS, widths, strict=True)))]
    for b in body:
        lines.append("  ".join(c.ljust(wd) if i == 0 else c.rjust(wd)
                               for i, (c, wd) in enumerate(zip(b, widths, strict=True))))
    return "\n".join(lines)


@click.group("masks")
def masks() -> None:
    """Sparsity masks: N:M, block, transposable and Bi-Mask, and their quality."""


@masks.command("compare")
@click.option("--layer-shape", "layer_shape", default=None, metavar="K,Q",
              help="Synthetic seeded Gaussian weights W[K, Q] (default 4608,512).")
@click.option("--workload", default=None, help="Workload name (with --layer).")
@click.option("--layer", "layer_name", default=None, help="Layer name in --workload.")
@click.option("--n", "n", type=int, default=2, show_default=True, help="N of N:M.")
@click.option("--m", "m", type=int, default=8, show_default=True, help="M of N:M.")
@click.option("--candidates", default="1,10,100", show_default=True,
              help="Bi-Mask permutation candidate counts, comma-separated.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the synthetic weights and of Bi-Mask's search.")
@click.option("--no-exact", is_flag=True, help="Skip the exact transposable solver.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare(layer_shape: str | None, workload: str | None, layer_name: str | None, n: int,
            m: int, candidates: str, seed: int, no_exact: bool, as_json: bool) -> None:
    """Compare bidirectional mask methods on one layer.

    Forward-only, transposable (greedy and exact) and Bi-Mask with each candidate count:
    densities, fraction of |W| kept in each direction, fraction of forward weights that also
    survive backward, and generation time.
    """
    cands = _parse_candidates(candidates)
    if workload is not None or layer_name is not None:
        if layer_shape is not None:
            raise SparsityError("give either --layer-shape or --workload/--layer, not both")
        if workload is None or layer_name is None:
            raise SparsityError("--workload and --layer go together")
        w = _workload_weight(workload, layer_name)
        source = f"{workload}:{layer_name}"
    else:
        k, q = _parse_shape(layer_shape or "4608,512")
        w = np.random.default_rng(seed).standard_normal((k, q)).astype(np.float32)
        source = f"gaussian(seed={seed})"
    rows = compare_methods(w, n, m, candidates=cands, seed=seed, exact=not no_exact)
    if as_json:
        click.echo(json.dumps({"source": source, "shape": list(w.shape), "n": n, "m": m,
                               "seed": seed, "rows": rows}, indent=2))
        return
    click.echo(f"mask quality, {n}:{m}, W[K={w.shape[0]}, Q={w.shape[1]}], {source}")
    click.echo(_table(rows))


def register(group: click.Group) -> None:
    """Add this module's verbs to the top-level group."""
    group.add_command(masks)
