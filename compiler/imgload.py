"""Implicit im2col: a convolution reads its GEMM rows from the input image with strided LOADs.

The core has no im2col unit, so a convolution's ``X[P, K]`` (``P = B*OH*OW`` output pixels,
``K = KH*KW*C`` in (tap, channel) order) is otherwise written by the host, ``KH*KW / (stride
** 2)`` times the input (nine times for a 3x3 convolution at stride 1). But every K tile the
array reads is ``kp`` consecutive channels of *one* tap whenever ``C`` is a multiple of
``kp``, and an activation LOAD reads ``count`` entries at a fixed DRAM stride. So the host
only writes the **zero-padded input image** (``B x (H+pt+pb) x (W+pl+pr)`` pixels of ``C``
channels, in the activation entry format, ``C / kp`` entries per pixel) and the schedule
loads K tile ``ka`` (tap ``(dy, dx)``, channel entry ``e``) of output rows ``p0 .. p0+c-1``
with one LOAD per output-image row they cover::

    pixel(b, oh, ow) = (b*Hp + oh*sh + dy*dh) * Wp + ow*sw + dx*dw
    LOAD ACT count=<pixels of that output row> dram_addr=pixel*pix_beats + e*entry_beats
         dram_stride=sw*pix_beats

The array, the accumulators and the numerics are unchanged (the entries loaded are the
im2col rows, bit for bit); the host writes ``B*Hp*Wp*C`` elements instead of ``P*K`` and the
DRAM image holds the image, not its im2col. Used (option ``implicit_im2col``) for
ungrouped convolutions whose padded image is smaller than their im2col, whose ``C`` is a
multiple of the chosen tiling's ``kp`` (GEMMs in passes too: their passes share each
activation tile, so they read the image alike); the others keep
the host-written im2col (e.g. a 7x7 stem on 3 channels, 1x1 convolutions).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ConvGeom", "geometry_of", "image_tensor", "finalise", "image_of", "stored_interior"]


def image_tensor(x: str) -> str:
    """Key of the padded image of input tensor ``x`` in the compiler's data (with data)."""
    return f"{x}@image"


