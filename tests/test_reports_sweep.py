"""The sweep engine: resume after a kill without recomputation, error rows, backends agree.

The evaluation function is :func:`reports_eval.analytic_point` (cycles from the hardware's
timing formulas), so these tests exercise the engine, not the model's speed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from reports_eval import analytic_point
from sparsa.reports.spec import SweepSpec, parse_spec
from sparsa.reports.store import ResultStore
from sparsa.reports.sweep import VOLATILE_COLUMNS, run_sweep

TESTS = Path(__file__).parent

SPEC = {"name": "engine", "workloads": ["resnet50", "bert-base"],
        "configs": {"rows": [8, 16], "cols": [16], "m": [4, 8]},
        "sparsity": ["dense", "2:4", "2:8"], "dataflows": ["ws", "os"], "area": False}


def stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in VOLATILE_COLUMNS} for r in rows]


def spec(**over: Any) -> SweepSpec:
    return parse_spec({**SPEC, **over}, "engine.yaml")


def log_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def eval_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "evals.log"
    monkeypatch.setenv("SPARSA_EVAL_LOG", str(log))
    return log


def test_serial_and_pool_agree_and_rerun_does_nothing(tmp_path: Path, eval_log: Path) -> None:
    s = spec()
    a = run_sweep(s, tmp_path / "a", evaluate=analytic_point, workers=1, progress=False)
    assert (a.total, a.evaluated, a.skipped, a.errors) == (48, 48, 0, 0)
    b = run_sweep(s, tmp_path / "b", evaluate=analytic_point, workers=2, progress=False)
    assert b.evaluated == 48
    ra, rb = ResultStore(tmp_path / "a").rows(), ResultStore(tmp_path / "b").rows()
    assert stable(ra) == stable(rb)
    assert [r["point_index"] for r in ra] == list(range(48))
    assert len(log_lines(eval_log)) == 96
    again = run_sweep(s, tmp_path / "a", evaluate=analytic_point, workers=2, progress=False)
    assert (again.evaluated, again.skipped) == (0, 48)
    assert len(log_lines(eval_log)) == 96
    # compacted: one Parquet file, parts gone, spec copied
    assert (tmp_path / "a" / "points.parquet").exists()
    assert not list((tmp_path / "a" / "parts").glob("*.parquet"))
    assert (tmp_path / "a" / "spec.yaml").exists()
    assert pq.read_table(tmp_path / "a" / "points.parquet").num_rows == 48


def test_failing_point_becomes_error_row_and_sweep_goes_on(tmp_path: Path) -> None:
    s = spec(dataflows=["ws", "is"])  # the analytic model rejects input-stationary
    r = run_sweep(s, tmp_path / "r", evaluate=analytic_point, workers=2, progress=False)
    assert (r.evaluated, r.errors) == (48, 24)
    rows = ResultStore(tmp_path / "r").rows()
    errs = [x for x in rows if x["status"] == "error"]
    assert {x["dataflow"] for x in errs} == {"is"} and len(errs) == 24
    assert all(x["error"] == "ValueError: input-stationary is not in the analytic model"
               and x["cycles"] is None for x in errs)
    assert all(x["cycles"] > 0 for x in rows if x["status"] == "ok")
    # error rows count as finished ... unless retried
    assert run_sweep(s, tmp_path / "r", evaluate=analytic_point, progress=False).evaluated == 0
    again = run_sweep(s, tmp_path / "r", evaluate=analytic_point, progress=False,
                      retry_errors=True)
    assert (again.evaluated, again.errors) == (24, 24)
    assert len(ResultStore(tmp_path / "r").rows()) == 48


def test_kill_midway_then_resume_without_recomputation(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    s = spec()
    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from reports_eval import analytic_point\n"
        "from sparsa.reports.spec import parse_spec\n"
        "from sparsa.reports.sweep import run_sweep\n"
        f"spec = parse_spec({SPEC!r}, 'engine.yaml')\n"
        f"run_sweep(spec, {str(out)!r}, evaluate=analytic_point, workers=1, flush_every=1,\n"
        "          progress=False)\n")
    env = {**os.environ, "SPARSA_EVAL_LOG": str(tmp_path / "first.log"),
           "SPARSA_EVAL_SLEEP": "0.05"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env,
                            stderr=subprocess.DEVNULL)
    store = ResultStore(out)
    deadline = time.monotonic() + 60
    while len(store.part_files()) < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = store.finished()
    assert 8 <= len(done_before) < len(s), "the sweep must be killed midway"
    assert not (out / "points.parquet").exists()

    log = tmp_path / "second.log"
    monkeypatch.setenv("SPARSA_EVAL_LOG", str(log))
    res = run_sweep(s, out, evaluate=analytic_point, workers=2, progress=False)
    monkeypatch.delenv("SPARSA_EVAL_LOG")
    second = log_lines(log)
    assert res.skipped == len(done_before)
    assert len(second) == res.evaluated == len(s) - len(done_before)
    assert not set(second) & done_before, "finished points were recomputed"
    assert set(second) | done_before == {p.key for p in s.points}

    whole = run_sweep(s, tmp_path / "whole", evaluate=analytic_point, workers=1,
                      progress=False)
    assert whole.evaluated == len(s)
    assert stable(ResultStore(out).rows()) == stable(ResultStore(tmp_path / "whole").rows())
    # the compacted file itself is the same table (types, column order, row order)
    t1 = pq.read_table(out / "points.parquet").drop_columns(list(VOLATILE_COLUMNS))
    t2 = pq.read_table(tmp_path / "whole" / "points.parquet").drop_columns(
        list(VOLATILE_COLUMNS))
    assert t1.equals(t2)


def test_dask_local_cluster_gives_identical_results(tmp_path: Path) -> None:
    s = spec(workloads=["bert-base"], dataflows=["ws"])
    local = run_sweep(s, tmp_path / "local", evaluate=analytic_point, workers=1,
                      progress=False)
    dsk = run_sweep(s, tmp_path / "dask", evaluate=analytic_point, workers=1, dask=True,
                    dask_processes=False, progress=False)
    assert dsk.evaluated == local.evaluated == len(s)
    assert dsk.backend.startswith("dask LocalCluster")
    assert stable(ResultStore(tmp_path / "local").rows()) == \
        stable(ResultStore(tmp_path / "dask").rows())


def test_store_last_write_wins_and_compaction_is_idempotent(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s")
    store.write_part([{"point_index": 1, "hash": "b", "status": "error", "cycles": None},
                      {"point_index": 0, "hash": "a", "status": "ok", "cycles": 5}])
    store.write_part([{"point_index": 1, "hash": "b", "status": "ok", "cycles": 7.5}])
    assert store.finished() == {"a", "b"}
    rows = store.rows()
    assert [(r["hash"], r["cycles"]) for r in rows] == [("a", 5), ("b", 7.5)]
    store.compact()
    store.compact()
    assert store.rows() == rows and not store.part_files()
    assert pq.read_table(store.compacted_path()).schema.field("cycles").type == "double"


def test_rerun_asking_for_area_or_layers_evaluates_the_points_lacking_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``area`` and ``per_layer`` are not part of a point's hash: re-running a finished sweep
    with ``per_layer: true`` (or ``area: true``) used to find every point done and add
    nothing, and the layers plot then asked for the very setting just given."""
    from reports_eval import tiny_workloads
    from sparsa.reports import sweep as sweep_mod

    monkeypatch.setattr(sweep_mod, "_area_columns", lambda cfg: {"area_total_mm2": 1.5})
    wl = tiny_workloads()
    base = {"name": "more", "workloads": ["tiny-cnn"], "configs": ["8x8-n2m4"],
            "sparsity": ["dense", "2:4"], "area": False}
    out = tmp_path / "r"

    def sweep(**over: Any) -> tuple[int, int]:
        r = run_sweep(parse_spec({**base, **over}, "more.yaml", workloads=wl), out,
                      workers=1, progress=False)
        return r.skipped, r.evaluated

    assert sweep() == (0, 2)
    store = ResultStore(out)
    hashes = {r["hash"] for r in store.rows()}
    assert not store.rows("layers")
    assert sweep(per_layer=True) == (0, 2)
    assert {r["hash"] for r in store.rows("layers")} == hashes
    assert sweep(per_layer=True, area=True) == (0, 2)
    assert [r["area_total_mm2"] for r in store.rows()] == [1.5, 1.5]
    assert sweep(per_layer=True, area=True) == (2, 0)
    assert sweep() == (2, 0)          # rows holding more than asked are done


