"""Implicit im2col (compiler/imgload.py) and batch-norm folding on batch-1 CNNs: model
cycles, host (non-GEMM) elements, the DRAM image and the speed-up over dense with the host
work added, with neither, with folded batch norms, with both (the default), and with the
GEMM outputs that a convolution reads in place stored into its padded image as well
(``store_image``).

Run: ``.venv/bin/python benchmarks/bench_im2col.py`` (about two minutes). The figures are
the model's (deterministic); the README's implicit-im2col table quotes them.
"""

from __future__ import annotations

from sparsa.compiler import CompileOptions, compile_workload
from sparsa.hw.config import PRESETS
from sparsa.sim.api import simulate

VARIANTS = (("host im2col, host norms", dict(implicit_im2col=False, fold_bn=False)),
            ("host im2col, folded norms", dict(implicit_im2col=False)),
            ("implicit im2col, folded (default)", {}),
            ("+ outputs stored into images", dict(store_image=True)))


def main() -> None:
    cfg = PRESETS["16x16-n2m4"]
    print(f"{'workload, 2:4 on 16x16-n2m4':<44} {'cycles':>11} {'vs dense':>9} "
          f"{'host elements':>14} {'with host':>10} {'DRAM image':>11}")
    for wl in ("resnet50", "resnet18", "vgg16", "mobilenetv2"):
        for label, kw in VARIANTS:
            opt = CompileOptions(**kw)
            dense = simulate(compile_workload(wl, cfg, sparsity="dense", with_data=False,
                                              options=opt))
            prog = compile_workload(wl, cfg, sparsity="2:4", with_data=False, options=opt)
            r = simulate(prog, baseline=dense)
            image = prog.meta["dram_beats"] * cfg.beat_bytes
            print(f"{wl + ', ' + label:<44} {r.cycles:>11,} {r.speedup:>8.3f}x "
                  f"{r.host_elements:>14,} {r.speedup_with_host:>9.3f}x {image / 1e6:>9.1f} MB")


if __name__ == "__main__":
    main()
