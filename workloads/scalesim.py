"""SCALE-Sim topology files: import as a :class:`Workload`, export a workload.

Two formats, told apart by the header (SCALE-Sim's ``-i conv`` / ``-i gemm``):

**Convolution** ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
Channels, Num Filter, Strides,`` (a second stride column ``Stride width`` when the header
has one; further columns are ignored). SCALE-Sim does not pad: the IFMAP sizes are the
(pre-padded) input it convolves, and its ``topo_calc_hyperparams`` gives
``OH = ceil((IFMAP_H - Filter_H + s) / s)``, i.e. ``(H - FH) / s + 1`` **rounded up**: when
``s`` does not divide ``H - FH`` the last window hangs over the edge and reads padding (its
operand matrix marks those addresses ``-1``). E.g. ResNet-18's ``Conv1`` (224, 7x7, stride
2) is 110x110 in SCALE-Sim, not 109x109. Each row becomes a ``conv`` layer with that
overhang as bottom/right padding (``pads = (0, 0, pb, pr)``), so shapes and MACs are what
SCALE-Sim simulates. Every layer reads its own graph input ``<name>.ifmap`` of shape
``[batch, C, H, W]``: SCALE-Sim simulates layers independently and pre-padded rows do not
chain (``attrs["inputs_need_grad"]`` tells the training expansion that these inputs stand
for activations inside a network, so every layer gets its backward-data GEMM). As in SCALE-Sim, a layer
whose name contains ``DP`` is depthwise: SCALE-Sim runs it as ``Channels`` one-channel
layers of ``Num Filter`` filters, here one ``conv`` with ``groups = Channels`` and
``Cout = Channels * Num Filter`` (same GEMMs: ``P = OH*OW``, ``K = FH*FW``,
``Q = Num Filter`` per group).

**GEMM** ``Layer, M, N, K,`` with an optional ``Sparsity`` column ``N:M``. SCALE-Sim
loads a row as the convolution ``[ifmap M x K, filter 1 x K, 1 channel, N filters,
stride 1]``: an ``M x K`` input times a ``K x N`` filter matrix. Here: ``P = M``,
``K = K``, ``Q = N`` - a ``linear`` layer ``K -> N`` on an input ``[batch, M, K]``
(``batch`` multiplies ``P``). The sparsity of a row (``2:4``: at most 2 non-zeros in every
4 consecutive weights along ``K``, the reduction axis - SCALE-Sim's filter rows and the
compiler's default axis) is kept in ``layer.attrs["sparsity"]`` and as a per-layer plan in
:meth:`Workload.sparsity_plan` (``"L1=2:4;L2=1:4"``, for ``sparsa compile --sparsity``);
``1:1``, ``dense`` or an empty cell mean dense. As in SCALE-Sim's own parser, a 5th field
holding ``:`` is the sparsity ratio even without a ``Sparsity`` header, and a plain integer
5th (or 6th) field is a batch/head count ``H`` (SCALE-Sim v3's batched GEMM): ``H``
independent GEMMs, imported as a ``matmul`` with ``groups = H``. In the convolution format
SCALE-Sim v3 reads an ``N:M`` field after ``Strides`` the same way.

Export (:func:`export_topology`) writes either format. Convolution format: per sample
(SCALE-Sim has no batch; import with ``batch`` to scale back), padding folded into the
IFMAP size as the smallest IFMAP for which SCALE-Sim's formula gives the layer's ``OH``
(``FH + (OH - 2) * s + 1``, ``FH`` when ``OH = 1``), depthwise convolutions as ``DP`` rows (``_DP`` appended to names that lack it),
``linear`` layers as ``1x1`` convolutions over an ``M x 1`` IFMAP; attention matmuls and
other grouped convolutions have no conv form (use the GEMM format). GEMM format: one row per
GEMM (``M = P`` including the batch), grouped GEMMs as one row per group
(``<name>.g<i>``, as SCALE-Sim expands depthwise layers), and a ``Sparsity`` column when a
plan is given (attention matmuls stay ``1:1`` unless a rule names them, as in the compiler)
or the layers carry one.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from pathlib import Path
from typing import Any

from sparsa.fileio import write_atomic

from .errors import WorkloadError
from .graph import GraphBuilder, Workload

__all__ = ["import_topology", "export_topology", "topology_rows", "CONV_HEADER",
           "GEMM_HEADER"]

CONV_HEADER = ["Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
               "Channels", "Num Filter", "Strides"]
GEMM_HEADER = ["Layer", "M", "N", "K"]


#: Largest accepted size field (a guard against typos that would compile for hours).
_MAX_DIM = 1 << 24


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().lower())


def _int(path: str, line: int, col: str, v: str) -> int:
    try:
        x = int(v.strip())
    except ValueError:
        raise WorkloadError(f"{path}: line {line}: {col} must be a positive integer, "
                            f"not {v.strip()!r}") from None
    if not 1 <= x <= _MAX_DIM:
        raise WorkloadError(f"{path}: line {line}: {col} must be a positive integer up to "
                            f"{_MAX_DIM}, not {x}")
    return x


def _escape(name: str) -> str:
    """A layer name as an fnmatch pattern that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _sparsity(path: str, line: int, text: str) -> str | None:
    t = text.strip().lower()
    if t in ("", "dense", "1:1"):
        return None
    from .sparsity import SparsitySpec
    m = re.fullmatch(r"(\d+)\s*:\s*(\d+)", t)
    if m is None:
        raise WorkloadError(f"{path}: line {line}: Sparsity must be N:M (e.g. 2:4), "
                            f"not {text.strip()!r}")
    try:
        spec = SparsitySpec.parse(f"{m.group(1)}:{m.group(2)}")
    except WorkloadError as e:
        raise WorkloadError(f"{path}: line {line}: Sparsity {text.strip()!r}: {e}") from None
    return str(spec)


