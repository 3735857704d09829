"""SimPy model: equals the static schedule without contention, and DRAM contention costs."""

import numpy as np
import pytest
from compiler_helpers import ShapeLayer, ShapeWorkload
from hypothesis import given, settings
from hypothesis import strategies as hst
from sparsa.compiler import CompileOptions, compile_workload
from sparsa.compiler.reference import TrainGraph
from sparsa.compiler.tilegen import build_gemm_program, random_gemm_specs
from sparsa.hw.config import PRESETS
from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit
from sparsa.hw.schedule import schedule
from sparsa.sim.errors import SimError
from sparsa.sim.model import CoreModel, ModelOptions, ops_from_program


def _small_net():
    return ShapeWorkload("small", [
        ShapeLayer("c1", "conv", ("x",), (49, 27, 32)),
        ShapeLayer("r1", "relu", ("c1",), out_elements=49 * 32),
        ShapeLayer("c2", "conv", ("r1",), (49, 32, 48)),
        ShapeLayer("dw", "conv", ("c2",), (49, 9, 1, 8)),
        ShapeLayer("fc", "linear", ("dw",), (1, 392, 10))])


def _programs():
    rng = np.random.default_rng(11)
    progs = []
    for name in ("4x4-n2m4", "8x8-n2m4", "8x8-n2m8", "16x16-n2m4", "16x16-n1m16"):
        cfg = PRESETS[name]
        for mode in ("dense", f"{cfg.n}:{cfg.m}", f"1:{cfg.m}"):
            for _ in range(2):
                specs = random_gemm_specs(cfg, rng, int(rng.integers(1, 4)), mode,
                                          max_p=int(rng.integers(1, 40)))
                progs.append((f"tilegen-{name}-{mode}", build_gemm_program(cfg, specs)))
    cfg = PRESETS["16x16-n2m4"]
    for spec in ("dense", "2:4", "1:4"):
        progs.append((f"small-{spec}", compile_workload(_small_net(), cfg, sparsity=spec,
                                                        with_data=False)))
    progs.append(("small-fence", compile_workload(
        _small_net(), cfg, sparsity="2:4", with_data=False,
        options=CompileOptions(interleave=False, double_buffer=False))))
    progs.append(("small-act-reuse", compile_workload(_small_net(), cfg, sparsity="2:4",
                                                      with_data=False, dataflow="act-reuse")))
    x = np.random.default_rng(5).integers(-128, 128, (10, 24)).astype(np.int8)
    for spec in ("dense", "fwd=2:4,bwd=2:4,method=bimask"):
        ref = TrainGraph(x, [24, 32, 32, 16], spec, seed=0)
        progs.append((f"mlp-train-{spec}", compile_workload(ref, PRESETS["8x8-n2m4"],
                                                            sparsity=spec, train=True)))
    return progs


PROGRAMS = _programs()


