"""Tasks across nodes (MPI): the pools of one block lend their whole node to one task.

A task that asks for ``num_nodes`` k > 1 is claimed by a worker like any other.  That
worker first takes every slot of its own pool (farm.pool.slots: its pool's other workers
finish what they run and park), then reserves k nodes in the spool, its own first, then
k - 1 other live pools of its block, each by publishing ``nodes/POOL`` (a link: it fails
if another task holds that node).  A reservation that fails is skipped, never waited
for, so two such tasks cannot hold each other up; if the task
cannot get its own node or k in all, it drops what it reserved and goes back to ready/
(for a few seconds, at random, for that worker).

Each pool's manager looks at nodes/ at every heartbeat (only in blocks of several nodes).
Finding its node reserved by another pool's task, it takes its own workers' slots as they
free up (``Lender``), and once all of them are parked it says so: ``nodes/POOL@RID``
(RID: the reservation's own id).
When every lender has said so, the task runs with ``$FARM_MPI_PREFIX`` (and Parsl's
``$PARSL_MPI_PREFIX``, ``$PARSL_MPI_NODEFILE``...): an ``srun`` of the ranks on those nodes,
as a job step beside the pools' own.  Then its worker removes the reservations, and each
lender frees its slots when it sees its reservation gone.

What a kill -9 leaves: a worker that dies holding reservations has them removed by its
manager before a new worker starts; a pool that dies or exits is seen by its lenders
(its heartbeat no longer says running, or it was declared dead), which remove its
reservations; a lender that dies or exits lends nothing more (an exiting one removes the
reservation of its node), and the task's worker, which reads the lenders' heartbeats about
every second while it waits, gives the task back.  Every state is a file published by a
link or removed by an unlink, and every "missing" is read from a listing of nodes/ or
pools/ (or a heartbeat that says so).
"""

from __future__ import annotations

import logging
import math
import os
import random
import shlex
import tempfile
import time
from collections.abc import Callable
from typing import Any

from farm.pool.shared import Board
from farm.pool.slots import locked, unhold
from farm.spool import Spool

log = logging.getLogger("farm.pool")

LOOK = 0.2  # seconds between a waiting worker's looks at nodes/
# Variables an enclosing job step sets that would shape the task's own srun wrongly.
STEP_VARS = ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_DISTRIBUTION",
             "SLURM_CPUS_PER_TASK", "SRUN_CPUS_PER_TASK", "SLURM_CPU_BIND",
             "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_NODE")


def ranks(req: dict[str, Any]) -> tuple[int, int, int]:
    """(nodes, ranks per node, ranks) of a request across nodes."""
    nodes = int(req.get("num_nodes") or 1)
    per = int(req.get("ranks_per_node") or 0)
    total = int(req.get("num_ranks") or 0)
    if not per:
        per = math.ceil(total / nodes) if total else 1
    return nodes, per, total or per * nodes


class Borrower:
    """A worker's side: reserve nodes for a task across nodes, wait until they are lent,
    run the task with its launch prefix, release them."""

    def __init__(self, spool: Spool, pool: str, index: int, block: str | None):
        self.spool, self.pool, self.index, self.block = spool, pool, index, block

    def block_pools(self) -> dict[str, dict[str, Any]]:
        """The live pools of this pool's block, by id (their heartbeats)."""
        if not self.block:
            return {}
        return {p["pool"]: p for p in self.spool.live_pools() if p.get("block") == self.block}

    def short_of(self, req: dict[str, Any]) -> str | None:
        """Why this pool's block cannot run the task now (too few live pools), or None."""
        want, have = int(req["num_nodes"]), len(self.block_pools())
        if have >= want:
            return None
        return (f"it asks for num_nodes={want}, and its block has {have} live pools: a task "
                "across nodes needs a pool on each node (a launcher that starts one per "
                "node, such as SrunLauncher), and those pools still up")

    def gather(self, key: str, req: dict[str, Any],
               alive: Callable[[], bool]) -> list[dict[str, Any]] | None:
        """Reserve this pool's node and num_nodes - 1 others of its block and wait until
        each is lent; their heartbeats (this pool's first), or None: nothing is held
        (not enough free nodes now, a lender went away, or this worker must stop)."""
        want = int(req["num_nodes"])
        beats = self.block_pools()
        if self.pool not in beats or len(beats) < want:
            return None
        # The reservation's own id names the lenders' word, so that a word given to an
        # earlier attempt of the same task is never taken for this one's.
        rid = f"{key[:16]}-{random.getrandbits(32):08x}"
        record = {"id": rid, "task": key, "pool": self.pool, "worker": self.index,
                  "t": time.time()}
        if not self.spool.reserve_node(self.pool, record):
            return None  # another pool's task reserved our node: it goes first
        held = [self.pool]
        try:
            for pool in sorted(set(beats) - {self.pool}):
                if len(held) == want:
                    break
                if self.spool.reserve_node(pool, record):
                    held.append(pool)
            others = [p for p in held if p != self.pool]
            looks = 0
            while len(held) == want and alive():
                names = set(self.spool.node_names())
                if all(f"{p}@{rid}" in names for p in others):
                    got, held = held, []  # (the caller releases them after the task)
                    return [beats[p] for p in got]
                gone = [p for p in others if p not in names]
                if not gone and looks % 5 == 4:  # about every second: a lender that left
                    running = {b["pool"] for b in self.spool.read_heartbeats(others)
                               if b.get("state") == "running"}
                    dead = self.spool.pool_ids()[1]
                    gone = [p for p in others if p not in running or p in dead]
                if gone:
                    log.warning("pool %s: the node of pool %s went away before task %s "
                                "could start; it goes back to the queue", self.pool,
                                gone[0], key[:8])
                    break
                looks += 1
                time.sleep(LOOK * random.uniform(0.8, 1.2))
            return None
        finally:
            self.release(held)  # (nothing, once the nodes are the task's)

    def release(self, pools: list[str]) -> None:
        for pool in pools:
            self.spool.release_node(pool)

    @staticmethod
    def environment(req: dict[str, Any], beats: list[dict[str, Any]]) -> tuple[dict[str, str],
                                                                               str]:
        """The task's variables: the launch prefix for its ranks on these nodes, and
        Parsl's names for the same; and the node file to remove afterwards."""
        nodes, per, total = ranks(req)
        hosts = [str(b.get("host")) for b in beats]
        fd, nodefile = tempfile.mkstemp(prefix="farm-nodes-")
        with os.fdopen(fd, "w") as f:
            f.write("".join(h + "\n" for h in hosts))
        if os.environ.get("SLURM_JOB_ID"):
            # A job step beside the pools' own (--overlap), the ranks in block order, PMI-2
            # for MPICH and Open MPI alike, as many ranks as asked even where the job has
            # fewer CPUs (--overcommit: a job that is not --exclusive); the enclosing
            # step's shape is unset first.
            # (a site's own MPI plugin, SLURM_MPI_TYPE in worker_init, is left to srun)
            unset = " ".join(f"-u {v}" for v in STEP_VARS)
            mpi = "" if os.environ.get("SLURM_MPI_TYPE") else "--mpi=pmi2 "
            prefix = (f"env {unset} srun --overlap --overcommit {mpi}--nodes={nodes} "
                      f"--ntasks={total} --ntasks-per-node={per} "
                      f"--nodelist={','.join(hosts)} --distribution=block "
                      f"--cpus-per-task=1 --kill-on-bad-exit=1")
        else:
            prefix = f"mpiexec -n {total} -ppn {per} -hosts {shlex.quote(','.join(hosts))}"
        env = {"FARM_MPI_PREFIX": prefix, "PARSL_MPI_PREFIX": prefix,
               "FARM_MPI_NODES": ",".join(hosts), "PARSL_MPI_NODEFILE": nodefile,
               "PARSL_NUM_NODES": str(nodes), "PARSL_RANKS_PER_NODE": str(per),
               "PARSL_NUM_RANKS": str(total)}
        return env, nodefile


