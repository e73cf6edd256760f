"""The worker pool: the process ``farm pool SPOOL`` that a launcher starts, one per node.

A pool is a manager process and N forked worker processes.  Each worker claims ready tasks
itself (one rename each, for a task or a bundle of them), runs them, publishes the results
(a bundle's in batches, by a thread of its own) and promotes the dependents it made
runnable, running the first of those next.  The manager only supervises: it restarts dead
workers (their task is retried or fails with WorkerLost), writes the heartbeat, tells the
workers when the pool is cold (idle for WARM_IDLE: then only worker 0 polls), and decides
when the pool ends (idle past its limit, spool shutdown, SIGTERM).

kill -9 of a worker: its claim stays in claimed/POOL.W/ and the manager requeues it.
kill -9 of the manager: workers notice their parent is gone and exit; the claims stay until
a liveness observer requeues them (docs/spool-format.md, "dead pools").
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import random
import signal
import socket
import sys
import threading
import time
from typing import Any

import cloudpickle

from farm import execute, resources, serialize
from farm.data import substitute
from farm.errors import ConfigError, CorruptFile, FarmError, SerializationError, SpoolError
from farm.spool import PoolWatch, Spool, fs, is_bundle, sign, split_name

log = logging.getLogger("farm.pool")

OPKEYS = ("create", "rename", "link", "unlink", "stat", "listdir", "open", "mkdir")
# A worker's polling interval grows from 1 ms to 50 ms while the pool has been idle for less
# than WARM_IDLE seconds (work tends to come in bursts), then to 1 s.
IDLE_POLL = (0.001, 0.05, 1.0)
WARM_IDLE = 30.0
IO_BACKOFF = 2.0  # seconds a worker waits after the spool's filesystem failed it
# A pool idle for WARM_IDLE is cold: only its worker 0 looks at ready/ (every COLD_POLL s;
# the others wait on memory shared with the manager, without filesystem calls), it beats
# less often, and it watches only its RING successors among the pools (in id order), every
# other beat.  An idle pool then costs under 2 filesystem operations per second.
COLD_POLL = 2.0
RING = 2


@dataclasses.dataclass
class Limits:
    """What bounds a pool's work: its block's end time (epoch seconds, or None), how long
    before it the pool stops taking work (drain) and stops running it (margin: claims go
    back to ready/ before Slurm kills the job), and the workers' CPU and accelerator
    shares."""

    end: float | None = None
    drain: float = 0.0
    affinity: str = "none"
    accelerators: list[str] = dataclasses.field(default_factory=list)

    @property
    def margin(self) -> float:
        return min(15.0, self.drain)

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.time()

    def draining(self) -> bool:
        return self.left() <= self.drain

    def fits(self, walltime: float | None) -> bool:
        return not walltime or self.left() - self.margin >= float(walltime)


# Seconds of work a worker may hold in the rest of a bundle while another worker of its
# pool is idle (SPLIT), or in any case (SPLIT_ALWAYS: workers of other pools may be idle).
SPLIT, SPLIT_ALWAYS = 0.2, 2.0
SPLIT_LOOK = 0.5  # seconds a worker trusts its last look at whether ready/ had other work
BATCH, BATCH_BYTES = 64, 1 << 20  # results published in one file, at most
HOLD = 0.02  # seconds a result may wait for others to share its file
RECENT = 16  # values of its own latest results a worker keeps for their dependents


class Results:
    """Outcomes of bundled tasks, published a batch at a time (Spool.publish_results).  A
    result waits at most HOLD seconds, also while the next task runs: a thread of its own
    publishes what has waited that long."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.cond = threading.Condition()
        self.items: list[tuple[str, dict[str, Any], bytes]] = []
        self.bundles: set[str] = set()
        self.size, self.since = 0, 0.0
        threading.Thread(target=self._loop, name="farm-results", daemon=True).start()

    def add(self, key: str, head: dict[str, Any], body: bytes, bundle: str) -> None:
        with self.cond:
            if not self.items:
                self.since = time.monotonic()
                self.cond.notify()
            self.items.append((key, head, body))
            self.bundles.add(bundle)
            self.size += len(body)
            if len(self.items) >= BATCH or self.size > BATCH_BYTES:
                self._flush()

    def flush(self) -> None:
        with self.cond:
            self._flush()

    def drop(self) -> None:
        with self.cond:
            self.items, self.bundles, self.size = [], set(), 0

    def settle(self, bundle: str) -> None:
        """Promote the dependents of bundle at the next flush (a task of it got a result
        some other way: a damaged record's failure)."""
        with self.cond:
            self.bundles.add(bundle)

    def _flush(self) -> None:
        if not self.items and not self.bundles:
            return
        # On an error the items stay (a retry publishes them; links made already lose
        # harmlessly); the bundle claim, dropped only after the last flush, stays too.
        if self.items:
            self.spool.publish_results(self.items)
        bundles = self.bundles
        self.items, self.bundles, self.size = [], set(), 0
        for bid in bundles:  # results first, then the index (the ordering rule)
            try:
                self.spool.settle_bundle(bid)
            except (OSError, FarmError) as e:  # the sweep promotes them later
                log.error("cannot promote the dependents of bundle %s: %s", bid, e)

    def _loop(self) -> None:
        with self.cond:
            while True:
                if not self.items:
                    self.cond.wait()
                    continue
                left = self.since + HOLD - time.monotonic()
                if left > 0:
                    self.cond.wait(left)
                    continue
                try:
                    self._flush()
                except (OSError, FarmError) as e:
                    log.error("cannot publish results: %s (will retry)", e)
                    self.cond.wait(IO_BACKOFF)


