"""Recovery: what crashed processes leave behind, found and put right.

Each function here is safe to run by several processes at once and to be cut short by
kill -9 itself (the next run does the rest): a driver's half-done submissions (orphans,
bundles left in tmp/), the claims of dead workers and pools, damaged payloads, and the
sweep that repairs lost wakeups.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from farm.errors import CorruptFile, SpoolError, WorkerLost, pack_exception
from farm.spool import fs, records
from farm.spool.graph import Graph
from farm.spool.layout import FAILED, SHARDS, entry_tasks, is_bundle, is_entry, split_name

FIRST = "*"  # release_bundle: charge the first unfinished task (which one ran is unknown)


class Recovery(Graph):
    def is_orphan(self, key: str) -> bool:
        """True if the payload exists but no state entry links to it and it has no result:
        a driver died between publishing the payload and enqueueing it.

        The answer can be stale on NFS (cached link counts); a wrong True makes the caller
        enqueue again, and enqueue's link fails harmlessly if the entry is in ready/ or
        waiting/.
        """
        st = fs.stat(self.task_path(key))
        if st is None or fs.stat(self.result_path(key)) is not None:
            return False
        if st.st_nlink == 1:
            return True
        # A bundle's file has a link per task: look for an entry of the key or its bundle.
        try:
            bid = (self.task_header(key) or {}).get("bundle")
        except CorruptFile:
            # A damaged bundle (its entry was quarantined): entered again, the task fails
            # with an error naming the file, and the next run submits it afresh.
            return True
        return bool(bid) and not {key, bid} & self._queued_names()

    def _queued_names(self) -> set[str]:
        """Keys and bundles in waiting/, ready/ and claimed/ (a snapshot, kept 10 s: an
        entry only appears later for a key or bundle that was already in one)."""
        if time.monotonic() - self._queued[0] > 10:
            dirs = [self.p("waiting"), self.p("ready")]
            dirs += [self.p("claimed", w) for w in fs.listdir(self.p("claimed"))]
            self._queued = (time.monotonic(),
                            {split_name(n)[0] for d in dirs for n in fs.listdir(d)})
        return self._queued[1]

    def recover_bundles(self) -> int:
        """At a driver's start (it holds the driver lock, so no other driver writes
        bundles): finish the bundles a killed driver left in tmp/.  Keys linked to one get
        ready/ entries; a bundle no key was linked to is garbage.  Returns keys entered."""
        n = 0
        for name in fs.listdir(self.p("tmp")):
            if not name.endswith(".bundle"):
                continue
            path = self.p("tmp", name)
            st, data = fs.stat(path), fs.read(path)
            if st is None or data is None:
                continue
            keys = []
            if st.st_nlink > 1:
                try:
                    keys = [k for k, _ in records.bundle_records(data, path)[1]]
                except CorruptFile:
                    keys = []  # cut short while written: no key was linked to it yet
                keys = [k for k in keys
                        if getattr(fs.stat(self.task_path(k)), "st_ino", None) == st.st_ino
                        and self.result_status(k) is None]
            self._enter_each(path, keys)
            n += len(keys)
        return n

    def release_bundle(self, path: str, attempt: int, lost: str | None = None,
                       why: str = "", skip: Iterable[str] = ()) -> int | None:
        """Give a claimed bundle's tasks back, one ready/ entry each, except those with a
        result and those in skip (already given back).  lost: the key that was running
        when its worker or pool died, which is charged an attempt (see requeue_one); the
        others were not started and keep theirs.  Then the claim goes.  Returns how many
        tasks were lost mid-run (0 or 1), None if the claim was gone.

        kill -9 part way: the claim stays and the next requeue does it again (links that
        exist fail harmlessly; one already claimed from ready/ can run twice, and its
        results are still published once)."""
        try:
            got = self.read_bundle(path)
        except CorruptFile as e:
            self.quarantine(path, str(e))
            return 0
        if got is None:
            return None
        skip = set(skip)
        n = 0
        for key, _ in got[1]:
            if key in skip or self.result_status(key) is not None:
                continue
            if key == lost or lost == FIRST:
                lost = None
                n += self.requeue_one(path, key, attempt, why)
            else:
                self.give_back(path, key, attempt)
        fs.unlink(path)
        return n

    def requeue_claims(self, wdir: str, why: str, running: str | None = None) -> int:
        """Deal with the claims a dead worker or pool left in wdir.  A task that already has
        a result just loses the claim (and its dependents are settled); the others go back
        to ready/ as attempt + 1, or fail with WorkerLost once their retries are spent.  Of
        a bundle, only the task that was running (`running`, when the pool knows it, else
        the first without a result) is charged; the rest go back unchanged.
        Returns how many tasks were lost mid-run."""
        lost = 0
        for name in fs.listdir(wdir):
            key, attempt = split_name(name)
            path = os.path.join(wdir, name)
            if is_bundle(key):
                lost += self.release_bundle(path, attempt, running or FIRST, why) or 0
            elif self.result_status(key) is None:
                lost += self.requeue_one(path, key, attempt, why)
            else:
                fs.unlink(path)
                self.settle_dependents(key)
        return lost

    def requeue_one(self, path: str, key: str, attempt: int, why: str) -> int:
        """A task lost mid-run (the claim at path, or a task of the bundle at path): back
        to ready/ as attempt + 1, or failed with WorkerLost when its retries are spent."""
        try:
            header = self.task_header(key) or {}
        except CorruptFile:
            header = {}
        if attempt + 1 <= (header.get("retries") or 0):
            self.give_back(path, key, attempt + 1)
            return 1
        exc = WorkerLost(f"task {header.get('name')}-{key[:8]}: {why}")
        self.publish_result(key, {
            "status": FAILED, "name": header.get("name"), "attempt": attempt,
            "error": f"WorkerLost: {exc}", "t_end": time.time()}, pack_exception(exc))
        if not is_bundle(os.path.basename(path)):
            fs.unlink(path)
        self.settle_dependents(key, entry=header.get("bundle"))
        return 1

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

    def sweep(self) -> dict[str, int]:
        """Repair lost wakeups; safe to run anywhere, any time, by several processes at once.

        - a waiting task whose deps are all settled is promoted (or failed);
        - claims still held under a pool declared dead are requeued (or failed);
        - a ready or claimed entry whose task already has a result is removed (its pool died
          between publishing the result and dropping the claim);
        - stale tmp/ files (over an hour old: nobody is still writing them) are removed.

        Results are looked up with peek_status: a result not visible yet leaves its entry
        for the next sweep; an entry is only ever removed for a result that was seen.
        """
        counts = {"promoted": 0, "cleared": 0, "tmp": 0, "requeued": 0}
        for key in fs.listdir(self.p("waiting")):
            if not is_entry(key):
                continue
            if self.peek_status(key) is not None:  # e.g. a dep failure half recorded
                fs.unlink(self.p("waiting", key))
                counts["cleared"] += 1
            elif self.try_promote(key):
                counts["promoted"] += 1
        dead = {n[:-5] for n in fs.listdir(self.p("pools")) if n.endswith(".dead")}
        workers = fs.listdir(self.p("claimed"))
        for w in workers:
            # The observer that declared the pool dead may itself have died half way.
            if w.rpartition(".")[0] in dead:
                counts["requeued"] += self.requeue_claims(
                    self.p("claimed", w), f"pool {w.rpartition('.')[0]} was declared dead")
        for d in [self.p("ready")] + [self.p("claimed", w) for w in workers]:
            for name in fs.listdir(d):
                key = split_name(name)[0]
                if not is_entry(name):
                    continue
                if is_bundle(key):
                    if d != self.p("ready") and self._bundle_done(os.path.join(d, name)) \
                            and fs.unlink(os.path.join(d, name)):
                        counts["cleared"] += 1
                        self.settle_bundle(key)
                elif self.peek_status(key) is not None and fs.unlink(os.path.join(d, name)):
                    counts["cleared"] += 1
                    self.settle_dependents(key)
        now = time.time()
        for name in fs.listdir(self.p("tmp")):
            st = fs.stat(self.p("tmp", name))
            if st and now - st.st_mtime > 3600 and fs.unlink(self.p("tmp", name)):
                counts["tmp"] += 1
        return counts

    def _bundle_done(self, path: str) -> bool:
        """Has every task of the bundle at path a result?  (Its pool died before it dropped
        the claim.)"""
        try:
            got = self.read_bundle(path)
        except CorruptFile:
            return False
        return got is not None and all(self.peek_status(k) is not None for k, _ in got[1])

    def counts(self, results: int | None = None) -> dict[str, int]:
        """Tasks by state, by listing directories (one listdir per state and shard).
        results: the number of results, if the caller has just counted them."""
        c = {"waiting": len(fs.listdir(self.p("waiting"))),
             "ready": self.ready_tasks(),
             "running": sum(entry_tasks(n) for w in fs.listdir(self.p("claimed"))
                            for n in fs.listdir(self.p("claimed", w)))}
        c["tasks"] = _count_sharded(self, "tasks")
        c["results"] = _count_sharded(self, "results") if results is None else results
        return c


def _count_sharded(spool: Recovery, top: str) -> int:
    return sum(len(fs.listdir(spool.p(top, s))) for s in SHARDS)
