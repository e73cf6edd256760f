#!/usr/bin/env python
"""farm benchmarks: throughput, latency, submission, memory and spool operations, next to
the machine's own limits, the project's targets and Parsl's HighThroughputExecutor.

    python benchmarks/run.py [--quick] [--json FILE] [--dir DIR] [--repeats N]
                             [--no-parsl] [--compare OLD.json [NEW.json]]
                             [--slow-fs DELAY_US[,DELAY_US...]]

Each run of a workload happens in its own child process (this script with --child, or
parsl_peer.py for Parsl) on a fresh spool (all under one temporary directory, removed at
the end), with a hard timeout: if the child overruns, it and the processes it started are
killed, the run is marked TIMEOUT and the benchmark goes on.
Progress goes to stderr; the table to stdout; the same figures to a JSON file
(default bench-results.json in the current directory).  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import psutil
import slowfs
import taskfile
import yaml
from machine import machine_limits
from report import OPKINDS, PARSL_REFERENCE, build_results, compare, render
from workloads import Deadline, chain, collect, first_result, submission, throughput

import farm
from farm import bash_app, python_app
from farm.pool import WARM_IDLE
from farm.pool.shared import COLD_BEAT
from farm.spool.layout import Paths

# (machine, report, slowfs and workloads are this script's sibling modules: a script's directory
# is on sys.path.)
HERE = os.path.abspath(__file__)
PARSL_PEER = os.path.join(os.path.dirname(HERE), "parsl_peer.py")
MARKER = "FARM_BENCH_RUN"  # in every child's environment (and its descendants'): its run dir
IDLE_TRIPS, IDLE_GAP = 5, 1.0  # workload "first" also times 5 lone tasks, each after 1 s idle
# Workload "idle": one pool of 2 workers on a spool with no work, once it went cold, over
# IDLE_WINDOW s (slowfs.py says why).
IDLE_WORKERS = 2


Sizes = int | dict  # a farm run's number of tasks; the sizes of a Parsl run's parts


@dataclass(frozen=True)
class Job:
    """One line of the schedule.  name: its key in the results; workload: what the child
    runs; full, quick: its size in a full run and with --quick; once: one run only, after
    all the repeated ones (see README: the big runs would slow the others down); pools:
    for workload "pools", how many pools of 1 worker run the tasks."""
    name: str
    system: str  # "farm" or "parsl"
    workload: str
    full: Sizes
    quick: Sizes
    once: bool = False
    pools: int = 0

    def size(self, quick: bool) -> Sizes:
        return self.quick if quick else self.full

    def timeout(self, size: Sizes) -> float:
        """Hard limit of one run: ~10x the expected time on a 2-core machine, so that only a
        hang or a pathological slowdown trips it."""
        parts = size if isinstance(size, dict) else {self.workload: size}
        return (TIMEOUT_BASE[self.system] + TIMEOUT_PER_POOL * self.pools
                + TIMEOUT_WAIT.get(self.workload, 0.0)
                + sum(n * TIMEOUT_PER_TASK[self.system, part] for part, n in parts.items()))


JOBS = (
    Job("noop", "farm", "noop", 10_000, 2_000),
    Job("chain", "farm", "chain", 200, 50),
    Job("bash", "farm", "bash", 2_000, 500),
    Job("first", "farm", "first", 1, 1),
    Job("submit", "farm", "submit", 10_000, 2_000),
    # Parsl is ~5x slower: smaller sizes keep the whole run within a few minutes.  Its
    # no-op, chain and bash parts share one HTEX start (~7 s) per round: see parsl_peer.py.
    Job("parsl", "parsl", "pool", {"noop": 2_000, "chain": 200, "bash": 500},
        {"noop": 500, "chain": 50, "bash": 200}),
    Job("parsl_submit", "parsl", "submit", {"submit": 5_000}, {"submit": 1_000}),
    # The no-op workload on P pools of 1 worker each (stand-ins for P nodes): does the
    # throughput hold when the spool has many pools?
    Job("pools2", "farm", "pools", 10_000, 2_000, pools=2),
    # Packing (docs/resources.md): 20 ms tasks, one in 51 asking for every core.
    Job("mixed", "farm", "mixed", 1_000, 300),
    Job("pools32", "farm", "pools", 10_000, 2_000, pools=32),
    Job("memory", "farm", "submit", 100_000, 20_000, once=True),
    Job("noop_large", "farm", "noop", 100_000, 10_000, once=True),
    # An idle pool's own filesystem operations: its size is the measuring window in seconds
    # (after WARM_IDLE seconds of waiting).  Mostly sleep: once, and last.
    Job("idle", "farm", "idle", slowfs.IDLE_WINDOW, slowfs.IDLE_WINDOW, once=True),
)

# Hard timeouts: seconds per run (Parsl's runs start an interchange and a worker pool, ~7 s
# here), plus seconds per task of each kind.
TIMEOUT_BASE = {"farm": 30.0, "parsl": 60.0}
TIMEOUT_PER_TASK = {
    ("farm", "noop"): 0.005, ("farm", "chain"): 0.1, ("farm", "bash"): 0.02,
    ("farm", "first"): 10.0, ("farm", "submit"): 0.005, ("farm", "pools"): 0.005,
    ("farm", "idle"): 1.2, ("farm", "idle_fs"): 1.2, ("farm", "mixed"): 0.2,
    ("parsl", "noop"): 0.03, ("parsl", "chain"): 0.1, ("parsl", "bash"): 0.06,
    ("parsl", "submit"): 0.01,
}
TIMEOUT_PER_POOL = 2.0  # starting a pool: a Python process importing farm
# (sleeps by design: until the pools' backoff is over, and a cold beat's worth of slack)
TIMEOUT_WAIT = {"idle": WARM_IDLE + 2 * COLD_BEAT, "idle_fs": WARM_IDLE + 2 * COLD_BEAT}


# -- the apps (pickled by value: this file runs as __main__) -----------------------------------

@python_app
def noop():
    return None


@python_app
def hop(prev=None):
    return None


@bash_app
def true_cmd():
    return "true"


@python_app
def gate(path):
    """Say it started (path.started), then hold its worker until path exists, so a whole
    chain can be queued behind it."""
    import os
    import time
    open(path + ".started", "wb").close()
    while not os.path.exists(path):
        time.sleep(0.0002)
    return None


@python_app
def ping(i):
    return i


@python_app
def hold(seconds, parsl_resource_specification=None):
    """Hold its slots for `seconds`; (start, end)."""
    import time
    t0 = time.time()
    time.sleep(seconds)
    return t0, time.time()


MIXED_EVERY, MIXED_HOLD = 50, 0.02  # one all-core task per 50 one-core ones; each 20 ms


def mixed(size: int, deadline: Deadline) -> dict[str, Any]:
    """`size` one-core tasks and one task of every core (at most 8) after each
    MIXED_EVERY of them, all 20 ms: how much of the cores' time the tasks held (the rest
    is packing, claiming and waiting for a big task's slots)."""
    wide = min(8, len(os.sched_getaffinity(0)))
    asks = []
    t0 = time.perf_counter()
    futs = []
    for i in range(size):
        futs.append(hold(MIXED_HOLD))
        asks.append(1)
        if (i + 1) % MIXED_EVERY == 0:
            futs.append(hold(MIXED_HOLD, parsl_resource_specification={"cores": wide}))
            asks.append(wide)
    spans = [f.result(timeout=deadline.left()) for f in futs]
    t1 = time.perf_counter()
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    held = sum(c * (e - s) for c, (s, e) in zip(asks, spans, strict=True))
    return {"total_s": t1 - t0, "tasks_per_s": len(futs) / (t1 - t0), "wide_cores": wide,
            "wide_tasks": len(futs) - size,
            "core_utilisation": held / (wide * (end - start)), "failed": 0,
            "first_error": None}