class _NotVisible(Exception):
    """A dependency's result is not visible here yet (NFS caching): try again later."""


GRACE = 60.0  # seconds a file the task needs may stay invisible before the task fails


class Worker:
    """One worker process of a pool (runs after fork)."""

    def __init__(self, spool_path: str, pool: str, index: int, nworkers: int, state, ops,
                 limits: Limits | None = None, current=None, cold=None, siblings=()):
        self.spool_path, self.pool, self.index, self.nworkers = spool_path, pool, index, nworkers
        # Shared with the manager: busy flag and since when, op counts, and the key of the
        # bundled task being run (so that a worker's death charges that task alone).
        self.state, self.ops = state, ops
        self.siblings = siblings  # the states of all the pool's workers
        self.current = current if current is not None else mp.Array("c", 40)
        self.cold = cold if cold is not None else mp.RawValue("b", 0)  # set by the manager
        self.limits = limits or Limits()
        self.too_long: set[str] = set()  # tasks whose walltime overruns our block's end
        self.apps: dict[str, Any] = {}
        self.host = socket.gethostname()
        self.pid = os.getpid()  # (again in main(), after the fork)
        self.held = False
        self.misses: dict[str, float] = {}  # key -> when a file it needs was first missing
        self.values: dict[str, bytes] = {}  # pickled values of our latest successes
        self.ready_seen = (-1e9, False)  # (when, whether ready/ had other work then)

    def main(self) -> None:
        signal.signal(signal.SIGTERM, self._terminate)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        fs.OPS.clear()
        self.parent = os.getppid()
        resources.pin(self.index, self.nworkers, self.limits.affinity,
                      self.limits.accelerators)
        self.spool = Spool(self.spool_path)
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

    def _give_back(self) -> None:
        self.results.drop()  # (their tasks go back with their bundle, and run again)
        try:
            for name in fs.listdir(self.dir):
                self.spool.release(os.path.join(self.dir, name), split_name(name)[1])
        except OSError:
            self.held = True  # still failing: the claims stay ours; we run them later

    def _step(self, names: list[str], delay: float) -> tuple[list[str], float]:
        """Claim and run one task (and the dependents it makes runnable), or wait a little.
        Returns the names still to try and the next idle delay."""
        if self.held:  # claims kept through an I/O error: run them first
            for name in fs.listdir(self.dir):
                self._run_chain(os.path.join(self.dir, name))
            self.held = False
        if self.limits.draining():
            self._set_busy(False)
            time.sleep(IDLE_POLL[2])
            return [], delay
        if not names:
            if self.cold.value and self.index:
                time.sleep(IDLE_POLL[1])  # worker 0 looks for the pool (see COLD_POLL)
                return names, delay
            names = self._candidates()
            if not names:
                self._set_busy(False)
                self.ops[:] = [fs.OPS[k] for k in OPKEYS]  # (idle polling counts too)
                time.sleep(delay)
                warm = time.monotonic() - self.state[1] < WARM_IDLE
                cap = IDLE_POLL[1] if warm else COLD_POLL if self.cold.value else IDLE_POLL[2]
                return names, min(max(delay * 1.5, fs.min_poll(IDLE_POLL[0])), cap)
        path = self.spool.claim(names.pop(), self.dir)
        if path is None:
            return names, delay
        self._run_chain(path)
        return names, fs.min_poll(IDLE_POLL[0])

    def _run_chain(self, path: str | None) -> None:
        self._set_busy(True)
        while path:
            if self.limits.draining():  # (a dependent we promoted): leave it to others
                self.spool.release(path, split_name(os.path.basename(path))[1])
                break
            path = self.run(path)
        self.ops[:] = [fs.OPS[k] for k in OPKEYS]

    def _candidates(self) -> list[str]:
        """ready/ names to try (last first): the worker's own share (by hash, so the
        pool's workers do not race each other for the same names), or, when that is
        empty, the others' (helping out).  Shuffled: racing other pools is left to chance."""
        mine, others = [], []
        n = self.nworkers
        for name in self.spool.ready_names():
            if self.too_long and split_name(name)[0] in self.too_long:
                continue
            (mine if int(name.lstrip("B")[:4], 16) % n == self.index else others).append(name)
        names = mine or others
        random.shuffle(names)
        return names

    def _terminate(self, signum, frame) -> None:
        # Stop now: the manager requeues whatever is left in our claim directory.
        if execute.current_child is not None:
            execute.kill_tree(execute.current_child.pid)
        os._exit(0)

    def _set_busy(self, busy: bool) -> None:
        if bool(self.state[0]) != busy:
            self.state[0], self.state[1] = float(busy), time.monotonic()

    def run(self, path: str) -> str | None:
        """Run the claimed task at path; return the next claim to run (a dependent this
        task made runnable), or None."""
        key, attempt = split_name(os.path.basename(path))
        if is_bundle(key):
            self.run_bundle(path, attempt)
            return None
        t_claimed = time.time()
        try:
            header, body = self.spool.read_task(path)
        except FileNotFoundError:
            return None
        except CorruptFile as e:
            self.spool.fail_damaged(key, e, path)
            return self.spool.settle_dependents(key, self.dir, key)
        outcome = self._outcome(path, key, attempt, header, body)
        if outcome is None:
            return None
        self._finish(key, path, header, outcome, attempt, t_claimed)
        return self.spool.settle_dependents(key, self.dir, header.get("bundle") or key)

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
            self._run_bundle(path, attempt, t_claimed, *got)
        finally:
            self.current.value = b""

    def _run_bundle(self, path, attempt, t_claimed, index, recs) -> None:
        start = time.monotonic()
        done: set[str] = set()  # keys with an outcome, or given back one by one
        for i, (key, rec) in enumerate(recs):
            if self.limits.draining() or (i and len(recs) - i > 1 and self._split(
                    (time.monotonic() - start) / i * (len(recs) - i))):
                self.results.flush()
                self.spool.release_bundle(path, attempt, skip=done)
                return
            self.current.value = key.encode()
            done.add(key)
            try:
                header, body = self.spool.decode_task(rec, path, key)
            except CorruptFile as e:
                self.spool.fail_damaged(key, e)
                self.results.settle(str(index.get("id")))
                continue
            outcome = self._outcome(path, key, attempt, header, body)
            if outcome is None:
                # It went back to ready/ by itself: the rest goes too, so that no later
                # requeue of this bundle can enter it a second time.
                self.results.flush()
                self.spool.release_bundle(path, attempt, skip=done)
                return
            self.results.add(key, self._head(header, outcome, attempt, t_claimed),
                             outcome[1], str(index.get("id")))
            t_claimed = time.time()
        self.results.flush()
        fs.unlink(path)

    def _split(self, left: float) -> bool:
        """Should the rest of a bundle, `left` seconds of work by the look of it so far, go
        back to ready/ for others to share?  Only if others would otherwise have nothing to
        do: while ready/ holds other work, they take that, and a split would only cost a
        link and a claim per task (a listing of ready/ at most every SPLIT_LOOK s says)."""
        if not (left > SPLIT_ALWAYS or (left > SPLIT and any(
                not s[0] for s in self.siblings if s is not self.state))):
            return False
        now = time.monotonic()
        if now - self.ready_seen[0] > SPLIT_LOOK:
            self.ready_seen = (now, bool(self.spool.ready_names()))
        return not self.ready_seen[1]

    def _outcome(self, path, key, attempt, header, body):
        """Run one claimed task (of the claim at path); its outcome, or None if the task
        went back to ready/ (a file it needs is not visible yet, it does not fit in the
        block's time, or it failed and is retried)."""
        try:
            func = self._load(header["app"])
            args, kwargs = cloudpickle.loads(body)
            args, kwargs = substitute(args, kwargs, self._dep_value)
        except (_NotVisible, FileNotFoundError) as e:
            # On NFS a file can stay invisible to this node for a while: never conclude
            # from one miss.  Give the task back and look again, for up to GRACE seconds.
            missing = e.filename if isinstance(e, FileNotFoundError) else e.args[0]
            first = self.misses.setdefault(key, time.monotonic())
            if time.monotonic() - first < GRACE:
                time.sleep(0.5)
                self.spool.give_back(path, key, attempt)
                return None
            outcome = execute.failure(SpoolError(
                f"task {header.get('name')}-{key[:8]}: {missing} is still missing after "
                f"{GRACE:g} s; the spool is incomplete (was it cleaned or moved?)"))
        except CorruptFile as e:  # a damaged or forged app payload or dependency result
            if self.spool.is_app(e.path):
                self.spool.quarantine(e.path, str(e))  # (a result stays: it is not ours)
            outcome = execute.failure(SpoolError(
                f"task {header.get('name')}-{key[:8]}: {e.path} is damaged or forged "
                f"({e.why}); the task was not run"))
        except Exception as e:
            outcome = execute.failure(e if isinstance(e, SerializationError) else
                                      SerializationError(f"task {header.get('name')}-{key[:8]}: "
                                                         f"cannot load its arguments: {e}"))
        else:
            if not self.limits.fits(header.get("walltime")):
                # It could not finish before the block ends: leave it to another block
                # (this worker will not claim it again).
                self.too_long.add(key)
                self.spool.give_back(path, key, attempt)
                return None
            cwd = header.get("cwd")
            try:
                if cwd and cwd != os.getcwd() and os.path.isdir(cwd):
                    os.chdir(cwd)
            except OSError as e:
                outcome = execute.failure(SpoolError(
                    f"task {header['name']}-{key[:8]}: cannot enter its directory: "
                    f"{fs.explain(e)}"))
            else:
                outcome = execute.call(header["kind"], header["name"], func, args, kwargs,
                                       header)
        if outcome[0]["status"] != "ok":
            try:
                if self._retry(key, attempt, header, outcome, path):
                    return None
            except (FarmError, ValueError, TypeError) as e:  # a damaged attempts/ record...
                log.error("pool %s: retry of %s not possible: %s", self.pool, key, e)
        return outcome

    def _head(self, header, outcome, attempt, t_claimed) -> dict[str, Any]:
        head = outcome[0]
        head.update(name=header.get("name"), attempt=attempt, pool=self.pool, worker=self.index,
                    host=self.host, pid=self.pid, t_claimed=t_claimed)
        return head

    def _finish(self, key, path, header, outcome, attempt, t_claimed) -> None:
        if self.spool.publish_result(key, self._head(header, outcome, attempt, t_claimed),
                                     outcome[1]) and outcome[0]["status"] == "ok":
            self._remember(key, outcome[1])
        if path:
            fs.unlink(path)

    def _remember(self, key: str, body: bytes) -> None:
        """Keep the value of a result this worker published (a success: never changes),
        for the dependent it runs next: a chain passes values without reading them back."""
        if len(body) > 65536:
            return
        if len(self.values) >= RECENT:
            self.values.pop(next(iter(self.values)))
        self.values[key] = body

    def _retry(self, key, attempt, header, outcome, path) -> bool:
        """Requeue a failed task as attempt+1 if Config.retries allows; True if requeued."""
        retries = header.get("retries") or 0
        if not retries:
            return False
        head, body, exc = outcome
        prior = 0.0
        if attempt:
            last = self.spool.read_result(key, self.spool.attempt_path(key, attempt - 1))
            prior = float(last[0].get("fail_cost", attempt)) if last else float(attempt)
        handler = None
        if header.get("retry_handler"):
            try:
                handler = self._load(header["retry_handler"])
            except Exception as e:
                log.error("pool %s: cannot load the retry handler of %s: %s", self.pool, key, e)
                return False
        info = {"key": key, "func_name": header["name"], "try_id": attempt,
                "fail_count": attempt + 1, "fail_cost": prior}
        cost = prior + execute.retry_cost(exc, handler, info)
        if cost > retries:
            return False
        head.update(name=header["name"], attempt=attempt, pool=self.pool, fail_cost=cost)
        self.spool.record_attempt(key, attempt, head, body)
        # If the claim is gone, an observer took the task over (we were slow): the task is
        # still handled, by someone else, and we must not publish a result for it.
        self.spool.give_back(path, key, attempt + 1)
        return True

    def _load(self, app_id: str):
        func = self.apps.get(app_id)
        if func is None:
            header, body = self.spool.read_app(app_id)
            made_by = str(header.get("python", ""))
            here = "{}.{}".format(*sys.version_info[:2])
            if made_by and ".".join(made_by.split(".")[:2]) != here:
                raise SerializationError(
                    f"app {header.get('name')} was pickled by Python {made_by}; this pool "
                    f"on {self.host} runs Python {here}. Run pools with the driver's Python")
            try:
                func = serialize.loads(body)
            except Exception as e:
                raise SerializationError(
                    f"cannot load app {app_id[:12]} on {self.host}: {type(e).__name__}: {e}. "
                    "The modules an app uses must be importable where pools run") from e
            self.apps[app_id] = func
        return func

    def _dep_value(self, key: str):
        body = self.values.get(key)
        if body is not None:
            return cloudpickle.loads(body)
        res = self.spool.read_result(key)
        if res is None:
            raise _NotVisible(self.spool.result_path(key))
        return cloudpickle.loads(res[1])


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
        end = resources.block_end(end_time)
        left = None if end is None else max(0.0, end - time.time())
        if drain is None:  # a tenth of the block's remaining time, at most two minutes
            drain = 120.0 if left is None else min(120.0, left / 10)
        elif left is not None and drain > left / 2:
            # A pool that drains from its first tick would leave at once, and the driver
            # would start block after block: keep half of the block for work.
            log.warning("farm pool: --drain %gs is over half of the %ds left in this block; "
                        "using %ds", drain, left, left / 2)
            drain = left / 2
        self.limits = Limits(end, drain, cpu_affinity, accelerators)
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
        self.procs: list[Any] = [None] * self.nworkers
        self.states = [self.ctx.Array("d", [0.0, time.monotonic()]) for _ in range(self.nworkers)]
        self.current = [self.ctx.Array("c", 40) for _ in range(self.nworkers)]
        self.cold = self.ctx.RawValue("b", 0)
        self.beats = 0
        self.ops = [self.ctx.Array("q", len(OPKEYS)) for _ in range(self.nworkers)]
        self.counter = 0
        self.last_beat = time.monotonic()  # when our heartbeat was last written
        self.stopping = ""
        self.watch = PoolWatch(self.spool, me=self.id)
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
        for i in range(self.nworkers):
            self._start(i)
        self.next_beat = 0.0
        self.next_sweep = time.monotonic() + self.sweep_period
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
        cold = self._idle_for() > WARM_IDLE
        self.cold.value = cold
        if now >= self.next_beat:
            self.beats += 1
            self.next_beat = now + (min(3 * self.heartbeat_period, self.lease / 4) if cold
                                    else self.heartbeat_period)
            # An observer declares a pool dead only after its heartbeat stood still for a
            # lease; after a shorter gap between our own beats none can have, and the
            # check (a listing of pools/) is skipped.
            if now - self.last_beat > self.lease / 2 and self.spool.is_fenced(self.id):
                self.stopping = "an observer declared this pool dead (it was silent)"
                return
            self._beat("running")
            token = self.spool.shutdown_token()
            if token is not None and token != self.token:
                self.stopping = "the spool asked pools to shut down"
            elif not any(st[0] for st in self.states) and not (cold and self.beats % 2):
                self._observe(now)
        self._reap()
        if self._idle_for() > self.idle_timeout:
            self.stopping = f"idle for {self.idle_timeout} s"
        elif self.limits.left() <= self.limits.margin:
            self.stopping = "its block ends soon: unfinished tasks go back to the queue"
        elif self.limits.draining() and not any(st[0] for st in self.states):
            self.stopping = "its block ends soon: it takes no more work"

    def _observe(self, now: float) -> None:
        """An idle pool helps: it watches the RING pools after it (in id order: each pool
        is watched by its RING predecessors, whatever their number) for death, and now and
        then sweeps for lost wakeups (on NFS, a promotion can miss a result not yet
        visible); the more pools, the less often each sweeps."""
        ids, _ = self.spool.pool_ids()
        at = ids.index(self.id) if self.id in ids else -1
        ring = {ids[(at + k) % len(ids)] for k in range(1, RING + 1)} - {self.id} if ids else set()
        read_at = time.monotonic()
        self.watch.check(self.spool.read_heartbeats(sorted(ring)), read_at)
        if now >= self.next_sweep:
            self.next_sweep = now + self.sweep_period * max(1.0, len(ids) / 4)
            self._sweep()

    def _sweep(self) -> None:
        try:
            counts = self.spool.sweep()
        except (OSError, FarmError) as e:
            log.error("pool %s: sweep failed: %s", self.id, e)
            return
        if any(counts.values()):
            log.info("pool %s: sweep repaired %s", self.id, counts)

    def _on_signal(self, signum, frame) -> None:
        self.stopping = f"signal {signum}"

    def _start(self, i: int) -> None:
        w = Worker(self.spool.path, self.id, i, self.nworkers, self.states[i], self.ops[i],
                   self.limits, self.current[i], self.cold, self.states)
        self.current[i].value = b""
        self.states[i][0], self.states[i][1] = 0.0, time.monotonic()
        p = self.ctx.Process(target=w.main, name=f"farm-worker-{i}", daemon=False)
        p.start()
        self.procs[i] = p

    def _idle_for(self) -> float:
        if any(s[0] for s in self.states):
            return 0.0
        return time.monotonic() - max(s[1] for s in self.states)

    def _reap(self) -> None:
        for i, p in enumerate(self.procs):
            if p is not None and p.exitcode is not None:
                if self.stopping:
                    continue  # stopping: what it held is released in _stop_workers
                log.warning("pool %s: worker %d died (exit code %s)", self.id, i, p.exitcode)
                self.lost += self.spool.requeue_claims(
                    self.spool.worker_dir(self.id, i),
                    f"worker {i} of pool {self.id} on {self.host} died (exit code "
                    f"{p.exitcode}) while running it", self.current[i].value.decode() or None)
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
            for name in fs.listdir(wdir):
                key, attempt = split_name(name)
                path = os.path.join(wdir, name)
                if self.spool.result_status(key) is not None:
                    fs.unlink(path)
                else:
                    self.spool.release(path, attempt)
            try:
                os.rmdir(wdir)
            except OSError:
                pass

    def _beat(self, state: str) -> None:
        try:
            self._write_beat(state)
        except OSError as e:  # a full or read-only spool must not kill the pool
            log.error("pool %s: cannot write its heartbeat: %s", self.id, fs.explain(e))

    def _write_beat(self, state: str) -> None:
        self.counter += 1
        ops = dict(fs.OPS)
        for arr in self.ops:
            for k, v in zip(OPKEYS, arr[:], strict=True):
                ops[k] = ops.get(k, 0) + v
        busy = sum(1 for s in self.states if s[0])
        self.spool.write_heartbeat(self.id, {
            "pool": self.id, "host": self.host, "pid": os.getpid(), "block": self.block,
            "workers": self.nworkers, "busy": busy, "counter": self.counter, "state": state,
            "started": self.started, "idle_timeout": self.idle_timeout,
            "heartbeat": self.heartbeat_period, "lease": self.lease, "lost": self.lost,
            "reason": self.stopping or None, "ops": ops, "ops_manager": dict(fs.OPS),
            "block_end": self.limits.end,
            "draining": self.limits.draining(),
        })
        self.last_beat = time.monotonic()