def test_rows_from_other_sources_or_an_edited_workload_file_are_evaluated_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A point's hash covers what it asks for, not what computed it: a results folder
    resumed by another sparsa version, or with an edited workload file, would mix results.
    Rows record a digest of sparsa's model sources and of the workload file; rows whose
    digests differ from the present ones are evaluated again (and replaced)."""
    from reports_eval import tiny_workloads
    from sparsa.reports import sweep as sweep_mod
    from sparsa.reports.sweep import code_digest

    wl = tiny_workloads()
    topo = tmp_path / "g.csv"
    topo.write_text("Layer, M, N, K\ng1, 16, 16, 16\n")
    base = {"name": "prov", "workloads": ["tiny-cnn"], "configs": ["4x4-n2m4"],
            "sparsity": ["dense", "2:4"], "area": False}
    out = tmp_path / "r"

    def sweep(**over: Any) -> tuple[int, int, int]:
        r = run_sweep(parse_spec({**base, **over}, "prov.yaml", workloads=wl), out,
                      workers=1, progress=False)
        return r.skipped, r.evaluated, r.stale

    assert sweep() == (0, 2, 0)
    assert {r["code_digest"] for r in ResultStore(out).rows()} == {code_digest()}
    assert sweep() == (2, 0, 0)
    monkeypatch.setattr(sweep_mod, "code_digest", lambda: "another-version")
    assert sweep() == (0, 2, 2)                 # sparsa changed: evaluated again
    assert sweep() == (2, 0, 0)
    assert {r["code_digest"] for r in ResultStore(out).rows()} == {"another-version"}
    monkeypatch.undo()
    # a workload file: its bytes, not its name (a custom evaluation has no code digest)
    spec = dict(workloads=[str(topo)], sparsity=["dense"])
    out = tmp_path / "f"
    r = run_sweep(parse_spec({**base, **spec}, "prov.yaml"), out, evaluate=analytic_point,
                  workers=1, progress=False)
    assert r.evaluated == 1 and ResultStore(out).rows()[0]["code_digest"] == ""
    r = run_sweep(parse_spec({**base, **spec}, "prov.yaml"), out, evaluate=analytic_point,
                  workers=1, progress=False)
    assert (r.skipped, r.stale) == (1, 0)
    topo.write_text("Layer, M, N, K\ng1, 32, 16, 16\n")
    r = run_sweep(parse_spec({**base, **spec}, "prov.yaml"), out, evaluate=analytic_point,
                  workers=1, progress=False)
    assert (r.evaluated, r.stale) == (1, 1)
    assert len(ResultStore(out).rows()) == 1        # the new row replaced the old one


def test_cli_sweep_with_the_real_model(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from sparsa.cli import main

    spec = tmp_path / "one.yaml"
    spec.write_text("name: one\npoints:\n  - {workload: resnet18, config: 32x32-n2m4}\n"
                    "options: {baseline: false}\narea: false\n")
    out = tmp_path / "res"
    main(["sweep", str(spec), "-o", str(out), "--workers", "1", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert (summary["total"], summary["evaluated"], summary["errors"]) == (1, 1, 0)
    (row,) = ResultStore(out).rows()
    assert row["workload"] == "resnet18" and row["config"] == "32x32-n2m4"
    assert row["cycles"] > 0 and row["macs"] > 1.8e9 and row["energy_pj"] > 0


def test_cli_sweep_all_points_failing_exits_1(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A point that fails at evaluation (not at spec validation) becomes an error row; its
    message is printed, and a sweep in which every point failed exits with code 1."""
    from cli_helpers import run

    spec = tmp_path / "fail.yaml"
    spec.write_text("name: fail\npoints:\n  - {workload: resnet50, config: 16x16-n2m4, "
                    "batch: 1024}\noptions: {baseline: false}\narea: false\n")
    code, out, err = run(capsys, "sweep", str(spec), "-o", str(tmp_path / "r"), "--workers",
                         "1", "--no-progress")
    assert code == 1, err
    assert "1 evaluated (1 errors)" in out
    assert "failed point: CompileError: resnet50: " in err and "--batch" in err
    assert "error: all 1 evaluated points failed" in err
    (row,) = ResultStore(tmp_path / "r").rows()
    assert row["status"] == "error"