# -- child side: one farm workload run on one fresh spool --------------------------------------

def _config(spool: str, blocks: int = 1, workers: int = 2) -> farm.Config:
    """`blocks` local pools of `workers` workers each, started by the first submit; or none
    at all (blocks=0: the submission workload measures the driver alone, its tasks stay
    queued)."""
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider
    return farm.Config(executors=[SpoolExecutor(
        spool=spool, max_workers_per_node=workers,
        provider=LocalProvider(init_blocks=blocks, max_blocks=blocks))])


def _read_beat(path: str) -> dict | None:
    """One heartbeat file, read directly (not through farm, so no process's op counter is
    disturbed), with "_mtime": when the pool wrote it (the content and the time come from
    one open file: the pool replaces the file by a rename)."""
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            info = yaml.safe_load(f.read())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(info, dict):
        return None
    info["_mtime"] = mtime
    return info


def _pool_heartbeats(spool: str) -> list[dict]:
    """The pools' heartbeat files (pools/*.yaml)."""
    beats = (_read_beat(p) for p in sorted(glob.glob(Paths(spool).heartbeats_glob())))
    return [b for b in beats if b is not None]


def _live_pools(spool: str) -> int:
    """Pools whose heartbeat says running and was rewritten within three periods (as
    Spool.live_pools judges, without going through farm)."""
    now = time.time()
    return sum(1 for b in _pool_heartbeats(spool) if b.get("state") == "running"
               and now - b["_mtime"] < 3 * float(b.get("heartbeat") or 2) + 2)


def _heartbeat_files(spool: str) -> int:
    return len(glob.glob(Paths(spool).heartbeats_glob()))


def _wait_pools(spool: str, n: int, deadline: Deadline) -> float:
    """Wait until n pools are live; the seconds it took.  The heartbeats are parsed only
    once there are n files (parsing 32 of them ten times a second would take a good part
    of a core away from the pools starting up)."""
    t0 = time.perf_counter()
    while (live := _heartbeat_files(spool)) < n or (live := _live_pools(spool)) < n:
        if time.monotonic() > deadline.end:
            raise TimeoutError(f"only {live} of {n} pools were up within the time limit")
        time.sleep(0.1)
    return time.perf_counter() - t0