@pytest.mark.parametrize("name,prog", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_model_equals_static_schedule(name, prog):
    ref = schedule(prog.config, prog.instructions)
    stats = CoreModel(prog.config, ops_from_program(prog)).run()
    assert stats.total == ref.total
    assert stats.issue.tolist() == ref.issue
    assert stats.end.tolist() == ref.end
    for u, row in stats.units.items():
        assert row["busy"] + row["dram_stall"] + row["stall"] + row["idle"] == stats.total, u
        assert min(row.values()) >= 0, (u, row)
    # split channels: STOREs never wait for beats; a LOAD only for the LOADs before it
    assert stats.units["store"]["dram_stall"] == 0


def test_fence_and_wait_rules():
    cfg = PRESETS["4x4-n2m4"]
    prog = build_gemm_program(cfg, random_gemm_specs(cfg, np.random.default_rng(2), 1, "dense"))
    instrs = [Load(target=Target.WGT, count=4), Preload(wait=Unit.LOAD), Fence(),
              Compute(count=3, wait=Unit.PRE), Store(count=3, wait=Unit.EXEC),
              Fence(wait=Unit.STORE), Load(count=2)]
    prog.instructions = instrs
    prog.notes = []
    ref = schedule(cfg, instrs)
    stats = CoreModel(cfg, ops_from_program(prog)).run()
    assert stats.issue.tolist() == ref.issue and stats.total == ref.total
    # the FENCE after the store waits for it: the last LOAD issues after the store ends
    assert stats.issue[-1] > stats.end[4] - 1


def _dram_heavy():
    cfg = PRESETS["8x8-n2m4"]
    specs = random_gemm_specs(cfg, np.random.default_rng(4), 3, "2:4", max_p=30)
    return build_gemm_program(cfg, specs)


def test_contention_options_only_add_cycles():
    prog = _dram_heavy()
    ops = ops_from_program(prog)
    base = CoreModel(prog.config, ops).run()
    slow = CoreModel(prog.config, ops, ModelOptions(dram_beat_cycles=2)).run()
    shared = CoreModel(prog.config, ops, ModelOptions(dram_sharing="shared")).run()
    assert slow.total > base.total
    assert shared.total >= base.total
    assert slow.units["load"]["dram_stall"] > 0
    for st in (slow, shared):
        for row in st.units.values():
            assert row["busy"] + row["dram_stall"] + row["stall"] + row["idle"] == st.total
        assert (st.issue[1:] > st.issue[:-1]).all()
    # half the bandwidth: the read channel is busy twice as long for the same beats
    assert slow.dram["dram_read"]["beats"] == base.dram["dram_read"]["beats"]
    assert slow.dram["dram_read"]["busy_cycles"] == 2 * base.dram["dram_read"]["busy_cycles"]


def test_shared_channel_arbitrates_reads_and_writes():
    cfg = PRESETS["4x4-n2m4"]
    prog = build_gemm_program(cfg, random_gemm_specs(cfg, np.random.default_rng(3), 1, "dense"))
    # a long STORE and a long LOAD in flight together: on a shared channel one waits
    prog.instructions = [Store(count=40), Load(count=40)]
    prog.notes = []
    ops = ops_from_program(prog)
    split = CoreModel(cfg, ops).run()
    shared = CoreModel(cfg, ops, ModelOptions(dram_sharing="shared", burst_beats=4)).run()
    assert split.total == schedule(cfg, prog.instructions).total
    beats = sum(ops.beats)
    # the channel moved every beat of both, one per cycle: it cannot finish before that
    assert shared.total >= beats
    assert shared.total > split.total
    assert shared.units["load"]["dram_stall"] + shared.units["store"]["dram_stall"] > 0


def test_shared_channel_without_overlap_is_exact():
    cfg = PRESETS["8x8-n2m4"]
    prog = build_gemm_program(cfg, random_gemm_specs(cfg, np.random.default_rng(7), 1, "dense",
                                                     max_p=4))
    # serialise everything so reads and writes never overlap
    prog.instructions = [type(i)(**{**i.payload_fields(), "wait": 15})
                         for i in prog.instructions]
    ops = ops_from_program(prog)
    shared = CoreModel(cfg, ops, ModelOptions(dram_sharing="shared", burst_beats=3)).run()
    assert shared.total == schedule(cfg, prog.instructions).total


def test_option_errors():
    with pytest.raises(SimError, match="dram_sharing"):
        ModelOptions(dram_sharing="duplex")
    with pytest.raises(SimError, match="dram_beat_cycles"):
        ModelOptions(dram_beat_cycles=0)
    with pytest.raises(SimError, match="unknown model option 'bogus'"):
        ModelOptions.from_dict({"bogus": 1})


def test_layers_and_actions_from_a_compiled_program():
    prog = compile_workload(_small_net(), PRESETS["16x16-n2m4"], sparsity="2:4",
                            with_data=False)
    ops = ops_from_program(prog)
    names = [ly.name for ly in ops.layers]
    assert names == [ly.name for ly in prog.layers if ly.kind != "host"]
    s = prog.summary()
    tot = {k: sum(ly.actions[k] for ly in ops.layers) for k in ops.layers[0].actions}
    assert tot["dram_read"] == s["dram_read_bytes"]
    assert tot["dram_write"] == s["dram_write_bytes"]
    assert tot["pe_ops"] == s["macs_issued"]
    assert tot["nonzero_macs"] == s["nonzero_macs"]
    assert min(ops.layer) >= 0


# ---- property: any instruction stream, any wait masks -> the static schedule -------------


def _instr(kind, count, wait, flag):
    if kind == 0:
        return Load(target=Target.WGT if flag else Target.ACT, count=count, expand=int(flag),
                    wait=wait)
    if kind == 1:
        return Preload(wait=wait, load_slack=count % 3)
    if kind == 2:   # ISA v4: swap waves and load slacks vary with the count
        return Compute(count=count, accumulate=int(flag), swap=count % 2, load_slack=count % 3,
                       wait=wait)
    if kind == 3:
        return Store(count=count, requant=int(flag), exec_slack=count % 4, wait=wait)
    return Fence(wait=wait)


@settings(max_examples=80, derandomize=True, deadline=None)
@given(hst.lists(hst.tuples(hst.integers(0, 4), hst.integers(1, 70), hst.integers(0, 15),
                            hst.booleans()), min_size=1, max_size=60),
       hst.sampled_from(["4x4-n2m4", "8x8-n2m8", "16x16-n1m16"]))
def test_random_streams_equal_the_static_schedule(spec, name):
    cfg = PRESETS[name]
    prog = build_gemm_program(cfg, random_gemm_specs(cfg, np.random.default_rng(0), 1, "dense"))
    prog.instructions = [_instr(*s) for s in spec]
    prog.notes = []
    ref = schedule(cfg, prog.instructions)
    got = CoreModel(cfg, ops_from_program(prog)).run()
    assert got.issue.tolist() == ref.issue and got.end.tolist() == ref.end
    assert got.total == ref.total
