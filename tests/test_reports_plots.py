"""Plots and the HTML report from a real sweep (the SimPy model and the area model) of two
small real networks; every image file is opened and checked for size and content."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest
from cli_helpers import run
from reports_eval import tiny_workloads
from sparsa.reports import plots
from sparsa.reports.errors import ReportError
from sparsa.reports.html import build_report
from sparsa.reports.spec import parse_spec
from sparsa.reports.store import ResultStore
from sparsa.reports.sweep import run_sweep

INFER = {"name": "tiny", "workloads": ["tiny-cnn", "tiny-mlp"],
         "configs": ["8x8-n2m4", "8x8-n2m8"],
         "sparsity": ["dense", "2:4", "2:8"], "dataflows": ["ws", "os", "is"],
         "per_layer": True}
TRAIN = {"name": "tiny-train", "points": [
    {"workload": w, "config": "8x8-n2m8", "sparsity": s, "train": True}
    for w in ("tiny-cnn", "tiny-mlp")
    for s in ("dense", "fwd=2:8,bwd=2:8,method=bimask")]}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    wl = tiny_workloads()
    for spec in (INFER, TRAIN):
        res = run_sweep(parse_spec(spec, "tiny.yaml", workloads=wl), out, workers=2,
                        progress=False)
        assert res.errors == 0
    return out


def check_image(path: Path, min_px: tuple[int, int] = (400, 250)) -> None:
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert w >= min_px[0] and h >= min_px[1], (path, img.shape)
    rgb = np.asarray(img)[..., :3]
    assert float(rgb.var()) > 1e-3, f"{path} is blank"
    # a real plot has many distinct colours (lines, bars, text), a blank canvas has one
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20


def test_sweep_rows_carry_model_and_area(results: Path) -> None:
    rows = ResultStore(results).rows()
    assert len(rows) == 2 * 2 * 3 * 3 + 4
    for r in rows:
        assert r["status"] == "ok" and r["cycles"] > 0 and r["energy_pj"] > 0
        assert r["area_total_mm2"] > 0 and r["area_pe_um2"] > 0
    by = {(r["workload"], r["config"], r["sparsity"], r["dataflow"]): r for r in rows
          if not r["train"]}
    # real sparse speed-up on the ws core, and a bigger PE for a wider window
    assert by[("tiny-cnn", "8x8-n2m4", "2:4", "ws")]["speedup"] > 1.1
    assert by[("tiny-cnn", "8x8-n2m8", "dense", "ws")]["area_pe_um2"] > \
        by[("tiny-cnn", "8x8-n2m4", "dense", "ws")]["area_pe_um2"]
    train = [r for r in rows if r["train"]]
    assert all(r["cycles_fwd"] > 0 and r["cycles_wgrad"] > 0 for r in train)
    layers = ResultStore(results).rows("layers")
    assert {r["workload"] for r in layers} == {"tiny-cnn", "tiny-mlp"}
    assert all(0 <= r["utilisation"] <= 1.0 + 1e-9 for r in layers)


@pytest.mark.parametrize("kind", list(plots.KINDS))
def test_each_kind_renders_png_and_svg(results: Path, tmp_path: Path, kind: str) -> None:
    store = ResultStore(results)
    before = dict(matplotlib.rcParams)
    png, svg = plots.render(kind, store.rows(), store.rows("layers"), tmp_path)
    assert dict(matplotlib.rcParams) == before, "plots must not change global rc state"
    check_image(png)
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and svg.stat().st_size > 5000


def test_plot_files_are_identical_run_to_run(results: Path, tmp_path: Path) -> None:
    """The same results give the same bytes: SVG metadata used to carry the time of
    writing, so the report's SVG files differed on every run."""
    build_report(results, tmp_path / "a")
    build_report(results, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "index.html" in names and "speedup.svg" in names
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), \
            name


def test_plot_functions_return_fig_and_ax(results: Path) -> None:
    rows = ResultStore(results).rows()
    fig, ax = plots.plot_pareto(rows, metric="energy_pj")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("Pareto" in t for t in labels)
    assert fig.axes == [ax]


def test_pareto_front_is_the_non_dominated_set() -> None:
    pts = [(1, 9), (2, 5), (2, 7), (3, 6), (4, 1), (5, 1), (0.5, 10)]
    front = plots.pareto_front(pts)
    assert [pts[i] for i in front] == [(0.5, 10), (1, 9), (2, 5), (4, 1)]
    for i, (x, y) in enumerate(pts):
        dominated = any(a <= x and b <= y and (a, b) != (x, y) for a, b in pts)
        assert (i in front) == (not dominated)


def test_missing_data_is_a_one_line_error(results: Path) -> None:
    rows = [r for r in ResultStore(results).rows() if not r["train"]]
    with pytest.raises(ReportError, match="plot training: the results have no training"):
        plots.plot_training(rows)
    with pytest.raises(ReportError, match="no area column"):
        plots.plot_pareto([{k: v for k, v in r.items() if not k.startswith("area")}
                           for r in rows])
    with pytest.raises(ReportError, match="--kind 'bogus' is unknown"):
        plots.render("bogus", rows, [], ".")


def test_plot_and_report_cli(results: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plot", str(results), "--kind", "speedup", "--kind", "layers",
                       "-o", str(tmp_path / "p"))
    assert code == 0 and "speedup" in out and "layers" in out
    check_image(tmp_path / "p" / "layers.png")
    code, out, _ = run(capsys, "report", str(results), "-o", str(tmp_path / "r"))
    assert code == 0
    for kind in plots.KINDS:  # the report draws every kind
        check_image(tmp_path / "r" / f"{kind}.png")
    page = (tmp_path / "r" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == len(plots.KINDS)
    assert "Energy table used (horowitz45" in page and "int8 multiply" in page
    assert "Pareto-optimal designs" in page
    # 2:4 on the m = 8 core runs at window 4: the report says so, once per config/sparsity
    assert "Layers in another mode than their sparsity suggests" in page
    assert page.count("sparse mode at window 4: 2:4 has more than 2 non-zeros") == 2
    # self-contained: no external scripts, styles or images
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)
    code, _, err = run(capsys, "report", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error: ") and "no sweep results" in err


def test_report_lists_error_rows(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "res")
    base: dict[str, Any] = {"workload": "x", "config": "8x8-n2m4", "sparsity": "dense",
                            "dataflow": "ws", "train": False, "energy_table": "horowitz45"}
    store.write_part([{"point_index": 0, "hash": "a", "status": "error",
                       "error": "SimError: boom", **base, "cycles": None}])
    page = build_report(tmp_path / "res", tmp_path / "out").read_text()
    assert "Failed design points" in page and "SimError: boom" in page