def _sweep_script(tmp_path: Path, out: Path, prelude: str = "", **kwargs: Any) -> Path:
    """A Python script running the engine's sweep of :data:`SPEC` into ``out``."""
    script = tmp_path / "sweep_script.py"
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        f"{prelude}"
        "from reports_eval import analytic_point\n"
        "from sparsa.reports.spec import parse_spec\n"
        "from sparsa.reports.sweep import run_sweep\n"
        f"spec = parse_spec({SPEC!r}, 'engine.yaml')\n"
        f"run_sweep(spec, {str(out)!r}, evaluate=analytic_point, progress=False{args})\n")
    return script


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_pool_workers_end_with_the_sweep(tmp_path: Path, sig: signal.Signals) -> None:
    """A sweep killed with SIGKILL (or the OOM killer) took its pool workers with it only in
    name: they computed their chunk for nobody and then blocked for ever. An interrupted one
    (SIGINT or SIGTERM to the sweep process alone) waited for the chunks in flight and then
    dropped them. Now the workers end within a second either way."""
    psutil = pytest.importorskip("psutil")
    log = tmp_path / "evals.log"
    workers: list[Any] = []
    # 6 points per chunk (3 sparsity x 2 dataflows) x 2 s: a chunk takes 12 s
    env = {**os.environ, "SPARSA_EVAL_LOG": str(log), "SPARSA_EVAL_SLEEP": "2"}
    # Ctrl-C raises KeyboardInterrupt even when this test runs with SIGINT ignored (as a
    # background job of a shell)
    prelude = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    script = _sweep_script(tmp_path, tmp_path / "res", prelude=prelude, workers=2)
    proc = subprocess.Popen([sys.executable, str(script)], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(log_lines(log)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(log_lines(log)) >= 2, "both workers must be evaluating"
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) >= 2
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        took = time.monotonic() - t0
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, "pool workers outlived the sweep"
        assert proc.returncode != 0
        if sig == signal.SIGINT:
            assert took < 6, f"the interrupted sweep waited {took:.1f} s for its chunks"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                w.kill()


def test_interrupt_before_the_first_result_stops_the_pool(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Ctrl-C after the pool started but before the first result arrived (while the results
    folder is prepared) used to leave the pool running: Python then waited at exit until it
    had computed every point."""
    psutil = pytest.importorskip("psutil")
    from sparsa.reports import sweep as sweep_mod

    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setenv("SPARSA_EVAL_SLEEP", "2")
    monkeypatch.setattr(sweep_mod, "write_atomic", interrupted)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec(), tmp_path / "r", evaluate=analytic_point, workers=2, progress=False)
    assert time.monotonic() - t0 < 6
    left = [c for c in psutil.Process().children()
            if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    for c in left:
        c.kill()
    assert not left, "pool workers still running after the sweep returned"


@pytest.mark.parametrize("target", ["part", "compacted"])
def test_kill_while_writing_leaves_no_temporary_file_after_resume(tmp_path: Path,
                                                                  target: str) -> None:
    """A sweep SIGKILLed while writing a part file (or the compacted table) leaves its
    half-written temporary file; nothing reads it, and the next run removes it."""
    out = tmp_path / "res"
    prefix = ".points-" if target == "part" else ".points.parquet."
    prelude = (
        "import os, signal\n"
        "import pyarrow.parquet as pq\n"
        "real, seen = pq.write_table, []\n"
        "def write_table(table, where, *a, **k):\n"
        f"    if os.path.basename(str(where)).startswith({prefix!r}):\n"
        "        seen.append(where)\n"
        f"        if len(seen) == {3 if target == 'part' else 1}:\n"
        "            real(table, where, *a, **k)\n"
        "            data = open(where, 'rb').read()\n"
        "            open(where, 'wb').write(data[:len(data) // 2])\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(table, where, *a, **k)\n"
        "pq.write_table = write_table\n")
    script = _sweep_script(tmp_path, out, prelude=prelude, workers=1, flush_every=4)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    left = list(out.rglob(".*.tmp"))
    assert len(left) == 1 and left[0].name.startswith(prefix)
    store = ResultStore(out)
    before = store.finished()           # readable: the temporary file is not read
    assert before and (target == "compacted") == (len(before) == len(spec()))

    res = run_sweep(spec(), out, evaluate=analytic_point, workers=1, progress=False)
    assert res.skipped == len(before) and res.evaluated == len(spec()) - len(before)
    assert not list(out.rglob(".*.tmp")), "a killed writer's temporary file is left over"
    whole = run_sweep(spec(), tmp_path / "whole", evaluate=analytic_point, workers=1,
                      progress=False)
    assert whole.evaluated == len(spec())
    assert stable(store.rows()) == stable(ResultStore(tmp_path / "whole").rows())


def test_cli_sweep_interrupted_says_what_is_saved(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or SIGTERM) during a sweep: one line saying how many points are saved and
    how to go on, exit code 130."""
    from cli_helpers import run
    from sparsa.reports import sweep as sweep_mod

    spec_file = tmp_path / "two.yaml"
    spec_file.write_text("name: two\nworkloads: [resnet18]\nconfigs: [32x32-n2m4]\n"
                         "sparsity: [dense, '2:4']\narea: false\n")

    def interrupted(s: SweepSpec, out: Path, **kwargs: Any) -> None:
        ResultStore(out).write_part([{"point_index": 0, "hash": s.points[0].key,
                                      "status": "ok", "cycles": 1}])
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_mod, "run_sweep", interrupted)
    out = tmp_path / "r"
    code, stdout, err = run(capsys, "sweep", str(spec_file), "-o", str(out), "--no-progress")
    assert code == 130 and stdout == ""
    assert err == (f"interrupted: 1 of 2 design points saved in {out}; run the same command "
                   f"again to resume\n")


def test_interrupted_dask_sweep_stops_its_cluster_quietly(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Stopping the sweep's own LocalCluster mid-task is what Ctrl-C asks for; Dask logged a
    warning per cancelled task (and a traceback per killed worker) under the one-line
    message."""
    import logging

    from sparsa.reports import sweep as sweep_mod

    def interrupted(*args: Any) -> None:
        time.sleep(0.8)             # the workers are inside their first points
        raise KeyboardInterrupt

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.seen: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.seen.append(f"{record.name}: {record.getMessage()}")

    monkeypatch.setenv("SPARSA_EVAL_SLEEP", "0.3")
    monkeypatch.setattr(sweep_mod, "write_atomic", interrupted)
    records = Records()
    log = logging.getLogger("distributed")
    log.addHandler(records)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec(), tmp_path / "r", evaluate=analytic_point, workers=2, dask=True,
                      dask_processes=False, progress=False)
    finally:
        log.removeHandler(records)
    assert not records.seen
    # silenced only while stopping: later clusters of this process log as before
    assert log.level < logging.CRITICAL


def test_dask_workers_started_by_the_sweep_ignore_ctrl_c() -> None:
    """Ctrl-C reaches every process of the terminal's group: the local Dask workers must
    leave it to the sweep (which stops them) instead of each printing a traceback."""
    from sparsa.reports.sweep import _sigint_ignored_by_children

    code = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"

    def child_ignores() -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True).stdout.strip()

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        assert child_ignores() == "False"
        with _sigint_ignored_by_children():
            assert child_ignores() == "True"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