def _rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(f"SCALE-Sim topology {path!r} "
                            f"{'is a directory' if p.is_dir() else 'does not exist'}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise WorkloadError(f"{path}: unreadable ({e})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise WorkloadError(f"{path}: empty topology file")
    header = [_norm(h) for h in rows[0]]
    body = [(i + 2, [c.strip() for c in r]) for i, r in enumerate(rows[1:])
            if r and any(c.strip() for c in r) and r[0].strip()]
    return header, body


def import_topology(path: str | Path, batch: int = 1) -> Workload:
    """Read a SCALE-Sim topology ``.csv`` (convolution or GEMM format, see the module
    docstring).

    Parameters
    ----------
    path : str or Path
    batch : int
        Batch size (multiplies every layer's ``P``).

    Returns
    -------
    Workload
        One GEMM layer per row, each reading its own graph input; ``attrs["format"]`` is
        ``"conv"`` or ``"gemm"``; :meth:`Workload.sparsity_plan` gives the ``Sparsity``
        column as per-layer rules.
    """
    path = str(path)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise WorkloadError(f"{path}: batch must be an integer >= 1, not {batch!r}")
    header, body = _rows(path)
    if len(header) >= 4 and header[1:4] == ["m", "n", "k"]:
        fmt = "gemm"
    elif len(header) >= 8 and "ifmap" in header[1] and "filter" in header[3]:
        fmt = "conv"
    else:
        raise WorkloadError(
            f"{path}: not a SCALE-Sim topology: the header must start "
            f"'{', '.join(CONV_HEADER)}' (conv) or '{', '.join(GEMM_HEADER)}' (GEMM), "
            f"not {', '.join(h for h in header if h)!r}")
    sp_col = header.index("sparsity") if "sparsity" in header else None
    two_strides = fmt == "conv" and len(header) > 8 and "stride" in header[8]
    b = GraphBuilder(Path(path).stem)
    rules: list[str] = []
    for line, r in body:
        name = r[0]
        need = 4 if fmt == "gemm" else 8
        if len(r) < need or not all(r[1:need]):
            raise WorkloadError(f"{path}: line {line}: layer {name!r} needs {need - 1} "
                                f"numbers after the name")
        if name in b or f"{name}.ifmap" in b:
            raise WorkloadError(f"{path}: line {line}: duplicate layer name {name!r}")
        attrs: dict[str, Any] = {"scalesim_line": line}
        col = sp_col
        pos = 4 if fmt == "gemm" else 8
        if col is None and len(r) > pos and ":" in r[pos]:
            col = pos   # SCALE-Sim v3 reads the field after K / Strides as the N:M ratio
        heads = 1
        if fmt == "gemm":   # and a plain integer 5th (or 6th) field as the batch/head count
            for j in (4, 5):
                if j < len(r) and r[j] and j != col and ":" not in r[j]:
                    heads = _int(path, line, "batch (head count)", r[j])
        if col is not None and col < len(r):
            sp = _sparsity(path, line, r[col])
            if sp is not None:
                attrs["sparsity"] = sp
                rules.append(f"{_escape(name)}={sp}")
        if fmt == "gemm":
            m, n, k = (_int(path, line, c, v) for c, v in zip("MNK", r[1:4], strict=True))
            if heads == 1:
                x = b.input(f"{name}.in", (batch, m, k))
                b.add("linear", [x], name, in_features=k, out_features=n, bias=False, **attrs)
            else:   # `heads` independent GEMMs (SCALE-Sim's batched dot_general)
                x = b.input(f"{name}.in", (batch, heads, m, k))
                y = b.input(f"{name}.b", (batch, heads, k, n))
                b.add("matmul", [x, y], name, **attrs)
            continue
        cols = CONV_HEADER[1:] + (["Stride width"] if two_strides else [])
        vals = [_int(path, line, c, v) for c, v in zip(cols, r[1:len(cols) + 1], strict=True)]
        h, w, fh, fw, c, nf, sh = vals[:7]
        sw = vals[7] if two_strides else sh
        if fh > h or fw > w:
            raise WorkloadError(f"{path}: line {line}: filter {fh}x{fw} of {name!r} is larger "
                                f"than its IFMAP {h}x{w}")
        x = b.input(f"{name}.ifmap", (batch, c, h, w))
        dp = "DP" in name
        pb, pr = (sh - (h - fh) % sh) % sh, (sw - (w - fw) % sw) % sw
        b.add("conv", [x], name, cout=c * nf if dp else nf, kernel=(fh, fw), stride=(sh, sw),
              pads=(0, 0, pb, pr), groups=c if dp else 1, bias=False, **attrs)
    if not body:
        raise WorkloadError(f"{path}: no layers")
    wl = b.build(source=path, format=fmt, batch=batch, inputs_need_grad=True)
    if rules:
        wl.attrs["sparsity"] = ";".join(rules)
    return wl


def _spec_cell(spec: Any, name: str) -> str:
    if spec.kind == "dense":
        return "1:1"
    f = spec.forward
    if spec.method is not None:
        raise WorkloadError(f"layer {name!r}: SCALE-Sim's Sparsity column holds one N:M "
                            f"(inference), not the training plan {spec}; give e.g. "
                            f"--sparsity {f.n}:{f.m}")
    if f.n is None or f.block is not None or f.axis != "k":
        raise WorkloadError(f"layer {name!r}: SCALE-Sim's Sparsity column holds N:M along K "
                            f"only, not {spec}")
    return f"{f.n}:{f.m}"


def topology_rows(workload: Workload, fmt: str = "conv",
                  sparsity: str | None = None) -> tuple[list[str], list[list[Any]]]:
    """The header and rows :func:`export_topology` writes.

    Parameters
    ----------
    workload : Workload
    fmt : {"conv", "gemm"}
    sparsity : str, optional
        A sparsity plan (``"fc=dense;*=2:4"``) for the GEMM format's ``Sparsity`` column;
        by default the layers' own ``attrs["sparsity"]`` (from an imported topology).
    """
    if fmt not in ("conv", "gemm"):
        raise WorkloadError(f"format must be 'conv' or 'gemm', not {fmt!r}")
    batch = int(workload.attrs.get("batch", 1) or 1)
    gemms = workload.gemm_layers()
    if not gemms:
        raise WorkloadError(f"workload {workload.name!r} has no GEMM layers to export")
    rows: list[list[Any]] = []
    if fmt == "conv":
        if sparsity:
            raise WorkloadError("the Sparsity column belongs to the GEMM format; "
                                "use --format gemm")
        for ly in gemms:
            d = ly.gemm()
            if ly.kind == "conv":
                a = ly.attrs
                _, c, h, w = ly.in_shapes[0]
                fh, fw = a["kernel"] if not isinstance(a["kernel"], int) else (a["kernel"],) * 2
                st = a.get("stride", 1)
                sh, sw = (st, st) if isinstance(st, int) else tuple(st)
                dl = a.get("dilation", 1)
                if (dl if isinstance(dl, int) else max(dl)) != 1:
                    raise WorkloadError(f"layer {ly.name!r}: SCALE-Sim has no dilated "
                                        f"convolutions")
                if sh != sw:
                    raise WorkloadError(f"layer {ly.name!r}: stride {sh}x{sw}; SCALE-Sim's "
                                        f"conv format has one stride")
                _, _, oh, ow = ly.out_shape
                hp = fh + (oh - 2) * sh + 1 if oh > 1 else fh
                wp = fw + (ow - 2) * sw + 1 if ow > 1 else fw
                g = d.groups
                if g == 1:
                    rows.append([ly.name, hp, wp, fh, fw, c, d.Q, sh])
                elif c == g:    # depthwise (channel multiplier d.Q)
                    name = ly.name if "DP" in ly.name else f"{ly.name}_DP"
                    rows.append([name, hp, wp, fh, fw, c, d.Q, sh])
                else:
                    raise WorkloadError(f"layer {ly.name!r}: grouped convolution (groups="
                                        f"{g}) has no SCALE-Sim conv form; use --format gemm")
            elif ly.kind == "linear":
                p = d.P // batch if d.P % batch == 0 else d.P
                rows.append([ly.name, p, 1, 1, 1, d.K, d.Q, 1])
            else:
                raise WorkloadError(f"layer {ly.name!r} ({ly.kind}, both operands "
                                    f"activations) has no SCALE-Sim conv form; use "
                                    f"--format gemm")
        return list(CONV_HEADER), rows
    plan = None
    if sparsity:
        from .sparsity import SparsityPlan
        plan = SparsityPlan.parse(sparsity)
        named = [p for p, _ in plan.rules if p != "*"]
    with_sp = plan is not None or any("sparsity" in ly.attrs for ly in gemms)
    for ly in gemms:
        d = ly.gemm()
        cell: list[Any] = []
        if with_sp:
            if plan is not None:
                # attention matmuls (activation operands) stay dense unless a rule names
                # them, as in the compiler
                act = d.stationary != "weight" and \
                    not any(fnmatch.fnmatchcase(ly.name, p) for p in named)
                cell = ["1:1" if act else _spec_cell(plan.spec_for(ly.name), ly.name)]
            else:
                cell = [ly.attrs.get("sparsity", "1:1")]
        for gi in range(d.groups):
            name = ly.name if d.groups == 1 else f"{ly.name}.g{gi}"
            rows.append([name, d.P, d.Q, d.K, *cell])
    return GEMM_HEADER + (["Sparsity"] if with_sp else []), rows


def export_topology(workload: Workload, path: str | Path, fmt: str = "conv",
                    sparsity: str | None = None) -> int:
    """Write ``workload`` as a SCALE-Sim topology ``.csv`` (atomically).

    Parameters
    ----------
    workload : Workload
    path : str or Path
    fmt : {"conv", "gemm"}
    sparsity : str, optional
        Sparsity plan for the GEMM format's ``Sparsity`` column.

    Returns
    -------
    int
        Number of rows written.
    """
    header, rows = topology_rows(workload, fmt, sparsity)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    # SCALE-Sim drops the last comma-separated field of every line: end each with ','
    wr.writerow([*header, ""])
    for r in rows:
        wr.writerow([*r, ""])
    out = Path(path)
    try:
        write_atomic(out, buf.getvalue().encode())
    except OSError as e:
        raise WorkloadError(f"cannot write {str(out)!r}: {e.strerror or e}") from None
    return len(rows)
