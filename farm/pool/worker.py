"""The worker: one forked process of a pool, which claims and runs tasks itself.

``Worker.main`` is its poll loop: list ready/ (its own share of the names first, by hash;
the others' when that is empty), claim one with a rename, run it (a task or a bundle), then
run the dependent the task made runnable, so that a chain advances without a trip through
ready/ or the driver.  Idle, it polls less and less often, and in a cold pool only worker 0
polls.  If the spool's filesystem fails it, it gives back what it holds and tries again
later; it stops when its manager is gone.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from types import FrameType

from farm import execute, resources
from farm.errors import FarmError
from farm.pool import nodes
from farm.pool.bundles import BundleRunner, Results
from farm.pool.limits import Limits, local_node
from farm.pool.nodes import Borrower
from farm.pool.shared import COLD_POLL, IDLE_POLL, IO_BACKOFF, OPKEYS, WARM_IDLE, Board
from farm.pool.slots import Slots
from farm.spool import Spool, entry_priority, fs, is_bundle, split_name

log = logging.getLogger("farm.pool")

RELIST = 2.0  # seconds a worker works through one listing of ready/ before it looks again


class Worker(BundleRunner):
    """One worker process of a pool (runs after fork): ``Worker(...).main()``."""

    held = False  # claims kept through an I/O error, to be run first
    listed_at = 0.0  # time.monotonic() of the last listing of ready/

    def __init__(self, spool_path: str, pool: str, index: int, nworkers: int, *,
                 limits: Limits | None = None, board: Board | None = None,
                 block: str | None = None):
        """Worker index of nworkers in pool.  limits: the pool's (default: none); board:
        the memory shared with the manager (default: one of its own, for a worker that a
        test runs in its own process); block: the pool's block."""
        super().__init__(pool, index, limits or Limits(), board or Board(nworkers))
        self.spool_path, self.nworkers, self.block = spool_path, nworkers, block
        accel = self.limits.accelerators
        node = self.limits.node or local_node(nworkers, accel)
        self.slots = Slots(self.board, index, node, self.limits.affinity, accel)

    def main(self) -> None:
        signal.signal(signal.SIGTERM, self._terminate)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        fs.OPS.clear()
        self.parent = os.getppid()
        resources.pin(self.index, self.nworkers, self.limits.affinity,
                      self.limits.accelerators)
        self.spool = Spool(self.spool_path)
        self.borrower = Borrower(self.spool, self.pool, self.index, self.block)
        self.output.open(self.spool.path)
        self.pid = os.getpid()
        self.results = Results(self.spool)
        self.dir = self.spool.worker_dir(self.pool, self.index)
        fs.mkdir(self.dir)
        names: list[str] = []
        delay = IDLE_POLL[0]
        while os.getppid() == self.parent:  # the manager died: stop taking work
            try:
                names, delay = self._step(names, delay)
            except OSError as e:
                # The spool's filesystem failed us (full, read-only, gone): keep the pool
                # alive, give back what we hold, and try again later.
                log.error("pool %s worker %d: %s; retrying in %ss", self.pool, self.index,
                          fs.explain(e), IO_BACKOFF)
                self._give_back()
                names = []
                time.sleep(IO_BACKOFF)

    def run(self, path: str) -> str | None:
        """Run the claim at path (a task or a bundle); return the next claim to run (a
        dependent that a task made runnable), or None."""
        key, attempt = split_name(os.path.basename(path))
        if is_bundle(key):
            self.run_bundle(path, attempt)
            return None
        # (the manager charges this task if we die: a bundle's claim whose outcomes are
        # still being published may be in our directory too)
        self.me.running = key.encode()
        try:
            return self.run_task(path, key, attempt)
        finally:
            self.me.running = b""

    def _give_back(self) -> None:
        self.slots.release_mine()  # (a task on several slots or nodes may have been cut
        try:                       # short: what it held goes back too)
            nodes.drop_reservations(self.spool, self.pool, self.index)
        except OSError:
            pass
        try:
            self._hand_back()
        except (OSError, FarmError):
            self.held = True  # still failing: _step tries again after IO_BACKOFF

    def _hand_back(self) -> None:
        """Publish the outcomes held, then give back the claims (a claim's tasks that have
        a result are not entered again).  While this fails, the outcomes stay held and so do
        the claims, so that no task that ran runs again because the filesystem failed for
        a while."""
        self.results.flush()
        self.spool.give_back_all(self.dir)

    def _step(self, names: list[str], delay: float) -> tuple[list[str], float]:
        """Claim and run one task (and the dependents it makes runnable), or wait a little.
        Returns the names still to try and the next idle delay."""
        if self.held:  # kept through an I/O error: publish the outcomes, give back the rest
            try:  # (an OSError goes to main(), which logs it and waits)
                self._hand_back()
            except FarmError as e:
                log.error("pool %s worker %d: %s; retrying in %ss", self.pool, self.index, e,
                          IO_BACKOFF)
                time.sleep(IO_BACKOFF)
                return [], delay
            self.held = False
        if self.limits.draining():
            self._set_busy(False)
            time.sleep(IDLE_POLL[2])
            return [], delay
        if self.slots.lent():  # a task on several slots needs ours: claim nothing
            self._set_busy(False)
            self.slots.park(lambda: os.getppid() == self.parent)
            return [], fs.min_poll(IDLE_POLL[0])
        if names and time.monotonic() - self.listed_at > RELIST:
            names = []  # (stale: work that came since, of a higher priority, goes first)
        if not names:
            if self.board.cold.value and self.index:
                time.sleep(IDLE_POLL[1])  # worker 0 looks for the pool (see COLD_POLL)
                return names, delay
            names = self._candidates()
            self.listed_at = time.monotonic()
            if not names:
                self._set_busy(False)
                self._count_ops()  # (idle polling counts too)
                time.sleep(delay)
                warm = time.monotonic() - self.me.since < WARM_IDLE
                cold = self.board.cold.value
                cap = IDLE_POLL[1] if warm else COLD_POLL if cold else IDLE_POLL[2]
                return names, min(max(delay * 1.5, fs.min_poll(IDLE_POLL[0])), cap)
        path = self.spool.claim(names.pop(), self.dir)
        if path is None:
            return names, delay
        self._run_chain(path)
        return names, fs.min_poll(IDLE_POLL[0])

    def _run_chain(self, path: str | None) -> None:
        self._set_busy(True)
        while path:
            if self.limits.draining() or self.slots.lent():
                self.spool.give_back(path)  # (a dependent we promoted): leave it to others
                break
            path = self.run(path)
        self._count_ops()

    def _candidates(self) -> list[str]:
        """ready/ names to try (last first): the worker's own share (by hash, so the
        pool's workers do not race each other for the same names), or, when that is
        empty, the others' (helping out).  Shuffled: racing other pools is left to chance."""
        mine: list[str] = []
        others: list[str] = []
        n = self.nworkers
        names, rung = self.spool.ready_listing()
        if rung:
            self.board.doorbell.value = True
        ranked = False
        if self.later:
            now = time.monotonic()
            self.later = {k: t for k, t in self.later.items() if t > now}
        for name in names:
            if (self.too_long or self.later) and (
                    (key := split_name(name)[0]) in self.too_long or key in self.later):
                continue
            ranked = ranked or "~" in name
            (mine if int(name.lstrip("B")[:4], 16) % n == self.index else others).append(name)
        if ranked:
            # Some have a priority: the highest first (tried last to first), whoever's
            # share they are in; at random within a priority.
            names = mine + others
            random.shuffle(names)
            names.sort(key=entry_priority)
            return names
        names = mine or others
        random.shuffle(names)
        return names

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        # Stop now: the manager requeues whatever is left in our claim directory.
        if execute.current_child is not None:
            execute.kill_tree(execute.current_child.pid)
        os._exit(0)

    def _set_busy(self, busy: bool) -> None:
        if self.me.busy != busy:
            self.me.busy, self.me.since = busy, time.monotonic()

    def _count_ops(self) -> None:
        self.me.ops[:] = [fs.OPS[k] for k in OPKEYS]
