"""Group packing (compiler/grouppack.py) on MobileNetV2: model cycles, DRAM bytes, MACs
issued and energy with and without packing, for inference (dense and 2:4 on 16x16-n2m4,
dense on 16x16-n1m16) and a Bi-Mask 2:8 training step (16x16-n2m8-train).

Run: ``.venv/bin/python benchmarks/bench_pack.py`` (about a minute). The figures are the
model's (deterministic); the README's group-packing table quotes them.
"""

from __future__ import annotations

from sparsa.compiler import CompileOptions, compile_workload
from sparsa.hw.config import PRESETS
from sparsa.sim import training
from sparsa.sim.api import simulate


def main() -> None:
    print(f"{'MobileNetV2 inference':<34} {'cycles':>12} {'DRAM bytes':>12} "
          f"{'MACs issued':>13} {'energy mJ':>10}")
    for cfg_name, spec in (("16x16-n2m4", "dense"), ("16x16-n2m4", "2:4"),
                           ("16x16-n1m16", "dense")):
        cfg = PRESETS[cfg_name]
        for pack in (False, True):
            prog = compile_workload("mobilenetv2", cfg, sparsity=spec, with_data=False,
                                    options=CompileOptions(pack_groups=pack))
            r = simulate(prog)
            dram = r.totals["dram_read"] + r.totals["dram_write"]
            label = f"{cfg_name} {spec} {'packed' if pack else 'per group'}"
            print(f"{label:<34} {r.cycles:>12,} {dram:>12,} "
                  f"{prog.summary()['macs_issued']:>13,} {r.energy_pj / 1e9:>10.2f}")
    print()
    print(f"{'MobileNetV2 training step':<34} {'cycles':>12} {'dense cycles':>12} "
          f"{'speed-up':>9}")
    for pack in (False, True):
        rep = training.train_step("mobilenetv2", "16x16-n2m8-train", fwd="2:8", bwd="2:8",
                                  method="bimask", per_layer=False,
                                  options=CompileOptions(pack_groups=pack))
        label = f"bimask 2:8 {'packed' if pack else 'per group'}"
        print(f"{label:<34} {rep['cycles']:>12,} {rep['dense_cycles']:>12,} "
              f"{rep['speedup']:>8.3f}x")


if __name__ == "__main__":
    main()
