"""The sweep engine: evaluate design points in parallel into a resumable results store.

:func:`run_sweep` takes a validated :class:`~sparsa.reports.spec.SweepSpec`, skips the points
whose content hash already has a row in the results directory, and evaluates the rest

* in-process (``workers=1``),
* on a local process pool (``concurrent.futures``, the default, 2 workers),
* on a Dask distributed cluster: an existing one (``scheduler="tcp://host:8786"``) or a
  ``LocalCluster`` started for the sweep (``dask=True``, ``workers`` processes).

Finished rows are flushed as part files every ``flush_every`` points or ``flush_seconds``
(whichever first), so killing a sweep loses at most the points still in flight; re-running
the same spec resumes. A point whose evaluation raises becomes an *error row*
(``status="error"``, ``error`` = the exception's first line) and the sweep goes on; error
rows count as finished unless ``retry_errors=True``.

The evaluation function is injectable: any picklable ``evaluate(task: dict) -> dict`` that
returns a flat dict of JSON scalars (optionally with a ``"layers"`` list of per-layer dicts).
The default, :func:`evaluate_point`, calls :func:`sparsa.sim.api.run_point` and adds the
design's area from :func:`sparsa.hw.area.estimate_area`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import importlib
import json
import logging
import math
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparsa.fileio import write_atomic

from .errors import ReportError
from .spec import DesignPoint, SweepSpec, SweepSpecModel
from .store import ResultStore

__all__ = ["KEY_COLUMNS", "VOLATILE_COLUMNS", "PROVENANCE_COLUMNS", "SweepResult",
           "check_evaluator", "chunk_tasks", "code_digest", "evaluate_point", "run_chunk",
           "run_sweep", "run_task", "workload_digest"]

#: Columns every row starts with (they describe the design point).
KEY_COLUMNS = ("point_index", "hash", "status", "error", "workload", "config", "rows", "cols",
               "n", "m", "wgt_sp_kib", "act_sp_kib", "acc_sp_kib", "dram_bytes_per_cycle",
               "dram_latency_cycles", "clock_mhz", "energy_table", "sparsity", "dataflow",
               "train", "batch", "seq")

#: Columns that differ between runs of the same point (wall times, run id, worker).
VOLATILE_COLUMNS = ("eval_s", "run_id", "worker", "runtime_s")

#: What produced a row: a digest of sparsa's model sources (default evaluation only) and of
#: the workload file (zoo names: empty). A finished point whose row differs from the
#: present ones is evaluated again, so results never mix sparsa versions or file edits.
PROVENANCE_COLUMNS = ("code_digest", "workload_digest")


@functools.cache
def code_digest() -> str:
    """Digest (16 hex digits) of the sources that evaluate a point by default: the
    workloads, hw, compiler and sim packages and this module."""
    import sparsa.compiler
    import sparsa.hw
    import sparsa.sim
    import sparsa.workloads
    h = hashlib.sha256()
    for mod in (sparsa.workloads, sparsa.hw, sparsa.compiler, sparsa.sim):
        root = Path(str(mod.__file__)).parent
        for f in sorted(root.rglob("*.py")):
            h.update(f"{mod.__name__}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def workload_digest(workload: str) -> str:
    """Digest (16 hex digits) of a workload file's bytes; ``""`` for a zoo name."""
    path = Path(workload)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""
    except OSError:
        return ""

Evaluate = Callable[[dict[str, Any]], dict[str, Any]]

_AREA_CACHE: dict[str, dict[str, Any]] = {}


# ---- the default evaluation ---------------------------------------------------------------
def _area_columns(cfg: Any) -> dict[str, Any]:
    from sparsa.hw.area import estimate_area

    key = cfg.key
    if key not in _AREA_CACHE:
        area = estimate_area(cfg)
        _AREA_CACHE[key] = {(k if k.startswith("area") else f"area_{k}"): v
                            for k, v in area.items() if _is_scalar(v)}
    return dict(_AREA_CACHE[key])