def _final_pool_ops(spool: str, wait: float) -> tuple[dict[str, int], bool, int]:
    """Sum of the pools' op counters from their final (state: exited) heartbeats, waiting
    up to `wait` seconds for every pool to write one.  (ops, all exited, number of pools)."""
    end = time.monotonic() + wait
    while True:
        beats = _pool_heartbeats(spool)
        exited = bool(beats) and all(b.get("state") == "exited" for b in beats)
        if exited or time.monotonic() > end:
            break
        time.sleep(0.05)
    ops = {k: 0 for k in OPKINDS}
    for b in beats:
        for k, v in (b.get("ops") or {}).items():
            ops[k] = ops.get(k, 0) + int(v)
    return ops, exited, len(beats)


def _idle_trips(deadline: Deadline) -> dict[str, Any]:
    """Round trips of single tasks on the warm pool after it idled a while: the latency a
    lone task sees (workers and the driver poll less often when idle)."""
    trips, bad = [], 0
    for i in range(IDLE_TRIPS):
        time.sleep(IDLE_GAP)
        t0 = time.perf_counter()
        if ping(i).result(timeout=deadline.left()) != i:
            bad += 1
        trips.append(time.perf_counter() - t0)
    return {"idle_round_trips_s": trips, "failed": bad,
            "first_error": "a lone task returned a wrong value" if bad else None}


def _gated_chain(size: int, deadline: Deadline) -> dict[str, Any]:
    """The chain queued in full behind a gate task first: releasing the gate times the hops
    alone (the pool's dependency handling, without the driver's submits)."""
    flag = os.path.abspath("gate.flag")
    prev = gate(flag)
    futs = [prev]
    for _ in range(size):
        prev = hop(prev)
        futs.append(prev)
    while not os.path.exists(flag + ".started"):  # a worker is running the gate
        if prev.done() or time.monotonic() > deadline.end:
            raise TimeoutError("the gate task never started")
        time.sleep(0.001)
    t0 = time.perf_counter()
    open(flag, "wb").close()
    bad, err = collect(futs, None, deadline)
    t2 = time.perf_counter()
    return {"queued_total_s": t2 - t0, "queued_ms_per_hop": 1000 * (t2 - t0) / size,
            "failed": bad, "first_error": err}


def _flush():
    """Wait until the app calls made so far are in the spool: the executor's flush() where
    it has one (its writes happen in a thread of their own); without one, each call
    wrote its task before returning."""
    ex = next(iter(farm.dfk().executors.values()))
    return getattr(ex, "flush", None) or (lambda timeout: True)


