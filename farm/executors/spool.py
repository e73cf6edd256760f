"""SpoolExecutor: tasks go to a spool directory; pools started by a provider run them.

The driver side of the protocol: publish payloads and dependency manifests, watch notices/
for results, resolve futures, keep enough pools alive while work is pending.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import queue
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import cloudpickle

from farm import serialize
from farm.dataflow.futures import AppFuture, when_all_done
from farm.dataflow.task import TaskRecord
from farm.errors import (
    ConfigError,
    CorruptFile,
    DependencyError,
    FarmError,
    SerializationError,
    SpoolError,
    unpack_exception,
)
from farm.executors.base import Provider
from farm.executors.scaling import Blocks
from farm.resources import AFFINITY
from farm.spool import DEP_FAILED, OK, PoolWatch, Spool, driver_identity, fs, is_bundle

log = logging.getLogger("farm.executor")

BUNDLE = 64  # tasks in one bundle, at most


class SpoolExecutor:
    """Run apps through a spool.

    spool: the spool directory (default: ``<run_dir>/<script name>.farm``).
    provider: gets blocks and starts one pool per node in each (default: LocalProvider).
    max_workers_per_node: workers in each pool (default: one per core of the node).
    idle_timeout: a pool exits after this many seconds without work.
    sweep_period: seconds between the repair sweeps of the driver and of idle pools.
    rerun_failed: when the script is run again, tasks that failed in an earlier run (and the
        dependents that failed with them) run again; False keeps their failures.
    cores_per_worker, mem_per_worker (GiB), available_accelerators (a count, or a list of
        ids; each worker gets one in CUDA_VISIBLE_DEVICES...), cpu_affinity (none, block,
        alternating, block-reverse): how a pool shares its node among workers; a pool runs
        as many workers as its cores, memory and accelerators allow, at most
        max_workers_per_node.
    drain_period: a pool takes no new task in the last seconds of its block (default: a
        tenth of the block's time left when the pool starts, at most 120 s).
    Blocks: init_blocks when the first task is queued, then more while the ready and running
    tasks (times the provider's parallelism) exceed the worker slots, up to max_blocks; at
    least max(min_blocks, 1) while tasks are pending.  Pools leave when idle.
    """

    def __init__(self, label: str = "spool", spool: str | os.PathLike[str] | None = None,
                 provider: Provider | None = None, max_workers_per_node: int | None = None,
                 idle_timeout: float = 60.0, heartbeat_period: float = 2.0,
                 python: str | None = None, rerun_failed: bool = True,
                 sweep_period: float = 30.0, cores_per_worker: float = 1.0,
                 mem_per_worker: float | None = None,
                 available_accelerators: int | Sequence[str] = (),
                 cpu_affinity: str = "none", drain_period: float | None = None):
        if cpu_affinity not in AFFINITY:
            raise ConfigError(f"SpoolExecutor: cpu_affinity {cpu_affinity!r}: use one of "
                              f"{', '.join(AFFINITY)}")
        if cores_per_worker <= 0 or (mem_per_worker is not None and mem_per_worker <= 0):
            raise ConfigError("SpoolExecutor: cores_per_worker and mem_per_worker must be "
                              "positive")
        if isinstance(available_accelerators, int):
            available_accelerators = [str(i) for i in range(available_accelerators)]
        self.accelerators = [str(a) for a in available_accelerators]
        if any("," in a for a in self.accelerators):
            raise ConfigError("SpoolExecutor: available_accelerators: one id per item, "
                              "without commas")
        self.cores_per_worker, self.mem_per_worker = cores_per_worker, mem_per_worker
        self.cpu_affinity, self.drain_period = cpu_affinity, drain_period
        self.label = label
        self.spool_path = os.fspath(spool) if spool is not None else None
        # None: a LocalProvider, which Config sets (executors do not import providers).
        self.provider: Provider | None = provider
        self.workers = max_workers_per_node
        self.idle_timeout = idle_timeout
        self.heartbeat_period = heartbeat_period
        self.python = python or sys.executable
        self.rerun_failed = rerun_failed
        self.sweep_period = sweep_period
        self.spool: Spool | None = None
        self.pending: dict[str, list[AppFuture]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.apps: dict[int, str] = {}
        self.stats = {"submitted": 0, "attached": 0, "done_before": 0, "rerun": 0}
        self.bundle_of: dict[str, str] = {}  # queued key -> the bundle it was written in
        self.slots = os.cpu_count() or 1  # worker slots of live pools (bundle sizing)
        self.reran: set[str] = set()  # failed in an earlier run, requeued by this one

    def __repr__(self) -> str:
        return f"SpoolExecutor(label={self.label!r}, spool={self.spool_path!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, dfk) -> None:
        path = self.spool_path or default_spool_path(dfk.config.run_dir)
        fresh = not Spool.exists(path)
        self.spool = Spool.create(path)
        self.spool_path = self.spool.path
        self.fresh = fresh
        self.me = driver_identity()
        self.spool.acquire_driver(self.me)
        # Keys that had a result when this driver started: one listing per shard, fresh (a
        # lookup by name could be answered from a stale cache on NFS).  A key not in it
        # that is in the spool is looked at again, properly, when its link fails.
        self.had_result: set[str] = set()
        if not fresh:
            self.spool.ensure_shards()
            self.had_result = self.spool.result_keys()
            if n := self.spool.recover_bundles():
                print(f"farm: entered {n} tasks a killed driver had left half submitted",
                      file=sys.stderr)
        self.beats = 0
        self.fenced = False
        self.spool.request_shutdown(False)  # a `farm cancel` from before ends with a new run
        self._announce()
        self.poolwatch = PoolWatch(self.spool)
        self.blocks_started = False
        self.scaler = Blocks(self.spool, self.provider, self.python, {
            "workers": self.workers, "idle-timeout": self.idle_timeout,
            "heartbeat": self.heartbeat_period, "sweep": self.sweep_period,
            "cores-per-worker": self.cores_per_worker, "mem-per-worker": self.mem_per_worker,
            "accelerators": ",".join(self.accelerators),
            "cpu-affinity": self.cpu_affinity, "drain": self.drain_period,
        }, self.workers, self.cores_per_worker, len(self.accelerators))
        self.provider.adopt(self.spool)  # blocks of earlier drivers count too
        # Three threads, so that none delays another: results (fast polling), the driver's
        # heartbeat, and pools + blocks (squeue may take seconds on a busy cluster).
        self.threads = [threading.Thread(target=target, name=name, daemon=True)
                        for name, target in (("farm-watch", self._watch),
                                             ("farm-beat", self._beat),
                                             ("farm-scale", self._scale_loop))]
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.writer = threading.Thread(target=self._write_loop, name="farm-write",
                                       daemon=True)
        for t in [*self.threads, self.writer]:
            t.start()

    @property
    def blocks(self) -> list[str]:
        """The blocks this driver started."""
        return self.scaler.started

    def _ensure_blocks(self) -> None:
        """Start the initial blocks when the first task is queued (not at load: a resumed
        run whose work is all done needs no pool), counting pools already live."""
        with self.lock:
            if self.blocks_started:
                return
            self.blocks_started = True
        live = len(self.spool.live_pools())
        self.scaler.add(max(0, min(self.provider.init_blocks, self.provider.max_blocks) - live))
        self._give_up_if_broken()

    def _announce(self) -> None:
        rel = os.path.relpath(self.spool.path)
        shown = rel if not rel.startswith("..") else self.spool.path
        if self.fresh:
            print(f"farm: new spool {shown}", file=sys.stderr)
            return
        c = self.spool.counts(results=len(self.had_result))
        queued = c["waiting"] + c["ready"] + c["running"]
        print(f"farm: resuming spool {shown}: {c['results']} of {c['tasks']} tasks already "
              f"done, {queued} queued or running", file=sys.stderr)

    def _fence(self) -> None:
        """Another driver took the spool over while we were silent: stop, and fail what we
        were waiting for (the new driver owns those tasks now)."""
        self.fenced = True
        self.stop.set()
        err = SpoolError(f"another driver took over spool {self.spool.path} while this one "
                         "was not heartbeating; this driver has stopped")
        print(f"farm: {err}", file=sys.stderr)
        with self.lock:
            keys = list(self.pending)
        for key in keys:
            self._fail(key, err)

    def shutdown(self) -> None:
        self._flush()
        self.stop.set()
        for t in self.threads:
            t.join(5)
        if self.fenced:
            return
        with self.lock:
            left = sum(1 for futs in self.pending.values() for f in futs if not f.done())
        if left:
            print(f"farm: {left} tasks are still queued or running in {self.spool.path}; "
                  "its pools go on with them. Run the script again to collect the results.",
                  file=sys.stderr)
        try:
            if not left:
                # Nothing left to do: every pool on this spool may go, also those an earlier
                # driver started (the next driver removes the request when it starts).
                self.spool.request_shutdown()
                self.provider.cancel(self.spool, self.provider.running())
            self.spool.release_driver(self.me)
        except (OSError, FarmError) as e:
            why = fs.explain(e) if isinstance(e, OSError) else str(e)
            print(f"farm: could not tidy up the spool at exit: {why}", file=sys.stderr)

    # -- submission -------------------------------------------------------------------------

    def native(self, fut) -> bool:
        return isinstance(fut, AppFuture) and fut.task.executor is self

    def log_path(self, key: str, name: str, stream: str) -> str:
        return self.spool.out_path(key, name, stream)

    def submit(self, task: TaskRecord) -> None:
        """Snapshot the call (pickle its arguments now, as they are) and queue it for the
        writer thread, so an app call costs no filesystem operation.  A call still queued
        when the driver dies was never in the spool: the re-run makes it again."""
        if self.fenced:
            raise SpoolError(f"another driver took over spool {self.spool.path}")
        if self.scaler.broken:
            task.future.set_exception(self.scaler.broken)
            return
        try:
            body = _pickle_args(task)
            header = self._header(task)  # (writes the app's file, at its first call)
        except SerializationError as e:
            task.future.set_exception(e)
            return
        except OSError as e:
            task.future.set_exception(_not_submitted(task, e))
            return
        self.outbox.put((task, header, body))

    def _write_loop(self) -> None:
        """The writer thread: puts queued calls into the spool, in call order (a
        dependency is always written before its dependents).  What has queued up is
        written together: ready tasks in bundles of K (Spool.put_bundle), K sized so that
        every worker slot still gets a couple of bundles."""
        while True:
            batch = [self.outbox.get()]
            while len(batch) < 4096:
                try:
                    batch.append(self.outbox.get_nowait())
                except queue.Empty:
                    break
            k = max(1, min(BUNDLE, len(batch) // (2 * self.slots)))
            group: list[tuple[TaskRecord, dict[str, Any], bytes]] = []
            for item in batch:
                if item is None or isinstance(item, threading.Event) or k == 1 \
                        or not self._bundle_into(group, *item):
                    self._write_group(group)
                    if item is None:
                        return
                    if isinstance(item, threading.Event):  # flush(): all before is written
                        item.set()
                    else:
                        self._write_one(item)
                elif len(group) >= k:
                    self._write_group(group)
            self._write_group(group)

    def _write_one(self, item: tuple[TaskRecord, dict[str, Any], bytes]) -> None:
        task = item[0]
        try:
            if self.fenced:
                raise SpoolError(f"another driver took over spool {self.spool.path}")
            self._write(*item)
        except Exception as e:
            log.exception("farm: cannot submit task %s", task.label)
            self._fail(task.key, e)
            if not task.future.done():
                task.future.set_exception(e)

    def _bundle_into(self, group: list, task: TaskRecord, header: dict[str, Any],
                     body: bytes) -> bool:
        """Add a call to the bundle being formed, if it can go in one: a new task (not in
        the spool yet, not a repeat of one in this bundle) whose dependencies all have
        succeeded, with small arguments.  False: write it on its own."""
        if self.fenced or len(body) > 65536 or any(t.key == task.key for t, _, _ in group):
            return False
        for f in task.waits_on:
            if not f.done() or f.exception() is not None:
                return False
        try:
            # (a hint for the task file: a link of the bundle decides, and a key that
            # existed is attached as any other)
            if not self.fresh and (task.key in self.had_result
                                   or fs.peek(self.spool.task_path(task.key), 0) is not None):
                return False
        except OSError:
            return False  # (written on its own, which reports the error)
        with self.lock:
            self.pending.setdefault(task.key, []).append(task.future)
        group.append((task, header, body))
        return True

    def _write_group(self, group: list[tuple[TaskRecord, dict[str, Any], bytes]]) -> None:
        """Write the bundle formed so far (and empty the list)."""
        if not group:
            return
        items = [(t.key, h, b) for t, h, b in group]
        tasks = {t.key: t for t, _, _ in group}
        group.clear()
        try:
            if len(items) == 1:
                existed = [] if self.spool.put_task(*items[0], "ready") else [items[0][0]]
            else:
                existed = self.spool.put_bundle(items)
        except Exception as e:
            log.exception("farm: cannot submit %d tasks", len(items))
            why = fs.explain(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
            for key, _, _ in items:
                self._fail(key, SpoolError(f"task {key[:8]} was not submitted: {why}. "
                                           "Nothing was lost: fix this and run the script "
                                           "again"))
            return
        self.stats["submitted"] += len(items) - len(existed)
        for key, header, _ in items:
            if header.get("bundle") and key not in existed:
                self.bundle_of[key] = header["bundle"]
        self._ensure_blocks()
        for key in existed:  # (in the spool already, though not visible here at first)
            self._attach(tasks[key], {}, True)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every app call made so far is in the spool; False on timeout."""
        done = threading.Event()
        self.outbox.put(done)
        return done.wait(timeout)

    def _flush(self) -> None:
        """Write what is queued, then stop the writer (at shutdown)."""
        left = self.outbox.qsize()
        if left > 1000:
            print(f"farm: writing the last {left} app calls to the spool", file=sys.stderr)
        self.outbox.put(None)
        self.writer.join()

    def _write(self, task: TaskRecord, header: dict[str, Any], body: bytes) -> None:
        key = task.key
        rerun = False
        status = None
        if key in self.had_result:
            status = self.spool.result_status(key)
            if status is not None and status != OK and self.rerun_failed \
                    and key not in self.reran:
                # Before the future is registered: a notice of the old failure that the
                # watcher has not read yet must not resolve it (rerun drops that notice).
                reran = self.spool.rerun(key)
                self.reran.update(reran)
                self.reran.add(key)
                self.stats["rerun"] += len(reran)
                rerun = key in reran  # (not if its payload was gone: submitted afresh below)
        with self.lock:
            self.pending.setdefault(key, []).append(task.future)
        if rerun:
            self._ensure_blocks()
            if task.deps:
                self._backstop(task)  # (rerun's own promotion reads results: a hint)
            return
        if status is not None and self._resolve(key):
            self.stats["done_before"] += 1
            return
        done = {f.key: f.done() and f.exception() is None for f in task.waits_on}
        ready = all(done.get(d, False) for d in task.deps)
        try:
            new = self.spool.put_task(key, header, body, "ready" if ready else "waiting")
        except OSError as e:
            self._fail(key, _not_submitted(task, e))
            return
        if new:
            self.stats["submitted"] += 1
            self._ensure_blocks()
            if not ready:
                self._index_deps(task, done)
        else:
            self._attach(task, done, ready)

    def _attach(self, task: TaskRecord, done: dict[str, bool], ready: bool) -> None:
        """The task is in the spool already (resume, or a cached duplicate): attach to it,
        don't submit it again.  Its result and its state are looked up for sure here (a
        first look may have been answered from a stale cache)."""
        self.stats["attached"] += 1
        if self._resolve_if_done(task.key):
            return
        if self.spool.is_orphan(task.key):
            self._enqueue(task, done, ready)
        else:
            self._ensure_blocks()  # queued by an earlier driver: make sure pools run it
            if task.deps:
                self._backstop(task)  # (it may wait for dependencies done before)

    def _header(self, task: TaskRecord) -> dict[str, Any]:
        # One dict display, in the order the header always had (key ... created,
        # retry_handler, then the opts: cwd, walltime, outputs, inputs, stdout, stderr).
        # task.deps and opts values may be tuples: JSON writes them as the lists they are.
        app = self._app_id(task.func)
        if task.retry_handler is None:
            return {"key": task.key, "name": task.name, "kind": task.kind, "app": app,
                    "deps": task.deps, "retries": task.retries, "created": time.time(),
                    **task.opts}
        return {"key": task.key, "name": task.name, "kind": task.kind, "app": app,
                "deps": task.deps, "retries": task.retries, "created": time.time(),
                "retry_handler": self._app_id(task.retry_handler), **task.opts}

    def _app_id(self, func) -> str:
        """Store each app's pickled function once per spool (named by its hash)."""
        app_id = self.apps.get(id(func))
        if app_id is None:
            try:
                blob = serialize.dumps(func)
            except Exception as e:
                raise SerializationError(f"app {getattr(func, '__name__', func)} cannot be "
                                         f"pickled: {type(e).__name__}: {e}") from e
            app_id = hashlib.sha256(blob).hexdigest()[:32]
            self.spool.put_app(app_id, {"name": getattr(func, "__name__", "?"),
                                        "python": sys.version.split()[0]}, blob)
            self.apps[id(func)] = app_id
        return app_id

    def _enqueue(self, task: TaskRecord, done: dict[str, bool], ready: bool) -> None:
        """Enter an existing payload in its state (an orphan: see Spool.is_orphan)."""
        self._ensure_blocks()
        self.spool.enqueue(task.key, ready=ready)
        if not ready:
            self._index_deps(task, done)

    def _index_deps(self, task: TaskRecord, done: dict[str, bool]) -> None:
        # Protocol order (docs/spool-format.md): waiting/ entry, then the dependents index,
        # then the backstop: a dep that finished before its edge existed is caught there.
        for d in task.deps:
            if not done.get(d, False):
                entry = self.bundle_of.get(d) or (d if self.fresh else self.spool.entry_of(d))
                self.spool.add_dependent(d, task.key, entry)
        self._backstop(task)

    def _backstop(self, task: TaskRecord) -> None:
        """Once this driver has seen the outcome of each of task's dependencies, move the
        task out of waiting/ itself (Spool.advance: one rename, which fails harmlessly if
        a pool did it first, or a dependency failure).

        This is what makes promotion certain: a completer that lists the dependents of a
        task it finished misses an edge made just after its listing, or one its node
        cannot see yet (NFS), and a completer may not see another dependency's result
        yet; this driver, which wrote every edge, sees every outcome.  Costs no read."""
        deps = [f for f in task.waits_on if self.native(f) and f.key in task.deps]

        def promote() -> None:
            failed = [f.key for f in deps if f.exception() is not None]
            try:
                self.spool.advance(task.key, failed, task.name)
            except Exception as e:  # the sweeps promote it later
                log.error("farm: cannot promote %s: %s", task.label, e)

        when_all_done(deps, promote)

    # -- results ----------------------------------------------------------------------------

    def _watch(self) -> None:
        delay = 0.001
        now = time.monotonic()
        # Each periodic step runs on its own schedule, and a step that fails waits for its
        # next turn like one that succeeded (never a retry storm, never a skipped neighbour).
        # (_check_pending costs one open per pending key: rare enough for big backlogs)
        steps = [[60.0, now, self._check_pending],
                 [self.sweep_period, now, self.spool.sweep]]
        while not self.stop.is_set():
            got = self._guarded(self._drain_notices) or 0
            now = time.monotonic()
            for step in steps:
                if now - step[1] > step[0]:
                    step[1] = now
                    self._guarded(step[2])
            delay = fs.min_poll(0.001) if got else min(max(delay * 1.5, fs.min_poll(0.001)), 0.05)
            self.stop.wait(delay)

    def _guarded(self, step):
        try:
            return step()
        except Exception:
            log.exception("farm: error in the result watcher (going on)")
            return None

    def _scale_loop(self) -> None:
        while not self.stop.wait(2.0):
            self._guarded(self._watch_pools)

    def _watch_pools(self) -> None:
        read_at = time.monotonic()
        pools = self.spool.pools()  # one read of the heartbeats for liveness and scaling
        for pool, lost in self.poolwatch.check(pools, read_at).items():
            print(f"farm: pool {pool} went silent; declared it dead, {lost} running "
                  "task(s) requeued or failed", file=sys.stderr)
        live = self.spool.live_pools(pools)
        if live:
            self.slots = max(1, sum(int(p.get("workers") or 1) for p in live))
        with self.lock:
            pending = bool(self.pending)
        if pending and self.blocks_started:
            self.scaler.scale(pending, pools)
            self._give_up_if_broken()

    def _give_up_if_broken(self) -> None:
        """Blocks keep failing (see scaling.py): fail what we wait for, with the reason."""
        if self.scaler.broken:
            with self.lock:
                keys = list(self.pending)
            for key in keys:
                self._fail(key, self.scaler.broken)

    def _beat(self) -> None:
        """The driver's heartbeat, in a thread of its own: a long sweep or a slow
        filesystem in the watcher must not make a live driver look dead."""
        while not self.stop.wait(2.0):
            self.beats += 1
            try:
                ours = self.spool.driver_beat(self.me, self.beats)
            except Exception:
                log.exception("farm: cannot write the driver heartbeat (going on)")
                continue
            if not ours:
                self._fence()
                return

    def _drain_notices(self) -> int:
        names = self.spool.notices()
        for name in names:
            if is_bundle(name):
                self._drain_bundle(name)
                continue
            with self.lock:
                known = name in self.pending
            # A notice whose result we could not read yet (not visible here) stays for the
            # next look; one of a key nobody waits for is dropped (submit checks results).
            if not known or self._resolve(name, self.spool.notice_path(name)):
                self.spool.drop_notice(name)
        return len(names)

    def _drain_bundle(self, name: str) -> None:
        """A notice of several results (one file): resolve the futures of each."""
        path = self.spool.notice_path(name)
        try:
            recs = self.spool.read_notice(name)
        except CorruptFile as e:  # the results themselves are found by _check_pending
            self.spool.quarantine(path, str(e))
            return
        for key, rec in recs or ():
            with self.lock:
                known = key in self.pending
            if known:
                self._resolve(key, path, rec)
        if recs is not None:
            self.spool.drop_notice(name)

    def _check_pending(self) -> None:
        """Find results whose notice was lost (a pool died between the two steps).  A
        result not visible here yet is found at the next check (a hint is enough)."""
        with self.lock:
            keys = list(self.pending)
        for key in keys:
            if self.spool.peek_status(key) is not None:
                self._resolve(key)

    def _resolve_if_done(self, key: str) -> bool:
        return self.spool.result_status(key) is not None and self._resolve(key)

    def _resolve(self, key: str, path: str | None = None, rec: bytes | None = None) -> bool:
        """Resolve key's futures from its result (rec: its record, read already from the
        file at path); False if the result cannot be seen."""
        try:
            if rec is not None:
                res = self.spool.decode_result(rec, path or "", key)
            else:
                res = self.spool.read_result(key, path)
            if res is None and path is not None:
                res = self.spool.read_result(key)
            if res is None:
                return False
            header, body = res
            status = header.get("status")
            if status == OK:
                value, exc = cloudpickle.loads(body), None
            elif status == DEP_FAILED:
                labels = [self._label(d) for d in header.get("failed_deps", [])]
                value, exc = None, DependencyError(labels, self._label(key))
            else:
                value, exc = None, unpack_exception(body)
        except CorruptFile as e:
            value, exc = None, SpoolError(f"task {self._label(key)}: its result {e.path} is "
                                          f"damaged ({e.why}); delete the file and re-run the "
                                          "script to run the task again")
        except Exception as e:
            value, exc = None, SerializationError(
                f"task {self._label(key)}: cannot unpickle its result "
                f"({type(e).__name__}: {e})")
        with self.lock:
            futs = self.pending.pop(key, [])
            self.bundle_of.pop(key, None)
        for f in futs:
            if f.done():
                continue
            if exc is None:
                f.set_result(value)
            else:
                f.set_exception(exc)
        return True

    def _fail(self, key: str, exc: BaseException) -> None:
        with self.lock:
            futs = self.pending.pop(key, [])
        for f in futs:
            if not f.done():
                f.set_exception(exc)

    def _label(self, key: str) -> str:
        with self.lock:
            futs = self.pending.get(key)
        return futs[0].task.label if futs else self.spool.label(key)


def _not_submitted(task: TaskRecord, e: OSError) -> SpoolError:
    return SpoolError(f"task {task.label} was not submitted: {fs.explain(e)}. Nothing was "
                      "lost: fix this and run the script again")


_NO_ARGS = pickle.dumps(((), {}), protocol=5)  # the body of every call without arguments


def _pickle_args(task: TaskRecord) -> bytes:
    if not task.args and not task.kwargs:
        return _NO_ARGS
    try:
        # Plain pickle is several times faster; it refers to classes and functions by
        # module and name, which is wrong only for __main__ (the pool's __main__ is not
        # the script's): those go through cloudpickle, which pickles them by value.
        blob = pickle.dumps((task.args, task.kwargs), protocol=5)
        if b"__main__" not in blob:
            return blob
    except Exception:
        pass
    try:
        return serialize.dumps((task.args, task.kwargs))
    except Exception as e:
        culprit = "an argument"
        named = [(f"argument {i}", a) for i, a in enumerate(task.args)]
        named += [(f"argument {k!r}", v) for k, v in task.kwargs.items()]
        for what, v in named:
            try:
                cloudpickle.dumps(v)
            except Exception:
                culprit = f"{what} ({type(v).__name__})"
                break
        raise SerializationError(
            f"task {task.label}: {culprit} cannot be pickled ({type(e).__name__}: {e}); "
            "pass plain data, or a File and let the app open it") from e


def default_spool_path(run_dir: str) -> str:
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    stem = os.path.splitext(os.path.basename(script))[0] or "interactive"
    return os.path.join(run_dir, f"{stem}.farm")