def evaluate_point(task: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one design point with the SimPy model (and the area model).

    Parameters
    ----------
    task : dict
        :meth:`DesignPoint.to_task` output: ``workload``, ``config`` (AccelConfig fields),
        ``sparsity``, ``dataflow``, ``train``, ``batch``, ``seq``, ``options``, ``area``,
        ``per_layer``.

    Returns
    -------
    dict
        :func:`sparsa.sim.api.run_point`'s flat metrics, plus ``area_*`` columns when
        ``task["area"]``, plus ``"layers"`` (per-layer rows) when ``task["per_layer"]``.
    """
    from sparsa.hw.config import AccelConfig
    from sparsa.sim.api import run_point

    cfg = AccelConfig(**task["config"])
    kwargs = {"sparsity": task["sparsity"], "dataflow": task["dataflow"],
              "train": task["train"], "batch": task["batch"], "seq": task["seq"],
              "options": task["options"] or None}
    if task.get("per_layer"):  # per-layer rows of the same simulation
        kwargs["options"] = {**(kwargs["options"] or {}), "layers": True}
    workload = task.get("workload_obj") or task["workload"]
    row = dict(run_point(workload, cfg, **kwargs))
    if task.get("area"):
        row.update(_area_columns(cfg))
    return row


def check_evaluator(spec: SweepSpec) -> None:
    """Fail before any work when the default evaluator's dependencies are missing."""
    if not _has("sparsa.sim.api", "run_point"):
        raise ReportError("sweep needs the model (sparsa.sim.api.run_point), which is not "
                          "installed in this checkout")
    if any(p.area for p in spec.points) and not _has("sparsa.hw.area", "estimate_area"):
        raise ReportError(f"{spec.source}: area: true needs sparsa.hw.area.estimate_area, "
                          "which is not installed in this checkout; set area: false")
    if _has("sparsa.sim.api", "check_point_options"):
        from sparsa.sim.api import check_point_options
        for opts in {id(p.options): p.options for p in spec.points}.values():
            check_point_options(opts, f"{spec.source}: options")


def _has(module: str, name: str) -> bool:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            return False
        raise
    return hasattr(mod, name)


# ---- one task ------------------------------------------------------------------------------
def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def _scalar(v: Any) -> Any:
    if _is_scalar(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return json.dumps(v, sort_keys=True, default=str)


def _base_row(task: dict[str, Any]) -> dict[str, Any]:
    cfg = task["config"]
    row: dict[str, Any] = {"point_index": task["index"], "hash": task["hash"],
                           "status": "ok", "error": None, "workload": task["workload"],
                           "config": cfg["name"]}
    for k in KEY_COLUMNS[6:17]:
        row[k] = cfg[k]
    for k in ("sparsity", "dataflow", "train", "batch", "seq"):
        row[k] = task[k]
    return row


def run_task(evaluate: Evaluate, task: dict[str, Any], run_id: str = ""
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluate one task; never raises for a failing point (returns an error row instead).

    Returns ``(row, layer_rows)``: the row starts with :data:`KEY_COLUMNS`, then the
    evaluation's metrics, then :data:`VOLATILE_COLUMNS` and :data:`PROVENANCE_COLUMNS`.
    """
    t0 = time.perf_counter()
    row = _base_row(task)
    layers: list[dict[str, Any]] = []
    try:
        res = dict(evaluate(task))
        raw_layers = res.pop("layers", None) or []
        for k, v in res.items():
            if k not in row or k == "energy_table":  # the model names the table it used
                row[k] = _scalar(v)
        for i, layer in enumerate(raw_layers):
            lr = {"point_index": task["index"], "hash": task["hash"], "layer_index": i,
                  "workload": task["workload"], "config": row["config"],
                  "sparsity": task["sparsity"], "dataflow": task["dataflow"],
                  "train": task["train"]}
            lr.update({k: _scalar(v) for k, v in layer.items() if k not in lr})
            layers.append(lr)
    except Exception as e:  # a failing point becomes an error row; the sweep goes on
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        row["status"] = "error"
        row["error"] = f"{type(e).__name__}: {msg}"[:500]
    row["eval_s"] = round(time.perf_counter() - t0, 6)
    row["run_id"] = run_id
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    for k in PROVENANCE_COLUMNS:
        row[k] = task.get(k, "")
    return row, layers


Outcome = tuple[dict[str, Any], list[dict[str, Any]]]


def run_chunk(evaluate: Evaluate, tasks: Sequence[dict[str, Any]], run_id: str = ""
              ) -> list[Outcome]:
    """:func:`run_task` over consecutive tasks in one worker (they share its caches)."""
    return [run_task(evaluate, t, run_id) for t in tasks]


def chunk_tasks(tasks: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Split tasks into runs of at most ``size`` consecutive tasks of the same workload,
    hardware, batch and sequence length, so that one worker evaluates them in a row: the
    model then compiles each program once for all dataflows and reuses its dense baseline."""
    chunks: list[list[dict[str, Any]]] = []
    last = None
    for t in tasks:
        key = (t["workload"], json.dumps(t["config"], sort_keys=True), t["batch"], t["seq"])
        if chunks and key == last and len(chunks[-1]) < size:
            chunks[-1].append(t)
        else:
            chunks.append([t])
        last = key
    return chunks


# ---- the engine ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: points in the spec, already finished, evaluated now, errors."""

    total: int
    skipped: int
    evaluated: int
    errors: int
    seconds: float
    backend: str
    results: Path
    #: distinct ``error`` texts of this run's failed points (at most three)
    first_errors: list[str] = field(default_factory=list)
    #: finished points evaluated again: their rows came from other sparsa sources or
    #: another version of the workload file (:data:`PROVENANCE_COLUMNS`)
    stale: int = 0

    @property
    def points_per_s(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "skipped": self.skipped, "evaluated": self.evaluated,
                "errors": self.errors, "seconds": round(self.seconds, 3),
                "points_per_s": round(self.points_per_s, 3), "backend": self.backend,
                "results": str(self.results), "first_errors": list(self.first_errors),
                "stale": self.stale}


#: A running backend: its results as they complete, and how to stop it (``finished``: the
#: results were all consumed; else the sweep was interrupted or failed and the work in
#: flight is abandoned). Stopping works whether or not iteration ever started.
Backend = tuple[Iterator[list[Outcome]], Callable[[bool], None]]


def _serial(evaluate: Evaluate, tasks: Sequence[dict[str, Any]], run_id: str) -> Backend:
    return ([run_task(evaluate, t, run_id)] for t in tasks), lambda finished: None


def _pool_worker_init(parent: int, stop: Any) -> None:
    """Set-up of a local pool worker.

    The sweep process owns the stop: Ctrl-C (which the terminal sends to every process of
    the group) and SIGTERM are its to handle, and a worker ends at once when the sweep sets
    ``stop.value`` (an interrupted sweep does not wait for the points in flight, which it
    could not save any more) or when the sweep process is gone (SIGKILL, the OOM killer): a
    worker left behind would compute its chunk for nobody and then block for ever on the
    pool's queues.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def watch() -> None:
        # polls a flag in shared memory: a multiprocessing.Event would hang the sweep when
        # a worker dies while waiting on it (its set() waits for every waiter to wake)
        while not stop.value and os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="sparsa-sweep-watch", daemon=True).start()


def _pool(evaluate: Evaluate, chunks: Sequence[list[dict[str, Any]]], run_id: str,
          workers: int) -> Backend:
    # submit eagerly: the pool forks its workers now, before a progress thread exists
    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    stop = ctx.RawValue("b", 0)
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                initializer=_pool_worker_init, initargs=(os.getpid(), stop))
    futs = [ex.submit(run_chunk, evaluate, c, run_id) for c in chunks]

    def close(finished: bool) -> None:
        if not finished:    # interrupted or failed: end the workers now
            stop.value = 1
        ex.shutdown(wait=True, cancel_futures=True)

    return (f.result() for f in cf.as_completed(futs)), close


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Start processes that ignore SIGINT (an ignored signal stays ignored in a child, and
    Python keeps it so). Ctrl-C reaches every process of the terminal's group: the sweep
    handles it and stops its Dask workers, which would otherwise each print a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _quiet_dask_logs() -> None:
    """Only critical messages from Dask's loggers (run on the workers of a cluster that is
    being stopped)."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _dask(evaluate: Evaluate, chunks: Sequence[list[dict[str, Any]]], run_id: str,
          workers: int, scheduler: str | None, processes: bool) -> Backend:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as e:
            raise ReportError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        except (ValueError, TypeError) as e:
            raise ReportError(f"--scheduler {scheduler!r} is not a Dask scheduler address "
                              f"such as tcp://host:8786 ({e})") from None
    else:
        with _sigint_ignored_by_children():
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                   processes=processes, dashboard_address=None)
        client = Client(cluster)
    futs = client.map(run_chunk, [evaluate] * len(chunks), chunks, [run_id] * len(chunks),
                      pure=False)

    def close(finished: bool) -> None:
        # stopping our own cluster mid-task is what an interrupt asks for: Dask would log
        # each cancelled task and each worker it has to kill, with tracebacks
        quiet = not finished and cluster is not None
        log = logging.getLogger("distributed")
        level = log.level
        if quiet:
            with contextlib.suppress(Exception):
                client.run(_quiet_dask_logs)
            log.setLevel(logging.CRITICAL)
        try:
            client.cancel(futs)
            client.close()
            if cluster is not None:
                cluster.close()
        finally:
            if quiet:
                log.setLevel(level)

    return (f.result() for f in as_completed(futs)), close


