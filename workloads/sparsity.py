"""Sparsity specifications and mask generators.

Conventions (see ``DESIGN.md``): a GEMM is ``Y[P, Q] = X[P, K] @ W[K, Q]`` and weight
matrices are ``W[K, Q]``. N:M sparsity is along ``K`` (axis 0) by default: every column ``q``
keeps at most ``n`` non-zeros in each aligned window of ``m`` consecutive ``k`` (a partial
last window also keeps at most ``n``). The backward-data GEMM ``dX = dY @ W.T`` reduces over
``Q``, so a backward mask is N:M along axis 1 (``Q``).

Textual forms accepted by :meth:`SparsitySpec.parse` (``str(spec)`` gives them back):

``dense``
    keep everything.
``2:4``, ``1:8``, ``2:8@q``
    N:M along ``K`` (``@k``, the default) or along ``Q`` (``@q``).
``block16x16:0.5``
    blocks of ``16 x 16`` over ``(K, Q)``; keep the fraction ``0.5`` of blocks with the largest
    L1 magnitude.
``block16x16:0.5+1:16``
    hierarchical: the block mask, then N:M inside the kept blocks.
``unstructured:0.25``
    keep the fraction ``0.25`` of weights with the largest magnitude, anywhere (the same
    spec as ``block1x1:0.25``, which prints as ``unstructured:0.25``).
``fwd=2:8,bwd=2:8,method=bimask``
    bidirectional (sparse training): a forward mask (N:M along ``K``) and a backward mask
    (N:M along ``Q``) made by ``method``: ``bimask`` (optional ``candidates=100``),
    ``transposable`` (optional ``solver=exact|greedy``), ``forward-only`` (backward uses
    dense ``W``) or ``dense`` (dense training baseline).

Per-layer rules: :meth:`SparsityPlan.parse` reads ``"conv1=dense;fc*=dense;*=2:4"``.

Mask generators (:func:`make_masks`) are vectorised numpy and deterministic for a seed.
"""

from __future__ import annotations

import fnmatch
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sparsa.workloads.errors import WorkloadError

__all__ = [
    "BIDIR_METHODS",
    "BlockFit",
    "DENSE",
    "MaskResult",
    "SparsityError",
    "SparsityPlan",
    "SparsitySpec",
    "bimask",
    "block_mask",
    "check_nm",
    "make_masks",
    "mask_stats",
    "nm_mask",
    "split_plans",
    "transposable_mask",
]


class SparsityError(WorkloadError):
    """A bad sparsity spec, plan or mask request; the message is one line."""


BIDIR_METHODS = ("bimask", "transposable", "forward-only", "dense")
TRANSPOSABLE_SOLVERS = ("exact", "greedy")
DEFAULT_CANDIDATES = 100
#: Most Bi-Mask permutation candidates (each is a K x Q mask evaluation).
MAX_CANDIDATES = 100_000
_MAX_M = 1024
_AXES = {"k": 0, "q": 1}

