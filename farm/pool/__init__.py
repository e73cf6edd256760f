"""The worker pool: the process ``farm pool SPOOL`` that a launcher starts, one per node.

A pool is a manager process and N forked worker processes.  Each worker claims ready tasks
itself (one rename each, for a task or a bundle of them), runs them, publishes the results
(a bundle's in batches, by a thread of its own) and promotes the dependents it made
runnable, running the first of those next.  The manager only supervises: it restarts dead
workers (their task is retried or fails with WorkerLost), writes the heartbeat, tells the
workers when the pool is cold (idle for WARM_IDLE: then only worker 0 polls), and decides
when the pool ends (idle past its limit, spool shutdown, SIGTERM).

Every claim goes back to ready/ the same way, through ``Spool.give_back``: a task retried
(attempt + 1), one not runnable here yet or interrupted (attempt unchanged), a bundle split,
the claims of a worker that died (the task it was running charged an attempt).

``farm.pool`` is built in layers, each module readable on its own:

    shared      Board, WorkerState: the memory the manager and its workers share; the
                rhythm of an idle pool (WARM_IDLE, IDLE_POLL, COLD_POLL)
    limits      Limits: the block's end, drain and margin, walltime fit, CPU shares
    slots       Slots: the node split one slot per worker; a task with a request
                (farm.requests) borrows other workers' slots (docs/resources.md)
    task        TaskRunner: one claimed task run (app, arguments, walltime, retries)
    bundles     BundleRunner: a claimed bundle run, split; Results, the result batches
    worker      Worker: the poll loop of one worker process, claims, chains of dependents
    manager     Pool: the manager loop, heartbeat, observing other pools, sweeps,
                restarting workers, stopping

kill -9 of a worker: its claim stays in claimed/POOL.W/ and the manager requeues it.
kill -9 of the manager: workers notice their parent is gone and exit; the claims stay until
a liveness observer requeues them (docs/spool-format.md, "dead pools").
"""

from __future__ import annotations

from farm.pool.bundles import Results
from farm.pool.limits import Limits
from farm.pool.manager import Pool
from farm.pool.shared import WARM_IDLE, Board, WorkerState
from farm.pool.worker import Worker

__all__ = ["WARM_IDLE", "Board", "Limits", "Pool", "Results", "Worker", "WorkerState"]
