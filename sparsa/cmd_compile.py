"""``sparsa compile``: compile a workload into a program for the core."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click

from sparsa import heap
from sparsa.compiler.api import PASS_NAMES, compile_workload
from sparsa.compiler.options import DATAFLOWS, SPARSE_MODES, CompileOptions
from sparsa.fileio import write_files
from sparsa.hw.config import resolve_config
from sparsa.outputs import check_out_dir
from sparsa.sparsity_arg import check_sparsity

SPARSE_MODE_HELP = ("auto: sparse where the weights fit the array's n:m and K > rows; sparse: "
                    "wherever they fit (else an error); dense; load-sparse: compressed in "
                    "DRAM, computed dense; best: per layer the fastest of dense, sparse and "
                    "load-sparse, as timed by the model (compiles three times first).")


def mode_note_lines(notes: list[str], label: str = "mode notes", width: int = 16,
                    limit: int = 4) -> list[str]:
    """The lines a report prints for :meth:`~sparsa.compiler.program.Program.mode_notes`:
    the first ``limit`` under ``label`` (padded to ``width``), then a count of the rest
    (every command's ``--json`` has them all)."""
    shown = notes[:limit] + ([f"{len(notes) - limit} more reasons (--json)"]
                             if len(notes) > limit else [])
    return [f"{label if i == 0 else '':<{width}}  {x}" for i, x in enumerate(shown)]


def with_sparse_mode(sparse_mode: str, opt: CompileOptions, workload: str, cfg: object,
                     sparsity: str | None, **kw: object) -> CompileOptions:
    """``opt`` with the ``--sparse-mode`` choice: one of the compiler's modes, or ``best``:
    ``layer_modes`` set per layer to the mode the model finds fastest
    (:func:`sparsa.sim.modes.choose_modes`; the compiler itself cannot run the model)."""
    if sparse_mode != "best":
        return dataclasses.replace(opt, sparse_mode=sparse_mode)
    from sparsa.sim.modes import choose_modes
    return choose_modes(workload, cfg, sparsity,
                        options=dataclasses.replace(opt, sparse_mode="auto"), **kw)


@click.command("compile")
@click.argument("workload")
@click.option("--config", "config", default=None, help="Preset name or YAML file.")
@click.option("--sparsity", default=None, callback=check_sparsity,
              help="Sparsity plan, e.g. 2:4, block16x16:0.5+1:16, unstructured:0.25, "
                   "'conv1=dense;*=2:4', fwd=2:8,bwd=2:8,method=bimask. Default: the "
                   "workload's own (a SCALE-Sim topology's Sparsity column), else dense.")
@click.option("--train", is_flag=True, help="Compile a training step (fwd, bwd-data, wgrad).")
@click.option("--dataflow", "--loop-order", "dataflow", type=click.Choice(DATAFLOWS),
              default="weight-reuse", show_default=True,
              help="Loop order (auto: the faster of the two per GEMM, timed with the static schedule; never slower than weight-reuse on the whole program).")
@click.option("--sparse-mode", type=click.Choice((*SPARSE_MODES, "best")), default="auto",
              show_default=True, help=SPARSE_MODE_HELP)
@click.option("--no-interleave", is_flag=True, help="FENCE between GEMMs.")
@click.option("--no-double-buffer", is_flag=True)
@click.option("--no-reuse", is_flag=True, help="Do not keep activation blocks across GEMMs.")
@click.option("--no-pregenerate", is_flag=True,
              help="Training: W^T is pruned on the fly every step (a host layer) instead of "
                   "pre-generated.")
@click.option("--weight-batch", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Most weight tiles per prefetched group (1: one LOAD per tile).")
@click.option("--no-pack-groups", is_flag=True,
              help="One GEMM per group of a grouped/depthwise convolution instead of packs of "
                   "groups with block-diagonal weights.")
@click.option("--no-implicit-im2col", is_flag=True,
              help="The host writes every convolution's im2col instead of the padded image "
                   "the core reads with strided LOADs.")
@click.option("--store-image", is_flag=True,
              help="Inference: a GEMM whose output only a convolution read in place reads "
                   "stores it straight into that convolution's zero-padded image (a STORE "
                   "per image row) instead of the host padding it.")
@click.option("--no-fold-bn", is_flag=True,
              help="Inference: keep batch norms as host layers instead of folding them into "
                   "the GEMM before them.")
@click.option("--no-data", is_flag=True,
              help="No weights/activations: instruction stream and manifest only (fast).")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--seq", default=None, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--dump-after", type=click.Choice(PASS_NAMES), default=None,
              help="Print the graph after this pass.")
@click.option("--dump-format", type=click.Choice(["text", "json"]), default=None,
              help="Format of the --dump-after dump  [default: text]")
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output directory (program.sprg, program.json, summary.json).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON (summary.json plus compile_seconds, the wall "
                   "time).")
def compile_cmd(workload: str, config: str | None, sparsity: str | None, train: bool,
                dataflow: str, sparse_mode: str, no_interleave: bool, no_double_buffer: bool,
                no_reuse: bool, no_pregenerate: bool, weight_batch: int, no_pack_groups: bool,
                no_implicit_im2col: bool, store_image: bool, no_fold_bn: bool, no_data: bool,
                batch: int, seq: int | None, seed: int,
                dump_after: str | None, dump_format: str | None, out: str, as_json: bool) -> None:
    """Compile WORKLOAD and write the program to OUT."""
    if dump_format is not None and dump_after is None:
        raise click.UsageError("--dump-format applies to the --dump-after dump; add "
                               "--dump-after PASS")
    dump_format = dump_format or "text"
    if no_pregenerate and not train:
        raise click.UsageError("--no-pregenerate applies to training steps (the backward-data "
                               "weights); add --train")
    if store_image and train:
        raise click.UsageError("--store-image applies to inference (a training step keeps "
                               "its activations for the backward pass); drop --train")
    if store_image and no_implicit_im2col:
        raise click.UsageError("--store-image stores outputs into the padded images that "
                               "implicit im2col reads; drop --no-implicit-im2col")
    check_out_dir(out)
    cfg = resolve_config(config)
    opt = CompileOptions(dataflow=dataflow,
                         interleave=not no_interleave, double_buffer=not no_double_buffer,
                         reuse_schedule=not no_reuse, pregenerate_bwd=not no_pregenerate,
                         weight_batch=weight_batch, pack_groups=not no_pack_groups,
                         implicit_im2col=not no_implicit_im2col, store_image=store_image,
                         fold_bn=not no_fold_bn)
    opt = with_sparse_mode(sparse_mode, opt, workload, cfg, sparsity, train=train, batch=batch,
                           seq=seq, seed=seed)
    t0 = time.perf_counter()
    prog = compile_workload(workload, cfg, sparsity=sparsity, train=train, dataflow=dataflow,
                            options=opt, with_data=not no_data, seed=seed, batch=batch,
                            seq=seq, dump_after=dump_after, dump=click.echo,
                            dump_format=dump_format)
    secs = time.perf_counter() - t0
    heap.settle()
    sparsity = prog.meta["sparsity_arg"]
    outdir = Path(out)
    summ = dict(prog.summary(), workload=workload, config=cfg.name, sparsity=sparsity,
                train=train, dataflow=dataflow)
    # the folder is the same bytes on every run: the wall time is printed, not written
    write_files(outdir, {"program.sprg": prog.to_bytes(), "program.json": prog.json_bytes(),
                         "summary.json": json.dumps(summ, indent=1).encode()})
    if as_json:
        click.echo(json.dumps(dict(summ, compile_seconds=round(secs, 3)), indent=1))
        return
    kinds = ", ".join(f"{k} {v}" for k, v in summ["by_kind"].items())
    dense, nz, issued = summ["dense_macs"], summ["nonzero_macs"], summ["macs_issued"]
    click.echo(f"{workload} on {cfg.name} ({sparsity}{', train' if train else ''}, "
               f"{dataflow}): compiled in {secs:.2f} s -> {outdir}")
    click.echo(f"  instructions      {summ['instructions']} ({kinds})")
    click.echo(f"  DRAM moved        {summ['dram_read_bytes']} B read, "
               f"{summ['dram_write_bytes']} B written; image {summ['dram_image_bytes']} B")
    click.echo(f"  MACs issued       {issued}")
    click.echo(f"  dense-equiv MACs  {dense}")
    click.echo(f"  non-zero MACs     {nz} ({nz / max(1, dense):.1%} of dense; "
               f"{nz / max(1, issued):.1%} of issued)")
    click.echo(f"  layers            {summ['gemm_layers']} GEMM, {summ['host_layers']} host")
    for line in mode_note_lines(summ["mode_notes"]):
        click.echo(f"  {line}")


def register(group: click.Group) -> None:
    """Add ``compile`` to the top-level group."""
    group.add_command(compile_cmd)
