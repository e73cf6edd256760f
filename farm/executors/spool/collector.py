"""The collector: reads results from the spool and resolves the futures that wait for them.

It runs in the thread farm-watch (Collector.watch), which polls notices/ (fast while
results come, backing off to 50 ms when none do) and, each on its own schedule, looks for
results whose notice was lost and runs the spool's repair sweep.  The writer thread calls
resolve() and resolve_if_done() too, for a task it finds done when it submits it.

A notice (notices/KEY) is a link to KEY's result; a bundle's notice (notices/BID-R) holds
the results of several keys (docs/spool-format.md, Bundles).  A result is read, turned
into a value or an exception, and set on the key's futures; each of those steps is one
function here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import cloudpickle

from farm.dataflow.futures import AppFuture
from farm.errors import (
    CorruptFile,
    DependencyError,
    SerializationError,
    SpoolError,
    unpack_exception,
)
from farm.executors.spool.pending import Pending
from farm.spool import DEP_FAILED, OK, Spool, fs, is_bundle

log = logging.getLogger("farm.executor")

Result = tuple[dict[str, Any], bytes]  # a result record: header, body
T = TypeVar("T")


@dataclass
class _Every:
    """A step of the watch loop that runs every `period` seconds."""
    period: float
    step: Callable[[], object]
    last: float


class Collector:
    def __init__(self, spool: Spool, pending: Pending, stop: threading.Event,
                 sweep_period: float):
        self.spool = spool
        self.pending = pending
        self.stop = stop
        self.sweep_period = sweep_period

    # -- the thread ---------------------------------------------------------------------------

    def watch(self) -> None:
        """The loop of thread farm-watch, until stop is set."""
        delay = 0.001
        now = time.monotonic()
        # Each periodic step runs on its own schedule, and a step that fails waits for its
        # next turn like one that succeeded (never a retry storm, never a skipped neighbour).
        # (check_pending costs one open per pending key: rare enough for big backlogs)
        steps = [_Every(60.0, self.check_pending, now),
                 _Every(self.sweep_period, self.spool.sweep, now)]
        while not self.stop.is_set():
            got = self._guarded(self.drain_notices) or 0
            now = time.monotonic()
            for step in steps:
                if now - step.last > step.period:
                    step.last = now
                    self._guarded(step.step)
            delay = fs.min_poll(0.001) if got else min(max(delay * 1.5, fs.min_poll(0.001)), 0.05)
            self.stop.wait(delay)

    def _guarded(self, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except Exception:
            log.exception("farm: error in the result watcher (going on)")
            return None

    # -- notices ------------------------------------------------------------------------------

    def drain_notices(self) -> int:
        """Consume the notices there are now; how many names notices/ had."""
        names = self.spool.notices()
        for name in names:
            if is_bundle(name):
                self._drain_bundle(name)
                continue
            # A notice whose result we could not read yet (not visible here) stays for the
            # next look; one of a key nobody waits for is dropped (submit checks results).
            if name not in self.pending or self._resolve_notice(name, self.spool.notice_path(name)):
                self.spool.drop_notice(name)
        return len(names)

    def _drain_bundle(self, name: str) -> None:
        """A notice of several results (one file): resolve the futures of each."""
        path = self.spool.notice_path(name)
        try:
            recs = self.spool.read_notice(name)
        except CorruptFile as e:  # the results themselves are found by check_pending
            self.spool.quarantine(path, str(e))
            return
        for key, rec in recs or ():
            if key in self.pending:
                self._resolve_record(key, path, rec)
        if recs is not None:
            self.spool.drop_notice(name)

    def check_pending(self) -> None:
        """Find results whose notice was lost (a pool died between the two steps).  A
        result not visible here yet is found at the next check (a hint is enough)."""
        for key in self.pending.keys():
            if self.spool.peek_status(key) is not None:
                self.resolve(key)

    # -- resolving: where the result is read from ----------------------------------------------

    def resolve(self, key: str) -> bool:
        """Resolve key's futures from its result file; False if the result cannot be seen."""
        return self._resolve_from(key, lambda: self.spool.read_result(key))

    def resolve_if_done(self, key: str) -> bool:
        """resolve(), if key has a result (looked up for sure: see Spool.result_status)."""
        return self.spool.result_status(key) is not None and self.resolve(key)

    def _resolve_notice(self, key: str, path: str) -> bool:
        """From key's notice (a link to its result) at path, or, if the notice has gone
        meanwhile, from the result file itself."""
        def read() -> Result | None:
            res = self.spool.read_result(key, path)
            return res if res is not None else self.spool.read_result(key)
        return self._resolve_from(key, read)

    def _resolve_record(self, key: str, path: str, rec: bytes) -> bool:
        """From key's record in a bundle of results (read already from the file at path)."""
        return self._resolve_from(key, lambda: self.spool.decode_result(rec, path, key))

    # -- resolving: from a result to the futures -----------------------------------------------

    def _resolve_from(self, key: str, read: Callable[[], Result | None]) -> bool:
        """Resolve key's futures from the result read() returns: its value, its exception,
        or the error that it cannot be read or unpickled.  False if read() found none."""
        try:
            res = read()
            if res is None:
                return False
            value, exc = self._outcome(key, *res)
        except CorruptFile as e:
            value, exc = None, SpoolError(f"task {self._label(key)}: its result {e.path} is "
                                          f"damaged ({e.why}); delete the file and re-run the "
                                          "script to run the task again")
        except Exception as e:
            value, exc = None, SerializationError(
                f"task {self._label(key)}: cannot unpickle its result "
                f"({type(e).__name__}: {e})")
        self._settle(key, value, exc)
        return True

    def _outcome(self, key: str, header: dict[str, Any], body: bytes
                 ) -> tuple[Any, BaseException | None]:
        """(value, None) for a success, (None, exception) for a failure."""
        status = header.get("status")
        if status == OK:
            return cloudpickle.loads(body), None
        if status == DEP_FAILED:
            return None, self._dependency_error(key, header.get("failed_deps", []))
        return None, unpack_exception(body)

    def _dependency_error(self, key: str, failed: list[str]) -> DependencyError:
        """The error of a task a pool did not run because dependencies failed, with each
        dependency's exception (Parsl's dependent_exceptions_tids): from its future, which
        is resolved first if its notice has not been read yet."""
        fut = self.pending.first(key)
        deps = {d.key: d for d in (fut.task.waits_on if fut else ()) if isinstance(d, AppFuture)}
        pairs: list[tuple[BaseException | None, str]] = []
        for d in failed:
            dep = deps.get(d)
            if dep is not None and not dep.done() and d in self.pending:
                self.resolve(d)
            if dep is not None:
                pairs.append((dep.exception() if dep.done() else None, dep.task.label))
            else:
                pairs.append((None, self._label(d)))
        return DependencyError([label for _, label in pairs], self._label(key), pairs)

    def _settle(self, key: str, value: Any, exc: BaseException | None) -> None:
        for f in self.pending.take(key):
            if f.done():
                continue
            if exc is None:
                f.set_result(value)
            else:
                f.set_exception(exc)

    def _label(self, key: str) -> str:
        fut = self.pending.first(key)
        return fut.task.label if fut else self.spool.label(key)
