"""Host-work accounting (compiler/hostwork.py): no element the host writes is counted twice,
and the GEMMs that share a host-written input read one tensor, bit-exact."""

from __future__ import annotations

import numpy as np
from sparsa.compiler import compile_workload, read_output
from sparsa.compiler.executor import run_program
from sparsa.compiler.reference import RefGraph
from sparsa.hw.config import PRESETS


def _host(prog) -> dict[str, dict]:
    return {ly.name: ly.meta for ly in prog.layers if ly.kind == "host"}


def _graph(pad_first: bool) -> RefGraph:
    """``x -> c0 (3x3) -> relu -> add(., x) -> relu -> {c1, c2 (1x1), c3 (3x3), c4 (1x1
    stride 2)}``; ``pad_first`` puts the 3x3 consumer before the 1x1 ones."""
    x = np.random.default_rng(5).integers(-128, 128, (1, 6, 6, 16)).astype(np.int8)
    g = RefGraph("hostwork", x, 5)
    g.conv("c0", "x", 16, 16, 3)
    g.relu("r0", "c0")
    g.add("a", "r0", "x")
    g.relu("r", "a")
    if pad_first:
        g.conv("c3", "r", 16, 16, 3)
    g.conv("c1", "r", 16, 32, 1)
    g.conv("c2", "r", 16, 16, 1)
    if not pad_first:
        g.conv("c3", "r", 16, 16, 3)
    g.conv("c4", "r", 16, 16, 1, stride=2)
    g.evaluate("2:4")
    return g


def test_layouts_written_in_place_and_shared_inputs_bit_exact():
    """The ReLU after the add is applied as the add writes; the add writes the first of its
    consumers' layouts in place (0 elements); the two 1x1 convolutions share one input
    tensor; a second layout (the padded image) and the 1x1 stride-2 gather are copies the
    host pays for. Every GEMM output equals numpy's."""
    cfg = PRESETS["4x4-n2m4"]
    for pad_first in (False, True):
        g = _graph(pad_first)
        prog = compile_workload(g, cfg, sparsity="2:4", seed=0)
        host = _host(prog)
        assert host["r"]["elements"] == 0 and host["r"]["fused_into"] == "a"
        assert host["a"]["elements"] == 6 * 6 * 16
        first, second = ("c3.pad", "c1.im2col") if pad_first else ("c1.im2col", "c3.pad")
        assert host[first]["elements"] == 0 and host[first]["written_by"] == "a"
        assert host[second]["elements"] == (8 * 8 * 16 if second == "c3.pad" else 36 * 16)
        assert host["c2.im2col"]["elements"] == 0
        assert host["c2.im2col"]["shared_with"] == "c1.im2col"
        assert host["c4.im2col"]["elements"] == 9 * 16
        dram = run_program(prog)
        for name in ("c0", "c1", "c2", "c3", "c4"):
            np.testing.assert_array_equal(read_output(prog, dram, f"{name}.y"),
                                          g.gemm_out[name][0], err_msg=name)


def test_shared_input_is_one_tensor():
    """The 1x1 convolutions reading the same tensor read one DRAM tensor (one host write)."""
    prog = compile_workload(_graph(False), PRESETS["4x4-n2m4"], sparsity="2:4", seed=0)
    xs = [t for t in prog.tensors if t.endswith(".k16") or ".x." in t]
    assert len(xs) == 1 and xs[0].startswith("r.x."), xs


def test_resnet_accounting_rules():
    """ResNet-50 inference: every free layout names a host writer that does pay for its
    output, every fused activation a GEMM or a paying host op; the 1x1 convolutions after a
    residual add cost nothing, the stride-2 downsamples and 3x3 paddings after a GEMM do.
    ResNet-18 training keeps its forward ReLUs (the backward pass reads them) and their
    consumers' padded images are written in place."""
    cfg = PRESETS["16x16-n2m4"]
    prog = compile_workload("resnet50", cfg, sparsity="2:4", with_data=False)
    host = _host(prog)
    gemms = {ly.name for ly in prog.layers if ly.kind != "host"}
    for name, m in host.items():
        if "written_by" in m:
            assert m["elements"] == 0 and host[m["written_by"]]["elements"] > 0, name
        if "fused_into" in m:
            w = m["fused_into"]
            assert w in gemms or host[w]["elements"] > 0, name
    assert host["layer1.0.relu"]["fused_into"] == "layer1.0.add"
    assert host["layer1.1.conv1.im2col"]["written_by"] == "layer1.0.add"
    assert host["layer1.0.downsample.im2col"]["shared_with"] == "layer1.0.conv1.im2col"
    assert host["layer2.0.downsample.im2col"]["elements"] == 28 * 28 * 256
    assert host["layer1.0.conv2.pad"]["elements"] == 58 * 58 * 64
    total = sum(m["elements"] for m in host.values())
    writes = sum(m["elements"] for n, m in host.items() if m["op"] in ("add", "maxpool"))
    assert writes > total / 2
    train = compile_workload("resnet18", PRESETS["16x16-n2m8-train"],
                             sparsity="fwd=2:8,bwd=2:8,method=bimask", train=True,
                             with_data=False)
    th = _host(train)
    assert th["layer1.0.conv1.relu.fwd"]["elements"] == 56 * 56 * 64
    assert th["layer1.0.conv2.fwd.pad"]["written_by"] == "layer1.0.conv1.relu.fwd"
    assert th["layer1.1.conv1.fwd.pad"]["written_by"] == "layer1.0.relu.fwd"


def test_transformer_projections_share_their_input():
    """BERT-base: Q, K and V read the layer norm's output as one tensor written by the norm
    itself (0 elements each), the second FFN layer reads the GELU's output in place, and the
    attention matmuls' relayouts (head transposes) are still paid for."""
    prog = compile_workload("bert-base", PRESETS["16x16-n2m4"], sparsity="2:4",
                            with_data=False)
    host = _host(prog)
    q, k, v = (f"encoder.0.attn.{p}.im2col" for p in ("query", "key", "value"))
    assert host[q]["elements"] == 0 and host[q]["written_by"] == "embeddings.ln"
    assert host[k]["shared_with"] == q and host[v]["shared_with"] == q
    assert host["encoder.0.ffn.fc2.im2col"]["written_by"] == "encoder.0.ffn.gelu"
    assert host["encoder.0.attn.scores.im2col"]["elements"] > 0
    shared = [t for t in prog.tensors if t.startswith("embeddings.ln.x.")]
    assert len(shared) == 1