@dataclass(frozen=True)
class ConvGeom:
    """Geometry of an NHWC convolution input (batch ``B``, ``H x W`` pixels of ``C``)."""

    B: int
    H: int
    W: int
    C: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    dh: int = 1
    dw: int = 1
    pt: int = 0
    pl: int = 0
    pb: int = 0
    pr: int = 0

    @property
    def Hp(self) -> int:    # noqa: N802 - the usual names
        return self.H + self.pt + self.pb

    @property
    def Wp(self) -> int:    # noqa: N802
        return self.W + self.pl + self.pr

    @property
    def OH(self) -> int:    # noqa: N802
        return (self.Hp - self.dh * (self.kh - 1) - 1) // self.sh + 1

    @property
    def OW(self) -> int:    # noqa: N802
        return (self.Wp - self.dw * (self.kw - 1) - 1) // self.sw + 1

    @property
    def P(self) -> int:     # noqa: N802
        return self.B * self.OH * self.OW

    @property
    def K(self) -> int:     # noqa: N802
        return self.kh * self.kw * self.C

    @property
    def pixels(self) -> int:
        """Pixels of the padded image (rows of its DRAM tensor)."""
        return self.B * self.Hp * self.Wp

    def padded(self, x: np.ndarray) -> np.ndarray:
        """NHWC ``x`` -> the zero-padded image as ``[pixels, C]``."""
        xp = np.pad(np.asarray(x).reshape(self.B, self.H, self.W, self.C),
                    ((0, 0), (self.pt, self.pb), (self.pl, self.pr), (0, 0)))
        return xp.reshape(self.pixels, self.C)

    def im2col(self, x: np.ndarray) -> np.ndarray:
        """NHWC ``x`` -> ``X[P, K]`` with ``K`` in (tap, channel) order."""
        xp = self.padded(x).reshape(self.B, self.Hp, self.Wp, self.C)
        cols = [xp[:, dy * self.dh:dy * self.dh + self.sh * (self.OH - 1) + 1:self.sh,
                   dx * self.dw:dx * self.dw + self.sw * (self.OW - 1) + 1:self.sw, :]
                for dy in range(self.kh) for dx in range(self.kw)]
        return np.concatenate(cols, axis=3).reshape(self.P, self.K)

    def worth_it(self) -> bool:
        """Whether the padded image is smaller than the im2col the host would write."""
        return self.pixels * self.C < self.P * self.K

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - frozen geometries, few chunks each
    def row_segments(self, p0: int, count: int) -> tuple[tuple[int, int, int], ...]:
        """``(first row offset, rows, first pixel at tap (0, 0))`` per output-image row
        that output rows ``p0 .. p0+count-1`` cover."""
        return tuple((r, n, (b * self.Hp + y * self.sh) * self.Wp + x * self.sw)
                     for r, n, b, y, x in _runs(p0, count, self.OH, self.OW))

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - frozen geometries, few chunks each
    def stored_rows(self, p0: int, count: int) -> tuple[tuple[int, int, int], ...]:
        """``(first row offset, rows, padded-image pixel)`` per image row that pixels
        ``p0 .. p0+count-1`` of the unpadded image (raster order) cover: where a GEMM
        whose output is this image stores those rows."""
        return tuple((r, n, (b * self.Hp + y + self.pt) * self.Wp + x + self.pl)
                     for r, n, b, y, x in _runs(p0, count, self.H, self.W))

    def last_input_row(self, p: int) -> int:
        """The last row of the unpadded image (pixels in raster order) that output rows
        ``0 .. p`` read."""
        b, rem = divmod(p, self.OH * self.OW)
        h = min(self.H - 1, rem // self.OW * self.sh + (self.kh - 1) * self.dh - self.pt)
        return b * self.H * self.W + max(h, 0) * self.W + self.W - 1

    def loads(self, p0: int, count: int, ka: int, kp: int, entry_beats: int
              ) -> list[tuple[int, int, int, int]]:
        """``(first row offset, rows, dram beat offset, dram stride)`` per LOAD of K tile
        ``ka`` for output rows ``p0 .. p0+count-1`` (one per output-image row covered)."""
        per_pix = self.C // kp
        pix_beats = per_pix * entry_beats
        tap, e = divmod(ka, per_pix)
        dy, dx = divmod(tap, self.kw)
        shift = (dy * self.dh * self.Wp + dx * self.dw) * pix_beats + e * entry_beats
        stride = self.sw * pix_beats
        return [(r, n, pix * pix_beats + shift, stride)
                for r, n, pix in self.row_segments(p0, count)]


def _runs(p0: int, count: int, h: int, w: int) -> list[tuple[int, int, int, int, int]]:
    """Rows ``p0 .. p0+count-1`` of ``[images, h, w]`` in raster order split at image-row
    ends: ``(offset from p0, rows, image, y, first x)`` per run."""
    out = []
    p, end = p0, p0 + count
    while p < end:
        b, rem = divmod(p, h * w)
        y, x = divmod(rem, w)
        n = min(w - x, end - p)
        out.append((p - p0, n, b, y, x))
        p += n
    return out


def stored_interior(meta: dict[str, Any]) -> tuple[tuple[int, int, int], tuple[slice, ...]]:
    """``(images, Hp, Wp)`` and the index of the interior pixels of an output stored into a
    padded image (the allocation's ``meta["image"]`` and ``meta["interior"]``)."""
    b, hp, wp, _ = meta["image"]
    top, left, h, w = meta["interior"]
    return (b, hp, wp), (slice(None), slice(top, top + h), slice(left, left + w))


def geometry_of(layer: Any) -> ConvGeom | None:
    """The :class:`ConvGeom` of a convolution layer (a workload ``Layer`` or a reference
    graph layer), ``None`` for anything else."""
    if layer is None or getattr(layer, "kind", None) != "conv":
        return None
    geom = getattr(layer, "conv_geometry", None)
    if callable(geom):
        return geom()
    from sparsa.workloads.ops import _pads, _pair
    shapes = getattr(layer, "in_shapes", None)
    attrs = getattr(layer, "attrs", None) or {}
    if not shapes or len(shapes[0]) != 4 or "kernel" not in attrs:
        return None
    b, c, h, w = (int(v) for v in shapes[0])
    kh, kw = _pair(attrs["kernel"], "kernel")
    sh, sw = _pair(attrs.get("stride", 1), "stride")
    dh, dw = _pair(attrs.get("dilation", 1), "dilation")
    pt, pl, pb, pr = _pads(attrs.get("pads", 0))
    return ConvGeom(b, h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr)


def image_of(op: Any) -> ConvGeom | None:
    """``op``'s image geometry when its tiling reads X from the image: ``C`` a multiple of
    the tiling's ``kp`` (else ``None``: X is the im2col)."""
    geo, t = op.image, op.tiling
    if geo is None or t is None or geo.C % t.kp:
        return None
    return geo


def finalise(g: Any) -> None:
    """After tiling: keep implicit im2col for the GEMMs whose tiling allows it (``C`` a
    multiple of ``kp``); their host layer writes the padded image."""
    by_name = {n.name: n for n in g.nodes}
    for op in g.ops:
        if op.image is None:
            continue
        geo = op.image = image_of(op)
        if geo is None:
            continue
        op.tiling.notes.append(f"implicit im2col: X read from the padded {geo.Hp}x{geo.Wp}"
                               f"x{geo.C} image, a LOAD per output row")
        host = by_name.get(f"{g.nodes[op.node].name}.im2col")
        if host is not None and host.kind == "im2col":
            host.name, host.kind = f"{g.nodes[op.node].name}.pad", "pad"
            host.out_elements = geo.pixels * geo.C
            host.notes = [f"host writes the zero-padded input image ({geo.pixels} pixels); "
                          f"the core reads its im2col rows with strided LOADs"]
