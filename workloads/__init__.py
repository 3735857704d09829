"""sparsa.workloads: graph IR, model zoo, ONNX and SCALE-Sim importers, sparsity masks.

:func:`load_workload` is the entry point: a zoo name (:data:`ZOO_NAMES`), an ``.onnx`` file
or a SCALE-Sim topology ``.csv``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import WorkloadError
from .graph import GemmDims, GraphBuilder, Layer, Workload
from .zoo import ZOO_NAMES

__all__ = ["GemmDims", "GraphBuilder", "Layer", "Workload", "WorkloadError", "ZOO_NAMES",
           "load_workload"]


def load_workload(spec: str, batch: int = 1, seq: int | None = None) -> Workload:
    """Load a workload by zoo name or from a file.

    Parameters
    ----------
    spec : str
        A zoo name (case-insensitive, see :data:`ZOO_NAMES`), a path to an ``.onnx``
        model, or a path to a SCALE-Sim topology ``.csv`` (convolution or GEMM format,
        detected from the header).
    batch : int
        Batch size (zoo and SCALE-Sim conv topologies; an ONNX file's symbolic batch
        dimension).
    seq : int, optional
        Sequence length of the transformer zoo entries (default: bert-base, gpt2 and
        gpt2-block 128; gpt2-decode: the KV length, 1024) or an ONNX file's symbolic
        sequence dimension.

    Returns
    -------
    Workload

    Raises
    ------
    WorkloadError
        Unknown name, unreadable file, unsupported op, inconsistent shapes.
    """
    text = str(spec)
    low = text.lower()
    if low.endswith(".onnx"):
        from .onnx_import import import_onnx
        return import_onnx(text, batch=batch, seq=seq)
    if low.endswith(".csv"):
        from .scalesim import import_topology
        if seq is not None:
            raise WorkloadError(f"{text}: a SCALE-Sim topology takes no seq")
        return import_topology(text, batch=batch)
    if ("/" in text or "\\" in text) and not Path(text).exists():
        raise WorkloadError(f"workload file {text!r} does not exist")
    from .zoo import build
    try:
        return build(text, batch=batch, seq=seq)
    except WorkloadError as e:
        if not str(e).startswith("unknown workload"):
            raise
        # not a zoo name (a folder or file named like one, e.g. 'compile resnet18 -o
        # resnet18', never shadows the zoo): say what the path is instead
        if Path(text).is_dir():
            raise WorkloadError(f"{text}: a directory, not a workload (a name, .onnx or "
                                f".csv); a compiled program runs with 'sparsa simulate "
                                f"{text}'") from None
        if Path(text).is_file():
            raise WorkloadError(f"{text}: workload files must end in .onnx or .csv "
                                f"(SCALE-Sim topology)") from None
        raise
