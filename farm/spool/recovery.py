"""Recovery: what crashed processes leave behind, found and put right; claims given back.

Each function here is safe to run by several processes at once and to be cut short by
kill -9 itself (the next run does the rest): a driver's half-done submissions (orphans,
bundles left in tmp/), damaged payloads, the sweep that repairs lost wakeups, and
``give_back``, the one way claimed tasks go back to ready/: a task retried, not runnable
here yet, or interrupted keeps its attempt or takes the next; of a dead worker's or pool's
claims, the task that was running is charged an attempt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from farm.errors import CorruptFile, WorkerLost, pack_exception
from farm.spool import fs, records
from farm.spool.graph import Graph, bundle_heads
from farm.spool.layout import (
    FAILED,
    SHARDS,
    entry_name,
    entry_priority,
    entry_tasks,
    is_bundle,
    is_entry,
    log,
    split_name,
)

FIRST = "*"  # give_back(running=FIRST): which task ran is unknown: charge the first one
# A task whose worker or pool died is run again this many times (its crash budget, apart
# from Config.retries: a lost worker is not the task's fault), then fails with WorkerLost.
# The task header's "crash_retries" (Config.crash_retries) overrides it.
CRASH_RETRIES = 2


class Recovery(Graph):
    def pool_ids(self) -> tuple[list[str], set[str]]:
        """The pools with a heartbeat (sorted) and those declared dead: one listdir."""
        names = fs.listdir(self.p("pools"))
        return (sorted(n[:-5] for n in names if n.endswith(".yaml")),
                {n[:-5] for n in names if n.endswith(".dead")})

    def is_orphan(self, key: str) -> bool:
        """True if the payload exists but no state entry links to it and it has no result:
        a driver died between publishing the payload and enqueueing it.

        The entries are looked at before the result (a task moves forward only: one that
        finishes meanwhile is seen in one or the other), and "no result" is confirmed by a
        fresh listing.  The link count can be stale on NFS (cached attributes); a wrong
        True makes the caller enqueue again, and enqueue's link fails harmlessly if the
        entry is in ready/ or waiting/.
        """
        st = fs.stat(self.task_path(key))
        if st is None:
            return False
        if st.st_nlink == 1:
            return self.result_status(key) is None
        # A bundle's file has a link per task: look for an entry of the key or its bundle.
        try:
            bid = (self.task_header(key) or {}).get("bundle")
        except CorruptFile:
            # A damaged bundle (its entry was quarantined): entered again, the task fails
            # with an error naming the file, and the next run submits it afresh.
            return self.result_status(key) is None
        return (bool(bid) and not {key, bid} & self._queued_names()
                and self.result_status(key) is None)

    def _queued_names(self) -> set[str]:
        """Keys and bundles with an entry (a snapshot of _entry_names, kept 10 s: an entry
        only appears later for a key or bundle that was already in one)."""
        if time.monotonic() - self._queued[0] > 10:
            self._queued = (time.monotonic(),
                            {split_name(n)[0] for _, _, n in self._entry_names()})
        return self._queued[1]

    def _entry_names(self) -> Iterator[tuple[str, str, str]]:
        """(state, directory, name) of each entry in claimed/, waiting/, ready/ and
        claimed/ again, by fresh listings.  Tasks move forward (waiting, ready, claimed,
        then a result, published before the claim is dropped), so a task that moves on
        between two listings is seen in a later one; a claim given back is linked in
        ready/ or waiting/ before it is dropped, so the first listing of claimed/ sees it.
        claimed/ is listed anew the second time (a pool started meanwhile has its own
        directories)."""
        def listed(dirs: list[tuple[str, str]]) -> Iterator[tuple[str, str, str]]:
            for d, state in dirs:
                yield from ((state, d, n) for n in fs.listdir(d) if is_entry(n))

        def claimed() -> list[tuple[str, str]]:
            return [(self.p("claimed", w), "running") for w in fs.listdir(self.p("claimed"))]

        yield from listed(claimed())
        yield from listed([(self.p("waiting"), "waiting"), (self.p("ready"), "ready")])
        yield from listed(claimed())  # (listed when the ones before are done)

    def entries(self) -> Iterator[tuple[str, str, list[str]]]:
        """(state, path, keys) of each entry in waiting/, ready/ and claimed/ (state
        waiting, ready or running; keys: the entry's task, or each task of a bundle), in
        the order of _entry_names (a task moving on meanwhile is seen), each path once."""
        seen = set()
        for state, d, name in self._entry_names():
            path = os.path.join(d, name)
            if path in seen:
                continue
            seen.add(path)
            key = split_name(name)[0]
            if not is_bundle(key):
                yield state, path, [key]
                continue
            try:
                got = self.read_bundle(path)
            except CorruptFile:
                continue
            if got is not None:
                yield state, path, [k for k, _ in got[1]]

    def known_keys(self) -> tuple[set[str], set[str]]:
        """(keys with a result, keys queued without one): what a driver that resumes must
        not submit again.  The entries are listed first, the results last: a task that
        finishes while the spool is listed is then in one set or the other (listed the
        other way round, a task claimed after the listing of results and done before the
        listing of claimed/ is in neither, and would run twice)."""
        queued = self.queued_keys()
        done = self.result_keys()
        return done, queued - done

    def queued_keys(self) -> set[str]:
        """The keys with an entry (entries): what a driver that resumes must not submit
        again (tasks of a bundle without links have no tasks/XX/KEY to say they exist)."""
        return {k for _, _, keys in self.entries() for k in keys}

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
            self.enter_each(path, keys)
            n += len(keys)
        return n

    def give_back(self, claim: str, key: str | None = None, *, attempt: int | None = None,
                  skip: Iterable[str] = (), lost: str | None = None,
                  running: str = FIRST) -> int | None:
        """Put claimed work back in ready/: the one way a task leaves claimed/ other than
        with a result (a retry, a file not visible yet, a walltime that does not fit, a
        bundle split, a block that ends, a pool that stops, a worker or pool that died).

        claim is a path in claimed/POOL.W/, a task or a bundle.  With key, that one task
        goes back (its holder is running it: it has no result): a task's claim is renamed
        to ready/KEY[@N]; a bundle's file gets a new link ready/KEY[@N] and the claim stays
        (its runner skips the key).  Without key, the whole claim goes back: each of its
        tasks without a result and not in skip (given back already) gets its ready/ entry
        (or its waiting/ entry and edges, if it waits for another: enter_each), then the
        claim is dropped (a task's claim whose task has a result is only dropped,
        and its dependents are settled).

        attempt: the attempt N a task goes back as (default: the claim's own; a retry gives
        the next).  lost: why the claim's holder is gone (its worker died, or its pool was
        declared dead): then the task it was running (running: its key, for a bundle whose
        pool knows it; else the first without a result) is charged an attempt: back as
        N + 1 while its retries allow, else failed with a WorkerLost result.  The others
        were not started, and keep theirs.  Without lost, nothing failed (interrupted, not
        run yet), and no attempt is charged.

        Returns how many tasks were charged (0 or 1), None if the claim was gone (an
        observer took it over, or someone gave it back first).

        kill -9 part way: the claim is dropped last, so it stays and the next give-back does
        it again (links that exist fail harmlessly; a task already claimed again from ready/
        can run twice, and its result is still published once)."""
        entry, own = split_name(os.path.basename(claim))
        attempt = own if attempt is None else attempt
        if key is not None:
            return self._give_back_one(claim, key, attempt, lost)
        if not is_bundle(entry):
            if self.result_status(entry) is None:
                return self._give_back_one(claim, entry, attempt, lost)
            fs.unlink(claim)
            self.settle_dependents(entry)
            return 0
        data = fs.read(claim)
        if data is None:
            return None
        try:
            recs = records.bundle_records(data, claim)[1]
        except CorruptFile as e:
            self.quarantine(claim, str(e))
            return 0
        try:
            heads = bundle_heads(data, claim)
        except CorruptFile:
            heads = {}  # (a damaged record: entered ready, its runner fails it)
        # Each task without a result and not in skip goes back; a task of a chain whose
        # predecessor goes back too (or lost its result with the worker) waits for it.
        skip = set(skip)
        n, back = 0, list[str]()
        for k, _ in recs:
            if k in skip or self.result_status(k) is not None:
                continue
            if lost is not None and running in (k, FIRST):
                running = ""  # (charged once)
                n += 1
                again = self._charge(claim, k, attempt, lost)
                if again is None:
                    continue  # (failed for good)
                if not set(heads.get(k, {}).get("deps", ())) & set(back):
                    if self._enter_one(claim, k, again) is None:
                        return None
                    continue
                # (its predecessor's result was lost with the worker: it waits, and at
                # most this one crash is not counted against its budget)
            back.append(k)
        self.enter_each(claim, back, attempt, data=data)
        return n

    def _give_back_one(self, claim: str, key: str, attempt: int,
                       lost: str | None) -> int | None:
        """give_back of one task of claim (the claim itself, or a task of the bundle it
        is); lost: why it was lost mid-run, if it was (it is charged)."""
        if lost is not None:
            again = self._charge(claim, key, attempt, lost)
            if again is None:
                return 1
            attempt = again
        return None if self._enter_one(claim, key, attempt) is None else int(lost is not None)

    def _charge(self, claim: str, key: str, attempt: int, lost: str) -> int | None:
        """Charge key (of claim) an attempt for its lost holder: the attempt it goes back
        as, or None when it is out of crash budget (then it has a WorkerLost result, its
        dependents are settled, and a claim of its own is dropped)."""
        try:
            header = self.task_header(key) or {}
        except CorruptFile:
            header = {}
        label = f"{header.get('name', 'task')}-{key[:8]}"
        prior = self.prior_attempt(key, attempt)
        crashes = int(prior.get("crashes", 0)) + 1
        budget = header.get("crash_retries", CRASH_RETRIES)
        if crashes > budget:
            times = f"{crashes} times" if crashes > 1 else "once (crash_retries is 0)"
            exc = WorkerLost(f"task {label} failed: its worker was lost {times}; the "
                             f"last time: {lost}")
            log.warning("%s", exc)
            self.publish_result(key, {
                "status": FAILED, "name": header.get("name"), "attempt": attempt,
                "crashes": crashes, "error": f"WorkerLost: {exc}", "t_end": time.time()},
                pack_exception(exc))
            if not is_bundle(os.path.basename(claim)):
                fs.unlink(claim)
            self.settle_dependents(key, entry=header.get("bundle"))
            return None
        # Not the task's fault: its next attempt keeps what earlier failures cost it
        # against Config.retries, and carries the count of crashes.
        exc = WorkerLost(f"task {label}: {lost}")
        self.record_attempt(key, attempt, {
            "status": "lost", "name": header.get("name"), "attempt": attempt,
            "crashes": crashes, "fail_cost": prior.get("fail_cost", 0.0),
            "error": f"WorkerLost: {exc}", "t_end": time.time()}, pack_exception(exc))
        log.warning("task %s requeued as attempt %d (lost %d of %d times allowed): %s",
                    label, attempt + 1, crashes, budget, lost)
        return attempt + 1

    def _enter_one(self, claim: str, key: str, attempt: int) -> int | None:
        """Put one task of claim back in ready/ as attempt; None if the claim is gone."""
        name = os.path.basename(claim)
        bundled = is_bundle(name)
        # (a task keeps its priority; the tasks of a bundle have none)
        ready = self.p("ready", entry_name(key, attempt, 0 if bundled else entry_priority(name)))
        try:
            if bundled:
                fs.link(claim, ready)
            else:
                fs.rename(claim, ready)
        except FileExistsError:
            pass
        except FileNotFoundError:
            return None
        return 0

    def prior_attempt(self, key: str, attempt: int) -> dict[str, Any]:
        """The record of attempt - 1 of key, if it failed or was lost and was retried
        (what it cost against Config.retries, how many crashes so far); {} if none."""
        if attempt <= 0:
            return {}
        try:
            got = self.read_result(key, self.attempt_path(key, attempt - 1))
        except CorruptFile:
            return {}
        return got[0] if got else {}

    def give_back_all(self, wdir: str, lost: str | None = None, running: str = FIRST) -> int:
        """give_back each claim in a worker's directory wdir (lost, running: as there).
        Returns how many tasks were charged."""
        n = 0
        for name in fs.listdir(wdir):
            got = self.give_back(os.path.join(wdir, name), lost=lost, running=running) or 0
            n += got
            if got and running == FIRST:
                running = ""  # (a worker runs one task at a time: one is charged)
        return n

    def sweep(self, dead: set[str] | None = None, skip: Iterable[str] = (),
              tmp: bool = True) -> dict[str, int]:
        """Repair lost wakeups; safe to run anywhere, any time, by several processes at once.
        dead: the pools declared dead, if the caller has just listed pools/; skip: pools
        whose worker directories in claimed/ are not looked in (a pool's sweep skips those
        with a heartbeat: a live pool's manager gives back what a dead worker of its own
        held, and a silent one is declared dead; so a sweep costs a few listings, not one
        per worker of the machine); tmp: look at tmp/ too.

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
        if dead is None:
            dead = self.pool_ids()[1]
        skip = set(skip) - dead
        workers = [w for w in fs.listdir(self.p("claimed")) if w.rpartition(".")[0] not in skip]
        for w in workers:
            # The observer that declared the pool dead may itself have died half way.
            if w.rpartition(".")[0] in dead:
                counts["requeued"] += self.give_back_all(
                    self.p("claimed", w), lost=f"pool {w.rpartition('.')[0]} was declared dead")
        for d in [self.p("ready")] + [self.p("claimed", w) for w in workers]:
            for name in fs.listdir(d):
                key = split_name(name)[0]
                if not is_entry(name):
                    continue
                if is_bundle(key):
                    if d != self.p("ready") and self._bundle_done(os.path.join(d, name)):
                        self.retire_bundle(os.path.join(d, name))
                        counts["cleared"] += 1
                        self.settle_bundle(key)
                elif self.peek_status(key) is not None and fs.unlink(os.path.join(d, name)):
                    counts["cleared"] += 1
                    self.settle_dependents(key)
        now = time.time()
        for name in fs.listdir(self.p("tmp")) if tmp else ():
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
        c = {"waiting": sum(entry_tasks(n) for n in fs.listdir(self.p("waiting"))
                            if is_entry(n)),
             "ready": self.ready_tasks(),
             "running": sum(entry_tasks(n) for w in fs.listdir(self.p("claimed"))
                            for n in fs.listdir(self.p("claimed", w)))}
        c["results"] = _count_sharded(self, "results") if results is None else results
        # (tasks/ has no name per task for bundles without links: count states instead)
        c["tasks"] = c["results"] + c["waiting"] + c["ready"] + c["running"]
        return c


def _count_sharded(spool: Recovery, top: str) -> int:
    return sum(len(fs.listdir(spool.p(top, s))) for s in SHARDS)
