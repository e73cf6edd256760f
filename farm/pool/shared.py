"""What a pool's manager and its workers share: memory, and the rhythm of an idle pool.

The manager maps a ``Board`` before it forks the workers: one ``WorkerState`` per worker
(busy or not and since when, the bundled task it is running, its filesystem call counts),
written by that worker and read by the manager, and the pool's ``cold`` flag, written by
the manager.  Reading it costs no filesystem call, so the workers of a cold pool wait on it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import tempfile
import time
from multiprocessing.context import BaseContext

OPKEYS = ("create", "rename", "link", "unlink", "stat", "listdir", "open", "mkdir")
# A worker's polling interval grows from 1 ms to 50 ms while the pool has been idle for less
# than WARM_IDLE seconds (work tends to come in bursts), then to 1 s.
IDLE_POLL = (0.001, 0.05, 1.0)
WARM_IDLE = float(os.environ.get("FARM_WARM_IDLE") or 30.0)  # (tests shorten it)
IO_BACKOFF = 2.0  # seconds a worker waits after the spool's filesystem failed it
# A pool idle for WARM_IDLE is cold: only its worker 0 looks at ready/ (every COLD_POLL s;
# the others wait on memory shared with the manager, without filesystem calls), it beats
# every COLD_BEAT s (advertising a lease of COLD_LEASE_BEATS of them, so that observers
# wait for that long), and it looks at control/ for a shutdown request, and at its RING
# successors among the pools (in id order) for death, every COLD_RARE beats only: a
# shutdown request rings a doorbell in ready/, which worker 0 sees.  On a metadata server,
# an idle pool then costs about one request per second (benchmarks/slowfs.py, the idle
# row); a task that comes to a cold pool waits up to COLD_POLL s.
COLD_POLL = 15.0
COLD_BEAT = 60.0
COLD_LEASE_BEATS = 3
COLD_RARE = 2
RING = 2


class WorkerState(ctypes.Structure):
    """One worker's state, as its manager sees it.

    No lock guards it (a worker killed while holding one would hang its manager): each
    field has one writer, the worker; ``running`` is read only once that worker is dead,
    and ``ops``, read while it may be written, only mixes the counts of two moments."""

    _fields_ = [
        ("busy", ctypes.c_bool),
        ("since", ctypes.c_double),  # time.monotonic() when busy last changed
        # The key of the bundled task being run, so that a worker's death charges that
        # task alone (the rest of its bundle was not started).
        ("running", ctypes.c_char * 40),
        ("ops", ctypes.c_int64 * len(OPKEYS)),  # the worker's fs.OPS, by OPKEYS
    ]
    busy: bool
    since: float
    running: bytes
    ops: ctypes.Array[ctypes.c_int64]

    def reset(self) -> None:
        """As a new worker starts: idle since now, running nothing."""
        self.running = b""
        self.busy, self.since = False, time.monotonic()


class Board:
    """The memory a pool's manager shares with its workers (mapped before the fork)."""

    def __init__(self, nworkers: int, ctx: BaseContext | None = None):
        ctx = ctx or mp.get_context("fork")
        self.workers = [ctx.RawValue(WorkerState) for _ in range(nworkers)]
        self.cold = ctx.RawValue(ctypes.c_bool, False)  # set by the manager
        # Set by worker 0 when it sees the shutdown doorbell in ready/; the manager then
        # looks at control/ (and clears it).
        self.doorbell = ctx.RawValue(ctypes.c_bool, False)
        # Slots (farm.pool.slots): who holds each worker's slot (0: its worker; else the
        # index + 1 of the worker that borrowed it), and whether its worker has parked.
        self.holder = ctx.RawArray(ctypes.c_int, nworkers)
        self.parked = ctx.RawArray(ctypes.c_bool, nworkers)
        # The worker (index + 1) whose task could not get its slots: first in line, no
        # other task borrows until it has them (0: nobody waits).
        self.waiter = ctx.RawValue(ctypes.c_int, 0)
        # A file for the slots' lock (a POSIX record lock: the kernel drops it when its
        # holder dies).  Unlinked at once; the workers inherit the descriptor.
        self._lockfile = tempfile.TemporaryFile()
        self.lock_fd = self._lockfile.fileno()

    def busy(self) -> int:
        return sum(1 for w in self.workers if w.busy)

    def idle_for(self) -> float:
        """Seconds since the last worker became idle (0 while any is busy, or while any
        slot is held: a task, here or on another node, is using it)."""
        if any(w.busy for w in self.workers) or any(self.holder):
            return 0.0
        return time.monotonic() - max(w.since for w in self.workers)

    def ops(self) -> dict[str, int]:
        """The workers' filesystem calls, summed."""
        return {k: sum(w.ops[i] for w in self.workers) for i, k in enumerate(OPKEYS)}
