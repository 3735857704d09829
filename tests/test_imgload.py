"""Implicit im2col (compiler/imgload.py): convolutions read their GEMM rows from the padded
input image with strided LOADs; batch norms fold into inference GEMMs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sparsa.compiler import CompileOptions, compile_workload, read_output
from sparsa.compiler.executor import run_program
from sparsa.compiler.imgload import ConvGeom
from sparsa.compiler.reference import RefGraph, conv_direct, im2col
from sparsa.hw.config import PRESETS
from sparsa.workloads.graph import GraphBuilder

OFF = CompileOptions(implicit_im2col=False)


@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       per=st.integers(1, 3), kh=st.integers(1, 3), kw=st.integers(1, 3),
       s=st.integers(1, 3), d=st.integers(1, 2), pads=st.tuples(*[st.integers(0, 2)] * 4),
       kp=st.sampled_from([2, 4]), eb=st.integers(1, 2), seed=st.integers(0, 99))
def test_loads_read_the_im2col_rows(b, h, w, per, kh, kw, s, d, pads, kp, eb, seed):
    """Replaying the LOADs of every K tile and chunk of rows on the padded image's entries
    gives exactly the im2col (zero padding included), for any stride, dilation and pads."""
    geo = ConvGeom(b, h, w, per * kp, kh, kw, s, s, d, d, *pads)
    if geo.OH < 1 or geo.OW < 1:
        return
    x = np.random.default_rng(seed).integers(-128, 128, (b, h, w, geo.C), dtype=np.int8)
    want = geo.im2col(x)
    if (kh, kw) == (3, 3) and d == 1 and len(set(pads)) == 1:
        np.testing.assert_array_equal(want, im2col(x, 3, 3, s, pads[0]))
    # DRAM as entries of eb beats: pixel i, entry e at beat (i * per + e) * eb
    ents = geo.padded(x).reshape(geo.pixels * per, kp)
    got = np.zeros((geo.P, geo.K), np.int8)
    chunk = 5
    for p0 in range(0, geo.P, chunk):
        c = min(chunk, geo.P - p0)
        for ka in range(geo.K // kp):
            rows = 0
            for r, n, off, stride in geo.loads(p0, c, ka, kp, eb):
                assert r == rows and n >= 1 and off % eb == 0 and stride == s * per * eb
                for i in range(n):
                    got[p0 + r + i, ka * kp:(ka + 1) * kp] = ents[(off + i * stride) // eb]
                rows += n
            assert rows == c
    np.testing.assert_array_equal(got, want)


def _block(c=16, hw=6, seed=0):
    x = np.random.default_rng(seed).integers(-128, 128, (1, hw, hw, c)).astype(np.int8)
    g = RefGraph("img", x, seed)
    g.conv("c1", "x", c, c, 3)
    g.relu("r1", "c1")
    g.conv("c2", "r1", c, 2 * c, 3, stride=2)
    g.conv("c3", "c2", 2 * c, c, 1, stride=2)     # 1x1 stride 2: im2col is smaller
    g.conv("stem", "x", c, c, 5, pad=2)
    g.evaluate("2:4")
    return g


def test_block_reads_the_image_bit_exact_and_host_writes_less():
    """A 3x3, a strided 3x3 and a 5x5 convolution read the image (tensor meta ``image``),
    the 1x1 stride-2 one keeps its im2col; outputs equal numpy's with and without the
    option, the program passes the hazard check, and the host writes fewer elements."""
    from compiler_helpers import concurrent_hazards
    g = _block()
    cfg = PRESETS["4x4-n2m4"]
    on = compile_workload(g, cfg, sparsity="2:4", seed=0)
    off = compile_workload(g, cfg, sparsity="2:4", seed=0, options=OFF)
    imgs = {t.name for t in on.tensors.values() if "image" in t.meta}
    assert imgs == {"c1.x", "c2.x", "stem.x"}
    assert not any("image" in t.meta for t in off.tensors.values())
    assert on.tensors["c1.x"].meta["image"] == [1, 8, 8, 16]
    for prog in (on, off):
        dram = run_program(prog)
        for name in ("c1", "c2", "c3", "stem"):
            np.testing.assert_array_equal(read_output(prog, dram, f"{name}.y"),
                                          g.gemm_out[name][0], err_msg=name)
        assert concurrent_hazards(cfg, prog.instructions, trials=1) == []
    host = {p: {ly.name: ly.meta["elements"] for ly in prog.layers if ly.kind == "host"}
            for p, prog in (("on", on), ("off", off))}
    assert host["on"]["c1.pad"] == 8 * 8 * 16 and host["off"]["c1.im2col"] == 36 * 144
    assert host["on"]["c3.im2col"] == host["off"]["c3.im2col"]
    assert sum(host["on"].values()) < sum(host["off"].values()) / 3
    # the same GEMMs: MACs issued equal, the DRAM image smaller
    assert on.summary()["macs_issued"] == off.summary()["macs_issued"]
    assert on.dram.size < off.dram.size


def test_zoo_layers_with_dilation_and_asymmetric_pads():
    """Workload layers (NCHW shapes, ONNX-style pads): dilated, strided and asymmetrically
    padded convolutions read the image; with data the outputs equal the compiler's own
    numpy product of the im2col (``prog.expected``), bit for bit."""
    b = GraphBuilder("geo")
    x = b.input("x", (1, 16, 9, 7))
    y = b.conv(x, 16, 3, pad=(0, 1, 2, 1), dilation=2, name="dil")
    y = b.conv(y, 32, (3, 2), stride=2, pad=(1, 0, 1, 1), name="asym")
    wl = b.build()
    prog = compile_workload(wl, PRESETS["4x4-n2m4"], sparsity="2:4", seed=1)
    assert {t.name for t in prog.tensors.values() if "image" in t.meta} == {"dil.x", "asym.x"}
    dram = run_program(prog)
    assert set(prog.expected) == {"dil.y", "asym.y"}
    for name, want in prog.expected.items():
        np.testing.assert_array_equal(read_output(prog, dram, name), want, err_msg=name)


def test_direct_convolution_agrees_with_the_geometry():
    """``ConvGeom.im2col @ W`` is the direct convolution (the K order is (tap, channel))."""
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2, 5, 6, 8), dtype=np.int8)
    w = rng.integers(-128, 128, (3, 3, 8, 4), dtype=np.int8)
    geo = ConvGeom(2, 5, 6, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)
    y = geo.im2col(x).astype(np.int64) @ w.reshape(-1, 4).astype(np.int64)
    np.testing.assert_array_equal(y.reshape(2, geo.OH, geo.OW, 4), conv_direct(x, w, 2, 1, 1))


def test_resnet50_host_work_and_cycles():
    """ResNet-50 without data: every 3x3 convolution reads the image, the 7x7 stem on 3
    channels and the 1x1 convolutions keep their im2col; batch norms fold, so their ReLUs
    fuse; the host writes under half the elements it did, for the same MACs."""
    from sparsa.sim.api import simulate
    cfg = PRESETS["16x16-n2m4"]
    on = compile_workload("resnet50", cfg, sparsity="2:4", with_data=False)
    off = compile_workload("resnet50", cfg, sparsity="2:4", with_data=False,
                           options=CompileOptions(implicit_im2col=False, fold_bn=False))
    imgs = {t.name for t in on.tensors.values() if "image" in t.meta}
    assert len(imgs) == 16 and all(".conv2." in n for n in imgs)
    host_on = {ly.name: ly.meta for ly in on.layers if ly.kind == "host"}
    assert host_on["conv1.bn"]["elements"] == 0 and host_on["conv1.bn"]["folded_into"] == "conv1"
    assert host_on["conv1.relu"]["fused_into"] == "conv1"
    assert "conv1.im2col" in host_on
    h_on, h_off = (sum(ly.meta["elements"] for ly in p.layers if ly.kind == "host")
                   for p in (on, off))
    assert h_on < h_off / 2
    assert on.summary()["macs_issued"] == off.summary()["macs_issued"]
    c_on, c_off = simulate(on).cycles, simulate(off).cycles
    assert abs(c_on - c_off) < 0.02 * c_off


def test_gemms_in_passes_read_the_image_too():
    """3:8 on an n = 2 array runs in two passes per K tile; both passes read the same
    activation tile, loaded from the image once, and the outputs equal numpy's."""
    x = np.random.default_rng(4).integers(-128, 128, (1, 6, 6, 64)).astype(np.int8)
    g = RefGraph("passes", x, 4)
    g.conv("c1", "x", 64, 64, 3)
    g.relu("r", "c1")
    g.conv("c2", "r", 64, 32, 3, stride=2)
    g.evaluate("3:8")
    prog = compile_workload(g, PRESETS["8x8-n2m8"], sparsity="3:8", seed=4)
    assert [ly.meta.get("passes") for ly in prog.layers if ly.kind != "host"] == [2, 2]
    assert {t.name for t in prog.tensors.values() if "image" in t.meta} == {"c1.x", "c2.x"}
    dram = run_program(prog)
    for name in ("c1", "c2"):
        np.testing.assert_array_equal(read_output(prog, dram, f"{name}.y"),
                                      g.gemm_out[name][0], err_msg=name)