def _progress(console: Any, total: int) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]} pt/s"), TextColumn("{task.fields[errs]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=False, disable=total == 0)


#: Column of :func:`evaluate_point`'s rows that holds the area (``area: true``).
AREA_COLUMN = "area_total_mm2"


def _lacking(store: ResultStore, stored: dict[str, dict[str, Any]], spec: SweepSpec,
             done: set[str]) -> set[str]:
    """Finished points whose stored row (``stored``: hash -> row) lacks what ``spec`` asks
    of them: the area (stored by a sweep with ``area: false``) or per-layer rows (one
    without ``per_layer: true``). Neither enters the content hash, so such points would
    otherwise count as done and the results never get what the spec asks for. Error rows
    are left to ``retry_errors``."""
    area = {p.key for p in spec.points if p.area and p.key in done}
    layers = {p.key for p in spec.points if p.per_layer and p.key in done}
    if not area and not layers:
        return set()
    ok = {h: r for h, r in stored.items() if r.get("status") == "ok"}
    out = {h for h in area if h in ok and ok[h].get(AREA_COLUMN) is None}
    if layers:
        have = {r["hash"] for r in store.rows(store.LAYERS)}
        out |= {h for h in layers if h in ok and h not in have}
    return out


def _stale(stored: dict[str, dict[str, Any]], done: set[str],
           want: dict[str, dict[str, str]]) -> set[str]:
    """Finished points whose stored row (``stored``: hash -> row) was produced by other
    sources or another version of the workload file than ``want`` (hash -> provenance
    columns): to evaluate again."""
    return {h for h in done if h in want and h in stored
            and any((stored[h].get(k) or "") != want[h][k] for k in PROVENANCE_COLUMNS)}


