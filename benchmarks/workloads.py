"""The workloads themselves, shared by the farm child (run.py) and the Parsl child
(parsl_peer.py), so that both systems run exactly the same loops.

Each takes the apps to call (farm's or Parsl's decorated functions) and returns the run's
figures as a dict.  Futures are plain concurrent.futures futures in both systems.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import psutil


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.05, self.end - time.monotonic())


def collect(futs: list, expect: Any, deadline: Deadline) -> tuple[int, str | None]:
    """Wait for every future; (number that failed or gave an unexpected value, first error)."""
    bad, first = 0, None
    for f in futs:
        exc = f.exception(timeout=deadline.left())  # TimeoutError propagates: the run fails
        if exc is None and f.result() == expect:
            continue
        bad += 1
        if first is None:
            first = repr(exc) if exc is not None else f"unexpected result {f.result()!r}"
    return bad, first


def first_result(app: Callable, t_load: float, t_loaded: float,
                 deadline: Deadline) -> dict[str, float]:
    """One trivial task on a system just loaded (its first call starts the pool): the time
    from the start of `load` to its result.  Also the warm-up of every other workload."""
    t_sub = time.perf_counter()
    app().result(timeout=deadline.left())
    t_first = time.perf_counter()
    return {"load_s": t_loaded - t_load, "first_result_s": t_first - t_load,
            "first_after_submit_s": t_first - t_sub}


def throughput(app: Callable, expect: Any, size: int, deadline: Deadline) -> dict[str, Any]:
    """`size` independent calls of app, all submitted at once: tasks/s from the first call to
    the last result, and calls/s of the call loop alone."""
    t0 = time.perf_counter()
    futs = [app() for _ in range(size)]
    t1 = time.perf_counter()
    bad, err = collect(futs, expect, deadline)
    t2 = time.perf_counter()
    return {"submit_s": t1 - t0, "total_s": t2 - t0, "tasks_per_s": size / (t2 - t0),
            "submit_per_s": size / (t1 - t0), "failed": bad, "first_error": err}


def chain(hop: Callable, size: int, deadline: Deadline) -> dict[str, Any]:
    """`size` calls, each taking the previous call's future: ms per hop, submits included
    (the driver submits while the first hops run, as a user's script would)."""
    t0 = time.perf_counter()
    futs, prev = [], None
    for _ in range(size):
        prev = hop(prev)
        futs.append(prev)
    t1 = time.perf_counter()
    bad, err = collect(futs, None, deadline)
    t2 = time.perf_counter()
    return {"submit_s": t1 - t0, "total_s": t2 - t0, "ms_per_hop": 1000 * (t2 - t0) / size,
            "failed": bad, "first_error": err}


def submission(app: Callable, size: int,
               flush: Callable[[float], bool] | None = None,
               deadline: Deadline | None = None) -> tuple[dict[str, Any], list]:
    """`size` calls with nothing running them (no pool): the driver's cost per app call,
    and its memory per queued task (RSS after the calls minus RSS before, the futures kept
    in a list as a user's script keeps them).

    flush(timeout), where the system has one, waits until every call made so far is
    written where the workers will find it (a driver may write in a thread of its own,
    after the call returned); the same figures are then taken again, as "written".
    Returns the figures and the futures (the caller keeps them alive until it has
    measured what it wants)."""
    proc = psutil.Process()
    gc.collect()  # garbage of the load itself must not be freed in the middle of the loop
    rss0 = proc.memory_info().rss
    # One call first: the first call of an app does one-off work (farm stores the pickled
    # function in the spool, Parsl sets up its task-launch machinery).
    warm = app()
    t0 = time.perf_counter()
    futs = [app() for _ in range(size)]
    t1 = time.perf_counter()
    rss1 = proc.memory_info().rss
    futs.append(warm)
    res = {"submit_s": t1 - t0, "calls_per_s": size / (t1 - t0), "rss_before": rss0,
           "rss_after": rss1, "bytes_per_task": (rss1 - rss0) / (size + 1),
           "failed": 0, "first_error": None}
    if flush is not None:
        if not flush(deadline.left() if deadline else 600.0):
            raise TimeoutError("the calls were not all written within the run's time limit")
        t2 = time.perf_counter()
        rss2 = proc.memory_info().rss
        res.update(written_s=t2 - t0, written_per_s=size / (t2 - t0), rss_written=rss2,
                   bytes_per_task_written=(rss2 - rss0) / (size + 1))
    return res, futs
