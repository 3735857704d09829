"""Independent compile-and-simulate jobs in forked worker processes.

Compiling and simulating are single-threaded Python; where
:func:`sparsa.compiler.tiling.timing_jobs` allows a second process (two cores, ``fork``, a
top-level process with no other thread or child), independent jobs -- a dense baseline
beside the sparse run, the sparsities of a comparison, the settings of an ablation -- run
side by side. Jobs reach the workers by ``fork`` (nothing is pickled on the way in, so
workload objects work too); results come back pickled, so they should be small (a
:class:`~sparsa.sim.api.SimResult` without its per-operation ``stats``). A job's exception
is raised in the caller.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["Forked", "start_forked", "map_forked", "imap_forked"]

_JOBS: dict[int, tuple[Callable[..., Any], tuple]] = {}    # read by the forked workers
_KEYS = itertools.count()


def _call(key: int) -> Any:
    fn, args = _JOBS[key]
    return fn(*args)


def _fork_ok(jobs: int | None) -> int:
    import multiprocessing

    from sparsa.compiler.tiling import timing_jobs
    jobs = timing_jobs() if jobs is None else jobs
    return jobs if "fork" in multiprocessing.get_all_start_methods() else 1


class Forked:
    """``fn(*args)`` running in a forked worker: :meth:`get` waits for its result (raising
    its exception); :meth:`close` (also after an error) stops the worker."""

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        import multiprocessing
        self._key = next(_KEYS)
        _JOBS[self._key] = (fn, args)       # before the fork: the worker finds it there
        self._pool = multiprocessing.get_context("fork").Pool(1)
        self._result = self._pool.apply_async(_call, (self._key,))

    def get(self) -> Any:
        return self._result.get()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
        _JOBS.pop(self._key, None)


def start_forked(fn: Callable[..., Any], *args: Any, jobs: int | None = None
                 ) -> Forked | None:
    """Start ``fn(*args)`` in a forked worker when a second process is allowed (``jobs``:
    as :func:`map_forked`), else ``None``: the caller then runs it itself."""
    return Forked(fn, args) if _fork_ok(jobs) > 1 else None


@contextlib.contextmanager
def _pool(fn: Callable[..., Any], arg_list: Sequence[tuple], jobs: int
          ) -> Iterator[tuple[Any, list[int]]]:
    """A fork pool of ``min(jobs, len(arg_list))`` workers that find the jobs (``fn`` with
    each argument tuple) under the keys it yields beside it."""
    import multiprocessing
    keys = [next(_KEYS) for _ in arg_list]
    _JOBS.update((k, (fn, tuple(args))) for k, args in zip(keys, arg_list, strict=True))
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(keys))) as pool:
            yield pool, keys
    finally:
        for k in keys:
            _JOBS.pop(k, None)


def map_forked(fn: Callable[..., Any], arg_list: Sequence[tuple], jobs: int | None = None
               ) -> list[Any]:
    """``[fn(*args) for args in arg_list]``, in up to ``jobs`` forked workers (default
    :func:`~sparsa.compiler.tiling.timing_jobs`) when there are two jobs or more."""
    jobs = _fork_ok(jobs)
    if jobs < 2 or len(arg_list) < 2:
        return [fn(*args) for args in arg_list]
    with _pool(fn, arg_list, jobs) as (pool, keys):
        return pool.map(_call, keys, chunksize=1)


def imap_forked(fn: Callable[..., Any], arg_list: Sequence[tuple], jobs: int | None = None
                ) -> Iterator[Any]:
    """:func:`map_forked`'s results as the jobs finish (in any order; one after the other,
    in order, without workers)."""
    jobs = _fork_ok(jobs)
    if jobs < 2 or len(arg_list) < 2:
        for args in arg_list:
            yield fn(*args)
        return
    with _pool(fn, arg_list, jobs) as (pool, keys):
        yield from pool.imap_unordered(_call, keys)
