"""GEMM-level compiler back end: bit-exact results, wait masks, serialisation."""

import numpy as np
import pytest
from compiler_helpers import concurrent_hazards
from sparsa.compiler.errors import CompileError
from sparsa.compiler.executor import run_program
from sparsa.compiler.gemms import Gemm, chainable, compile_gemms, read_output
from sparsa.compiler.options import CompileOptions
from sparsa.compiler.program import Program
from sparsa.compiler.quant import requant
from sparsa.compiler.tilegen import random_nm_weights
from sparsa.hw.config import PRESETS


def _ref(x, w, shift, relu):
    y = (x.astype(np.int64) @ w.astype(np.int64)).astype(np.uint32).view(np.int32)
    return requant(y, shift, relu)


def _two_gemms(cfg, rng, n, m):
    x = rng.integers(-128, 128, (37, 70)).astype(np.int8)
    w1 = random_nm_weights(rng, 70, 40, n, m)
    w2 = random_nm_weights(rng, 40, 24, 1, m)
    w2[:, 16:] = 0                       # an all-zero column block
    chain = chainable(cfg, "sparse")
    return x, w1, w2, [Gemm(x, w1, relu=True), Gemm("g0.y" if chain else x[:, :40], w2)], chain


@pytest.mark.parametrize("name", ["4x4-n2m4", "8x8-n2m8", "16x16-n2m4"])
@pytest.mark.parametrize("opts", [
    CompileOptions(), CompileOptions(dataflow="act-reuse"),
    CompileOptions(sparse_mode="dense"), CompileOptions(interleave=False),
    CompileOptions(double_buffer=False)], ids=["wr", "ar", "dense", "nointerleave", "nodbl"])
def test_two_gemms_bit_exact_and_hazard_free(name, opts):
    cfg = PRESETS[name]
    rng = np.random.default_rng(1)
    x, w1, w2, gs, chain = _two_gemms(cfg, rng, cfg.n, cfg.m)
    p = compile_gemms(cfg, gs, options=opts)
    d = run_program(p)
    y0 = read_output(p, d, "g0.y")
    ref0 = _ref(x, w1, p.tensors["g0.y"].meta["shift"], True)
    np.testing.assert_array_equal(y0, ref0)
    x2 = ref0 if chain else x[:, :40]
    np.testing.assert_array_equal(read_output(p, d, "g1.y"),
                                  _ref(x2, w2, p.tensors["g1.y"].meta["shift"], False))
    assert concurrent_hazards(cfg, p.instructions) == []
    # useful MACs = non-zero MACs
    assert sum(n.useful_macs for n in p.notes) == 37 * (np.count_nonzero(w1)
                                                        + np.count_nonzero(w2))


@pytest.mark.parametrize("dataflow", ["weight-reuse", "act-reuse"])
def test_weights_denser_than_n_run_in_passes(dataflow):
    """4:8 weights on the n = 2, m = 8 array: two sparse passes per K tile (compile_gemms
    picks them as the graph compiler does), the second GEMM reading the first one's output
    directly, bit-exact, half the weight tiles of dense mode."""
    cfg = PRESETS["16x16-n2m8"]
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (21, 256)).astype(np.int8)
    w1 = random_nm_weights(rng, 256, 64, 4, 8)
    w2 = random_nm_weights(rng, 64, 16, 4, 8)
    opts = CompileOptions(dataflow=dataflow)
    p = compile_gemms(cfg, [Gemm(x, w1, relu=True), Gemm("g0.y", w2)], options=opts)
    for ly in p.layers:
        assert ly.meta["passes"] == 2 and ly.meta["mode"] == ["sparse"], ly.name
    assert p.tensors["g0.x"].shape == (21, 256)
    d = run_program(p)
    y0 = read_output(p, d, "g0.y")
    np.testing.assert_array_equal(y0, _ref(x, w1, p.tensors["g0.y"].meta["shift"], True))
    np.testing.assert_array_equal(read_output(p, d, "g1.y"),
                                  _ref(y0, w2, p.tensors["g1.y"].meta["shift"], False))
    assert concurrent_hazards(cfg, p.instructions) == []
    dense = compile_gemms(cfg, [Gemm(x, w1)], options=CompileOptions(sparse_mode="dense"))
    assert 2 * p.tensors["g0.w"].beats <= dense.tensors["g0.w"].beats


