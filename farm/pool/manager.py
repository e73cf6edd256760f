"""The pool's manager: ``Pool(spool_path, ...).run()``, the process ``farm pool`` runs.

It forks the workers and only supervises them: it restarts a worker that died (the task it
was running is charged an attempt), writes the pool's heartbeat, tells the workers when the
pool is cold, watches other pools and sweeps while idle, and decides when the pool ends
(idle past its limit, the spool's shutdown request, its block's end, SIGTERM, or an
observer that declared it dead); whatever ends it, it stops its workers first and gives
back what they held, with the attempt unchanged.

kill -9 of a worker: its claim stays in claimed/POOL.W/ and the manager requeues it.
kill -9 of the manager: workers notice their parent is gone and exit; the claims stay until
a liveness observer requeues them (docs/spool-format.md, "dead pools").
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import random
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from farm import resources
from farm.errors import ConfigError, FarmError, SpoolError
from farm.pool import nodes, slots
from farm.pool.limits import Limits, local_node
from farm.pool.shared import COLD_BEAT, COLD_LEASE_BEATS, COLD_RARE, RING, WARM_IDLE, Board
from farm.pool.worker import Worker
from farm.spool import FIRST, PoolWatch, Spool, fs, sign

log = logging.getLogger("farm.pool")
# Seconds between a pool's looks at tmp/ in its sweeps (a leftover there is removed once it
# is an hour old: there is no hurry, and each look is a listing).
TMP_SWEEP = 600.0


class Pool:
    """The manager process.  ``Pool(spool_path, ...).run()`` returns when the pool ends."""

    def __init__(self, spool_path: str, workers: int | None = None,
                 idle_timeout: float = 120.0, heartbeat: float = 2.0,
                 pool_id: str | None = None, block: str | None = None,
                 lease: float | None = None, sweep: float = 30.0,
                 cores_per_worker: float = 1.0, mem_per_worker: float | None = None,
                 accelerators: list[str] | None = None, cpu_affinity: str = "none",
                 end_time: str | None = None, drain: float | None = None):
        self.spool = Spool(spool_path)
        if self.spool.key is None:
            # Drivers sign everything, so a pool without the key could neither check the
            # tasks nor sign results the driver would accept.
            where = ("others can write to it, and " if not self.spool.private else "")
            raise SpoolError(
                f"refusing spool {self.spool.path}: {where}there is no signing key at "
                f"{sign.key_path()} on this node to check its tasks with. Make your home "
                "directory (or $FARM_KEY_FILE) readable here, with the driver's key")
        accelerators = list(accelerators or [])
        self.nworkers = resources.worker_count(workers, cores_per_worker, mem_per_worker,
                                               accelerators)
        resources.cpus_for(0, self.nworkers, cpu_affinity)  # a bad mode fails here, once
        self.node = local_node(self.nworkers, accelerators)
        self.limits = Limits.of_block(end_time, drain, cpu_affinity, accelerators, self.node)
        self.idle_timeout = idle_timeout
        self.heartbeat_period = heartbeat
        # Observers declare this pool dead after `lease` seconds without a new heartbeat.
        self.lease = lease if lease is not None else max(5.0, 10 * heartbeat)
        if self.lease < 3 * heartbeat:
            raise ConfigError(f"farm pool: --lease ({self.lease:g} s) must be at least three "
                              f"heartbeats ({3 * heartbeat:g} s)")
        self.host = socket.gethostname()
        # A random part: pids repeat (containers), and a reused id would meet the
        # .dead file of an earlier pool.
        self.id = pool_id or f"{self.host}-{os.getpid()}-{random.getrandbits(16):04x}"
        self.block = block
        self.ctx = mp.get_context("fork")
        self.procs: list[BaseProcess | None] = [None] * self.nworkers
        self.board = Board(self.nworkers, self.ctx)
        for w in self.board.workers:
            w.reset()
        self.beats = 0
        self.counter = 0
        self.last_beat = time.monotonic()  # when our heartbeat was last written
        # Cold (idle for WARM_IDLE), the pool beats every cold_beat s and advertises a
        # lease of COLD_LEASE_BEATS of them; `advertised` is the lease of its last beat.
        self.cold_beat = max(COLD_BEAT, heartbeat)
        self.cold_lease = max(self.lease, COLD_LEASE_BEATS * self.cold_beat)
        self.advertised = self.lease
        self.deaf_until = 0.0  # the doorbell is not listened to until then
        self.stopping = ""
        self.watch = PoolWatch(self.spool, me=self.id)
        # In a block of several nodes, tasks across nodes may borrow ours (farm.pool.nodes).
        self.lender = nodes.Lender(self.spool, self.id, self.board) \
            if self.node["nodes"] > 1 else None
        self.sweep_period = sweep
        self.started = time.time()
        self.lost = 0

    def run(self) -> int:
        log.info("pool %s: %d workers on %s, idle limit %ss%s",
                 self.id, self.nworkers, self.spool.path, self.idle_timeout,
                 "" if self.limits.end is None else
                 f", block ends in {self.limits.left():.0f} s")
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.token = self.spool.shutdown_token()  # a request older than this pool
        # The first heartbeat before any worker can claim: a pool killed at once must be
        # one that observers know of (only a known pool's claims are ever taken over).
        self._beat("running")
        for i in range(self.nworkers):
            self._start(i)
        self.next_beat = 0.0
        self.next_sweep = time.monotonic() + self.sweep_period
        self.next_tmp_sweep = 0.0
        try:
            while not self.stopping:
                try:
                    self._tick()
                except Exception:  # damaged files, I/O errors: log, and keep the pool up
                    log.exception("pool %s: error in the manager loop (going on)", self.id)
                    time.sleep(1)
                time.sleep(0.05)
        finally:
            log.info("pool %s stopping: %s", self.id, self.stopping or "an error")
            self._stop_workers()
            self._beat("exited")
        return 0

    def _tick(self) -> None:
        now = time.monotonic()
        cold = self.board.idle_for() > WARM_IDLE
        if cold != self.board.cold.value:
            # Beat at once: the heartbeat advertises the lease that goes with the new
            # period, before a cold pool's beats grow apart (observers must not declare it
            # dead meanwhile) and as soon as a warm one holds tasks again.
            self.board.cold.value = cold
            self.next_beat = now
        if now >= self.next_beat:
            self.beats += 1
            self.next_beat = now + (self.cold_beat if cold else self.heartbeat_period)
            # An observer declares a pool dead only after its heartbeat stood still for a
            # lease; after a shorter gap between our own beats none can have, and the
            # check (a listing of pools/) is skipped.
            if now - self.last_beat > self.advertised / 2 and self.spool.is_fenced(self.id):
                self.stopping = "an observer declared this pool dead (it was silent)"
                return
            self.advertised = self.cold_lease if cold else self.lease
            self._beat("running")
            if self.lender is not None:
                self.lender.look()  # (a block of several nodes: tasks across them)
            # Cold, the doorbell brings a shutdown request to us (below); control/ and the
            # other pools are looked at every COLD_RARE beats only.
            rare = not cold or self.beats % COLD_RARE == 0
            if rare:
                self._check_shutdown(now)
            if rare and not self.stopping and not self.board.busy():
                self._observe(now)
        elif self.board.doorbell.value and now > self.deaf_until:
            # Worker 0 saw the doorbell: a request, perhaps.  If not (the doorbell of a
            # request older than this pool, which it ignores), don't look again for a
            # minute: the heartbeats' own looks at control/ still find a new request.
            self._check_shutdown(now)
            if not self.stopping:
                self.deaf_until = now + 60.0
        self._reap()
        if self.board.idle_for() > self.idle_timeout:
            self.stopping = f"idle for {self.idle_timeout} s"
        elif self.limits.left() <= self.limits.margin:
            self.stopping = "its block ends soon: unfinished tasks go back to the queue"
        elif self.limits.draining() and not self.board.busy():
            self.stopping = "its block ends soon: it takes no more work"

    def _check_shutdown(self, now: float) -> None:
        self.board.doorbell.value = False
        token = self.spool.shutdown_token()
        if token is not None and token != self.token:
            self.stopping = "the spool asked pools to shut down"

    def _observe(self, now: float) -> None:
        """An idle pool helps: it watches the RING pools after it (in id order: each pool
        is watched by its RING predecessors, whatever their number) for death, and now and
        then sweeps for lost wakeups (on NFS, a promotion can miss a result not yet
        visible); the more pools, the less often each sweeps."""
        ids, dead = self.spool.pool_ids()
        at = ids.index(self.id) if self.id in ids else -1
        ring = {ids[(at + k) % len(ids)] for k in range(1, RING + 1)} - {self.id} if ids else set()
        read_at = time.monotonic()
        for pool in self.watch.check(self.spool.read_heartbeats(sorted(ring)), read_at):
            log.warning("pool %s: pool %s went silent and was declared dead", self.id, pool)
            dead.add(pool)
        if now >= self.next_sweep:
            self.next_sweep = now + self.sweep_period * max(1.0, len(ids) / 4)
            tmp = now >= self.next_tmp_sweep
            if tmp:
                self.next_tmp_sweep = now + TMP_SWEEP
            self._sweep(dead, set(ids) | {self.id}, tmp)

    def _sweep(self, dead: set[str], live: set[str], tmp: bool) -> None:
        try:
            counts = self.spool.sweep(dead, skip=live, tmp=tmp)
        except (OSError, FarmError) as e:
            log.error("pool %s: sweep failed: %s", self.id, e)
            return
        if any(counts.values()):
            log.info("pool %s: sweep repaired %s", self.id, counts)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = f"signal {signum}"

    def _start(self, i: int) -> None:
        w = Worker(self.spool.path, pool=self.id, index=i, nworkers=self.nworkers,
                   limits=self.limits, board=self.board, block=self.block)
        self.board.workers[i].reset()
        p = self.ctx.Process(target=w.main, name=f"farm-worker-{i}", daemon=False)
        p.start()
        self.procs[i] = p

    def _reap(self) -> None:
        for i, p in enumerate(self.procs):
            if p is not None and p.exitcode is not None:
                if self.stopping:
                    continue  # stopping: what it held is released in _stop_workers
                log.warning("pool %s: worker %d died (exit code %s)", self.id, i, p.exitcode)
                self.lost += self.spool.give_back_all(
                    self.spool.worker_dir(self.id, i),
                    lost=f"worker {i} of pool {self.id} on {self.host} died (exit code "
                         f"{p.exitcode}) while running it",
                    running=self.board.workers[i].running.decode() or FIRST)
                slots.free(self.board, i)
                if self.lender is not None:
                    nodes.drop_reservations(self.spool, self.id, i)
                self._start(i)

    def _stop_workers(self) -> None:
        for p in self.procs:
            if p is not None and p.exitcode is None:
                p.terminate()
        deadline = time.monotonic() + 10
        for p in self.procs:
            if p is not None:
                p.join(max(0.1, deadline - time.monotonic()))
                if p.exitcode is None:
                    p.kill()
                    p.join(5)
        # What the workers held goes back to ready/ with its attempt unchanged: it was
        # interrupted, not failed.
        for i in range(self.nworkers):
            wdir = self.spool.worker_dir(self.id, i)
            self.spool.give_back_all(wdir)
            try:
                os.rmdir(wdir)
            except OSError:
                pass
        if self.lender is not None:
            # Tasks across nodes: ours give their nodes back; a task waiting for ours
            # sees its reservation gone and goes back to the queue.
            nodes.drop_reservations(self.spool, self.id)
            self.lender.stop()

    def _beat(self, state: str) -> None:
        try:
            self._write_beat(state)
        except OSError as e:  # a full or read-only spool must not kill the pool
            log.error("pool %s: cannot write its heartbeat: %s", self.id, fs.explain(e))

    def _write_beat(self, state: str) -> None:
        self.counter += 1
        ops = dict(fs.OPS)
        for k, v in self.board.ops().items():
            ops[k] = ops.get(k, 0) + v
        self.spool.write_heartbeat(self.id, {
            "pool": self.id, "host": self.host, "pid": os.getpid(), "block": self.block,
            "workers": self.nworkers, "busy": self.board.busy(), "counter": self.counter,
            "state": state, "started": self.started, "idle_timeout": self.idle_timeout,
            "heartbeat": self.cold_beat if self.board.cold.value else self.heartbeat_period,
            "lease": self.advertised, "lost": self.lost,
            "reason": self.stopping or None, "ops": ops, "ops_manager": dict(fs.OPS),
            "block_end": self.limits.end, "node": self.node,
            "draining": self.limits.draining(),
        })
        self.last_beat = time.monotonic()
