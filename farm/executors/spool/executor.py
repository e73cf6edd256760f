"""SpoolExecutor: tasks go to a spool directory; pools started by a provider run them.

The driver side of the protocol (docs/spool-format.md).  This module has the options, the
lifecycle (start, shutdown) and submit, which runs in the caller's thread: it snapshots an
app call and hands it to the writer thread.  The rest runs in four threads that start()
creates: farm-write (writer.py: tasks into the spool), farm-watch (collector.py: results
out of it, into futures), farm-beat and farm-scale (upkeep.py: the driver's heartbeat, the
pools, the blocks).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from farm import requests, resources
from farm.dataflow.futures import AppFuture
from farm.dataflow.task import TaskRecord
from farm.errors import (
    ConfigError,
    FarmError,
    SerializationError,
    SpoolError,
    checked_options,
)
from farm.executors.base import Provider
from farm.executors.scaling import Blocks
from farm.executors.spool.calls import Apps, not_submitted, pickle_args
from farm.executors.spool.collector import Collector
from farm.executors.spool.pending import Pending
from farm.executors.spool.upkeep import Upkeep
from farm.executors.spool.writer import Flush, Stop, Submit, Writer
from farm.resources import AFFINITY
from farm.spool import OK, Spool, driver_identity, fs


@dataclass
class Running:
    """What start() makes: the spool this driver holds, and the parts working on it."""
    spool: Spool
    provider: Provider  # (SpoolExecutor.provider, known to be set)
    me: dict[str, Any]  # this driver's identity (the driver lock's content)
    apps: Apps
    writer: Writer
    collector: Collector
    upkeep: Upkeep
    stop: threading.Event  # set at shutdown, or when fenced: the loops end
    writer_thread: threading.Thread  # ended by a Stop on the outbox
    threads: list[threading.Thread]  # the others, ended by stop


@checked_options
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
        self.pending = Pending()
        # What became of the calls (counted by the writer thread).
        self.stats = {"submitted": 0, "attached": 0, "done_before": 0, "rerun": 0}
        self.running: Running | None = None  # from start() on
        self._shape: dict[str, Any] | None = None  # (node_shape, worked out once)

    def __repr__(self) -> str:
        return f"SpoolExecutor(label={self.label!r}, spool={self.spool_path!r})"

    @property
    def spool(self) -> Spool:
        """The spool this driver holds (from start() on)."""
        return self._running().spool

    @property
    def blocks(self) -> list[str]:
        """The blocks this driver started."""
        return self._running().upkeep.scaler.started

    def _running(self) -> Running:
        if self.running is None:
            raise ConfigError(f"{self!r} is not started (farm.load starts it)")
        return self.running

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, dfk: Any) -> None:
        if self.provider is None:
            raise ConfigError(f"SpoolExecutor {self.label!r} has no provider: pass one "
                              "(provider=LocalProvider(), SlurmProvider(...)), or put the "
                              "executor in a farm.Config, which gives it a LocalProvider")
        path = self.spool_path or default_spool_path(dfk.config.run_dir)
        fresh = not Spool.exists(path)
        spool = Spool.create(path)
        self.spool_path = spool.path
        me = driver_identity()
        spool.acquire_driver(me)
        # Keys that had a result when this driver started, and keys queued without one:
        # fresh listings (a lookup by name could be answered from a stale cache on NFS).
        # A key in neither that is in the spool is looked at again when its link fails.
        had_result: set[str] = set()
        queued: set[str] = set()
        if not fresh:
            spool.ensure_shards()
            if n := spool.recover_bundles():
                print(f"farm: entered {n} tasks a killed driver had left half submitted",
                      file=sys.stderr)
            had_result, queued = spool.known_keys()
        spool.request_shutdown(False)  # a `farm cancel` from before ends with a new run
        _announce(spool, fresh, had_result)
        scaler = Blocks(spool, self.provider, self.python, self.pool_options(),
                        self.workers, self.cores_per_worker, len(self.accelerators))
        self.provider.adopt(spool)  # blocks of earlier drivers count too
        stop = threading.Event()
        upkeep = Upkeep(spool, self.provider, scaler, me, self.pending, stop)
        collector = Collector(spool, self.pending, stop, self.sweep_period)
        writer = Writer(spool, self.pending, collector, upkeep, self.native, fresh=fresh,
                        had_result=had_result, rerun_failed=self.rerun_failed,
                        stats=self.stats, queued=queued)
        # Three threads besides the writer, so that none delays another: results (fast
        # polling), the driver's heartbeat, and pools + blocks (squeue may take seconds on
        # a busy cluster).
        threads = [threading.Thread(target=target, name=name, daemon=True)
                   for name, target in (("farm-watch", collector.watch),
                                        ("farm-beat", upkeep.beat),
                                        ("farm-scale", upkeep.scale_loop))]
        writer_thread = threading.Thread(target=writer.run, name="farm-write", daemon=True)
        apps = Apps(spool, dfk.config.crash_retries)
        self.running = Running(spool, self.provider, me, apps, writer, collector, upkeep,
                               stop, writer_thread, threads)
        for t in [*threads, writer_thread]:
            t.start()

    def pool_options(self) -> dict[str, Any]:
        """The options of `farm pool` that this executor's pools get (farm pool --help)."""
        return {
            "workers": self.workers, "idle-timeout": self.idle_timeout,
            "heartbeat": self.heartbeat_period, "sweep": self.sweep_period,
            "cores-per-worker": self.cores_per_worker, "mem-per-worker": self.mem_per_worker,
            "accelerators": ",".join(self.accelerators),
            "cpu-affinity": self.cpu_affinity, "drain": self.drain_period,
        }

    def shutdown(self) -> None:
        run = self.running
        if run is None:
            return  # never started: nothing to stop
        # Write what is queued, then stop the writer.
        left = run.writer.outbox.qsize()
        if left > 1000:
            print(f"farm: writing the last {left} app calls to the spool", file=sys.stderr)
        run.writer.outbox.put(Stop())
        run.writer_thread.join()
        if not run.upkeep.fenced:
            run.upkeep.start_blocks()  # (tasks written: their pools go on without us)
        run.upkeep.halt()
        for t in run.threads:
            t.join(5)
        if run.upkeep.fenced:
            return
        left = self.pending.left()
        if left:
            print(f"farm: {left} tasks are still queued or running in {run.spool.path}; "
                  "its pools go on with them. Run the script again to collect the results.",
                  file=sys.stderr)
        try:
            if not left:
                # Nothing left to do: every pool on this spool may go, also those an earlier
                # driver started (the next driver removes the request when it starts).
                run.spool.request_shutdown()
                run.provider.cancel(run.spool, run.provider.running())
            run.spool.release_driver(run.me)
        except (OSError, FarmError) as e:
            why = fs.explain(e) if isinstance(e, OSError) else str(e)
            print(f"farm: could not tidy up the spool at exit: {why}", file=sys.stderr)

    # -- submission ---------------------------------------------------------------------------

    def native(self, fut: Future[Any]) -> bool:
        return isinstance(fut, AppFuture) and fut.task.executor is self

    def stage_dir(self) -> str:
        """Where the driver downloads input URLs (staged/ in the spool: the pools see it,
        and a re-run finds what was downloaded)."""
        return os.path.join(self._running().spool.path, "staged")

    def log_path(self, key: str, name: str, stream: str) -> str:
        return self._running().spool.out_path(key, name, stream)

    def submit(self, task: TaskRecord) -> None:
        """Snapshot the call (pickle its arguments now, as they are) and queue it for the
        writer thread, so an app call costs no filesystem operation.  A call still queued
        when the driver dies was never in the spool: the re-run makes it again."""
        run = self._running()
        if run.upkeep.fenced:
            raise SpoolError(f"another driver took over spool {run.spool.path}")
        if run.upkeep.broken:
            task.future.set_exception(run.upkeep.broken)
            return
        req = task.opts.get("resources")
        if (why := self._never_runs(req, task.opts.get("walltime"))) is not None:
            task.future.set_exception(ConfigError(f"task {task.label}: {why}"))
            return
        if task.opts.get("sizer") and task.retries:
            # A request that grows with the attempt: the first attempt that no block could
            # hold is never made (its pools would hand it back for ever).
            for attempt in range(1, int(task.retries) + 1):
                try:
                    later = requests.at(task.opts["sizer"](attempt), attempt)
                except ConfigError:
                    later = None
                if later is None or self._never_runs(later, task.opts.get("walltime")):
                    task.opts = {**task.opts, "last_attempt": attempt - 1}
                    break
        try:
            body = pickle_args(task)
            header = run.apps.header(task)  # (writes the app's file, at its first call)
        except SerializationError as e:
            task.future.set_exception(e)
            return
        except OSError as e:
            task.future.set_exception(not_submitted(task, e))
            return
        # The hand-off: from here on the call is the writer thread's (writer.py), which
        # puts it into the spool and registers its future.
        run.writer.outbox.put(Submit(task, header, body))

    def _never_runs(self, req: dict[str, Any] | None, walltime: float | None) -> str | None:
        """Why no block can ever run a task of this request and walltime, if none can."""
        what = "walltime"
        if req:
            if (req.get("running_time") or 0) > (walltime or 0):
                walltime, what = req["running_time"], "running_time"
            if (too_big := self._never_holds(req)) is not None:
                return too_big
        return self._never_fits(float(walltime), what) if walltime else None

    def _never_holds(self, req: dict[str, Any]) -> str | None:
        """Why no pool of this executor can ever hold a task of this request (cores,
        memory, GPUs), if none can and their nodes are known: this machine's for local
        pools, the provider's cores_per_node and mem_per_node (GB) for Slurm's."""
        node = self.node_shape()
        if node is not None:
            return requests.too_big(req, node)
        # (the nodes' size unknown: a task across nodes is still checked against the block)
        return requests.too_big(req, requests.shape(1, 1, 1, 0, self._block_pools())) \
            if int(req.get("num_nodes") or 1) > 1 else None

    def _block_pools(self) -> int:
        """The pools a block of this executor runs: one per node with a launcher such as
        SrunLauncher, else one (local pools: one)."""
        provider = self.provider
        if getattr(provider, "label", None) == "local":
            return 1
        nodes = int(getattr(provider, "nodes_per_block", 1) or 1)
        pools = getattr(getattr(provider, "launcher", None), "pools", None)
        return int(pools(nodes)) if pools is not None else nodes

    def node_shape(self) -> dict[str, Any] | None:
        """The shape of this executor's pools' nodes, as farm.requests counts it (None:
        not known before a pool starts)."""
        if self._shape is not None:
            return self._shape
        provider = self.provider
        if getattr(provider, "label", None) == "local":
            cores, memory = float(resources.node_cores()), resources.node_memory() / 2**20
        elif per_node := getattr(provider, "cores_per_node", None):
            cores = float(per_node)
            mem_gb = getattr(provider, "mem_per_node", None)
            memory = float(mem_gb) * 1024 if mem_gb else float("inf")
        else:
            return None
        # (counted as a pool counts its workers, from the nodes' cores and memory)
        slots = resources.worker_count(self.workers, self.cores_per_worker,
                                       self.mem_per_worker, self.accelerators, cores,
                                       memory * 2**20)
        self._shape = requests.shape(slots, cores, min(memory, 2**62),
                                     len(self.accelerators), self._block_pools())
        return self._shape

    def _never_fits(self, walltime: float, what: str = "walltime") -> str | None:
        """Why no block can ever run a task of this walltime, if none can: a pool claims a
        task only if it can finish before the pool's block ends, less the margin that hands
        claims back (at most 15 s), so a task longer than that would wait for ever."""
        length = getattr(self.provider, "block_seconds", None)
        if length is None:
            return None  # (local pools: no end)
        block = float(length())
        drain = self.drain_period if self.drain_period is not None else min(120.0, block / 10)
        room = block - min(15.0, drain)
        if walltime <= room:
            return None
        return (f"its {what} ({walltime:g} s) is longer than any block can give it "
                f"({room:g} s: the provider's walltime of {block:g} s, less {block - room:g} s "
                "kept to hand tasks back); raise the provider's walltime or lower the task's")

    def progress(self) -> dict[str, Any]:
        """For the driver's progress line: busy workers of the live pools (as their last
        heartbeats said: read anyway every 2 s), results reused from the spool, failures
        re-run, and where the spool is."""
        run = self.running
        return {"running": run.upkeep.busy if run else 0, "reused": self.stats["done_before"],
                "rerun": self.stats["rerun"], "spool": run.spool.path if run else None}

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every app call made so far is in the spool; False on timeout."""
        flush = Flush()
        self._running().writer.outbox.put(flush)
        return flush.done.wait(timeout)


def _announce(spool: Spool, fresh: bool, had_result: set[str]) -> None:
    """One line on stderr: the spool's absolute path, and on resume what it holds, counted
    honestly: failures are not "done" (they run again when the script asks for them)."""
    if fresh:
        print(f"farm: new spool {spool.path}", file=sys.stderr)
        return
    c = spool.counts(results=len(had_result))
    queued = c["waiting"] + c["ready"] + c["running"]
    failed = _failures(spool, had_result)
    done = (f"{c['results'] - failed} of {c['tasks']} tasks already done"
            if failed is not None else f"{c['results']} of {c['tasks']} tasks finished")
    print(f"farm: resuming spool {spool.path}: {done}"
          + (f", {failed} failed (they run again)" if failed else "")
          + f", {queued} queued or running", file=sys.stderr)


COUNT_FAILURES = 20_000  # results read at resume to tell failures from successes, at most


def _failures(spool: Spool, keys: set[str]) -> int | None:
    """How many of these results are failures (one header read each); None for a spool too
    big to read them all at every start."""
    if len(keys) > COUNT_FAILURES:
        return None
    return sum(1 for _, h in spool.iter_results(keys) if h.get("status") != OK)


SPOOL_ROOT_ENV = "FARM_SPOOL_ROOT"


def default_spool_path(run_dir: str | None) -> str:
    """<root>/<script name>.farm, where root is Config.run_dir if it was given, else
    $FARM_SPOOL_ROOT, else the script's own directory (so that the same script finds its
    spool whatever directory it is started from, e.g. in a batch job), else (no script:
    an interactive session) the current directory."""
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    stem = os.path.splitext(os.path.basename(script))[0] or "interactive"
    root = (run_dir or os.environ.get(SPOOL_ROOT_ENV)
            or (os.path.dirname(os.path.abspath(script)) if script else os.getcwd()))
    return os.path.join(root, f"{stem}.farm")
