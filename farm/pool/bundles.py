"""Running a claimed bundle: its tasks in order, split when others could share them, and
their results published a batch at a time.

A bundle is claimed with one rename and read with one open.  While its tasks run, the rest
goes back to ready/ (one entry per task) if the block drains, if a task went back on its
own, or if the rest looks like more than SPLIT seconds of work that idle workers could
share.  ``Results`` holds the outcomes for at most HOLD seconds (a thread of its own
publishes them even while the next task runs) and publishes them as one file
(docs/spool-format.md, "Bundles").
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from farm.errors import CorruptFile, FarmError
from farm.pool.limits import Limits
from farm.pool.shared import IO_BACKOFF, Board, WorkerState
from farm.pool.task import TaskRunner
from farm.spool import OK, Spool

log = logging.getLogger("farm.pool")

# Seconds of work a worker may hold in the rest of a bundle while another worker of its
# pool is idle (SPLIT), or in any case (SPLIT_ALWAYS: workers of other pools may be idle).
SPLIT, SPLIT_ALWAYS = 0.2, 2.0
SPLIT_LOOK = 0.5  # seconds a worker trusts its last look at whether ready/ had other work
BATCH, BATCH_BYTES = 64, 1 << 20  # results published in one file, at most
HOLD = 0.02  # seconds a result may wait for others to share its file
BACKLOG = 4 * BATCH  # results held before the worker waits for them to be published


class Results:
    """Outcomes of bundled tasks, published a batch at a time (Spool.publish_results), and
    the claims of bundles whose tasks all ran, dropped once their outcomes are published.

    A result waits at most HOLD seconds; a thread of its own publishes, so the worker goes
    on with its next bundle meanwhile (the worker publishes itself only when BACKLOG
    results wait, or when it gives its claims back).  Batches are published one at a time
    and in order (publish_lock): a chain's later outcome is published only if the earlier
    one it was computed from was (the lost set)."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.cond = threading.Condition()  # guards what is held, never held over I/O
        self.publish_lock = threading.Lock()
        self.items: list[tuple[str, dict[str, Any], bytes]] = []
        self.after: dict[str, frozenset[str]] = {}  # key -> the held keys it was computed from
        self.lost: set[str] = set()  # keys whose outcome here lost its race
        self.bundles: set[str] = set()
        self.claims: list[str] = []  # bundle claims to drop after the outcomes before them
        self.size, self.since = 0, 0.0
        threading.Thread(target=self._loop, name="farm-results", daemon=True).start()

    def add(self, key: str, head: dict[str, Any], body: bytes, bundle: str,
            after: frozenset[str] = frozenset()) -> None:
        """Hold key's outcome (after: the keys of its bundle whose values it was computed
        from: published only if theirs are, see Spool.publish_results)."""
        with self.cond:
            if not self.items:
                self.since = time.monotonic()
            self.items.append((key, head, body))
            if after:
                self.after[key] = after
            self.bundles.add(bundle)
            self.size += len(body)
            full = len(self.items) >= BATCH or self.size > BATCH_BYTES
            if full:
                self.cond.notify()
            backlog = len(self.items) >= BACKLOG
        if backlog:
            self.flush()  # (the thread falls behind: wait for the filesystem ourselves)

    def retire(self, claim: str) -> None:
        """Drop the claim of a bundle whose tasks all have an outcome here, once those are
        published (a crash before that gives the claim back: the tasks run again)."""
        with self.cond:
            if not self.items:
                self.since = time.monotonic()
            self.claims.append(claim)
            self.cond.notify()

    def flush(self) -> None:
        """Publish what is held, now, in this thread (and drop the claims waiting for it)."""
        with self.publish_lock:
            self._publish()

    def settle(self, bundle: str) -> None:
        """Promote the dependents of bundle at the next flush (a task of it got a result
        some other way: a damaged record's failure)."""
        with self.cond:
            self.bundles.add(bundle)

    def _publish(self) -> None:
        """Publish what is held (the caller holds publish_lock).  On an error it is held
        again, in front (a retry publishes it; links made already lose harmlessly), and so
        are the claims: dropped only after their outcomes are published."""
        with self.cond:
            items, after, bundles, claims = self.items, self.after, self.bundles, self.claims
            self.items, self.after, self.bundles, self.claims = [], {}, set(), []
            self.size = 0
        try:
            if items:
                if len(self.lost) > 10_000:
                    self.lost.clear()  # (a chain's tasks are published within seconds)
                self.spool.publish_results(items, after, self.lost)
        except BaseException:
            with self.cond:
                self.items[:0] = items
                self.after.update(after)
                self.bundles |= bundles
                self.claims[:0] = claims
                self.size += sum(len(b) for _, _, b in items)
            raise
        for bid in bundles:  # results first, then the index (the ordering rule)
            try:
                self.spool.settle_bundle(bid)
            except (OSError, FarmError) as e:  # the sweep promotes them later
                log.error("cannot promote the dependents of bundle %s: %s", bid, e)
        for claim in claims:
            try:
                self.spool.retire_bundle(claim)
            except OSError as e:  # (a sweep drops a claim whose tasks all have results)
                log.error("cannot drop claim %s: %s", claim, e)

    def _loop(self) -> None:
        while True:
            with self.cond:
                if not self.items and not self.claims:
                    self.cond.wait()
                    continue
                left = self.since + HOLD - time.monotonic()
                if left > 0 and len(self.items) < BATCH:
                    self.cond.wait(left)
                    continue
            try:
                self.flush()
            except (OSError, FarmError) as e:
                log.error("cannot publish results: %s (will retry)", e)
                time.sleep(IO_BACKOFF)