def _check_results_folder(root: Path) -> None:
    """A sweep writes into a new or empty folder or into sweep results (its own, to resume,
    or another sweep's, to plot and report them together); a folder holding other files
    (a compiled program, Verilog) is refused."""
    if not root.is_dir():
        return
    known = {"points.parquet", "layers.parquet", "parts", "plots", "report", "spec.yaml"}
    other = sorted(p.name for p in root.iterdir() if p.name not in known
                   and not p.name.startswith("."))
    if other:
        raise ReportError(f"-o {root}: not a sweep results folder (holds {other[0]!r}); give "
                          f"an empty or new folder")


def _spec_identity(raw: Any) -> dict[str, Any] | None:
    """A spec mapping normalised (defaults filled in, a single value made a list) without
    ``area`` and ``per_layer``, which a re-run may turn on to add columns to the same
    points; ``None`` when ``raw`` is no valid spec."""
    try:
        m = SweepSpecModel.model_validate(raw)
    except ValueError:     # pydantic's ValidationError
        return None
    d = m.model_dump(exclude={"area", "per_layer"})
    for pt in d.get("points") or ():
        pt.pop("per_layer", None)
    return d


def check_same_spec(spec: SweepSpec, root: str | os.PathLike[str]) -> None:
    """Refuse to run ``spec`` into results folder ``root`` when it holds the results of
    another spec (its ``spec.yaml``, copied by the sweep that made it, normalises to
    something else): the sweep would overwrite that copy and mix both specs' points.
    Re-running the same spec (to resume, or with ``area``/``per_layer`` turned on) passes,
    and so does a folder without ``spec.yaml``. ``sparsa sweep`` calls this; :func:`run_sweep`
    itself merges any sweeps' results (the demo puts its sections in one folder)."""
    root = Path(root)
    stored = root / "spec.yaml"
    if not stored.is_file():
        return
    try:
        old = _spec_identity(yaml.safe_load(stored.read_bytes()))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        old = None
    new = _spec_identity(spec.raw)
    if old == new:
        return
    if old is None:
        why = f"{stored} is not a readable sweep spec"
    else:
        keys = ", ".join(k for k in new if old.get(k) != new.get(k))
        why = f"{stored} differs from {spec.source} in {keys}"
    raise ReportError(f"results folder {root} holds the results of another sweep spec "
                      f"({why}); give a new or empty folder (re-running the same spec "
                      f"resumes)")


