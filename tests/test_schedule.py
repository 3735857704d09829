"""Static issue schedule from the timing formulas."""

from sparsa.hw.config import PRESETS
from sparsa.hw.isa import Compute, Fence, Load, Preload, Store, Target, Unit
from sparsa.hw.schedule import schedule
from sparsa.hw.timing import compute_cycles, instr_cycles, preload_cycles, swap_wave_cycles


def test_serial_chain_sums_formulas():
    cfg = PRESETS["4x4-n2m4"]
    prog = [Load(target=Target.WGT, count=4), Preload(wait=Unit.LOAD),
            Compute(count=3, wait=Unit.PRE), Store(count=3, wait=Unit.EXEC)]
    assert schedule(cfg, prog).total == sum(instr_cycles(cfg, i) for i in prog)


def test_preload_overlaps_compute_and_fence_waits_all():
    cfg = PRESETS["4x4-n2m4"]
    prog = [Compute(count=50), Preload(), Fence(), Store()]
    s = schedule(cfg, prog)
    # the PRELOAD runs in parallel, once the swap has reached the last PE
    assert s.issue[:2] == [0, swap_wave_cycles(cfg)]
    assert s.issue[2] == compute_cycles(cfg, 50)  # FENCE (mask 0) waits for every unit
    assert s.issue[3] == s.issue[2] + 1
    assert preload_cycles(cfg) < compute_cycles(cfg, 50)
    # without a swap nothing travels: the PRELOAD issues the next cycle
    assert schedule(cfg, [Compute(count=50, swap=0), Preload()]).issue == [0, 1]


def test_pipelined_computes_and_store_slack():
    """COMPUTEs issue one row apart; a STORE waiting on EXEC lets ``exec_slack`` of the most
    recent COMPUTEs run on and waits for the others to write their last row."""
    cfg = PRESETS["4x4-n2m4"]
    prog = [Compute(count=5), Compute(count=7, swap=0), Compute(count=0, swap=0),
            Compute(count=3, swap=0)]
    s = schedule(cfg, prog)
    assert s.issue == [0, 5, 12, 13]
    assert s.end == [i + compute_cycles(cfg, c.count) for i, c in zip(s.issue, prog, strict=False)]
    for k, want in ((0, s.end[3]), (1, s.end[2]), (3, s.end[0]), (4, 14), (200, 14)):
        st = schedule(cfg, [*prog, Store(wait=Unit.EXEC, exec_slack=k)])
        assert st.issue[4] == want, k
    assert schedule(cfg, [*prog, Store()]).issue[4] == 14        # no EXEC in the mask
    assert schedule(cfg, [*prog, Load(wait=Unit.EXEC)]).issue[4] == 16   # feed done
