"""Host work: what the non-GEMM layers of a program cost, in elements the host writes.

The core computes GEMMs only; pooling, residual adds, norms, activations and the layouts the
GEMMs read run on the host. A program's host layers carry ``elements`` (what the host
writes; :func:`sparsa.sim.api.host_elements` sums them and the model turns them into cycles
at ``HOST_ELEMS_PER_CYCLE``). The rules, so that no element is counted twice:

* a host op writes its output once: ``elements`` = its output's elements;
* a GEMM's input that the core cannot read from its producer is a host layer of its own:
  ``<layer>.im2col`` (``P*K`` per group) or, with implicit im2col, the zero-padded image
  ``<layer>.pad`` (:mod:`sparsa.compiler.imgload`);
* a batch norm folded into a GEMM, and a ReLU fused into a GEMM's STORE, cost nothing; at
  inference an activation that alone reads a host op's output (the ReLU after a residual
  add) is applied as that op writes (:mod:`sparsa.compiler.lower`; training keeps both:
  the backward pass reads the activation's input and output);
* a GEMM input that is a one-to-one placement of a tensor a host op writes (the tensor
  itself for a linear layer or a 1x1 stride-1 convolution, its zero-padded image for
  implicit im2col) costs nothing: the op writes its output in that layout
  (:func:`written_in_place`; one layout per tensor: a second one is a copy);
* GEMMs reading one tensor as stored (a transformer's Q, K and V; a 1x1 convolution and
  its stride-1 downsample) share one input tensor, counted once (a GEMM whose timed mode
  choice moves it to another window gets, and pays for, its own copy).
"""

from __future__ import annotations

from typing import Any

from .imgload import geometry_of

__all__ = ["identity_input", "written_in_place"]

_LINEAR = ("linear", "gemm", "fc")


def identity_input(n: Any, P: int, K: int) -> bool:
    """Whether GEMM node ``n``'s input ``X[P, K]`` is its input tensor as stored (a linear
    layer, a 1x1 stride-1 unpadded convolution; one group, forward or inference)."""
    if n.gemm[3] != 1 or n.pack != 1 or n.perm is not None or n.stationary != "weight" or \
            n.phase not in ("inf", "fwd") or len(n.inputs) != 1:
        return False
    if n.kind.lower() in _LINEAR:
        return True
    geo = geometry_of(n.layer)
    return geo is not None and (geo.P, geo.K) == (P, K) and geo.kh == geo.kw == 1 and \
        geo.sh == geo.sw == 1 and not (geo.pt or geo.pl or geo.pb or geo.pr)


def _writer(by_name: dict[str, Any], name: str) -> Any:
    """The host node that writes tensor ``name`` (through activations applied as it writes),
    ``None`` when a GEMM or nothing (a graph input) writes it."""
    n = by_name.get(name)
    for _ in range(len(by_name)):
        into = None if n is None or n.is_gemm else n.attrs.get("host_meta", {}).get("fused_into")
        if into is None:
            break
        n = by_name.get(into)
    return n if n is not None and not n.is_gemm and n.out_elements > 0 else None


def written_in_place(g: Any) -> None:
    """After tiling (the final layouts): zero the layout layers the rules above make free,
    each noted and marked in its program metadata (``shared_with`` / ``written_by``)."""
    by_name = {n.name: n for n in g.nodes}
    x_of = {g.nodes[op.node].name: op.x for op in g.ops if op.x_shared}
    first_of: dict[str, str] = {}        # shared input tensor -> the layer counting it
    layout_of: dict[str, str] = {}       # host writer -> the layout layer it writes
    for n in g.nodes:
        if n.is_gemm or n.kind not in ("im2col", "pad") or not n.out_elements:
            continue
        shared = x_of.get(n.attrs.get("gemm"))
        if shared and shared in first_of:
            n.out_elements = 0
            n.attrs["host_meta"] = {"shared_with": first_of[shared]}
            n.notes = [f"the input {first_of[shared]} lays out (one tensor)"]
            continue
        if shared:
            first_of[shared] = n.name
        in_place = n.kind == "pad" or n.attrs.get("identity")   # one-to-one layouts
        w = _writer(by_name, n.inputs[0]) if in_place and n.inputs else None
        if w is None or w.name in layout_of:
            continue
        layout_of[w.name] = n.name
        n.out_elements = 0
        n.attrs["host_meta"] = {"written_by": w.name}
        n.notes = [f"{w.name} writes its output in this layout"]
