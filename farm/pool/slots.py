"""Slots: a pool's node split one slot per worker, and tasks that take several.

Each worker owns one slot (1/N of the node's cores and memory, its accelerator if the
pool has them) and runs tasks that fit in it, as always.  A task whose request
(farm.requests) needs k > 1 slots is run by the worker that claimed it, after it has
*borrowed* k - 1 other slots: it marks them in the Board's ``holder`` array (all or none,
under a lock), then waits until each of their workers has *parked*: seen that its slot is
lent (it looks before each claim, in memory), finished the task it was running, and
stopped claiming.  So a big task waits at most for the small tasks already running on
its slots, never for a stream of new ones, and nothing runs beside it on its cores.  A
big task that cannot get its slots (other big tasks hold some) becomes the Board's
``waiter``: no other task borrows until it has its own, so it is not starved either.  When
it ends, its worker frees the slots and their workers go on.

Deadlock-free: a worker borrows only slots that no one else holds, itself included, and
only while nobody holds its own slot (if someone does, it gives its task back and
parks); a lender is a worker running at most one one-slot task.

The lock is a POSIX record lock (``lockf``) on a file the manager opened before the
fork: the kernel drops it when its holder dies, so a killed worker cannot hang the pool.
A worker that dies holding slots has them freed by the manager (``free``) when it
starts its replacement.

A task with a request runs pinned to its slots' CPUs (the block layout when the pool
pins nothing), with their accelerators in CUDA_VISIBLE_DEVICES and the like, and
OMP_NUM_THREADS (and other libraries' thread counts) set to its cores.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from farm import resources
from farm.pool.shared import Board

# Thread-count variables of common numeric libraries, set to a task's cores.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
PARK_POLL = (0.001, 0.05)  # a parked or waiting worker looks at the board this often


class Slots:
    """One worker's view of its pool's slots (after the fork)."""

    def __init__(self, board: Board, index: int, node: dict[str, Any], affinity: str,
                 accelerators: list[str]):
        self.board, self.index, self.node = board, index, node
        self.n = len(board.workers)
        self.affinity, self.accelerators = affinity, accelerators
        self.cpus = os.sched_getaffinity(0)  # the pool's (made before the worker is pinned)

    # -- lending (the worker's loop) ------------------------------------------------------

    def lent(self) -> bool:
        """Another worker holds this worker's slot: claim nothing (memory only)."""
        h = self.board.holder[self.index]
        return h != 0 and h != self.index + 1

    def park(self, alive: Callable[[], bool]) -> None:
        """Wait, claiming nothing, until this worker's slot is free again."""
        me = self.index
        delay = PARK_POLL[0]
        while alive():
            with self._locked():
                if self.board.holder[me] == 0:
                    self.board.parked[me] = False
                    return
                self.board.parked[me] = True
            time.sleep(delay)
            delay = min(delay * 2, PARK_POLL[1])

    # -- borrowing (a task that needs several slots) --------------------------------------

    def take(self, k: int) -> list[int] | None:
        """Hold k slots, this worker's and k - 1 others that no one holds (idle ones
        first); None if that is not possible now: other tasks on several slots hold them
        (this worker is then first in line: until it has its slots, or gives up, no
        other task borrows any), another is first in line, or someone holds this
        worker's slot."""
        me, holder, waiter = self.index, self.board.holder, self.board.waiter
        with self._locked():
            if waiter.value not in (0, me + 1):
                return None
            if holder[me] not in (0, me + 1):
                self._unwait()
                return None
            free = [j for j in range(self.n) if j != me and holder[j] == 0]
            if len(free) < k - 1:
                waiter.value = me + 1
                return None
            free.sort(key=lambda j: self.board.workers[j].busy)  # idle ones first
            taken = [me, *free[:k - 1]]
            for j in taken:
                holder[j] = me + 1
            self._unwait()
        return taken

    def give_up(self) -> None:
        """This worker no longer waits for slots (its task went back to ready/)."""
        with self._locked():
            self._unwait()

    def _unwait(self) -> None:
        if self.board.waiter.value == self.index + 1:
            self.board.waiter.value = 0

    def lenders_parked(self, taken: list[int]) -> bool:
        return all(self.board.parked[j] for j in taken if j != self.index)

    def release_mine(self) -> None:
        """Free every slot this worker holds (its task was given back after an error)."""
        self.release(list(range(self.n)))
        self.give_up()

    def release(self, taken: list[int]) -> None:
        with self._locked():
            for j in taken:
                if self.board.holder[j] == self.index + 1:
                    self.board.holder[j] = 0

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.board)

    # -- a task's share of the node ------------------------------------------------------

    @contextlib.contextmanager
    def granted(self, taken: list[int], req: dict[str, Any],
                more: dict[str, str] | None = None) -> Iterator[None]:
        """Run the body pinned to the slots' CPUs, with their accelerators and thread
        counts in the environment (and more); put the worker's own back afterwards."""
        mode = self.affinity if self.affinity != "none" else "block"
        cpus = sorted({c for j in taken
                       for c in resources.cpus_for(j, self.n, mode, self.cpus) or []})
        before = os.sched_getaffinity(0)
        cores = req.get("cores") or len(cpus) or len(taken)
        env = {v: str(max(1, math.ceil(cores))) for v in THREAD_VARS}
        env["FARM_CORES"] = f"{cores:g}"
        if req.get("memory"):
            env["FARM_MEMORY"] = f"{req['memory']:g}"
        if self.accelerators:
            ids = ",".join(self.accelerators[j % len(self.accelerators)] for j in sorted(taken))
            env.update({v: ids for v in resources.ACCEL_VARS})
        env.update(more or {})
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            if cpus:
                os.sched_setaffinity(0, cpus)
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if cpus:
                os.sched_setaffinity(0, before)


def free(board: Board, worker: int) -> None:
    """Free the slots a dead worker held (the manager, before it starts a new one)."""
    with locked(board):
        unhold(board, worker)
        board.parked[worker] = False
        if board.waiter.value == worker + 1:
            board.waiter.value = 0


def unhold(board: Board, holder: int) -> None:
    """Free every slot that holder (a worker's index; the manager's: the worker count)
    holds.  Under the lock."""
    for j in range(len(board.holder)):
        if board.holder[j] == holder + 1:
            board.holder[j] = 0


@contextlib.contextmanager
def locked(board: Board) -> Iterator[None]:
    """The slots' lock (a POSIX record lock: dropped by the kernel if its holder dies)."""
    fd = board.lock_fd
    fcntl.lockf(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)
