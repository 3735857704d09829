"""Static issue schedule from the timing formulas."""

from sparsa.hw.config import PRESETS
from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit
from sparsa.hw.schedule import schedule
from sparsa.hw.timing import compute_cycles, instr_cycles, preload_cycles


def test_serial_chain_sums_formulas():
    cfg = PRESETS["4x4-n2m4"]
    prog = [Load(target=Target.WGT, count=4), Preload(wait=Unit.LOAD),
            Compute(count=3, wait=Unit.PRE), Store(count=3, wait=Unit.EXEC)]
    assert schedule(cfg, prog).total == sum(instr_cycles(cfg, i) for i in prog)


def test_preload_overlaps_compute_and_fence_waits_all():
    cfg = PRESETS["4x4-n2m4"]
    prog = [Compute(count=50), Preload(), Fence(), Store()]
    s = schedule(cfg, prog)
    assert s.issue[:2] == [0, 1]                  # PRELOAD issues next cycle, in parallel
    assert s.issue[2] == compute_cycles(cfg, 50)  # FENCE (mask 0) waits for every unit
    assert s.issue[3] == s.issue[2] + 1
    assert preload_cycles(cfg) < compute_cycles(cfg, 50)