def local_worker_limit() -> int:
    """Most local worker processes a sweep starts: 4 per CPU (each worker is a Python
    process with numpy and the compiler loaded; thousands of them exhaust memory)."""
    return 4 * (os.cpu_count() or 1)


def run_sweep(spec: SweepSpec, out: str | os.PathLike[str], *, workers: int = 2,
              scheduler: str | None = None, dask: bool = False, dask_processes: bool = True,
              evaluate: Evaluate | None = None, retry_errors: bool = False,
              flush_every: int = 16, flush_seconds: float = 2.0, chunk_size: int = 12,
              progress: bool = True, console: Any = None) -> SweepResult:
    """Evaluate the spec's unfinished points into the results directory ``out``.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`~sparsa.reports.spec.load_spec` / :func:`~sparsa.reports.spec.parse_spec`.
    out : path
        Results directory (created); re-running into the same directory resumes.
    workers : int
        Local worker processes (1 = in-process), or Dask workers with ``dask=True``.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); implies Dask.
    dask : bool
        Start a ``LocalCluster`` with ``workers`` workers (``dask_processes=False``: threads
        in this process, for quick tests).
    evaluate : callable, optional
        ``task -> metrics`` (default :func:`evaluate_point`, the SimPy model).
    retry_errors : bool
        Re-evaluate points whose stored row is an error row.
    flush_every, flush_seconds : int, float
        Write a part file after this many finished points or seconds.
    chunk_size : int
        Points of the same workload and hardware sent to one worker at a time
        (:func:`chunk_tasks`); 1 sends every point on its own.
    progress : bool
        Show a progress bar with ETA (rich, on ``console`` or stderr).

    Returns
    -------
    SweepResult
    """
    if workers < 1:
        raise ReportError(f"--workers must be >= 1, not {workers}")
    limit = local_worker_limit()
    if scheduler is None and workers > limit:
        raise ReportError(f"--workers {workers}: allowed 1..{limit} local processes on this "
                          f"machine (4 per CPU); use --scheduler for a larger Dask cluster")
    if chunk_size < 1:
        raise ReportError(f"chunk_size must be >= 1, not {chunk_size}")
    default = evaluate is None
    if default:
        check_evaluator(spec)
        evaluate = evaluate_point
    store = ResultStore(out)
    _check_results_folder(store.root)
    store.remove_stale_temps()
    done = store.finished(include_errors=not retry_errors)
    # the stored rows, read once (the last row of a point wins, as in the store)
    stored = {r["hash"]: r for r in store.rows()} if done else {}
    if default:
        done -= _lacking(store, stored, spec, done)
    code = code_digest() if default else ""
    wdig = {w: workload_digest(w) for w in {p.workload for p in spec.points}}
    want = {p.key: {"code_digest": code, "workload_digest": wdig[p.workload]}
            for p in spec.points}
    stale = _stale(stored, done, want)
    done -= stale
    todo: list[DesignPoint] = [p for p in spec.points if p.key not in done]
    tasks = [{**p.to_task(), **want[p.key]} for p in todo]
    run_id = uuid.uuid4().hex[:12]
    buf: list[dict[str, Any]] = []
    lbuf: list[dict[str, Any]] = []
    errors = 0
    first_errors: list[str] = []
    n = 0
    t0 = last_flush = 0.0

    def flush() -> None:
        nonlocal last_flush
        store.write_part(buf, lbuf)
        buf.clear()
        lbuf.clear()
        last_flush = time.perf_counter()

    bar = None
    finished = False
    if scheduler or dask:
        backend = f"dask {scheduler}" if scheduler else \
            f"dask LocalCluster ({workers} {'processes' if dask_processes else 'threads'})"
        results, stop = _dask(evaluate, chunk_tasks(tasks, chunk_size), run_id, workers,
                              scheduler, dask_processes)
    elif workers == 1:
        backend = "in-process"
        results, stop = _serial(evaluate, tasks, run_id)
    else:
        backend = f"process pool ({workers} workers)"
        results, stop = _pool(evaluate, chunk_tasks(tasks, chunk_size), run_id, workers)
    # from here on the backend runs: it is stopped however this ends (an interrupt before
    # the first result too, else the pool would compute every point before Python exits)
    try:
        # the results folder is written only once the backend is up (an unreachable
        # scheduler leaves nothing behind)
        store.root.mkdir(parents=True, exist_ok=True)
        write_atomic(store.root / "spec.yaml",
                     yaml.safe_dump(spec.raw, sort_keys=False).encode())
        if progress and console is None:
            from rich.console import Console
            console = Console(stderr=True)
        t0 = last_flush = time.perf_counter()
        if progress:
            bar = _progress(console, len(tasks))
            bar.start()
            tid = bar.add_task("sweep", total=len(tasks), rate="-", errs="")
        for outcomes in results:
            for row, layers in outcomes:
                n += 1
                if row["status"] != "ok":
                    errors += 1
                    if len(first_errors) < 3 and row["error"] not in first_errors:
                        first_errors.append(row["error"])
                buf.append(row)
                lbuf.extend(layers)
            now = time.perf_counter()
            if len(buf) >= flush_every or now - last_flush >= flush_seconds:
                flush()
            if bar is not None:
                bar.update(tid, advance=len(outcomes), rate=f"{n / max(now - t0, 1e-9):.2f}",
                           errs=f"{errors} errors" if errors else "")
        finished = True
    finally:
        try:
            if bar is not None:
                bar.stop()
            flush()
        finally:    # the backend is stopped even when saving the last rows failed
            stop(finished)
    seconds = time.perf_counter() - t0
    store.compact()
    return SweepResult(total=len(spec.points), skipped=len(spec.points) - len(todo),
                       evaluated=n, errors=errors, seconds=seconds, backend=backend,
                       results=store.root, first_errors=first_errors, stale=len(stale))