def _farm_workload(workload: str, size: int, t_load: float, t_loaded: float,
                   deadline: Deadline, spool: str, pools: int) -> dict[str, Any]:
    """Run the workload on the loaded farm; its figures, with `tasks` = tasks submitted."""
    if workload == "submit":
        res, _futs = submission(noop, size, _flush(), deadline)
        return {"load_s": t_loaded - t_load, **res, "tasks": size + 1}
    # Warm-up (and, for "first", the measurement): one trivial task through the pool that
    # the first submit starts.
    res = first_result(noop, t_load, t_loaded, deadline)
    if workload == "first":
        res.update(_idle_trips(deadline))
        return {**res, "tasks": 1 + IDLE_TRIPS}
    if workload == "pools":
        # The warm-up started all the blocks; the clock starts once every pool is up.
        res["pools_up_s"] = _wait_pools(spool, pools, deadline)
        res.update(throughput(noop, None, size, deadline))
        return {**res, "tasks": 1 + size}
    if workload == "mixed":
        res.update(mixed(size, deadline))
        return {**res, "tasks": 1 + size + size // MIXED_EVERY}
    if workload == "chain":
        res.update(chain(hop, size, deadline))
        gated = _gated_chain(size, deadline)
        failed, err = res["failed"] + gated.pop("failed"), res["first_error"]
        res.update(gated, failed=failed, first_error=err or gated["first_error"])
        return {**res, "tasks": 2 + 2 * size}
    app, expect = (noop, None) if workload == "noop" else (true_cmd, 0)
    res.update(throughput(app, expect, size, deadline))
    return {**res, "tasks": 1 + size}


def child_main(workload: str, size: int, spool: str, out: str, timeout: float,
               pools: int = 0) -> int:
    deadline = Deadline(timeout - 10)  # leave the parent's kill as the last resort

    def alarm(signum, frame):
        raise TimeoutError(f"{workload} run overran its {timeout:.0f} s timeout")

    signal.signal(signal.SIGALRM, alarm)  # a hang outside a result() wait: stop, cleanly
    signal.alarm(max(1, int(timeout - 5)))
    res: dict[str, Any] = {"workload": workload, "size": size, "ok": False}
    if pools:
        res["pools_wanted"] = pools
    try:
        if workload == "idle":
            res.update(idle_pool(spool, size, deadline))
        elif workload == "idle_fs":  # --slow-fs: an idle pool on every column at once
            res.update(slowfs.idle_columns(size, deadline, IDLE_WORKERS))
        else:
            _farm_child(workload, size, spool, pools, deadline, res)
    except BaseException as e:  # noqa: B036 - report anything (even a KeyboardInterrupt)
        why = str(e) or ("no result within the run's time limit"
                         if isinstance(e, TimeoutError) else "")
        res.setdefault("error", f"{type(e).__name__}: {why}")
        raise
    finally:
        signal.alarm(0)
        with open(out, "w") as f:
            json.dump(res, f)
    return 0 if res["ok"] else 1


def _farm_child(workload: str, size: int, spool: str, pools: int, deadline: Deadline,
                res: dict[str, Any]) -> None:
    """A workload through a driver: load farm, run it, clear, count the spool ops."""
    from farm.spool import fs

    blocks = 0 if workload == "submit" else (pools or 1)
    loaded = False
    try:
        t_load = time.perf_counter()
        farm.load(_config(spool, blocks, workers=1 if pools else 2))
        loaded = True
        t_loaded = time.perf_counter()
        ops0 = dict(fs.OPS)  # after load: the spool's creation (its ~1000 mkdirs) is excluded
        fs_probe = slowfs.Probe()  # --slow-fs: the requests the mount gets, in the same window
        res.update(_farm_workload(workload, size, t_load, t_loaded, deadline, spool, pools))
        t_clear = time.perf_counter()
        farm.clear()
        loaded = False
        res["clear_s"] = time.perf_counter() - t_clear
        ops1 = dict(fs.OPS)
        res["driver_ops"] = {k: ops1.get(k, 0) - ops0.get(k, 0) for k in OPKINDS}
        if blocks:  # (read from the mount's backing dir, where reading is not counted)
            got, exited, npools = _final_pool_ops(slowfs.view(spool), min(30.0, deadline.left()))
        else:
            got, exited, npools = {k: 0 for k in OPKINDS}, True, 0
        res.update(pool_ops=got, pools_exited=exited, pools=npools, ok=res["failed"] == 0)
        res.update(fs_probe.stop())
        if not exited:
            res["warning"] = "a pool wrote no final (state: exited) heartbeat: its ops are stale"
        elif npools != blocks:
            res["warning"] = f"{npools} pools ran, not {blocks}"
    finally:
        if loaded:
            try:
                farm.clear()
            except Exception as e:
                res.setdefault("error", f"farm.clear() failed: {e}")


# -- the idle pool -----------------------------------------------------------------------------

def _next_beat(spool: str, proc: subprocess.Popen, after: Any,
               deadline: Deadline) -> dict:
    """The pool's next heartbeat whose counter differs from `after` (None: any), read
    within ~10 ms of its writing: a fresh one.  (A stat every 10 ms; the file is parsed
    only when it changed.)"""
    seen = None
    while True:
        paths = glob.glob(Paths(spool).heartbeats_glob())
        try:
            st = os.stat(paths[0]) if paths else None
        except OSError:
            st = None
        if st is not None and (st.st_ino, st.st_mtime_ns) != seen:
            seen = (st.st_ino, st.st_mtime_ns)
            beat = _read_beat(paths[0])
            if beat is not None and beat.get("counter") != after:
                return beat
        if proc.poll() is not None:
            raise RuntimeError(f"the pool exited (status {proc.returncode}): see pool.log")
        if time.monotonic() > deadline.end:
            raise TimeoutError("no new heartbeat of the pool within the run's time limit")
        time.sleep(0.01)


def _ops_of(beat: dict, field: str = "ops") -> dict[str, int]:
    got = beat.get(field) or {}
    return {k: int(got.get(k, 0)) for k in OPKINDS}


def idle_pool(spool: str, window: float, deadline: Deadline) -> dict[str, Any]:
    """One pool of IDLE_WORKERS workers on a new spool with no work: its filesystem
    operations per second once its backoff is over (slowfs.Backoff), from that beat to the
    one `window` seconds later (COLD_RARE beats), from its own heartbeats (ops: the
    manager's and its workers', polling included; ops_manager: the manager's alone).
    Every heartbeat of the window is kept, for a look at where the ops come from (the
    repair sweep and the look at the other pools are spikes)."""
    from farm.spool import Spool
    Spool.create(spool)
    cmd = [sys.executable, "-m", "farm", "pool", spool,
           "--workers", str(IDLE_WORKERS), "--idle-timeout", "600"]
    with open("pool.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        first = _next_beat(spool, proc, None, deadline)
        if time.monotonic() + WARM_IDLE + COLD_BEAT + window > deadline.end:
            raise TimeoutError("the run's time limit is shorter than the backoff and window")
        b0, backoff = first, slowfs.Backoff()
        while not backoff.past(b0):
            b0 = _next_beat(spool, proc, b0.get("counter"), deadline)
        beats = [b0]
        while beats[-1]["_mtime"] - b0["_mtime"] < window - COLD_BEAT / 2:
            beats.append(_next_beat(spool, proc, beats[-1].get("counter"), deadline))
        b1 = beats[-1]
    finally:
        proc.terminate()  # SIGTERM: the pool stops its workers, writes a last heartbeat
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    span = b1["_mtime"] - b0["_mtime"]
    total = {k: _ops_of(b1)[k] - _ops_of(b0)[k] for k in OPKINDS}
    manager = {k: _ops_of(b1, "ops_manager")[k] - _ops_of(b0, "ops_manager")[k]
               for k in OPKINDS}
    workers = {k: total[k] - manager[k] for k in OPKINDS}
    series = [{"t": round(b["_mtime"] - b0["_mtime"], 3), "counter": b.get("counter"),
               **{k: _ops_of(b)[k] - _ops_of(b0)[k] for k in OPKINDS}} for b in beats]
    busy = max(int(b.get("busy") or 0) for b in beats)
    last = _pool_heartbeats(spool)
    return {
        "window_s": span, "beats": len(beats) - 1, "heartbeat_s": first.get("heartbeat"),
        "waited_s": b0["_mtime"] - first["_mtime"], "workers": first.get("workers"),
        "ops": total, "manager_ops": manager, "workers_ops": workers,
        "ops_per_s": sum(total.values()) / span,
        "manager_ops_per_s": sum(manager.values()) / span,
        "workers_ops_per_s": sum(workers.values()) / span,
        "per_s_by_kind": {k: total[k] / span for k in OPKINDS},
        "series": series, "busy": busy,
        "pools_exited": bool(last) and last[0].get("state") == "exited",
        "failed": 0, "first_error": None, "ok": not busy, "tasks": 0,
        **({"error": "a worker was busy during the window: the spool had work"} if busy else {}),
    }


def profile_submission(size: int, base: str, top: int = 15) -> None:
    """--profile-submit: the app-call loop of the submission workload under cProfile (in
    this process, no pool), its top entries by cumulative time on stdout.  cProfile sees
    this thread only: what a writer thread of the executor does after the calls returned
    shows as the time flush() takes, printed after the profile."""
    import cProfile
    import pstats
    farm.load(_config(os.path.join(base, "profile-spool"), blocks=0))
    try:
        noop()  # the one-off work of the first call stays out of the profile
        _flush()(600.0)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        futs = [noop() for _ in range(size)]
        prof.disable()
        t1 = time.perf_counter()
        _flush()(600.0)
        t2 = time.perf_counter()
    finally:
        farm.clear()
    print(f"cProfile of {len(futs):,} app calls with no pool (farm {farm.__version__}), "
          f"top {top} by cumulative time:")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(top)
    print(f"the loop took {t1 - t0:.2f} s under the profiler; then all calls were in the "
          f"spool {t2 - t1:.2f} s later")


# -- parent side: run children with hard timeouts ----------------------------------------------

T_START = time.monotonic()


def progress(msg: str) -> None:
    try:
        print(f"[{time.monotonic() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError):  # stderr gone (piped into head...): go on quietly
        pass


def _exit_on_signal(signum, frame):
    # SIGTERM/SIGHUP: unwind, so the current child, its pools and the temp dirs go too.
    raise SystemExit(128 + signum)


def _alive_group(pgid: int) -> bool:
    """Does the process group have a live (not zombie) member?  (Orphaned pool managers
    can stay zombies for a while: some inits reap slowly.)"""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def kill_pools(spool: str) -> int:
    """Stop the pools a (dead or timed-out) child left behind: ask the spool to shut down,
    then SIGTERM and, after 5 s, SIGKILL each block's process group (the provider starts
    each block in its own session; its job_id is the group id)."""
    if not os.path.isdir(spool):
        return 0
    try:
        open(Paths(spool).shutdown_path(), "wb").close()
    except OSError:
        pass
    groups = []
    for path in glob.glob(Paths(spool).block_records_glob()):
        try:
            with open(path, "rb") as f:
                pgid = int(yaml.safe_load(f.read())["job_id"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            continue
        if _alive_group(pgid):
            groups.append(pgid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in groups:
            try:
                os.killpg(g, sig)
            except (ProcessLookupError, PermissionError):
                pass
        end = time.monotonic() + 5
        while time.monotonic() < end and any(_alive_group(g) for g in groups):
            time.sleep(0.05)
        groups = [g for g in groups if _alive_group(g)]
        if not groups:
            break
    return len(groups)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux's
    PR_SET_CHILD_SUBREAPER), so that whatever a child leaves behind stays findable as a
    descendant of ours: even processes that left its process group and renamed themselves
    (Parsl's interchange does both, which also hides the marker in its environment)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # 36 = PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _leftovers(run_dir: str) -> list[psutil.Process]:
    """Live processes left by the run: our descendants (runs go one at a time, so they are
    the run's), and processes whose environment carries the run's marker (where there is no
    subreaper)."""
    found = {p.pid: p for p in psutil.Process().children(recursive=True)}
    for p in psutil.process_iter():
        try:
            if p.pid not in found and p.environ().get(MARKER) == run_dir:
                found[p.pid] = p
        except psutil.Error:  # gone, or not ours
            continue
    live = []
    for p in found.values():
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                live.append(p)
        except psutil.Error:
            continue
    return live


def _reap() -> None:
    """Collect the exit status of orphans that died as our children (we are their
    subreaper), so they do not stay zombies."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def kill_leftovers(run_dir: str, grace: float) -> int:
    """The last resort after every run: give the run's leftover processes `grace` seconds
    to exit on their own, then SIGTERM, then SIGKILL them.  Returns how many had to be
    signalled."""
    end = time.monotonic() + grace
    while (left := _leftovers(run_dir)) and time.monotonic() < end:
        _reap()
        time.sleep(0.1)
    signalled = len(left)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in left:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        _gone, left = psutil.wait_procs(left, timeout=3)
        if not left:
            break
    _reap()
    return signalled


def _child_cmd(job: Job, size: Sizes, spool: str, out: str, timeout: float) -> list[str]:
    if job.system == "parsl":
        parts = ",".join(f"{k}={v}" for k, v in size.items())
        return [sys.executable, PARSL_PEER, job.workload, "--sizes", parts, "--out", out,
                "--timeout", str(timeout)]
    return [sys.executable, HERE, "--child", job.workload, "--size", str(size),
            "--spool", spool, "--out", out, "--timeout", str(timeout),
            "--pools", str(job.pools)]


def _child_env(run_dir: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    # Parsl finds its interchange and worker pool commands on PATH: this Python's bin first.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, MARKER: run_dir, "PATH": path, **(extra or {})}


def _judge(res: dict, rc: int | None, timeout: float) -> dict:
    """The run's outcome from its result file and its exit status."""
    if rc is None:
        res.update(ok=False, error=f"TIMEOUT: killed after {timeout:.0f} s")
    elif rc != 0 and res.get("ok") and res.get("cleanup") == "started":
        # A Parsl child that died in Parsl's own cleanup, after writing its figures.
        res["warning"] = f"exited with status {rc} in Parsl's cleanup (figures kept)"
    elif rc != 0 and "error" not in res and res.get("failed", 0) == 0:
        res.update(ok=False, error=f"child exited with status {rc}")
    return res


def run_child(job: Job, size: Sizes, base: str, spool_dir: str | None = None,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """One run of a job in a child process, in a new directory under base (left for the
    caller to remove); its spool in that directory, or under spool_dir (--slow-fs: on a
    mount, while the child's files stay off it); env: more of the child's environment."""
    timeout = job.timeout(size)
    run_dir = tempfile.mkdtemp(prefix=f"{job.name}-", dir=base)
    spool = os.path.join(spool_dir or run_dir, os.path.basename(run_dir) if spool_dir else "",
                         "spool")
    out = os.path.join(run_dir, "result.json")
    log_path = os.path.join(run_dir, "child.log")
    res: dict[str, Any] = {"workload": job.workload, "size": size, "ok": False}
    proc = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(_child_cmd(job, size, spool, out, timeout), cwd=run_dir,
                                    env=_child_env(run_dir, env), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        proc = None
        if os.path.exists(out):
            with open(out) as f:
                res = json.load(f)
        res = _judge(res, rc, timeout)
        if not res.get("ok"):
            with open(log_path, "rb") as f:
                res["log_tail"] = f.read()[-3000:].decode(errors="replace")
    finally:
        if proc is not None:  # interrupted (Ctrl-C): take the child down with us
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if job.system == "farm" and not res.get("pools_exited"):
            left = kill_pools(spool)
            if left:
                res.setdefault("warning", f"{left} pool process groups would not die")
        # Parsl's submission child leaves its interchange to this on purpose (parsl_peer.py).
        n = kill_leftovers(run_dir, grace=0 if job.workload == "submit" else 5)
        if n and not (job.system == "parsl" and job.workload == "submit"):
            res.setdefault("warning", f"killed {n} leftover processes of the run")
        if not res.get("ok"):
            res["run_dir"] = run_dir
    return res


def _report_run(workload: str, r: dict) -> None:
    """One progress line with the run's main figures."""
    if workload == "first":
        trips = sorted(1000 * t for t in r["idle_round_trips_s"])
        msg = (f"{r['first_result_s']:.2f} s from load to first result (load "
               f"{r['load_s']:.2f} s); lone tasks after {IDLE_GAP:g} s idle: "
               + " ".join(f"{t:.0f}" for t in trips) + " ms")
    elif workload == "pool":  # Parsl's warm-up; its parts follow
        msg = f"{r['first_result_s']:.2f} s from load to first result"
    elif workload == "chain":
        msg = f"{r['ms_per_hop']:.2f} ms/hop ({r['total_s']:.2f} s, submit {r['submit_s']:.2f} s)"
        if "queued_ms_per_hop" in r:
            msg += f"; queued behind a gate: {r['queued_ms_per_hop']:.2f} ms/hop"
    elif workload == "idle":
        m, w = r["manager_ops"], r["workers_ops"]
        msg = (f"{r['ops_per_s']:.2f} fs ops/s over {r['window_s']:.1f} s after "
               f"{r['waited_s']:.0f} s idle: manager {r['manager_ops_per_s']:.2f} ("
               + " ".join(f"{k} {v}" for k, v in m.items() if v) + "), workers "
               f"{r['workers_ops_per_s']:.2f} (" + " ".join(f"{k} {v}" for k, v in w.items()
                                                           if v) + ")")
    elif workload == "idle_fs":
        msg = slowfs.idle_summary(r)
    elif workload == "mixed":
        msg = (f"cores held {100 * r['core_utilisation']:.0f}% of the time "
               f"({r['wide_tasks']} tasks of {r['wide_cores']} cores among "
               f"{r['size']:,} of 1; {r['tasks_per_s']:.0f} tasks/s)")
    elif workload == "submit":
        msg = (f"{r['calls_per_s']:.0f} calls/s, {r['bytes_per_task']:.0f} bytes/task "
               f"({r['submit_s']:.2f} s)")
    else:
        msg = (f"{r['tasks_per_s']:.0f} tasks/s ({r['total_s']:.2f} s; submit "
               f"{r['submit_per_s']:.0f} calls/s)")
    if "first_result_s" in r and workload not in ("first", "pool"):
        msg += f"; first result {r['first_result_s']:.2f} s"
    if "pools_up_s" in r:
        msg += f"; {r['pools']} pools, all up {r['pools_up_s']:.2f} s after it"
    progress(f"  {workload}: {msg}")
    if r.get("warning"):
        progress(f"  warning: {r['warning']}")


def _parts(r: dict) -> dict[str, dict]:
    """A Parsl pool run's parts as runs of their own (parsl_noop, parsl_chain, parsl_bash);
    a part the run never reached failed with the run's error."""
    out = {}
    for part, size in r.get("sizes", {}).items():
        got = r.get("parts", {}).get(part)
        if got is None:
            out[f"parsl_{part}"] = {"workload": part, "size": size, "ok": False,
                                    "error": r.get("error") or "not run"}
        else:
            out[f"parsl_{part}"] = {"workload": part, **got, "ok": got["failed"] == 0}
    return out


def _run_job(job: Job, size: Sizes, label: str, base: str, runs: dict, dead: set,
             key: str | None = None, **child: Any) -> None:
    """One run, recorded in runs[key] (default: the job's name); child: run_child's
    spool_dir and env."""
    shown = (f"x{size:,}" if isinstance(size, int)
             else "(" + ", ".join(f"{k} {v:,}" for k, v in size.items()) + ")")
    progress(f"{job.name} {shown} {label} ...")
    r = run_child(job, size, base, **child)
    runs.setdefault(key or job.name, []).append(r)
    if r.get("ok"):
        _report_run(job.workload, r)
    if job.workload == "pool":
        for name, part in _parts(r).items():
            runs.setdefault(name, []).append(part)
            if part["ok"]:
                _report_run(part["workload"], part)
    if r.get("ok"):
        return
    _FAILED.append(r.get("run_dir", ""))
    dead.add(key or job.name)  # a failure or hang is likely to repeat: skip the other runs
    err = r.get("error") or f"{r.get('failed')} tasks failed: {r.get('first_error')}"
    progress(f"  FAILED: {err}")
    if r.get("log_tail"):
        print(r["log_tail"], file=sys.stderr)


# -- orchestration -----------------------------------------------------------------------------

def parsl_probe() -> dict[str, Any]:
    """Can this Python run Parsl?  (Asked in a child, with a timeout: a broken install must
    not take the benchmark with it, and this process stays free of Parsl's imports.)"""
    try:
        p = subprocess.run([sys.executable, PARSL_PEER, "--probe"], capture_output=True,
                           text=True, timeout=120, env=_child_env(""))
    except (OSError, subprocess.SubprocessError) as e:
        return {"measured": False, "why": f"probing parsl failed: {e}"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"measured": False, "why": f"`import parsl` fails in {sys.executable}: {last}"}
    return {"measured": True, "version": p.stdout.strip()}


def machine_info(base: str) -> dict[str, Any]:
    fstype, best = "?", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and base.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        pass
    try:
        git = subprocess.run(["git", "-C", os.path.dirname(HERE), "describe", "--always",
                              "--dirty"], capture_output=True, text=True, timeout=10)
        rev = git.stdout.strip() or "no git"
    except (OSError, subprocess.SubprocessError):
        rev = "no git"
    return {"farm": farm.__version__, "git": rev, "python": platform.python_version(),
            "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
            "cpus": os.cpu_count(), "base": base, "fstype": fstype}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 run each, smaller sizes (2,000 no-ops, 50 hops, 500 bash...)")
    ap.add_argument("--json", default=None, help="where to write the figures (default "
                    "bench-results.json; with --slow-fs, bench-results-slowfs.json)")
    ap.add_argument("--dir", default=None,
                    help="where the temporary spools go (default: the current directory; "
                         "point it at the shared filesystem you want to measure)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs per workload (default 3, 1 with --quick; the two large "
                         "workloads always run once)")
    ap.add_argument("--no-parsl", action="store_true",
                    help="do not measure Parsl even if it is installed (reference column)")
    ap.add_argument("--compare", nargs="+", metavar="JSON",
                    help="OLD.json: after the run, print new/old for every figure; "
                         "OLD.json NEW.json: compare two result files, run nothing")
    ap.add_argument("--profile-submit", type=int, metavar="N",
                    help="profile N app calls with no pool (cProfile, top 15), run nothing")
    ap.add_argument("--slow-fs", metavar="DELAY_US[,...]",
                    help="instead of the suite: chain, no-op, bash and idle-pool workloads on "
                         "the filesystem and on slow-metadata FUSE mounts (scripts/slow-fs) "
                         "of these delays, counting the requests the mounts receive (root)")
    ap.add_argument("--keep-failed", action="store_true",
                    help="keep the spool of a failed run for inspection")
    ap.add_argument("--child", choices=("noop", "chain", "bash", "first", "submit", "pools",
                                        "idle", "idle_fs", "mixed"), help=argparse.SUPPRESS)
    ap.add_argument("--pools", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--spool", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compare and len(args.compare) > 2:
        ap.error("--compare takes OLD.json, or OLD.json NEW.json")
    if args.json is None:
        args.json = "bench-results-slowfs.json" if args.slow_fs else "bench-results.json"
    return args


def _load_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.size, args.spool, args.out, args.timeout,
                          args.pools)
    if args.compare and len(args.compare) == 2:
        print(compare(_load_json(args.compare[0]), _load_json(args.compare[1])))
        return 0
    top = os.path.abspath(args.dir or os.getcwd())
    os.makedirs(top, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    become_subreaper()
    # Everything goes in one directory, removed only at the end: on some filesystems (ext4
    # without a journal) creating files is slow for minutes after many were deleted, so
    # removing each run's spool right away would slow the runs after it.
    base = tempfile.mkdtemp(prefix="farm-bench-", suffix=".farm", dir=top)
    keep = False
    try:
        if args.profile_submit:
            profile_submission(args.profile_submit, base)
            return 0
        if args.slow_fs:
            return slowfs.run_mode(args, base, machine_info(top), sys.modules[__name__])
        return _run_all(args, base, machine_info(top))
    except BaseException:
        keep = args.keep_failed
        raise
    finally:
        if keep or (args.keep_failed and _FAILED):
            progress(f"kept {base} (--keep-failed)")
        else:
            t0 = time.monotonic()
            shutil.rmtree(base, ignore_errors=True)
            progress(f"removed {base} ({time.monotonic() - t0:.1f} s)")


_FAILED: list[str] = []


def _run_all(args, base: str, info: dict) -> int:
    mode = "quick" if args.quick else "full"
    repeats = args.repeats or (1 if args.quick else 3)
    parsl = {"measured": False, "why": "--no-parsl"} if args.no_parsl else parsl_probe()
    jobs = [j for j in JOBS if j.system == "farm" or parsl["measured"]]
    sizes = {j.name: j.size(args.quick) for j in JOBS}
    progress(f"farm benchmark ({mode}, {repeats} run(s) per workload), spools under {base}; "
             + (f"Parsl {parsl['version']} measured too" if parsl["measured"]
                else f"Parsl not measured: {parsl['why']}"))

    runs: dict[str, list[dict]] = {j.name: [] for j in JOBS}
    limits: list[dict[str, float]] = []
    dead: set[str] = set()
    for rep in range(1, repeats + 1):  # round robin, so drift hits every workload alike
        for job in jobs:
            if not job.once and job.name not in dead:
                _run_job(job, sizes[job.name], f"run {rep}/{repeats}", base, runs, dead)
        progress(f"machine limits run {rep}/{repeats} ...")
        limits.append(machine_limits(base, 0.3 if args.quick else 1.0))
        progress("  " + ", ".join(f"{k} {v:,.0f}" for k, v in limits[-1].items()))
    for job in jobs:  # the big ones last: their deletions slow file creation for minutes
        if job.once:
            _run_job(job, sizes[job.name], "(one run)", base, runs, dead)

    parsl["sizes_text"] = ", ".join(f"{part} {n:,}" for j in JOBS if j.system == "parsl"
                                    for part, n in sizes[j.name].items())
    parsl["failures"] = [f"{j.name}: {r.get('error')}" for j in jobs if j.system == "parsl"
                         for r in runs[j.name] if not r.get("ok")][:4]
    progress("taskfile: farm run next to GNU parallel ...")
    tf = taskfile.measure(base, 500 if args.quick else 2_000, repeats, progress)
    info = {**info, "repeats": repeats, "parsl": parsl}
    results = build_results(runs, limits, parsl["measured"], os.cpu_count() or 1)
    table = render(results, sizes, runs, info) + "\n" + taskfile.render(tf)
    results["taskfile"] = tf
    doc = {"mode": mode, "repeats": repeats, "sizes": sizes, "machine": info,
           "parsl_reference": PARSL_REFERENCE, **results, "machine_limits_runs": limits,
           "runs": runs, "table": table}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    print(table)
    if args.compare:
        print(f"\nnew/old against {args.compare[0]}:")
        print(compare(_load_json(args.compare[0]), doc))
    progress(f"done; figures in {os.path.abspath(args.json)}")
    return 0 if all(r.get("ok") for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