class BundleRunner(TaskRunner):
    """Runs a worker's claimed bundles (the second layer of Worker).  results is set in the
    worker's own process, after the fork (its thread would not survive one)."""

    results: Results
    ready_seen = (-1e9, False)  # (when, whether ready/ had other work then)

    def __init__(self, pool: str, index: int, limits: Limits, board: Board):
        super().__init__(pool, index, limits)
        self.board = board
        self.me: WorkerState = board.workers[index]

    def run_bundle(self, path: str, attempt: int) -> None:
        """Run the tasks of a claimed bundle in order, one open for all of them; their
        results are published in batches (self.results).  A bundle whose tasks turn out
        long is split: what is left goes back to ready/ one entry per task, so that
        other workers share it."""
        t_claimed = time.time()
        try:
            got = self.spool.read_bundle(path)
        except CorruptFile as e:
            self.spool.quarantine(path, str(e))  # (its tasks fail when re-run as orphans)
            return
        if got is None:
            return
        try:
            self._run_bundle(path, attempt, t_claimed, str(got[0].get("id")), got[1])
        finally:
            self.me.running = b""

    def _run_bundle(self, path: str, attempt: int, t_claimed: float, bid: str,
                    recs: list[tuple[str, bytes]]) -> None:
        # Seconds spent running the tasks so far: what the rest is judged by (not the time
        # spent waiting for results to be published, which a split would not shorten).
        ran = 0.0
        done: set[str] = set()  # keys with an outcome, or given back one by one
        failed: set[str] = set()  # keys of this bundle that did not succeed here
        tasks: list[tuple[str, tuple[dict[str, Any], bytes] | CorruptFile]] = []
        for key, rec in recs:
            try:
                tasks.append((key, self.spool.decode_task(rec, path, key)))
            except CorruptFile as e:
                tasks.append((key, e))
        keys = {k for k, _ in recs}
        inside = {k: frozenset(t[0]["deps"]) & keys if isinstance(t, tuple) else frozenset()
                  for k, t in tasks}
        chain = any(inside.values())
        for i, (key, task) in enumerate(tasks):
            # (the rest goes back when the block drains, or when a task on several slots
            # borrowed this worker's: it waits for what runs, not for a whole bundle; a
            # chain's next task waits for this one anyway: no split)
            if self.limits.draining() or self.slots.lent() or (
                    i and len(recs) - i > 1 and not inside[key]
                    and self._split(ran / i * (len(recs) - i))):
                self.results.flush()
                self.spool.give_back(path, attempt=attempt, skip=done)
                return
            self.me.running = key.encode()
            done.add(key)
            if isinstance(task, CorruptFile):
                self.spool.fail_damaged(key, task)
                failed.add(key)
                self.results.settle(bid)
                continue
            header, body = task
            bad = self._failed_deps(header, keys, failed) if chain else []
            if bad:
                # (as Spool.advance does for a task that waits on its own)
                failed.add(key)
                self.results.add(key, self.spool.dep_failed_head(header["name"], bad), b"", bid,
                                 inside[key])
                continue
            t_run = time.monotonic()
            outcome = self.run_one(path, key, attempt, header, body)
            ran += time.monotonic() - t_run
            if outcome is None:
                # It went back to ready/ by itself: the rest goes too, so that no later
                # requeue of this bundle can enter it a second time.
                self.results.flush()
                self.spool.give_back(path, attempt=attempt, skip=done)
                return
            self.results.add(key, self.result_head(header, outcome, attempt, t_claimed),
                             outcome.body, bid, inside[key])
            if outcome.head["status"] == OK:
                self._remember(key, outcome.body)  # (the chain's next task takes it)
            else:
                failed.add(key)
            t_claimed = time.time()
        self.results.retire(path)  # (once its outcomes are published, by the thread)

    def _failed_deps(self, header: dict[str, Any], keys: set[str],
                     failed: set[str]) -> list[str]:
        """The dependencies of a task of a chain bundle that did not succeed: of the
        bundle, those that failed here; of the tasks outside it, those with a result that
        is not a success (the bundle left waiting/ once they all had one)."""
        return [d for d in header["deps"] if d in failed or (
            d not in keys and self.spool.peek_status(d) not in (OK, None))]

    def _split(self, left: float) -> bool:
        """Should the rest of a bundle, `left` seconds of work by the look of it so far, go
        back to ready/ for others to share?  Only if others would otherwise have nothing to
        do: while ready/ holds other work, they take that, and a split would only cost a
        link and a claim per task (a listing of ready/ at most every SPLIT_LOOK s says)."""
        if not (left > SPLIT_ALWAYS or (left > SPLIT and any(
                not w.busy for w in self.board.workers if w is not self.me))):
            return False
        now = time.monotonic()
        if now - self.ready_seen[0] > SPLIT_LOOK:
            self.ready_seen = (now, bool(self.spool.ready_names()))
        return not self.ready_seen[1]
