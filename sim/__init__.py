"""sparsa.sim: the SimPy cycle model of the core, its energy model and dataflow variants.

* :mod:`sparsa.sim.model` -- the core as SimPy elements (controller, units, DRAM channels);
* :mod:`sparsa.sim.energy` -- energy tables and the per-component breakdown;
* :mod:`sparsa.sim.dataflows` -- model-only output-/input-stationary arrays;
* :mod:`sparsa.sim.scalesim_parity` -- SCALE-Sim's compute-cycle conventions;
* :mod:`sparsa.sim.calibrate` -- the RTL vs model calibration suite;
* :mod:`sparsa.sim.api` -- :func:`simulate` (a program) and :func:`run_point` (sweeps).
"""

from .api import SimResult, run_point, simulate
from .errors import SimError

__all__ = ["SimError", "SimResult", "run_point", "simulate"]