# ---------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparsitySpec:
    """How one weight matrix ``W[K, Q]`` is sparsified (immutable, hashable).

    Build one with :meth:`parse` (or the constructors :meth:`nm`, :meth:`block_nm`,
    :meth:`bidirectional`); ``str(spec)`` prints the text that parses back to it.

    Parameters
    ----------
    n, m : int or None
        N:M pattern (``None`` when there is none).
    axis : {"k", "q"}
        Axis of the N:M windows: ``"k"`` (axis 0, forward reduction) or ``"q"`` (axis 1).
    block : tuple of int or None
        Block shape ``(bk, bq)`` over ``(K, Q)`` for block sparsity.
    block_density : float or None
        Fraction of blocks kept, in ``(0, 1]``.
    fwd, bwd : SparsitySpec or None
        Forward and backward specs of a bidirectional spec.
    method : str or None
        Bidirectional method, one of :data:`BIDIR_METHODS`.
    candidates : int or None
        Bi-Mask: number of Q permutations tried (identity included).
    solver : str or None
        Transposable: ``"exact"`` (min-cost flow, the default) or ``"greedy"`` (~10x
        faster, keeps ~2% less magnitude).

    Notes
    -----
    ``n``/``m`` are ``None`` for dense, block-only and bidirectional specs; the per-GEMM
    views :attr:`forward` and :attr:`backward` give a bidirectional spec's N:M
    (``spec.forward.n``). :attr:`density` is nominal; measure masks with :func:`mask_stats`
    (a Bi-Mask backward mask keeps fewer than ``n`` in windows with few forward survivors).
    """

    n: int | None = None
    m: int | None = None
    axis: str = "k"
    block: tuple[int, int] | None = None
    block_density: float | None = None
    fwd: SparsitySpec | None = None
    bwd: SparsitySpec | None = None
    method: str | None = None
    candidates: int | None = None
    solver: str | None = None

    def __post_init__(self) -> None:
        for name in ("n", "m", "candidates"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                    raise SparsityError(f"{name} must be an integer, not {v!r}")
                object.__setattr__(self, name, int(v))
        if self.block is not None:
            blk = tuple(self.block)
            if len(blk) != 2 or not all(isinstance(b, numbers.Integral) for b in blk):
                raise SparsityError(f"block must be two integers (bk, bq), not {self.block!r}")
            object.__setattr__(self, "block", (int(blk[0]), int(blk[1])))
        if self.block_density is not None:
            object.__setattr__(self, "block_density", float(self.block_density))
        if (self.n is None) != (self.m is None):
            raise SparsityError("N:M needs both n and m")
        if self.m is not None:
            _check_nm(self.n, self.m, f"{self.n}:{self.m}")
        if self.axis not in _AXES:
            raise SparsityError(f"N:M axis must be 'k' or 'q', not {self.axis!r}")
        if (self.block is None) != (self.block_density is None):
            raise SparsityError("block sparsity needs both a block shape and a density")
        if self.block is not None:
            bk, bq = self.block
            if bk < 1 or bq < 1:
                raise SparsityError(f"block sides must be >= 1, not {bk}x{bq}")
            if not 0.0 < self.block_density <= 1.0:
                raise SparsityError(
                    f"block density must be in (0, 1], not {self.block_density!r}")
        if self.method is not None:
            if self.method not in BIDIR_METHODS:
                raise SparsityError(
                    f"method must be one of {'|'.join(BIDIR_METHODS)}, not {self.method!r}")
            if self.fwd is None or self.bwd is None:
                raise SparsityError("a bidirectional spec needs fwd=, bwd= and method=")
            if self.n is not None or self.block is not None:
                raise SparsityError("a bidirectional spec takes its pattern from fwd= and bwd=")
            for side in (self.fwd, self.bwd):
                if side.method is not None:
                    raise SparsityError("fwd= and bwd= cannot themselves be bidirectional")
            if self.method in ("bimask", "transposable"):
                f, b = self.fwd, self.bwd
                if f.kind != "nm" or f.axis != "k":
                    raise SparsityError(
                        f"method={self.method} needs fwd=N:M along k (e.g. 2:8), not {f}")
                if b.kind != "nm" or b.axis != "q":
                    raise SparsityError(
                        f"method={self.method} needs bwd=N:M (along q, e.g. 2:8), not {b}")
            if self.method == "transposable" and (self.fwd.n, self.fwd.m) != (
                    self.bwd.n, self.bwd.m):
                raise SparsityError(
                    f"method=transposable needs equal fwd and bwd N:M, not "
                    f"{self.fwd.n}:{self.fwd.m} and {self.bwd.n}:{self.bwd.m}")
            if self.candidates is not None and self.method != "bimask":
                raise SparsityError("candidates= applies only to method=bimask")
            if self.candidates is not None and self.candidates < 1:
                raise SparsityError(f"candidates must be >= 1, not {self.candidates}")
            if self.candidates is not None and self.candidates > MAX_CANDIDATES:
                raise SparsityError(f"candidates must be at most {MAX_CANDIDATES}, "
                                    f"not {self.candidates}")
            if self.solver is not None and self.method != "transposable":
                raise SparsityError("solver= applies only to method=transposable")
            if self.solver is not None and self.solver not in TRANSPOSABLE_SOLVERS:
                raise SparsityError(
                    f"solver must be one of {'|'.join(TRANSPOSABLE_SOLVERS)}, "
                    f"not {self.solver!r}")
        elif self.fwd is not None or self.bwd is not None:
            raise SparsityError("fwd= and bwd= need method=")
        elif self.candidates is not None or self.solver is not None:
            raise SparsityError("candidates= and solver= belong to a bidirectional spec")

    # -- constructors -----------------------------------------------------------------

    @classmethod
    def dense(cls) -> SparsitySpec:
        """The dense spec (keep everything)."""
        return cls()

    @classmethod
    def nm(cls, n: int, m: int, axis: str = "k") -> SparsitySpec:
        """N:M along ``axis`` (``"k"`` or ``"q"``)."""
        return cls(n=n, m=m, axis=axis)

    @classmethod
    def block_nm(cls, bk: int, bq: int, density: float, n: int | None = None,
                 m: int | None = None, axis: str = "k") -> SparsitySpec:
        """Block sparsity, optionally followed by N:M inside the kept blocks."""
        return cls(n=n, m=m, axis=axis, block=(bk, bq), block_density=float(density))

    @classmethod
    def bidirectional(cls, fwd: SparsitySpec | str, bwd: SparsitySpec | str, method: str,
                      *, candidates: int | None = None,
                      solver: str | None = None) -> SparsitySpec:
        """A forward and a backward spec joined by ``method`` (see :data:`BIDIR_METHODS`)."""
        f = cls.parse(fwd) if isinstance(fwd, str) else fwd
        b = _as_backward(cls.parse(bwd) if isinstance(bwd, str) else bwd)
        return cls(fwd=f, bwd=b, method=method, candidates=candidates, solver=solver)

    @classmethod
    def parse(cls, text: str | SparsitySpec) -> SparsitySpec:
        """Parse the textual form (see the module docstring); one-line errors."""
        if isinstance(text, SparsitySpec):
            return text
        if not isinstance(text, str):
            raise SparsityError(f"sparsity spec must be a string, not {type(text).__name__}")
        s = text.strip().lower()
        if not s:
            raise SparsityError("empty sparsity spec; use dense, N:M (2:4, 2:8@q), "
                                "blockBKxBQ:D, blockBKxBQ:D+N:M or fwd=..,bwd=..,method=..")
        if "=" in s or "," in s:
            return _parse_bidir(s, text)
        return _parse_simple(s, text)

    # -- properties -------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """One of ``dense``, ``nm``, ``block``, ``hierarchical``, ``bidirectional``."""
        if self.method is not None:
            return "bidirectional"
        if self.block is not None:
            return "hierarchical" if self.n is not None else "block"
        return "nm" if self.n is not None else "dense"

    @property
    def is_dense(self) -> bool:
        """True when every weight is kept in both directions."""
        if self.method is not None:
            return self.method == "dense" or (self.method == "forward-only"
                                              and self.fwd.is_dense)
        return self.n is None and self.block is None

    @property
    def density(self) -> float:
        """Nominal fraction of weights kept (forward GEMM for a bidirectional spec)."""
        if self.method is not None:
            return self.forward.density
        d = 1.0
        if self.block is not None:
            d *= self.block_density
        if self.n is not None:
            d *= self.n / self.m
        return d

    def block_fits(self, k: int, q: int) -> bool:
        """Whether the spec's block (if any) fits ``W[k, q]``; a block larger than a layer is
        skipped on that layer (the compiler notes it), so the layer keeps only its N:M."""
        spec = self.forward
        return spec.block is None or (spec.block[0] <= k and spec.block[1] <= q)

    def density_on(self, k: int, q: int) -> float:
        """Nominal forward density on a layer with ``W[k, q]``: :attr:`density`, without the
        block factor when the block does not fit the layer (as the compiler does)."""
        spec = self.forward
        if self.block_fits(k, q):
            return spec.density
        return spec.n / spec.m if spec.n is not None else 1.0

    @property
    def forward(self) -> SparsitySpec:
        """The spec whose mask the forward GEMM ``Y = X W`` uses."""
        if self.method is None:
            return self
        return DENSE if self.method == "dense" else self.fwd

    @property
    def backward(self) -> SparsitySpec:
        """The spec of the backward-data GEMM ``dX = dY W^T`` (N:M along ``q``, or dense).

        Non-bidirectional specs train forward-only: the backward GEMM uses dense ``W``.
        """
        if self.method in ("bimask", "transposable"):
            return self.bwd
        return DENSE

    @property
    def nominal_bwd_density(self) -> float:
        """Nominal density of the backward-data GEMM's weights."""
        return self.backward.density

    def __str__(self) -> str:
        if self.method is not None:
            parts = [f"fwd={self.fwd}", f"bwd={_bwd_str(self.bwd)}", f"method={self.method}"]
            if self.candidates is not None:
                parts.append(f"candidates={self.candidates}")
            if self.solver is not None:
                parts.append(f"solver={self.solver}")
            return ",".join(parts)
        nm = None
        if self.n is not None:
            nm = f"{self.n}:{self.m}" + ("@q" if self.axis == "q" else "")
        if self.block == (1, 1) and nm is None:
            return f"unstructured:{self.block_density!r}"
        if self.block is not None:
            b = f"block{self.block[0]}x{self.block[1]}:{self.block_density!r}"
            return b + (f"+{nm}" if nm else "")
        return nm or "dense"


DENSE = SparsitySpec()

_NM_RE = re.compile(r"^(\d+):(\d+)(?:@([a-z]+))?$")
_BLOCK_RE = re.compile(r"^block(\d+)x(\d+):([0-9.eE+-]+)$")
_UNSTRUCTURED_RE = re.compile(r"^unstructured:([0-9.eE+-]+)$")
_FORMS = ("dense, N:M (2:4, 2:8@q), blockBKxBQ:D, blockBKxBQ:D+N:M, unstructured:D, "
          "fwd=..,bwd=..,method=..")


def _check_nm(n: Any, m: Any, text: str) -> None:
    if not isinstance(n, numbers.Integral) or not isinstance(m, numbers.Integral):
        raise SparsityError(f"N:M needs integers, not {text!r}")
    if m < 2 or m > _MAX_M or m & (m - 1):
        raise SparsityError(f"{text}: m must be a power of two in 2..{_MAX_M}, not {m}")
    if not 1 <= n <= m:
        raise SparsityError(f"{text}: n must be in 1..m={m}, not {n}")


def _parse_nm(s: str, text: str) -> tuple[int, int, str]:
    mo = _NM_RE.match(s)
    if not mo:
        raise SparsityError(f"bad N:M {s!r} in {text!r}; write N:M or N:M@q, e.g. 2:4, 2:8@q")
    n, m, axis = int(mo.group(1)), int(mo.group(2)), mo.group(3) or "k"
    if axis not in _AXES:
        raise SparsityError(f"N:M axis must be k or q, not {axis!r} in {text!r}")
    _check_nm(n, m, s)
    return n, m, axis


def _parse_simple(s: str, text: str) -> SparsitySpec:
    if s == "dense":
        return DENSE
    if s.startswith("unstructured"):
        mo = _UNSTRUCTURED_RE.match(s)
        if not mo:
            raise SparsityError(f"bad unstructured spec {text!r}; write unstructured:DENSITY, "
                                f"e.g. unstructured:0.25")
        try:
            d = float(mo.group(1))
        except ValueError:
            raise SparsityError(f"bad density {mo.group(1)!r} in {text!r}") from None
        if not 0.0 < d <= 1.0:
            raise SparsityError(f"unstructured density must be in (0, 1], not {d!r}")
        return SparsitySpec.block_nm(1, 1, d)
    if s.startswith("block"):
        head, plus, tail = s.partition("+")
        mo = _BLOCK_RE.match(head)
        if not mo:
            raise SparsityError(
                f"bad block spec {head!r} in {text!r}; write blockBKxBQ:DENSITY, "
                "e.g. block16x16:0.5")
        bk, bq = int(mo.group(1)), int(mo.group(2))
        try:
            d = float(mo.group(3))
        except ValueError:
            raise SparsityError(f"bad block density {mo.group(3)!r} in {text!r}") from None
        if plus:
            n, m, axis = _parse_nm(tail, text)
            return SparsitySpec.block_nm(bk, bq, d, n, m, axis)
        return SparsitySpec.block_nm(bk, bq, d)
    if ":" in s:
        n, m, axis = _parse_nm(s, text)
        return SparsitySpec.nm(n, m, axis)
    raise SparsityError(f"unknown sparsity spec {text!r}; allowed: {_FORMS}")


def _as_backward(b: SparsitySpec) -> SparsitySpec:
    """A backward spec written ``2:8`` means N:M along ``q`` (the backward reduction axis)."""
    if b.kind == "nm" and b.axis == "k":
        return SparsitySpec.nm(b.n, b.m, "q")
    return b


def _bwd_str(b: SparsitySpec) -> str:
    if b.kind == "nm" and b.axis == "q":
        return f"{b.n}:{b.m}"
    if b.kind == "nm":
        raise SparsityError("internal: backward N:M along k cannot be printed")
    return str(b)


def _parse_bidir(s: str, text: str) -> SparsitySpec:
    fields: dict[str, str] = {}
    for part in s.split(","):
        key, eq, val = part.partition("=")
        key, val = key.strip(), val.strip()
        if not eq or not val:
            if "=" not in s:    # '2:4,1:8': a list of patterns where one plan is expected
                raise SparsityError(
                    f"{text!r} lists several patterns where one sparsity plan is expected "
                    f"(compare and limits take comma-separated lists); a bidirectional spec "
                    f"is written fwd=N:M,bwd=N:M,method={'|'.join(BIDIR_METHODS)}")
            raise SparsityError(
                f"bad field {part!r} in {text!r}; write fwd=N:M,bwd=N:M,method="
                f"{'|'.join(BIDIR_METHODS)}")
        if key not in ("fwd", "bwd", "method", "candidates", "solver"):
            raise SparsityError(
                f"unknown field {key!r} in {text!r}; allowed: fwd, bwd, method, "
                "candidates, solver")
        if key in fields:
            raise SparsityError(f"field {key!r} given twice in {text!r}")
        fields[key] = val
    for key in ("fwd", "bwd", "method"):
        if key not in fields:
            raise SparsityError(f"bidirectional spec {text!r} lacks {key}=")
    fwd = _parse_simple(fields["fwd"], text)
    bwd_raw = _parse_simple(fields["bwd"], text)
    if "@k" in fields["bwd"]:
        raise SparsityError(f"bwd= N:M is along q (the backward reduction axis), not k: {text!r}")
    cand = None
    if "candidates" in fields:
        try:
            cand = int(fields["candidates"])
        except ValueError:
            raise SparsityError(
                f"candidates must be an integer >= 1, not {fields['candidates']!r}") from None
    return SparsitySpec(fwd=fwd, bwd=_as_backward(bwd_raw), method=fields["method"],
                        candidates=cand, solver=fields.get("solver"))


def split_plans(text: str) -> list[str]:
    """Split a comma-separated list of sparsity plans (``--sparsity dense,2:4,...``).

    A bidirectional spec keeps its own commas: ``dense,fwd=2:8,bwd=2:8,method=bimask``
    is two plans, ``dense`` and ``fwd=2:8,bwd=2:8,method=bimask`` (a piece starting with
    ``bwd=``, ``method=``, ``candidates=`` or ``solver=`` continues the one before it).
    """
    plans: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if plans and piece.lower().startswith(("bwd=", "method=", "candidates=", "solver=")):
            plans[-1] += "," + piece
        else:
            plans.append(piece)
    return plans


@dataclass(frozen=True)
class SparsityPlan:
    """Per-layer sparsity rules: fnmatch patterns on layer names, first match wins.

    ``SparsityPlan.parse("conv1=dense;fc*=dense;*=2:4")``; layers that match no rule are
    dense. A rule without a pattern (``"2:4"``, ``"fwd=2:8,bwd=2:8,method=bimask"``)
    applies to every layer (``*``).
    """

    rules: tuple[tuple[str, SparsitySpec], ...] = ()

    @classmethod
    def parse(cls, text: str | SparsitySpec | SparsityPlan) -> SparsityPlan:
        """Parse ``PATTERN=SPEC;PATTERN=SPEC;...`` (one-line errors)."""
        if isinstance(text, SparsityPlan):
            return text
        if isinstance(text, SparsitySpec):
            return cls((("*", text),))
        rules = []
        for raw in str(text).split(";"):
            rule = raw.strip()
            if not rule:
                continue
            if "=" not in rule or rule.lower().startswith(("fwd=", "bwd=", "method=")):
                pattern, spec_text = "*", rule
            else:
                pattern, _, spec_text = rule.partition("=")
                pattern = pattern.strip()
                if not pattern:
                    raise SparsityError(f"empty layer pattern in rule {rule!r}")
            if any(p == "*" for p, _ in rules):     # first match wins: never reached
                what = "a second rule for every layer" if pattern == "*" else \
                    f"rule {rule!r} comes after the rule for every layer ('*') and"
                raise SparsityError(
                    f"sparsity plan {text!r}: {what} would never apply (the first matching "
                    f"rule wins; put the specific rules first, e.g. 'conv1=dense;*=2:4'; "
                    f"compare, limits and sweeps take several plans as a list)")
            rules.append((pattern, SparsitySpec.parse(spec_text)))
        if not rules:
            raise SparsityError("empty sparsity plan; write e.g. 'conv1=dense;*=2:4'")
        return cls(tuple(rules))

    @classmethod
    def uniform(cls, spec: SparsitySpec | str) -> SparsityPlan:
        """The same spec for every layer."""
        return cls((("*", SparsitySpec.parse(spec)),))

    @classmethod
    def dense_ends(cls, spec: SparsitySpec | str, layer_names: Sequence[str]) -> SparsityPlan:
        """``spec`` everywhere except the first and last layers (first conv, classifier).

        ``layer_names`` lists the weight layers in network order.
        """
        names = list(layer_names)
        rules: list[tuple[str, SparsitySpec]] = []
        for name in (names[:1] + names[-1:]):
            rules.append((_escape(name), DENSE))
        rules.append(("*", SparsitySpec.parse(spec)))
        return cls(tuple(rules))

    def spec_for(self, layer_name: str) -> SparsitySpec:
        """The spec of the first rule whose pattern matches ``layer_name`` (dense if none)."""
        for pattern, spec in self.rules:
            if fnmatch.fnmatchcase(layer_name, pattern):
                return spec
        return DENSE

    def check_matches(self, layer_names: Iterable[str], what: str = "the workload") -> None:
        """Raise :class:`SparsityError` when the plan has non-dense rules but none of its
        rules matches any of ``layer_names`` (a typo such as ``conv99=2:4``, which would
        silently leave everything dense)."""
        names = list(dict.fromkeys(layer_names))
        if not names or all(sp.kind == "dense" for _, sp in self.rules):
            return
        if any(fnmatch.fnmatchcase(n, p) for p, _ in self.rules for n in names):
            return
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise SparsityError(f"sparsity {str(self)!r}: no rule matches a GEMM layer of {what} "
                            f"(everything would run dense); layers: {shown}")

    def assign(self, layer_names: Iterable[str]) -> dict[str, SparsitySpec]:
        """``{name: spec}`` for every layer name."""
        return {name: self.spec_for(name) for name in layer_names}

    def __str__(self) -> str:
        return ";".join(f"{p}={s}" for p, s in self.rules)


def _escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


# ---------------------------------------------------------------------------------------
# Mask generators
# ---------------------------------------------------------------------------------------


def _as_weight(w: Any) -> np.ndarray:
    a = np.asarray(w)
    if a.ndim != 2:
        raise SparsityError(f"weights must be a 2-D W[K, Q] matrix, not shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise SparsityError(f"weights must be numeric, not {a.dtype}")
    return a


def _topn_windows(score: np.ndarray, n: int, m: int) -> np.ndarray:
    """Boolean mask keeping the top-``n`` of ``score`` in aligned ``m``-windows along axis 0.

    Ties go to the lower index. ``score`` must be ``>= 0`` (padding uses ``-1``).
    """
    k, q = score.shape
    kp = -(-k // m) * m
    if kp != k:
        score = np.concatenate([score, np.full((kp - k, q), -1.0, score.dtype)], axis=0)
    win = score.reshape(kp // m, m, q)
    if n >= m:
        keep = np.ones(win.shape, bool)
    else:
        order = np.argsort(-win, axis=1, kind="stable")[:, :n, :]
        keep = np.zeros(win.shape, bool)
        np.put_along_axis(keep, order, True, axis=1)
    return keep.reshape(kp, q)[:k]


def nm_mask(w: Any, n: int, m: int, axis: int | str = 0) -> np.ndarray:
    """Magnitude N:M mask: top-``n`` ``|w|`` in each aligned window of ``m`` along ``axis``.

    Parameters
    ----------
    w : array_like, shape (K, Q)
        Weights.
    n, m : int
        Keep at most ``n`` of every ``m`` (a partial last window keeps at most ``n``).
    axis : int or {"k", "q"}
        0/``"k"`` (default) or 1/``"q"``.

    Returns
    -------
    numpy.ndarray of bool, shape (K, Q)
    """
    a = _as_weight(w)
    _check_nm(n, m, f"{n}:{m}")
    ax = _AXES[axis] if isinstance(axis, str) else int(axis)
    if ax not in (0, 1):
        raise SparsityError(f"axis must be 0/'k' or 1/'q', not {axis!r}")
    score = np.abs(a).astype(np.float64, copy=False)
    if ax == 0:
        return _topn_windows(score, n, m)
    return _topn_windows(score.T, n, m).T


def check_nm(mask: Any, n: int, m: int, axis: int | str = 0) -> bool:
    """True if ``mask`` keeps at most ``n`` in every aligned ``m``-window along ``axis``."""
    a = np.asarray(mask, bool)
    ax = _AXES[axis] if isinstance(axis, str) else int(axis)
    if ax == 1:
        a = a.T
    k, q = a.shape
    kp = -(-k // m) * m
    if kp != k:
        a = np.concatenate([a, np.zeros((kp - k, q), bool)], axis=0)
    return bool((a.reshape(kp // m, m, q).sum(axis=1) <= n).all())


class BlockFit:
    """Whether every block spec fits at least one of the layers it applies to.

    A block larger than a layer is skipped on that layer (which keeps its N:M); one larger
    than every layer it applies to is a mistake in the spec. :meth:`add` each layer's
    ``W[k, q]`` under its spec, then :meth:`check`.
    """

    def __init__(self) -> None:
        # str(spec) -> [fits some layer, block, largest K, largest Q]
        self._fit: dict[str, list[Any]] = {}

    def add(self, spec: SparsitySpec, k: int, q: int) -> None:
        block = spec.forward.block
        if block is None:
            return
        fit = self._fit.setdefault(str(spec), [False, block, 0, 0])
        fit[0] |= spec.block_fits(k, q)
        fit[2], fit[3] = max(fit[2], k), max(fit[3], q)

    def check(self) -> None:
        """:class:`SparsityError` naming the first block that fits none of its layers."""
        for text, (fits, (bk, bq), k, q) in self._fit.items():
            if not fits:
                raise SparsityError(f"sparsity {text!r}: block {bk}x{bq} is larger than every "
                                    f"layer it applies to (largest W is [{k}, {q}] as K x Q); "
                                    f"use a block of at most that size")


def block_mask(w: Any, bk: int, bq: int, density: float) -> np.ndarray:
    """Block-magnitude mask: keep the ``density`` fraction of ``bk x bq`` blocks by L1 norm.

    Blocks tile ``(K, Q)`` from the origin; edge blocks may be partial. The number kept is
    ``round(density * blocks)`` (at least one); ties go to the lower block index.

    Raises
    ------
    SparsityError
        If the block is larger than the layer.
    """
    a = _as_weight(w)
    k, q = a.shape
    if bk > k or bq > q:
        raise SparsityError(
            f"block {bk}x{bq} is larger than the layer's W[K={k}, Q={q}]; "
            f"use blocks with bk <= {k} and bq <= {q}")
    if not 0.0 < density <= 1.0:
        raise SparsityError(f"block density must be in (0, 1], not {density!r}")
    nbk, nbq = -(-k // bk), -(-q // bq)
    pad = np.zeros((nbk * bk, nbq * bq))
    pad[:k, :q] = np.abs(a)
    mag = pad.reshape(nbk, bk, nbq, bq).sum(axis=(1, 3)).ravel()
    total = mag.size
    keep_n = max(1, min(total, math.floor(density * total + 0.5)))
    order = np.argsort(-mag, kind="stable")[:keep_n]
    keep = np.zeros(total, bool)
    keep[order] = True
    full = np.repeat(np.repeat(keep.reshape(nbk, nbq), bk, axis=0), bq, axis=1)
    return full[:k, :q]


def _blocks(score: np.ndarray, m: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Cut ``score[K, Q]`` (zero-padded) into ``[B, m, m]`` blocks; returns blocks, grid."""
    k, q = score.shape
    gk, gq = -(-k // m), -(-q // m)
    pad = np.zeros((gk * m, gq * m))
    pad[:k, :q] = score
    return pad.reshape(gk, m, gq, m).transpose(0, 2, 1, 3).reshape(-1, m, m), (gk, gq)


def _unblocks(blocks: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    gk, gq = grid
    m = blocks.shape[-1]
    full = blocks.reshape(gk, gq, m, m).transpose(0, 2, 1, 3).reshape(gk * m, gq * m)
    return full[: shape[0], : shape[1]]


def _transposable_greedy(blk: np.ndarray, n: int) -> np.ndarray:
    """Pick the heaviest entries while their row and column counts stay below ``n``."""
    b, m, _ = blk.shape
    order = np.argsort(-blk.reshape(b, m * m), axis=1, kind="stable")
    keep = np.zeros((b, m * m), bool)
    rows = np.zeros((b, m), np.int64)
    cols = np.zeros((b, m), np.int64)
    ar = np.arange(b)
    for t in range(m * m):
        idx = order[:, t]
        i, j = idx // m, idx % m
        ok = (rows[ar, i] < n) & (cols[ar, j] < n)
        keep[ar, idx] = ok
        rows[ar, i] += ok
        cols[ar, j] += ok
    return keep.reshape(b, m, m)


def _transposable_exact(blk: np.ndarray, n: int) -> np.ndarray:
    """Max-weight selection with at most ``n`` per row and column of every block.

    Min-cost flow (source -> row, capacity ``n``; row -> column, capacity 1, cost ``-w``;
    column -> sink, capacity ``n``) solved by successive shortest paths with Bellman-Ford,
    vectorised over all blocks at once: up to ``n*m`` augmentations of one unit each,
    stopping when the cheapest augmenting path no longer gains magnitude (so zero-padded
    edge blocks never force a real weight out).
    """
    b, m, _ = blk.shape
    w = blk.astype(np.float64)
    x = np.zeros((b, m, m), bool)
    rowflow = np.zeros((b, m), np.int64)
    colflow = np.zeros((b, m), np.int64)
    ar = np.arange(b)
    inf = np.inf
    for _ in range(n * m):
        # Distances from the source to rows (via S->row or col->row back edges) and columns.
        d_row = np.where(rowflow < n, 0.0, inf)
        pred_row = np.full((b, m), -1, np.int64)  # -1: reached from the source
        # Both relaxations reduce over the last (contiguous) axis: cost_t[b, j, i] is the
        # cost of row i -> col j on an unused edge, back[b, i, j] of col j -> row i.
        cost_t = np.where(x, inf, -w).transpose(0, 2, 1).copy()
        back = np.where(x, w, inf)
        d_col = np.full((b, m), inf)
        pred_col = np.zeros((b, m), np.int64)
        act = ar  # blocks whose row distances changed in the last round
        for _it in range(2 * m + 2):
            full = act.size == b
            c_t = cost_t if full else cost_t[act]
            bk = back if full else back[act]
            cand = d_row[act][:, None, :] + c_t               # [b', j, i]
            best_i = np.argmin(cand, axis=2)
            best = np.take_along_axis(cand, best_i[:, :, None], axis=2)[:, :, 0]
            dc = d_col[act]
            upd_c = best < dc - 1e-12
            dc = np.where(upd_c, best, dc)
            d_col[act] = dc
            pred_col[act] = np.where(upd_c, best_i, pred_col[act])
            cand_r = dc[:, None, :] + bk                      # [b', i, j]
            best_j = np.argmin(cand_r, axis=2)
            best_r = np.take_along_axis(cand_r, best_j[:, :, None], axis=2)[:, :, 0]
            dr = d_row[act]
            upd_r = best_r < dr - 1e-12
            d_row[act] = np.where(upd_r, best_r, dr)
            pred_row[act] = np.where(upd_r, best_j, pred_row[act])
            # A block whose rows did not change has converged: its columns were relaxed
            # from its final row distances.
            act = act[upd_r.any(axis=1)]
            if act.size == 0:
                break
        end = np.where(colflow < n, d_col, inf)
        j = np.argmin(end, axis=1)
        # Path costs never decrease: once adding a unit does not gain magnitude, the
        # block is done (at most n per row and column, not necessarily exactly n).
        active = end[ar, j] < -1e-12
        if not active.any():
            break
        colflow[ar[active], j[active]] += 1
        # Walk back: col j <- row i (use edge), row i <- col j' (free edge) ...
        for _step in range(m + 1):
            if not active.any():
                break
            i = pred_col[ar, j]
            x[ar[active], i[active], j[active]] = True
            pj = pred_row[ar, i]
            from_src = active & (pj < 0)
            rowflow[ar[from_src], i[from_src]] += 1
            active = active & (pj >= 0)
            x[ar[active], i[active], pj[active]] = False
            j = np.where(active, pj, j)
    return x


def transposable_mask(w: Any, n: int, m: int, solver: str = "exact") -> np.ndarray:
    """Transposable N:M mask: in every aligned ``m x m`` block of ``W[K, Q]``, at most ``n``
    per row and per column, so ``W`` is N:M along ``K`` and ``W.T`` along ``Q``.

    Parameters
    ----------
    solver : {"exact", "greedy"}
        ``"exact"`` maximises the kept ``|W|`` per block (min-cost flow, vectorised over
        blocks); ``"greedy"`` picks the heaviest entries while row and column counts stay
        below ``n`` (a 2-approximation, faster). Edge blocks are zero-padded.
    """
    a = _as_weight(w)
    _check_nm(n, m, f"{n}:{m}")
    if solver not in TRANSPOSABLE_SOLVERS:
        raise SparsityError(
            f"solver must be one of {'|'.join(TRANSPOSABLE_SOLVERS)}, not {solver!r}")
    blk, grid = _blocks(np.abs(a).astype(np.float64), m)
    if n >= m:
        keep = np.ones(blk.shape, bool)
    elif solver == "greedy":
        keep = _transposable_greedy(blk, n)
    else:
        keep = _transposable_exact(blk, n)
    return _unblocks(keep, grid, a.shape)


def bimask(w: Any, fwd: np.ndarray, n: int, m: int, candidates: int = DEFAULT_CANDIDATES,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bi-Mask backward mask for a forward mask, with a seeded permutation search over ``Q``.

    For a permutation ``p`` of the output channels, the backward mask keeps the top-``n``
    ``|W * fwd|`` in each aligned window of ``m`` consecutive permuted ``q`` of every
    ``k``-row, ANDed with the permuted forward mask, scattered back. The candidates are the
    identity and ``candidates - 1`` permutations from ``numpy.random.default_rng(seed)``;
    the one keeping the most forward weights wins (first on ties).

    Returns
    -------
    bwd : numpy.ndarray of bool, shape (K, Q)
        Backward mask, a subset of ``fwd``; ``bwd[:, perm]`` is N:M along ``Q``.
    perm : numpy.ndarray of int, shape (Q,)
        The winning permutation.
    survivors : numpy.ndarray of int, shape (candidates,)
        Surviving weights for each candidate (for reports).
    """
    a = _as_weight(w)
    _check_nm(n, m, f"{n}:{m}")
    fwd = np.asarray(fwd, bool)
    if fwd.shape != a.shape:
        raise SparsityError(f"forward mask shape {fwd.shape} differs from weights {a.shape}")
    if candidates < 1:
        raise SparsityError(f"candidates must be >= 1, not {candidates}")
    if candidates > MAX_CANDIDATES:
        raise SparsityError(f"candidates must be at most {MAX_CANDIDATES}, not {candidates}")
    k, q = a.shape
    rng = np.random.default_rng(seed)
    perms = np.empty((candidates, q), np.int64)
    perms[0] = np.arange(q)
    for c in range(1, candidates):
        perms[c] = rng.permutation(q)
    qp = -(-q // m) * m
    # A window keeps min(n, forward survivors in it), so the search only counts (no
    # sorting). Padding positions q..qp-1 point at an all-false row. Candidates go in
    # chunks to bound memory.
    fwd_t = np.zeros((qp, k), bool)
    fwd_t[:q] = fwd.T
    pad = np.broadcast_to(np.arange(q, qp), (candidates, qp - q))
    perms_p = np.concatenate([perms, pad], axis=1)
    chunk = max(1, (1 << 24) // max(1, k * qp))
    surv = np.empty(candidates, np.int64)
    for s in range(0, candidates, chunk):
        sel = fwd_t[perms_p[s:s + chunk]]                 # [C, Qp, K]
        counts = sel.reshape(sel.shape[0], qp // m, m, k).sum(axis=2, dtype=np.int16)
        surv[s:s + chunk] = np.minimum(counts, n).sum(axis=(1, 2), dtype=np.int64)
    best = int(np.argmax(surv))
    perm = perms[best]
    score = np.where(fwd, np.abs(a).astype(np.float64), -0.5)[:, perm]
    bwd_p = _topn_windows(score.T, n, m).T & fwd[:, perm]
    bwd = np.empty_like(bwd_p)
    bwd[:, perm] = bwd_p
    return bwd, perm, surv


@dataclass(frozen=True, eq=False)
class MaskResult:
    """Masks of one weight matrix ``W[K, Q]``.

    Attributes
    ----------
    spec : SparsitySpec
    fwd : numpy.ndarray of bool, shape (K, Q)
        Mask of the forward GEMM ``Y = X (W * fwd)``.
    bwd : numpy.ndarray of bool or None
        Mask applied to ``W`` for the backward-data GEMM ``dX = dY (W * bwd)^T``: equal to
        ``fwd`` for transposable masks, a subset of it for Bi-Mask, ``None`` when the
        backward GEMM uses dense ``W`` (forward-only, dense, non-bidirectional specs).
    perm : numpy.ndarray of int or None
        Bi-Mask's ``Q`` permutation: ``bwd[:, perm]`` is N:M along ``Q``; ``None`` otherwise.
    info : dict
        Generator facts (e.g. Bi-Mask survivors per candidate, solver used).
    """

    spec: SparsitySpec
    fwd: np.ndarray
    bwd: np.ndarray | None = None
    perm: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def bwd_or_dense(self) -> np.ndarray:
        """The backward mask, all-true when the backward GEMM uses dense ``W``."""
        return np.ones_like(self.fwd) if self.bwd is None else self.bwd


def _simple_mask(a: np.ndarray, spec: SparsitySpec) -> np.ndarray:
    mask = np.ones(a.shape, bool)
    if spec.block is not None:
        mask = block_mask(a, spec.block[0], spec.block[1], spec.block_density)
    if spec.n is not None:
        mask &= nm_mask(np.where(mask, a, 0), spec.n, spec.m, spec.axis)
    return mask


def make_masks(w: Any, spec: SparsitySpec | str, *, seed: int = 0) -> MaskResult:
    """Masks of ``W[K, Q]`` for ``spec`` (the single entry point).

    Parameters
    ----------
    w : array_like, shape (K, Q)
        Weights (any numeric dtype; magnitudes decide).
    spec : SparsitySpec or str
        What to make; a string is parsed with :meth:`SparsitySpec.parse`.
    seed : int
        Seed of Bi-Mask's permutation search (other generators are deterministic).

    Returns
    -------
    MaskResult
    """
    a = _as_weight(w)
    spec = SparsitySpec.parse(spec)
    if spec.method is None:
        return MaskResult(spec, _simple_mask(a, spec))
    if spec.method == "dense":
        return MaskResult(spec, np.ones(a.shape, bool))
    if spec.method == "forward-only":
        return MaskResult(spec, _simple_mask(a, spec.fwd))
    n, m = spec.fwd.n, spec.fwd.m
    if spec.method == "transposable":
        solver = spec.solver or "exact"
        mask = transposable_mask(a, n, m, solver)
        return MaskResult(spec, mask, mask, None, {"solver": solver})
    fwd = nm_mask(a, n, m, 0)
    cand = spec.candidates or DEFAULT_CANDIDATES
    bwd, perm, surv = bimask(a, fwd, spec.bwd.n, spec.bwd.m, cand, seed)
    return MaskResult(spec, fwd, bwd, perm,
                      {"candidates": cand, "seed": seed, "survivors": surv,
                       "best_candidate": int(np.argmax(surv))})


def mask_stats(w: Any, result: MaskResult) -> dict[str, Any]:
    """Quality figures of a mask result.

    Returns
    -------
    dict
        ``fwd_density``, ``bwd_density`` (1.0 when the backward GEMM is dense),
        ``fwd_magnitude_kept`` and ``bwd_magnitude_kept`` (fractions of ``sum |W|``),
        ``both_fraction`` (fraction of forward survivors that also survive backward) and
        ``both_density`` (fraction of all weights kept in both directions).
    """
    a = np.abs(_as_weight(w)).astype(np.float64)
    total = a.sum()
    fwd = result.fwd
    bwd = result.bwd_or_dense()
    both = fwd & bwd
    nf = int(fwd.sum())

    def kept(mask: np.ndarray) -> float:
        return float(a[mask].sum() / total) if total > 0 else float(mask.mean())

    return {
        "spec": str(result.spec),
        "shape": list(a.shape),
        "fwd_density": float(fwd.mean()),
        "bwd_density": float(bwd.mean()),
        "fwd_magnitude_kept": kept(fwd),
        "bwd_magnitude_kept": kept(bwd),
        "both_fraction": float(both.sum() / nf) if nf else 1.0,
        "both_density": float(both.mean()),
    }


def compare_methods(w: Any, n: int, m: int, *, candidates: Sequence[int] = (1, 10, 100),
                    seed: int = 0, exact: bool = True) -> list[dict[str, Any]]:
    """Mask quality of the bidirectional methods side by side for one weight matrix.

    Rows: ``forward-only``, ``transposable-greedy``, ``transposable-exact`` (if ``exact``)
    and ``bimask-C`` for each ``C`` in ``candidates``, each with the figures of
    :func:`mask_stats`, the method name and the generation time in ``seconds``.
    """
    import time

    a = _as_weight(w)
    _check_nm(n, m, f"{n}:{m}")
    nm_text = f"{n}:{m}"
    runs: list[tuple[str, SparsitySpec]] = [
        ("forward-only", SparsitySpec.parse(f"fwd={nm_text},bwd={nm_text},method=forward-only")),
        ("transposable-greedy",
         SparsitySpec.parse(f"fwd={nm_text},bwd={nm_text},method=transposable,solver=greedy")),
    ]
    if exact:
        runs.append(("transposable-exact", SparsitySpec.parse(
            f"fwd={nm_text},bwd={nm_text},method=transposable,solver=exact")))
    for c in candidates:
        runs.append((f"bimask-{c}", SparsitySpec.parse(
            f"fwd={nm_text},bwd={nm_text},method=bimask,candidates={c}")))
    rows = []
    for name, spec in runs:
        t0 = time.perf_counter()
        res = make_masks(a, spec, seed=seed)
        dt = time.perf_counter() - t0
        row = {"method": name, **mask_stats(a, res), "seconds": dt}
        rows.append(row)
    return rows
