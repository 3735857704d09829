"""SparsitySpec and SparsityPlan: parsing, printing, validation, per-layer rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sparsa.workloads.errors import WorkloadError
from sparsa.workloads.sparsity import (
    DENSE,
    SparsityError,
    SparsityPlan,
    SparsitySpec,
)


@pytest.mark.parametrize(
    ("text", "kind", "density", "nm"),
    [
        ("dense", "dense", 1.0, (None, None)),
        ("2:4", "nm", 0.5, (2, 4)),
        ("1:8", "nm", 0.125, (1, 8)),
        ("2:8@q", "nm", 0.25, (2, 8)),
        ("block16x16:0.5", "block", 0.5, (None, None)),
        ("block16x16:0.5+1:16", "hierarchical", 0.5 / 16, (1, 16)),
        ("unstructured:0.25", "block", 0.25, (None, None)),
        ("fwd=2:8,bwd=2:8,method=bimask", "bidirectional", 0.25, (None, None)),
    ],
)
def test_parse_kinds(text: str, kind: str, density: float, nm: tuple) -> None:
    spec = SparsitySpec.parse(text)
    assert spec.kind == kind
    assert spec.density == pytest.approx(density)
    assert (spec.n, spec.m) == nm
    assert str(spec) == text
    assert SparsitySpec.parse(str(spec)) == spec


def test_unstructured_is_magnitude_pruning_of_single_weights() -> None:
    import numpy as np
    from sparsa.workloads.sparsity import make_masks
    spec = SparsitySpec.parse("unstructured:0.25")
    assert spec == SparsitySpec.parse("block1x1:0.25") == SparsitySpec.block_nm(1, 1, 0.25)
    w = np.random.default_rng(0).normal(size=(64, 32))
    mask = make_masks(w, spec).fwd
    assert mask.sum() == 64 * 32 // 4
    assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


def test_axis_and_equality() -> None:
    assert SparsitySpec.parse("2:8@q").axis == "q"
    assert SparsitySpec.parse("2:8@k") == SparsitySpec.parse("2:8")
    assert str(SparsitySpec.parse("2:8@k")) == "2:8"
    assert SparsitySpec.parse(" 2:4 ") == SparsitySpec.nm(2, 4)
    assert len({SparsitySpec.parse("2:4"), SparsitySpec.nm(2, 4), DENSE}) == 2


def test_bidirectional_forward_backward_views() -> None:
    spec = SparsitySpec.parse("fwd=2:8,bwd=2:8,method=bimask,candidates=10")
    assert spec.forward == SparsitySpec.nm(2, 8, "k")
    assert spec.backward == SparsitySpec.nm(2, 8, "q")
    assert spec.candidates == 10
    assert spec.nominal_bwd_density == 0.25
    fo = SparsitySpec.parse("fwd=2:4,bwd=2:4,method=forward-only")
    assert fo.forward == SparsitySpec.nm(2, 4) and fo.backward == DENSE
    dense = SparsitySpec.parse("fwd=2:8,bwd=2:8,method=dense")
    assert dense.is_dense and dense.forward == DENSE and dense.density == 1.0
    assert SparsitySpec.nm(2, 4).backward == DENSE
    tr = SparsitySpec.parse("fwd=2:8,bwd=2:8@q,method=transposable,solver=greedy")
    assert str(tr) == "fwd=2:8,bwd=2:8,method=transposable,solver=greedy"
    assert SparsitySpec.bidirectional("2:8", "2:8", "bimask") == SparsitySpec.parse(
        "fwd=2:8,bwd=2:8,method=bimask")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("3:2", "n must be in 1..m=2"),
        ("0:4", "n must be in 1..m=4"),
        ("2:6", "m must be a power of two"),
        ("2:8@x", "axis must be k or q"),
        ("foo", "allowed: dense, N:M"),
        ("", "empty sparsity spec"),
        ("block16x16:1.5", "block density must be in (0, 1]"),
        ("block16x16:0", "block density must be in (0, 1]"),
        ("block0x16:0.5", "block sides must be >= 1"),
        ("block16:0.5", "write blockBKxBQ:DENSITY"),
        ("block16x16:0.5+3:2", "n must be in 1..m=2"),
        ("unstructured:1.5", "unstructured density must be in (0, 1]"),
        ("unstructured:1e", "bad density '1e'"),
        ("unstructured0.5", "write unstructured:DENSITY"),
        ("fwd=2:8,method=bimask", "lacks bwd="),
        ("fwd=2:8,bwd=2:8,method=magic", "method must be one of bimask|transposable"),
        ("fwd=2:8,bwd=2:4,method=transposable", "needs equal fwd and bwd N:M"),
        ("fwd=2:8@q,bwd=2:8,method=bimask", "needs fwd=N:M along k"),
        ("fwd=2:8,bwd=2:8@k,method=bimask", "along q"),
        ("fwd=2:8,bwd=2:8,method=bimask,candidates=0", "candidates must be >= 1"),
        ("fwd=2:8,bwd=2:8,method=bimask,candidates=x", "candidates must be an integer"),
        ("fwd=2:8,bwd=2:8,method=bimask,solver=exact", "solver= applies only"),
        ("fwd=2:8,bwd=2:8,method=transposable,solver=fast", "solver must be one of"),
        ("fwd=2:8,bwd=2:8,method=bimask,foo=1", "unknown field 'foo'"),
        ("fwd=2:8,fwd=2:4,bwd=2:8,method=bimask", "given twice"),
    ],
)
def test_parse_errors_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(SparsityError) as e:
        SparsitySpec.parse(text)
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg
    assert isinstance(e.value, WorkloadError) and isinstance(e.value, ValueError)


nm_specs = st.sampled_from([2, 4, 8, 16]).flatmap(
    lambda m: st.tuples(st.integers(1, m), st.just(m), st.sampled_from(["k", "q"])))
simple_specs = st.one_of(
    st.just(DENSE),
    nm_specs.map(lambda t: SparsitySpec.nm(*t)),
    st.tuples(st.integers(1, 64), st.integers(1, 64),
              st.floats(0.001, 1.0, allow_nan=False), st.one_of(st.none(), nm_specs)).map(
        lambda t: SparsitySpec.block_nm(t[0], t[1], t[2], *(t[3] or (None, None, "k")))),
)


@settings(max_examples=60, deadline=None)
@given(spec=simple_specs)
def test_str_round_trips(spec: SparsitySpec) -> None:
    back = SparsitySpec.parse(str(spec))
    assert back == spec and hash(back) == hash(spec)


@settings(max_examples=30, deadline=None)
@given(nm=nm_specs,
       method=st.sampled_from(["bimask", "transposable", "forward-only", "dense"]),
       cand=st.one_of(st.none(), st.integers(1, 500)))
def test_bidirectional_round_trips(nm: tuple, method: str, cand: int | None) -> None:
    n, m, _ = nm
    spec = SparsitySpec.bidirectional(f"{n}:{m}", f"{n}:{m}", method,
                                      candidates=cand if method == "bimask" else None)
    assert SparsitySpec.parse(str(spec)) == spec


def test_m_one_rejected() -> None:
    with pytest.raises(SparsityError, match="power of two in 2"):
        SparsitySpec.nm(1, 1)


def test_plan_first_match_wins_default_dense() -> None:
    plan = SparsityPlan.parse("conv1=dense;fc*=dense;layer4.*=1:8;*=2:4")
    assert plan.spec_for("conv1") == DENSE
    assert plan.spec_for("fc") == DENSE
    assert plan.spec_for("fc_out") == DENSE
    assert plan.spec_for("layer4.0.conv2") == SparsitySpec.nm(1, 8)
    assert plan.spec_for("layer1.0.conv1") == SparsitySpec.nm(2, 4)
    assert SparsityPlan.parse(str(plan)) == plan
    assert SparsityPlan.parse("conv*=2:4").spec_for("fc") == DENSE
    assert plan.assign(["conv1", "x"]) == {"conv1": DENSE, "x": SparsitySpec.nm(2, 4)}


def test_plan_bare_specs_apply_to_all() -> None:
    assert SparsityPlan.parse("2:4").spec_for("any") == SparsitySpec.nm(2, 4)
    plan = SparsityPlan.parse("stem=dense;fwd=2:8,bwd=2:8,method=bimask")
    assert plan.spec_for("stem") == DENSE
    assert plan.spec_for("l1").method == "bimask"


def test_plan_dense_ends() -> None:
    names = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "fc"]
    plan = SparsityPlan.dense_ends("2:8", names)
    got = plan.assign(names)
    assert got["conv1"] == DENSE and got["fc"] == DENSE
    assert got["layer1.0.conv1"] == SparsitySpec.nm(2, 8)
    # Names with glob characters match only themselves.
    odd = SparsityPlan.dense_ends("2:4", ["a[0]", "b", "c*"])
    assert odd.spec_for("a[0]") == DENSE and odd.spec_for("a0") == SparsitySpec.nm(2, 4)
    assert odd.spec_for("c*") == DENSE and odd.spec_for("cx") == SparsitySpec.nm(2, 4)


@pytest.mark.parametrize(("text", "needle"), [
    ("", "empty sparsity plan"),
    ("=2:4", "empty layer pattern"),
    ("conv1=3:2", "n must be in 1..m=2"),
    # first match wins: a rule after the catch-all would silently never apply
    ("dense;2:4", "a second rule for every layer would never apply"),
    ("*=2:4;conv1=dense", "rule 'conv1=dense' comes after the rule for every layer"),
])
def test_plan_errors(text: str, needle: str) -> None:
    with pytest.raises(SparsityError, match=needle.replace(".", r"\.")):
        SparsityPlan.parse(text)


def test_constructor_normalises_numbers() -> None:
    import numpy as np

    spec = SparsitySpec.block_nm(np.int64(16), 16, np.float32(0.5), np.int32(2), 8)
    assert spec == SparsitySpec.parse("block16x16:0.5+2:8")
    assert type(spec.n) is int and spec.block == (16, 16)
    assert hash(SparsitySpec(block=[4, 4], block_density=1)) == hash(
        SparsitySpec.parse("block4x4:1.0"))
    with pytest.raises(SparsityError, match="n must be an integer"):
        SparsitySpec.nm(2.0, 4)