def test_outputs_stored_into_padded_images_bit_exact():
    """``store_image``: a GEMM whose output only a convolution read in place reads stores
    it straight into that convolution's zero-padded image (a STORE per image row): no host
    pad, outputs equal numpy's, the program passes the byte-level hazard check, and the
    model's cycles equal the static schedule's."""
    from compiler_helpers import concurrent_hazards
    from sparsa.hw.schedule import schedule as static_schedule
    from sparsa.sim.api import simulate
    x = np.random.default_rng(6).integers(-128, 128, (2, 5, 7, 32)).astype(np.int8)
    g = RefGraph("stored", x, 6)
    g.conv("c1", "x", 32, 32, 1)
    g.relu("r1", "c1")
    g.conv("c2", "r1", 32, 64, 3)
    g.relu("r2", "c2")
    g.conv("c3", "r2", 64, 32, 3, stride=2)
    g.relu("r3", "c3")
    g.add("a", "r3", "r3")
    g.evaluate("2:4")
    cfg = PRESETS["16x16-n2m4"]
    on = compile_workload(g, cfg, sparsity="2:4", seed=0,
                          options=CompileOptions(store_image=True))
    off = compile_workload(g, cfg, sparsity="2:4", seed=0)
    assert on.tensors["c1.y"].meta["image"] == [2, 7, 9, 32]
    assert on.tensors["c1.y"].meta["interior"] == [1, 1, 5, 7]
    assert on.tensors["c2.y"].meta["image"] == [2, 7, 9, 64]
    assert "image" not in on.tensors["c3.y"].meta      # read by a host add
    host = {p: {ly.name: ly.meta["elements"] for ly in prog.layers if ly.kind == "host"}
            for p, prog in (("on", on), ("off", off))}
    assert "c2.pad" not in host["on"] and host["off"]["c2.pad"] == 2 * 7 * 9 * 32
    stores = [i for i in on.instructions if type(i).__name__ == "Store"]
    assert len(stores) > len([i for i in off.instructions if type(i).__name__ == "Store"])
    for prog in (on, off):
        dram = run_program(prog)
        for name in ("c1", "c2", "c3"):
            np.testing.assert_array_equal(read_output(prog, dram, f"{name}.y"),
                                          g.gemm_out[name][0], err_msg=name)
        assert concurrent_hazards(cfg, prog.instructions, trials=2) == []
        assert simulate(prog).cycles == static_schedule(cfg, prog.instructions).total
    # the borders of a stored image are zero in the final DRAM image
    t = on.tensors["c1.y"]
    bb = cfg.beat_bytes
    rows = run_program(on)[t.addr * bb:(t.addr + t.beats) * bb].reshape(2, 7, 9, -1)
    assert not rows[:, 0].any() and not rows[:, -1].any()
    assert not rows[:, :, 0].any() and not rows[:, :, -1].any()
