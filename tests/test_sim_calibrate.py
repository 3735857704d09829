"""Model vs RTL: the same programs on Verilator and on the SimPy model agree within 1%.

The quick subset (:data:`sparsa.sim.calibrate.QUICK`: a dense and a sparse single tile, a
DRAM-bandwidth-bound tile sequence, a compiled 2:4 layer stack, a compiled load-as-sparse
linear layer and an MLP training step) runs here; ``sparsa calibrate`` runs the full suite of
21 programs.
"""

import pytest
from sparsa.hw.config import PRESETS
from sparsa.hw.rtl_runner import rtl_available
from sparsa.sim.calibrate import QUICK, calibrate, calibration_programs

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not rtl_available(), reason="the core's RTL generator is "
                                 "not in this checkout")]

CFG = PRESETS["4x4-n2m4"]


def test_suite_has_the_required_programs():
    progs = calibration_programs(CFG)
    names = [n for n, _ in progs]
    assert len(progs) >= 20 and len(set(names)) == len(names)
    assert set(QUICK) <= set(names)
    assert any(n.startswith("dram-bound") for n in names)
    assert any(n.startswith("mlp-train") for n in names)
    ls = dict(progs)["layer-linear-load-sparse"]
    assert any(getattr(i, "cmp_n", 0) for i in ls.instructions)   # load-as-sparse LOADs


@pytest.mark.xdist_group("4x4-n2m4")
def test_model_within_one_percent_of_rtl_quick():
    rows = calibrate(CFG, quick=True)
    assert [r["name"] for r in rows] == list(QUICK)
    assert any(r["dram_bound"] for r in rows) and any(not r["dram_bound"] for r in rows)
    bad = [r for r in rows if abs(r["error"]) > 0.01]
    assert not bad, bad
