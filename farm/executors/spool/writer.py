"""The writer: puts the app calls queued by SpoolExecutor.submit into the spool.

It runs in the thread farm-write (Writer.run), which alone writes tasks, in call order (a
dependency is always written before its dependents).  The caller's thread talks to it
through `outbox`, with three kinds of item: Submit (an app call, from submit), Flush
(from flush(): an event set once everything queued before it is written) and Stop (from
shutdown: write what is queued, then end).

What has queued up since the thread last looked is written together: the ready tasks in
bundles (Spool.put_bundle), one file and one ready/ entry for up to BUNDLE tasks.  A task
that cannot go in a bundle (it waits for dependencies, its arguments are large, it may be
in the spool already) is written on its own (_write): submitted; attached to (_attach) if
an earlier run submitted it; resolved at once if it is done; run again if it failed.  A
task that waits gets a backstop (_backstop), which promotes it later, in the thread that
resolves its last dependency (usually the collector's).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from farm.dataflow.futures import AppFuture, when_all_done
from farm.dataflow.task import TaskRecord
from farm.errors import CorruptFile, SpoolError
from farm.executors.spool.calls import not_submitted
from farm.executors.spool.collector import Collector
from farm.executors.spool.pending import Pending
from farm.executors.spool.upkeep import Upkeep
from farm.spool import OK, Spool, fs, priority_of

log = logging.getLogger("farm.executor")

BUNDLE = 64  # tasks in one bundle, at most


@dataclass(slots=True)
class Submit:
    """An app call to write: its task, header and pickled arguments (calls.py)."""
    task: TaskRecord
    header: dict[str, Any]
    body: bytes


@dataclass(slots=True)
class Flush:
    """done is set once every item queued before this one is written."""
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(slots=True)
class Stop:
    """Write what is queued before this, then end the thread."""


Item = Submit | Flush | Stop


class Writer:
    def __init__(self, spool: Spool, pending: Pending, collector: Collector, upkeep: Upkeep,
                 native: Callable[[Future[Any]], bool], *, fresh: bool, had_result: set[str],
                 rerun_failed: bool, stats: dict[str, int], queued: set[str] | None = None):
        self.outbox: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self.spool = spool
        self.pending = pending
        self.collector = collector  # (a task found done is resolved at once)
        self.upkeep = upkeep  # (blocks start with the first task; fencing; worker slots)
        self.native = native  # is a future one of this executor's tasks?
        self.fresh = fresh  # the spool is new: no earlier run left tasks in it
        # Keys that had a result when this driver started (see SpoolExecutor.start).
        self.had_result = had_result
        # Keys queued (in waiting/, ready/ or claimed/) when this driver started: tasks of
        # bundles without links have no tasks/XX/KEY to say they exist.
        self.queued = queued or set()
        self.rerun_failed = rerun_failed
        self.reran: set[str] = set()  # failed in an earlier run, requeued by this one
        self.stats = stats  # (SpoolExecutor.stats: submitted, attached, done_before, rerun)

    def run(self) -> None:
        """The loop of thread farm-write, until a Stop.  What has queued up is written
        together: ready tasks in bundles of K, K sized so that every worker slot still
        gets a couple of bundles."""
        while True:
            batch = [self.outbox.get()]
            while len(batch) < 4096:
                try:
                    batch.append(self.outbox.get_nowait())
                except queue.Empty:
                    break
            # Bundles of K: every worker slot still finds a couple of bundles, counting
            # the tasks written before that are not done yet (while those keep the
            # workers busy, a trickle of calls need not go in small bundles).
            queued = len(batch) + len(self.pending)
            k = max(1, min(BUNDLE, queued // (2 * self.upkeep.slots)))
            group: list[Submit] = []
            for item in batch:
                if isinstance(item, Submit):
                    if self._bundle_into(group, item, k):
                        continue
                    self._write_group(group)  # (first: the calls bundled so far came before)
                    if self._bundle_into(group, item, k):
                        continue  # (it starts the next bundle)
                self._write_group(group)
                match item:
                    case Stop():
                        return
                    case Flush(done):
                        self.upkeep.start_blocks()  # (a flushed task has its blocks asked for)
                        done.set()  # all before is written
                    case Submit():
                        self._write_one(item)
            self._write_group(group)

    # -- bundles ------------------------------------------------------------------------------

    def _bundle_into(self, group: list[Submit], item: Submit, k: int) -> bool:
        """Add a call to the bundle being formed, if it can go in one (False: the bundle is
        written first, and the call starts the next one or is written on its own).

        It must be a new task (not in the spool yet, not a repeat of one in this bundle)
        with small arguments and no priority.  Its dependencies have all succeeded (then
        it joins while the bundle has fewer than k tasks: k keeps every worker slot
        supplied), or it is the next link of a chain: it waits for the bundle's last task
        (and tasks that succeeded), so it could only run after it anyway; a bundle holds
        up to BUNDLE links.  A chain bundle may start with a task that waits for tasks
        outside it: the bundle then waits in waiting/, as one task, for those."""
        task = item.task
        if self.upkeep.fenced or len(item.body) > 65536 or priority_of(task.opts) \
                or len(group) >= BUNDLE or any(s.task.key == task.key for s in group):
            return False  # (a bundle has no priority: its tasks keep theirs alone)
        last = group[-1].task.key if group else None
        inside = outside = False
        for f in task.waits_on:
            if f.done():
                if f.exception() is not None:
                    return False  # (it fails with a dependency error: on its own)
            elif getattr(f, "key", None) == last and last is not None:
                inside = True
            elif self.native(f) and f.key in task.deps and not group:
                outside = True  # (a first task that waits: the bundle waits with it)
            else:
                return False
        if not inside and not outside and (
                len(group) >= k or (group and self._waits(group[0]))):
            return False  # (a ready task must not wait for a bundle's outside tasks)
        try:
            # (a hint for the task file: a link of the bundle decides, and a key that
            # existed is attached as any other)
            if not self.fresh and (task.key in self.had_result or task.key in self.queued
                                   or fs.peek(self.spool.task_path(task.key), 0) is not None):
                return False
        except OSError:
            return False  # (written on its own, which reports the error)
        group.append(item)
        return True

    @staticmethod
    def _waits(item: Submit) -> list[AppFuture]:
        """The futures of item's dependencies that are not done yet."""
        return [f for f in item.task.waits_on if not f.done()]

    def _write_group(self, group: list[Submit]) -> None:
        """Write the bundle formed so far (and empty the list)."""
        if not group:
            return
        if len(group) == 1:
            self._write_one(group.pop())  # (a task that waits is indexed there)
            return
        items = [(s.task.key, s.header, s.body) for s in group]
        tasks = {s.task.key: s.task for s in group}
        keys = set(tasks)
        # The chain's first task may wait for tasks outside the bundle: then so does it.
        outside = self._waits(group[0])
        # Ready tasks that wait for nothing, known to be new: no tasks/XX/KEY links (their
        # payload is the bundle's file: Spool.put_tasks).  A chain keeps its links: its
        # tasks may be taken apart into waiting/, which promotes from tasks/XX/KEY.
        links = bool(outside) or any(set(s.task.deps) & keys for s in group)
        for s in group:
            self.pending.add(s.task.key, s.task.future)
        group.clear()
        try:
            existed = self.spool.put_tasks(items, "waiting" if outside else "ready", links)
        except Exception as e:
            log.exception("farm: cannot submit %d tasks", len(items))
            why = fs.explain(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
            for key, _, _ in items:
                self.pending.fail(key, SpoolError(f"task {key[:8]} was not submitted: {why}. "
                                                  "Nothing was lost: fix this and run the "
                                                  "script again"))
            return
        self.stats["submitted"] += len(items) - len(existed)
        for key, header, _ in items:
            if header.get("bundle") and key not in existed:
                self.pending.bundle_of[key] = header["bundle"]
        self.upkeep.want_blocks()
        for key in existed:  # (in the spool already, though not visible here at first)
            self._attach(tasks[key], {}, True)
        if outside and not existed:
            self._index_bundle(items[0][1]["bundle"], outside)

    def _index_bundle(self, bid: str, outside: list[AppFuture]) -> None:
        """Index a waiting chain bundle as a dependent of the outside tasks it waits for,
        then its backstop: this driver moves it to ready/ once it has seen them all end
        (failed or not: the bundle's runner gives a task whose dependency failed its
        dependency error).  The protocol's order, as for one task (_index_deps)."""
        for f in outside:
            d = f.key
            self.spool.add_dependent(d, bid, self.pending.bundle_of.get(d) or (
                d if self.fresh else self.spool.entry_of(d)))

        def promote() -> None:
            try:
                self.spool.advance(bid, [])
            except Exception as e:  # the sweeps promote it later
                log.error("farm: cannot promote bundle %s: %s", bid, e)

        when_all_done(outside, promote)

    # -- one task -----------------------------------------------------------------------------

    def _write_one(self, item: Submit) -> None:
        task = item.task
        try:
            if self.upkeep.fenced:
                raise SpoolError(f"another driver took over spool {self.spool.path}")
            self._write(item)
        except Exception as e:
            log.exception("farm: cannot submit task %s", task.label)
            self.pending.fail(task.key, e)
            if not task.future.done():
                task.future.set_exception(e)

    def _write(self, item: Submit) -> None:
        task = item.task
        key = task.key
        rerun = False
        status = None
        if key in self.had_result:
            status = self.spool.result_status(key)
            if status is not None and status != OK and self.rerun_failed \
                    and key not in self.reran:
                # Before the future is registered: a notice of the old failure that the
                # watcher has not read yet must not resolve it (rerun drops that notice).
                reran = self.spool.rerun(key)
                self.reran.update(reran)
                self.reran.add(key)
                self.stats["rerun"] += len(reran)
                rerun = key in reran  # (not if its payload was gone: submitted afresh below)
        self.pending.add(key, task.future)
        if rerun:
            self.upkeep.want_blocks()
            if task.deps:
                self._backstop(task)  # (rerun's own promotion reads results: a hint)
            return
        if status is not None and self.collector.resolve(key):
            self.stats["done_before"] += 1
            return
        done = {f.key: f.done() and f.exception() is None for f in task.waits_on}
        ready = all(done.get(d, False) for d in task.deps)
        if key in self.queued:  # (of an earlier driver, in a bundle without links)
            self._attach(task, done, ready)
            return
        try:
            new = self.spool.put_task(key, item.header, item.body,
                                      "ready" if ready else "waiting")
        except OSError as e:
            self.pending.fail(key, not_submitted(task, e))
            return
        if new:
            self.stats["submitted"] += 1
            self.upkeep.want_blocks()
            if not ready:
                self._index_deps(task, done)
        else:
            self._attach(task, done, ready)

    def _attach(self, task: TaskRecord, done: dict[str, bool], ready: bool) -> None:
        """The task is in the spool already (resume, or a cached duplicate): attach to it,
        don't submit it again.  Its result and its state are looked up for sure here (a
        first look may have been answered from a stale cache)."""
        self.stats["attached"] += 1
        if self.collector.resolve_if_done(task.key):
            return
        if self.spool.is_orphan(task.key):
            self._enqueue(task, done, ready)
        else:
            self.upkeep.want_blocks()  # queued by an earlier driver: make sure pools run it
            if task.deps:
                self._backstop(task)  # (it may wait for dependencies done before)

    def _enqueue(self, task: TaskRecord, done: dict[str, bool], ready: bool) -> None:
        """Enter an existing payload in its state (an orphan: see Spool.is_orphan)."""
        self.upkeep.want_blocks()
        # (the priority its payload was written with: an entry of another name would be a
        # second entry of the same task, if one exists that this node cannot see yet)
        try:
            written = self.spool.task_header(task.key) or task.opts
        except CorruptFile:
            written = task.opts
        self.spool.enqueue(task.key, ready=ready, priority=priority_of(written))
        if not ready:
            self._index_deps(task, done)

    # -- dependencies -------------------------------------------------------------------------

    def _index_deps(self, task: TaskRecord, done: dict[str, bool]) -> None:
        # Protocol order (docs/spool-format.md): waiting/ entry, then the dependents index,
        # then the backstop: a dep that finished before its edge existed is caught there.
        for d in task.deps:
            if not done.get(d, False):
                entry = self.pending.bundle_of.get(d) or (
                    d if self.fresh else self.spool.entry_of(d))
                self.spool.add_dependent(d, task.key, entry)
        self._backstop(task)

    def _backstop(self, task: TaskRecord) -> None:
        """Once this driver has seen the outcome of each of task's dependencies, move the
        task out of waiting/ itself (Spool.advance: one rename, which fails harmlessly if
        a pool did it first, or a dependency failure).

        This is what makes promotion certain: a completer that lists the dependents of a
        task it finished misses an edge made just after its listing, or one its node
        cannot see yet (NFS), and a completer may not see another dependency's result
        yet; this driver, which wrote every edge, sees every outcome.  Costs no read."""
        deps = [f for f in task.waits_on if self.native(f) and f.key in task.deps]

        def promote() -> None:  # (in the thread that resolves the last of deps)
            failed = [f.key for f in deps if f.exception() is not None]
            try:
                self.spool.advance(task.key, failed, task.name,
                                   priority=priority_of(task.opts))
            except Exception as e:  # the sweeps promote it later
                log.error("farm: cannot promote %s: %s", task.label, e)

        when_all_done(deps, promote)
