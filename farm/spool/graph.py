"""The graph: which tasks wait for which, and moving them on when their dependencies end.

``Graph`` keeps the dependents index (``deps/XX/KEY/DEPENDENT``), promotes a waiting task
whose dependencies all succeeded (one rename out of ``waiting/``: the rename decides who
did it) or fails it with a dependency error, and runs a failure again with ``rerun``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from farm.errors import CorruptFile, SpoolError, pack_exception
from farm.spool import fs, records
from farm.spool.layout import (
    DEP_FAILED,
    FAILED,
    HEAD,
    OK,
    _link_into,
    _read_head,
    entry_name,
    is_bundle,
    priority_of,
    shard,
)
from farm.spool.tasks import Tasks, _check_task


def bundle_heads(data: bytes, path: str) -> dict[str, dict[str, Any]]:
    """key -> task header of each record of a bundle (not checked against the spool's key:
    for routing only; the runner checks each record before it runs it)."""
    return {k: _check_task(records.decode_in_bundle("TASK", rec, path, k)[0], path)
            for k, rec in records.bundle_records(data, path)[1]}


class Graph(Tasks):
    def entry_of(self, key: str) -> str:
        """Where key's dependents are indexed: under its bundle, if it was submitted in one
        (so that a pool lists one directory per bundle, not one per task), else under key."""
        try:
            header = self.task_header(key) or {}
        except CorruptFile:
            header = {}
        return str(header.get("bundle") or key)

    def dependents(self, key: str, entry: str | None = None) -> list[str]:
        """The tasks indexed as waiting for key (entry: key's bundle, if known)."""
        return [t for d, t in self._index(entry or key) if d == key]

    def _index(self, entry: str) -> list[tuple[str, str]]:
        """(dependency, dependent) pairs indexed under entry: a key (its dependents' names)
        or a bundle id (names DEP.DEPENDENT)."""
        if not is_bundle(entry):
            return [(entry, t) for t in self._edges(entry)]
        pairs = (n.partition(".") for n in self._edges(entry))
        return [(d, t) for d, dot, t in pairs if dot and t]

    def _edges(self, entry: str) -> list[str]:
        """The names in deps/XX/ENTRY, or [] if this node cannot see it.  A hint: [] may be
        stale if this node looked the name up before a driver made it, which a driver
        makes up for: it promotes a dependent itself once it has seen all its
        dependencies succeed (SpoolExecutor._backstop); and sweeps promote what waits.  A
        confirmed [] would cost a listing of the whole shard for every task that has no
        dependents, which is most tasks."""
        return fs.peek_names(self.p("deps", shard(entry), entry))

    def add_dependent(self, dep: str, key: str, entry: str | None = None) -> None:
        """Index key as waiting for dep: deps/XX/DEP/KEY, or deps/XX/BID/DEP.KEY when dep
        was submitted in bundle BID (entry)."""
        entry = entry or dep
        d = self.p("deps", shard(entry), entry)
        name = key if entry == dep else f"{dep}.{key}"
        # Index directories are never removed: one this process made (or found) stays, and
        # a dep's first edge costs a mkdir and a create, the next ones a create.
        if d not in self._edge_dirs:
            try:
                fs.mkdir(d)
            except FileNotFoundError:
                fs.mkdir(os.path.dirname(d))  # the first index directory of its shard
                fs.mkdir(d)
            if len(self._edge_dirs) > 100_000:
                self._edge_dirs.clear()
            self._edge_dirs.add(d)
        try:
            fs.create(os.path.join(d, name), b"", exclusive=True)
        except FileExistsError:
            pass

    def settle(self, entry: str, keys: Iterable[str] | None = None,
               claim_into: str | None = None) -> str | None:
        """Called after results were published: promote each waiting dependent of the tasks
        indexed under entry (a key, or the bundle they were submitted in) whose deps all
        succeeded, and fail (with a dependency error) those with a failed dep.  keys: the
        tasks that got those results (default: every task of entry that has one).  One
        listing of entry's index, whatever the number of tasks.

        With claim_into, the first promoted dependent is moved straight into that worker
        directory instead of ready/, and its claim path is returned: the worker that made a
        task runnable runs it next, without a round trip through ready/.
        """
        edges = self._index(entry)
        if keys is None:
            done = {d for d, _ in edges if self.peek_status(d) is not None}
        else:
            done = set(keys)
        return self._settle([(d, t) for d, t in edges if d in done], claim_into)

    def settle_dependents(self, key: str, claim_into: str | None = None,
                          entry: str | None = None) -> str | None:
        """settle() for one task (entry: where it is indexed; looked up if not given)."""
        return self.settle(entry or self.entry_of(key), [key], claim_into)

    def settle_bundle(self, bid: str) -> None:
        """settle() for the tasks of bundle bid that have a result."""
        self.settle(bid)

    def _settle(self, edges: list[tuple[str, str]], claim_into: str | None) -> str | None:
        claimed = None
        work = [dependent for _, dependent in edges]
        while work:
            dependent = work.pop()
            outcome = self.try_promote(dependent, claim_into if claimed is None else None)
            if outcome == DEP_FAILED:
                # (a waiting task is never in a bundle: its own dependents are under its key)
                work += self.dependents(dependent)
            elif outcome and outcome != "ready":
                claimed = outcome
        return claimed

    def try_promote(self, key: str, claim_into: str | None = None) -> str | None:
        """Move waiting/KEY on if its deps are settled.  Returns "ready", a claim path,
        DEP_FAILED, or None (still waiting, or another process moved it first).  KEY may
        be a chain bundle (see promote_bundle).

        The rename out of waiting/ decides who acts: a loser gets ENOENT and does nothing.
        A dependency's result that is not visible here yet counts as not there (a hint:
        peek_status): the task then waits for the next promoter, which the driver and the
        sweeps guarantee.
        """
        if is_bundle(key):
            return self.promote_bundle(key, claim_into)
        path = self.task_path(key)
        try:
            data = _read_head(path)
            if data is None:
                return None
            header = _check_task(records.pick("TASK", data, path, key)[0], path)
        except CorruptFile as e:
            self.fail_damaged(key, e, self.p("waiting", key))
            return DEP_FAILED  # (its dependents are settled as after any failure)
        failed = []
        for dep in header.get("deps", []):
            status = self.peek_status(dep)
            if status is None:
                return None
            if status != OK:
                failed.append(dep)
        got = self.advance(key, failed, header.get("name"), claim_into, priority_of(header))
        if claim_into and got and got != DEP_FAILED and len(data) < HEAD:
            # The whole payload was read (write once: it is what the claim holds), so
            # read_task does not open it again.
            self._prefetched = (got, data)
        return got

    def promote_bundle(self, bid: str, claim_into: str | None = None) -> str | None:
        """Move the chain bundle waiting/BID on once the tasks outside it that its tasks
        wait for are settled (the tasks inside wait for each other: its runner takes them
        in order).  A bundle is never failed whole: its runner gives each task whose
        dependency failed its dependency error.  Returns as try_promote."""
        path = self.p("waiting", bid)
        data = fs.read(path)
        if data is None:
            return None  # (moved on by another promoter)
        try:
            heads = bundle_heads(data, path)
        except CorruptFile as e:
            self.quarantine(path, str(e))  # (its tasks are orphans: a re-run submits them)
            return None
        outside = {d for h in heads.values() for d in h.get("deps", ())} - heads.keys()
        if any(self.peek_status(d) is None for d in outside):
            return None
        got = self.advance(bid, [], claim_into=claim_into)
        if claim_into and got:
            self._prefetched = (got, data)
        return got

    def enter_each(self, src: str, keys: list[str], attempt: int = 0,
                   data: bytes | None = None) -> None:
        """Give each task of the file src (a bundle's: a claim given back, a bundle not
        entered whole) an entry of its own, then drop src: ready/KEY[@N], or waiting/KEY
        and its edges while a dependency has no successful result (a task of a chain
        bundle whose predecessor has not run).  The entry, then the edges, then one look
        (the protocol's order), as for any waiting task: nothing can be missed."""
        data = fs.read(src) if data is None else data  # (data: src's, if read already)
        try:
            heads = bundle_heads(data, src) if data is not None else {}
        except CorruptFile:
            heads = {}  # (entered ready: the runner fails them, naming the file)
        unsettled = set(keys)
        for key in keys:
            head = heads.get(key, {})
            pending = [d for d in head.get("deps", ())
                       if d in unsettled or self.result_status(d) != OK]
            if not pending:
                name = self.p("ready", entry_name(key, attempt))
            else:
                name = self.p("waiting", key)
            try:
                fs.link(src, name)
            except FileExistsError:
                pass
            if pending:
                try:  # (a waiting task is promoted from tasks/XX/KEY: a bundle without
                    _link_into(src, self.task_path(key))  # links gets one for it)
                except FileExistsError:
                    pass
                for d in pending:
                    self.add_dependent(d, key, head["bundle"] if d in heads
                                       else self.entry_of(d))
                self.try_promote(key)
        self.retire_bundle(src)

    def fail_damaged(self, key: str, err: CorruptFile, entry: str | None = None) -> None:
        """A task whose payload is damaged or forged: move it out of the protocol (its
        state entry to quarantine/, and tasks/XX/KEY too, so that a re-run of the script
        submits it afresh) and give it a failed result naming the file."""
        if entry:
            self.quarantine(entry, str(err))
        fs.unlink(self.task_path(key))
        exc = SpoolError(f"task {key[:8]}: payload {err.path} is damaged or forged "
                         f"({err.why}); it was quarantined and not run. Re-run the script to "
                         "submit the task again")
        self.publish_result(key, {"status": FAILED, "error": f"SpoolError: {exc}",
                                  "t_end": time.time()}, pack_exception(exc))

    def advance(self, key: str, failed: list[str], name: str | None = None,
                claim_into: str | None = None, priority: int = 0) -> str | None:
        """Move waiting/KEY on, its dependencies all settled (failed: those that did not
        succeed).  The driver calls this directly when it has seen every dependency's
        outcome; try_promote after reading them from the spool."""
        src = self.p("waiting", key)
        if failed:
            # The result first (the link decides between racing completers), then the
            # waiting/ entry goes: a kill -9 in between leaves an entry with a result,
            # which the sweep clears.
            self.publish_result(key, self.dep_failed_head(name, failed))
            fs.unlink(src)
            return DEP_FAILED
        entry = entry_name(key, 0, priority)
        dst = os.path.join(claim_into, entry) if claim_into else self.p("ready", entry)
        try:
            fs.rename(src, dst)
        except FileNotFoundError:
            return None
        return dst if claim_into else "ready"

    def dep_failed_head(self, name: str | None, failed: list[str]) -> dict[str, Any]:
        """The result header of a task not run because its dependencies failed."""
        names = [self.label(d) for d in failed]
        return {"status": DEP_FAILED, "name": name, "failed_deps": failed,
                "error": f"DependencyError: dependencies failed: {', '.join(names)}",
                "t_end": time.time()}

    def rerun(self, key: str) -> list[str]:
        """Run a failed task again, and with it the dependents that failed because of it.
        (A task whose payload is gone only loses its result: the script submits it again.)

        Each failed result is renamed into attempts/ (the rename decides: a result that is
        already gone was reset by someone else, and nothing happens), any unread notice of
        it is dropped first, and the payload goes back to ready/ or, while a dependency has
        no successful result, to waiting/.  Returns the keys requeued.  kill -9 part way
        leaves payloads in no state and without a result: orphans, which a driver enqueues
        when the script submits them again (or rerun again: it skips what has no result).
        """
        requeued = []
        work = [key]
        while work:
            k = work.pop()
            try:
                header = self.task_header(k)
                payload = self.payload_path(k)
                if header is not None and payload and payload != self.task_path(k):
                    # (of a bundle without links: it is entered from tasks/XX/KEY again)
                    _link_into(payload, self.task_path(k))
            except CorruptFile:
                header = None
            except FileExistsError:
                pass
            fs.unlink(self.p("notices", k))
            try:
                fs.rename(self.result_path(k),
                          self.p("attempts", f"{k}.rerun-{time.time_ns()}"))
            except FileNotFoundError:
                continue
            if header is None:
                # The payload was quarantined (damaged): with its result gone too, the next
                # run of the script submits the task afresh.
                continue
            pending = [d for d in header.get("deps", []) if self.result_status(d) != OK]
            for d in pending:
                self.add_dependent(d, k, self.entry_of(d))
            self.enqueue(k, ready=not pending, priority=priority_of(header))
            if pending:
                self.try_promote(k)  # entry, edges, then one look (a driver's backstop too)
            requeued.append(k)
            work += [t for t in self.dependents(k, header.get("bundle")) + self._chained(k)
                     if self.result_status(t) == DEP_FAILED]
        return requeued

    def _chained(self, key: str) -> list[str]:
        """The tasks of key's chain bundle that wait for key (not in the dependents index:
        the bundle's runner takes them in order)."""
        data = fs.read(self.task_path(key))
        if data is None or not records.is_bundle(data):
            return []
        try:
            heads = bundle_heads(data, self.task_path(key))
        except CorruptFile:
            return []
        return [t for t, h in heads.items() if key in h["deps"]]
