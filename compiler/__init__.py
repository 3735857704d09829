"""sparsa.compiler: sparse DNN graphs -> programs for the sparse systolic core.

Public API: :func:`compile_workload`, :class:`CompileOptions`, :class:`Program`;
GEMM-level programs: :func:`compile_gemms`.
"""

from .api import PASS_NAMES, compile_workload
from .errors import CompileError
from .gemms import Gemm, compile_gemms, read_output
from .options import CompileOptions
from .program import InstrNote, LayerInfo, Program, TensorInfo

__all__ = ["compile_workload", "compile_gemms", "Gemm", "read_output", "CompileOptions",
           "CompileError", "Program", "TensorInfo", "LayerInfo", "InstrNote", "PASS_NAMES"]