def test_missing_wait_is_caught_by_hazard_checker():
    cfg = PRESETS["4x4-n2m4"]
    rng = np.random.default_rng(2)
    _, _, _, gs, _ = _two_gemms(cfg, rng, 2, 4)
    p = compile_gemms(cfg, gs)
    import dataclasses
    i = next(j for j, ins in enumerate(p.instructions) if type(ins).__name__ == "Compute"
             and ins.wait)
    broken = list(p.instructions)
    broken[i] = dataclasses.replace(broken[i], wait=0)
    assert concurrent_hazards(cfg, broken) != []


@pytest.mark.parametrize("kind,field", [("Store", "exec_slack"), ("Preload", "load_slack")])
def test_too_large_a_slack_is_caught_by_hazard_checker(kind, field):
    """The checker knows ISA v4's slacks: letting one more COMPUTE / LOAD run on past an
    instruction that waits for its results is a hazard."""
    import dataclasses

    from sparsa.hw.isa import Unit
    cfg = PRESETS["4x4-n2m4"]
    _, _, _, gs, _ = _two_gemms(cfg, np.random.default_rng(2), 2, 4)
    p = compile_gemms(cfg, gs)
    unit = Unit.EXEC if field == "exec_slack" else Unit.LOAD
    idx = [j for j, ins in enumerate(p.instructions)
           if type(ins).__name__ == kind and ins.wait & unit]
    assert idx and concurrent_hazards(cfg, p.instructions) == []
    found = False
    for j in idx:
        broken = list(p.instructions)
        broken[j] = dataclasses.replace(broken[j], **{field: getattr(broken[j], field) + 1})
        found |= any(x == j for _, x in concurrent_hazards(cfg, broken, trials=6))
    assert found


def test_program_round_trip_and_corruption(tmp_path):
    cfg = PRESETS["8x8-n2m4"]
    rng = np.random.default_rng(3)
    _, _, _, gs, _ = _two_gemms(cfg, rng, 2, 4)
    p = compile_gemms(cfg, gs)
    path = p.save(tmp_path / "p.sprg")
    q = Program.load(path)
    assert q == p and q.instructions == p.instructions
    assert Program.load_json(p.save_json(tmp_path / "p.json")) == p
    data = path.read_bytes()
    (tmp_path / "t.sprg").write_bytes(data[:-7])
    with pytest.raises(CompileError, match="truncated|CRC32|announces"):
        Program.load(tmp_path / "t.sprg")
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x40
    (tmp_path / "c.sprg").write_bytes(bytes(bad))
    with pytest.raises(CompileError, match="corrupted"):
        Program.load(tmp_path / "c.sprg")
    (tmp_path / "m.sprg").write_bytes(b"NOTAPROG" + data[8:])
    with pytest.raises(CompileError, match="bad magic"):
        Program.load(tmp_path / "m.sprg")
    with pytest.raises(CompileError, match="truncated"):
        Program.from_bytes(b"SPARSAPG")
    # a well-formed binary (CRC intact) whose first instruction sets a reserved bit
    import struct
    import zlib

    from sparsa.compiler import program as prog_mod
    hlen = prog_mod._PRE.unpack_from(data)[3]
    body = bytearray(data[:-4])
    body[prog_mod._PRE.size + hlen + 15] |= 0x80             # top bit of word 0
    body += struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(CompileError, match="bad instruction word: .* reserved bits"):
        Program.from_bytes(bytes(body), "r.sprg")


def test_compiled_program_files_are_the_same_bytes_every_time(tmp_path):
    """A network compiled twice (with data, seeded) writes byte-identical binaries and JSON:
    nothing run-dependent (such as the passes' timings) is serialised."""
    from sparsa.compiler import compile_workload
    from sparsa.sim.api import load_program
    cfg = PRESETS["8x8-n2m8"]
    topo = tmp_path / "g.csv"
    topo.write_text("Layer, M, N, K, Sparsity,\nL1, 96, 40, 128, 2:8,\nL2, 96, 24, 40, 1:8,\n"
                    "L3, 64, 32, 64, dense,\n")
    files = []
    for i in range(2):
        p = compile_workload(str(topo), cfg, seed=5)
        assert p.pass_seconds and "pass_seconds" not in p.meta
        files.append((p.save(tmp_path / f"{i}.sprg").read_bytes(),
                      p.save_json(tmp_path / f"{i}.json").read_bytes()))
    assert files[0] == files[1]
    q = load_program(str(tmp_path / "0.sprg"))
    assert q.instructions == p.instructions and np.array_equal(q.dram, p.dram)