class Lender:
    """A manager's side: lend this pool's node to another pool's task that reserved it."""

    def __init__(self, spool: Spool, pool: str, board: Board):
        self.spool, self.pool, self.board = spool, pool, board
        self.lent_to: str | None = None  # the reservation our node is lent to
        self.me = len(board.workers)  # our mark in the slots' holder array (index + 1)

    def look(self) -> None:
        """One look at nodes/ (at a heartbeat): lend, keep lending, or stop."""
        names = self.spool.node_names()
        if not names and self.lent_to is None:
            return
        # Entries of pools that are gone (died, declared dead, or exited): nobody else
        # removes them.  (Their heartbeats are read only while nodes/ has entries.)
        rec = self.spool.node_reservation(self.pool) if self.pool in names else None
        pools = {n.rpartition("@")[0] or n for n in names} | {str((rec or {}).get("pool"))}
        pools -= {self.pool, "None"}
        running = {b["pool"] for b in self.spool.read_heartbeats(sorted(pools))
                   if b.get("state") == "running"}
        gone = pools - running | (pools & self.spool.pool_ids()[1])
        for name in names:
            if (name.rpartition("@")[0] or name) in gone:
                self.spool.unlend_node(name)
        if rec is not None and rec.get("pool") != self.pool and rec.get("pool") in gone:
            log.warning("pool %s: the pool %s that reserved this node is gone; the "
                        "reservation is removed", self.pool, rec.get("pool"))
            self.spool.release_node(self.pool)
            rec = None
        rid = str(rec.get("id")) if rec is not None and rec.get("pool") != self.pool else None
        for name in names:  # our word given to a reservation that is no more
            pool, at, given = name.rpartition("@")
            if at and pool == self.pool and given != rid:
                self.spool.unlend_node(name)
        if rid is None:
            if self.lent_to is not None:
                self._free()
            return
        self.lent_to = rid
        if self._hold() and f"{self.pool}@{rid}" not in names:
            self.spool.lend_node(self.pool, rid)

    def stop(self) -> None:
        """The pool stops: a reservation of its node by another pool's task is removed
        (that task goes back to the queue, or, if it runs already, keeps the node it has),
        and so is its word."""
        for name in self.spool.node_names():
            if (name.rpartition("@")[0] or name) != self.pool:
                continue
            if "@" in name:
                self.spool.unlend_node(name)
            elif (rec := self.spool.node_reservation(name)) and rec.get("pool") != self.pool:
                self.spool.release_node(name)

    def _hold(self) -> bool:
        """Take our workers' slots as they free up; True once all are ours and every
        worker has parked."""
        holder = self.board.holder
        with locked(self.board):
            for j in range(len(holder)):
                if holder[j] == 0:
                    holder[j] = self.me + 1
        return (all(holder[j] == self.me + 1 for j in range(len(holder)))
                and all(self.board.parked[j] for j in range(len(holder))))

    def _free(self) -> None:
        with locked(self.board):
            unhold(self.board, self.me)
        self.lent_to = None


def drop_reservations(spool: Spool, pool: str, worker: int | None = None) -> None:
    """Remove the reservations a pool's worker (or any of its workers) made: it died, or
    the pool stops."""
    for name in spool.node_names():
        if "@" in name:
            continue
        rec = spool.node_reservation(name)
        if rec and rec.get("pool") == pool and (worker is None or rec.get("worker") == worker):
            spool.release_node(name)
