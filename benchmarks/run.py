#!/usr/bin/env python
"""farm benchmarks: throughput, latency, start-up and spool operations, side by side with
the reference figures of Parsl's HighThroughputExecutor.

    python benchmarks/run.py [--quick] [--json FILE] [--dir DIR] [--repeats N]

Each run of a workload happens in its own child process (this script with --child) on a
fresh spool (all under one temporary directory, removed at the end), with a hard timeout:
if the child overruns, it and the pools it started are killed, the run is marked TIMEOUT
and the benchmark goes on.
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
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil
import yaml

import farm
from farm import bash_app, python_app

HERE = os.path.abspath(__file__)
OPKINDS = ("create", "rename", "link", "unlink", "stat", "listdir", "open", "mkdir")

# Parsl HighThroughputExecutor on a comparable 2-core machine (see benchmarks/README.md).
PARSL = {
    "noop_tasks_per_s": 400.0,
    "chain_ms_per_hop": 6.0,
    "bash_tasks_per_s": 190.0,
    "first_result_s": 7.0,
}

SIZES = {
    "full": {"noop": 10_000, "chain": 200, "bash": 2_000, "first": 1},
    "quick": {"noop": 2_000, "chain": 50, "bash": 500, "first": 1},
}

# Hard timeout of one child run: BASE + size * PER_TASK seconds (generous: ~10x the
# expected time on a 2-core machine, so only a hang or a pathological slowdown trips it).
TIMEOUT_BASE = 30.0
TIMEOUT_PER_TASK = {"noop": 0.005, "chain": 0.1, "bash": 0.02, "first": 10.0}

WORKLOADS = ("noop", "chain", "bash", "first")
IDLE_TRIPS, IDLE_GAP = 5, 1.0  # workload 4 also times 5 lone tasks, each after 1 s idle


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


# -- child side: one workload run on one fresh spool -------------------------------------------

def _config(spool: str) -> farm.Config:
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider
    return farm.Config(executors=[SpoolExecutor(
        spool=spool, max_workers_per_node=2,
        provider=LocalProvider(init_blocks=1, max_blocks=1))])


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.05, self.end - time.monotonic())


def _collect(futs: list, expect: Any, deadline: Deadline) -> tuple[int, str | None]:
    """Wait for every future; (number that failed or gave an unexpected value, first error)."""
    bad, first = 0, None
    for f in futs:
        exc = f.exception(timeout=deadline.left())  # TimeoutError propagates: the run fails
        if exc is None and f.result() == expect:
            continue
        bad += 1
        if first is None:
            first = repr(exc) if exc is not None else f"unexpected result {f.result()!r}"
    return bad, first


def _pool_heartbeats(spool: str) -> list[dict]:
    """The pools' heartbeat files, read directly (not through farm, so the driver's op
    counter is not disturbed)."""
    out = []
    for path in sorted(glob.glob(os.path.join(spool, "pools", "*.yaml"))):
        try:
            with open(path, "rb") as f:
                info = yaml.safe_load(f.read())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(info, dict):
            out.append(info)
    return out


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


def child_main(workload: str, size: int, spool: str, out: str, timeout: float) -> int:
    from farm.spool import fs

    deadline = Deadline(timeout - 10)  # leave the parent's kill as the last resort

    def alarm(signum, frame):
        raise TimeoutError(f"{workload} run overran its {timeout:.0f} s timeout")

    signal.signal(signal.SIGALRM, alarm)  # a hang outside a result() wait: stop, cleanly
    signal.alarm(max(1, int(timeout - 5)))
    res: dict[str, Any] = {"workload": workload, "size": size, "ok": False}
    loaded = False
    try:
        t_load = time.perf_counter()
        farm.load(_config(spool))
        loaded = True
        t_loaded = time.perf_counter()
        ops0 = fs.snapshot()  # after load: the spool's creation (its ~1000 mkdirs) is excluded
        # Warm-up (and, for "first", the measurement): one trivial task through a pool that
        # the first submit starts.
        warm = noop()
        t_sub = time.perf_counter()
        warm.result(timeout=deadline.left())
        t_first = time.perf_counter()
        res["load_s"] = t_loaded - t_load
        res["first_result_s"] = t_first - t_load
        res["first_after_submit_s"] = t_first - t_sub
        tasks = 1
        bad, err = 0, None
        if workload == "first":
            # Round trips of single tasks on the now warm pool after it idled a while: the
            # latency a lone task sees (workers and driver poll less often when idle).
            trips = []
            for i in range(IDLE_TRIPS):
                time.sleep(IDLE_GAP)
                t0 = time.perf_counter()
                if ping(i).result(timeout=deadline.left()) != i:
                    bad += 1
                trips.append(time.perf_counter() - t0)
            tasks += IDLE_TRIPS
            res["idle_round_trips_s"] = trips
        if workload in ("noop", "bash"):
            app, expect = (noop, None) if workload == "noop" else (true_cmd, 0)
            t0 = time.perf_counter()
            futs = [app() for _ in range(size)]
            t1 = time.perf_counter()
            bad, err = _collect(futs, expect, deadline)
            t2 = time.perf_counter()
            tasks += size
            res.update(submit_s=t1 - t0, total_s=t2 - t0, tasks_per_s=size / (t2 - t0),
                       submit_per_s=size / (t1 - t0))
        elif workload == "chain":
            t0 = time.perf_counter()
            futs, prev = [], None
            for _ in range(size):
                prev = hop(prev)
                futs.append(prev)
            t1 = time.perf_counter()
            bad, err = _collect(futs, None, deadline)
            t2 = time.perf_counter()
            tasks += size
            res.update(submit_s=t1 - t0, total_s=t2 - t0, ms_per_hop=1000 * (t2 - t0) / size)
            # The same chain queued in full behind a gate first: releasing the gate times
            # the hops alone (the pool's dependency handling, without the driver's submits).
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
            bad2, err2 = _collect(futs, None, deadline)
            t2 = time.perf_counter()
            tasks += size + 1
            bad, err = bad + bad2, err or err2
            res.update(queued_total_s=t2 - t0, queued_ms_per_hop=1000 * (t2 - t0) / size)
        res.update(failed=bad, first_error=err, tasks=tasks)
        t_clear = time.perf_counter()
        farm.clear()
        loaded = False
        res["clear_s"] = time.perf_counter() - t_clear
        ops1 = fs.snapshot()
        driver = {k: ops1.get(k, 0) - ops0.get(k, 0) for k in OPKINDS}
        pools, exited, npools = _final_pool_ops(spool, min(30.0, deadline.left()))
        res.update(driver_ops=driver, pool_ops=pools, pools_exited=exited, pools=npools,
                   ok=bad == 0)
        if not exited:
            res["warning"] = "a pool wrote no final (state: exited) heartbeat: its ops are stale"
    except BaseException as e:  # noqa: B036 - report anything (even a KeyboardInterrupt)
        why = str(e) or ("no result within the run's time limit"
                         if isinstance(e, TimeoutError) else "")
        res["error"] = f"{type(e).__name__}: {why}"
        raise
    finally:
        if loaded:
            try:
                farm.clear()
            except Exception as e:
                res.setdefault("error", f"farm.clear() failed: {e}")
        signal.alarm(0)
        with open(out, "w") as f:
            json.dump(res, f)
    return 0 if res["ok"] else 1


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
        open(os.path.join(spool, "control", "shutdown"), "wb").close()
    except OSError:
        pass
    groups = []
    for path in glob.glob(os.path.join(spool, "blocks", "*.yaml")):
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


def run_child(workload: str, size: int, base: str) -> dict[str, Any]:
    """One run of a workload in a child process, in a new directory under base (left for
    the caller to remove)."""
    timeout = TIMEOUT_BASE + size * TIMEOUT_PER_TASK[workload]
    run_dir = tempfile.mkdtemp(prefix=f"{workload}-", dir=base)
    spool = os.path.join(run_dir, "spool")
    out = os.path.join(run_dir, "result.json")
    log_path = os.path.join(run_dir, "child.log")
    cmd = [sys.executable, HERE, "--child", workload, "--size", str(size), "--spool", spool,
           "--out", out, "--timeout", str(timeout)]
    res: dict[str, Any] = {"workload": workload, "size": size, "ok": False}
    proc = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=run_dir, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
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
        if rc is None:
            res.update(ok=False, error=f"TIMEOUT: killed after {timeout:.0f} s")
        elif rc != 0 and "error" not in res and res.get("failed", 0) == 0:
            res.update(ok=False, error=f"child exited with status {rc}")
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
        if not res.get("pools_exited"):
            left = kill_pools(spool)
            if left:
                res.setdefault("warning", f"{left} pool process groups would not die")
        if not res.get("ok"):
            res["run_dir"] = run_dir
    return res


def machine_limits(base: str, seconds: float) -> dict[str, float]:
    """The filesystem's and the OS's own rates, in a new directory under base (next to the
    spools; left for the caller to remove)."""
    d = tempfile.mkdtemp(prefix="fs-", dir=base)
    out = {}
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    open(a, "wb").close()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            os.rename(a, b)
            os.rename(b, a)
        n += 100
    out["rename_per_s"] = n / (time.perf_counter() - t0)

    tmpd, final = os.path.join(d, "tmp"), os.path.join(d, "final")
    os.mkdir(tmpd)
    os.mkdir(final)
    data = b"x" * 300  # about a no-op task record
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            tmp = os.path.join(tmpd, str(n))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.close(fd)
            os.rename(tmp, os.path.join(final, str(n)))
            n += 1
    out["create_write_rename_per_s"] = n / (time.perf_counter() - t0)

    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        subprocess.run(["true"], check=True)
        n += 1
    out["spawn_per_s"] = n / (time.perf_counter() - t0)
    return out


# -- figures and the table ---------------------------------------------------------------------

def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "runs": values}


def ops_per_task(runs: list[dict]) -> dict[str, Any]:
    """Per op kind: driver, pools and total ops per task (medians over the runs)."""
    good = [r for r in runs if r.get("ok") and "driver_ops" in r]
    out: dict[str, Any] = {}
    for k in list(OPKINDS) + ["total"]:
        def per(r, side, k=k):
            ops = r[side]
            v = sum(ops.get(x, 0) for x in OPKINDS) if k == "total" else ops.get(k, 0)
            return v / r["tasks"]
        drv = [per(r, "driver_ops") for r in good]
        pol = [per(r, "pool_ops") for r in good]
        tot = [a + b for a, b in zip(drv, pol, strict=True)]
        out[k] = {"driver": stats(drv)["median"], "pools": stats(pol)["median"], **stats(tot)}
    return out


def build_results(runs: dict[str, list[dict]], limits: list[dict]) -> dict[str, Any]:
    def vals(w, field):
        return [r[field] for r in runs.get(w, []) if r.get("ok") and field in r]

    metrics = {
        "noop_tasks_per_s": {**stats(vals("noop", "tasks_per_s")), "unit": "tasks/s",
                             "better": "higher", "parsl": PARSL["noop_tasks_per_s"]},
        "noop_submit_per_s": {**stats(vals("noop", "submit_per_s")), "unit": "calls/s",
                              "better": "higher", "parsl": None},
        "chain_ms_per_hop": {**stats(vals("chain", "ms_per_hop")), "unit": "ms/hop",
                             "better": "lower", "parsl": PARSL["chain_ms_per_hop"]},
        "chain_queued_ms_per_hop": {**stats(vals("chain", "queued_ms_per_hop")),
                                    "unit": "ms/hop", "better": "lower", "parsl": None},
        "bash_tasks_per_s": {**stats(vals("bash", "tasks_per_s")), "unit": "tasks/s",
                             "better": "higher", "parsl": PARSL["bash_tasks_per_s"]},
        "first_result_s": {**stats(vals("first", "first_result_s")), "unit": "s",
                           "better": "lower", "parsl": PARSL["first_result_s"]},
        "first_load_s": {**stats(vals("first", "load_s")), "unit": "s", "better": "lower",
                         "parsl": None},
        "idle_round_trip_ms": {**stats([1000 * t for r in runs.get("first", []) if r.get("ok")
                                        for t in r.get("idle_round_trips_s", [])]),
                               "unit": "ms", "better": "lower", "parsl": None},
    }
    for m in metrics.values():
        m["ratio_farm_over_parsl"] = (m["median"] / m["parsl"]
                                      if m["median"] is not None and m["parsl"] else None)
    for key in ("rename_per_s", "create_write_rename_per_s", "spawn_per_s"):
        metrics[f"machine_{key}"] = {**stats([x[key] for x in limits]), "unit": "ops/s",
                                     "better": "higher", "parsl": None,
                                     "ratio_farm_over_parsl": None}
    return {"metrics": metrics,
            "ops_per_task": {w: ops_per_task(runs.get(w, [])) for w in ("noop", "bash", "chain")}}


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _verdict(m: dict) -> str:
    r = m.get("ratio_farm_over_parsl")
    if r is None or r <= 0:
        return ""
    faster = r >= 1 if m["better"] == "higher" else r <= 1
    x = r if r >= 1 else 1 / r
    return f"{r:6.2f}  ({x:.1f}x {'better' if faster else 'worse'})"


def render(results: dict, sizes: dict, repeats: int, runs: dict, info: dict) -> str:
    M = results["metrics"]
    W = 44
    head = (f"{'metric':<{W}} {'unit':<8} {'median':>9} {'min':>9} {'max':>9} "
            f"{'Parsl HTEX':>10}  farm/Parsl")
    rule = "-" * (len(head) + 14)
    lines = [
        f"farm {info['farm']} benchmark ({info['git']}): {info['cpus']} cores, "
        f"Python {info['python']}, {info['platform']}",
        f"spools on {info['base']} ({info['fstype']}); {repeats} run(s) per workload, "
        "each on a fresh spool; 1 local pool, 2 workers",
        rule, head, rule,
    ]

    def row(label, m, unit=None):
        lines.append(f"{label:<{W}} {unit or m['unit']:<8} {_num(m['median']):>9} "
                     f"{_num(m['min']):>9} {_num(m['max']):>9} {_num(m.get('parsl')):>10}  "
                     f"{_verdict(m)}")

    def failures(w):
        bad = [r for r in runs.get(w, []) if not r.get("ok")]
        for r in bad[:1]:
            why = r.get("error") or f"{r.get('failed')} tasks failed: {r.get('first_error')}"
            lines.append(f"    !! {len(bad)} run(s) FAILED: {why}")

    row(f"1. {sizes['noop']:,} no-op python apps", M["noop_tasks_per_s"])
    row("   submission alone (app-call loop)", M["noop_submit_per_s"])
    failures("noop")
    row(f"2. chain of {sizes['chain']} dependent no-ops (warm)", M["chain_ms_per_hop"])
    row("   hops alone (chain queued behind a gate)", M["chain_queued_ms_per_hop"])
    failures("chain")
    row(f"3. {sizes['bash']:,} bash apps running `true`", M["bash_tasks_per_s"])
    failures("bash")
    row("4. farm.load() -> first result (cold pool)", M["first_result_s"])
    row("   of which farm.load() (creates the spool)", M["first_load_s"])
    row(f"   then one lone task, pool idle {IDLE_GAP:g} s before", M["idle_round_trip_ms"])
    failures("first")
    lines.append(rule)
    lines.append(f"{'5. spool fs ops per task (driver + pools)':<{W}} {'op':<8} {'median':>9} "
                 f"{'min':>9} {'max':>9} {'driver':>10}  pools")
    for w, title in (("noop", "no-op python"), ("bash", "bash `true`")):
        o = results["ops_per_task"][w]
        for k in list(OPKINDS) + ["total"]:
            x = o[k]
            label = f"   {title}" if k == OPKINDS[0] else ""
            lines.append(f"{label:<{W}} {k:<8} {_num(x['median']):>9} {_num(x['min']):>9} "
                         f"{_num(x['max']):>9} {_num(x['driver']):>10}  {_num(x['pools'])}")
    lines.append(rule)
    row("6. machine: rename", M["machine_rename_per_s"])
    row("   machine: create+write+rename", M["machine_create_write_rename_per_s"])
    row("   machine: subprocess.run(['true'])", M["machine_spawn_per_s"], "spawns/s")
    lines.append(rule)
    lines.append("farm/Parsl: ratio of medians; tasks/s higher is better, ms/hop and s lower. "
                 "Parsl figures are reference values, not measured here.")
    return "\n".join(lines)


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 run each, smaller sizes (2,000 no-ops, 50 hops, 500 bash)")
    ap.add_argument("--json", default="bench-results.json",
                    help="where to write the figures (default bench-results.json)")
    ap.add_argument("--dir", default=None,
                    help="where the temporary spools go (default: the current directory; "
                         "point it at the shared filesystem you want to measure)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs per workload (default 3, 1 with --quick)")
    ap.add_argument("--keep-failed", action="store_true",
                    help="keep the spool of a failed run for inspection")
    ap.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--spool", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        return child_main(args.child, args.size, args.spool, args.out, args.timeout)

    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    repeats = args.repeats or (1 if args.quick else 3)
    top = os.path.abspath(args.dir or os.getcwd())
    os.makedirs(top, exist_ok=True)
    info = machine_info(top)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    # Everything goes in one directory, removed only at the end: on some filesystems (ext4
    # without a journal) creating files is slow for minutes after many were deleted, so
    # removing each run's spool right away would slow the runs after it.
    base = tempfile.mkdtemp(prefix="farm-bench-", suffix=".farm", dir=top)
    keep = False
    try:
        return _run_all(args, mode, sizes, repeats, base, info)
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


def _run_all(args, mode: str, sizes: dict, repeats: int, base: str, info: dict) -> int:
    progress(f"farm benchmark ({mode}, {repeats} run(s) per workload), spools under {base}")

    runs: dict[str, list[dict]] = {w: [] for w in WORKLOADS}
    limits: list[dict[str, float]] = []
    dead: set[str] = set()
    for rep in range(1, repeats + 1):  # round robin, so drift hits every workload alike
        for w in WORKLOADS:
            if w in dead:
                continue
            size = sizes[w]
            progress(f"{w} x{size} run {rep}/{repeats} ...")
            r = run_child(w, size, base)
            runs[w].append(r)
            if not r.get("ok"):
                _FAILED.append(r.get("run_dir", ""))
                dead.add(w)  # a failure or hang is likely to repeat: skip the other runs
                err = r.get("error") or f"{r.get('failed')} tasks failed: {r.get('first_error')}"
                progress(f"  FAILED: {err}")
                if r.get("log_tail"):
                    print(r["log_tail"], file=sys.stderr)
                continue
            if w == "first":
                trips = sorted(1000 * t for t in r["idle_round_trips_s"])
                progress(f"  {r['first_result_s']:.2f} s from load to first result "
                         f"(load {r['load_s']:.2f} s); lone tasks after {IDLE_GAP:g} s idle: "
                         + " ".join(f"{t:.0f}" for t in trips) + " ms")
            elif w == "chain":
                progress(f"  {r['ms_per_hop']:.2f} ms/hop ({r['total_s']:.2f} s, submit "
                         f"{r['submit_s']:.2f} s); queued behind a gate: "
                         f"{r['queued_ms_per_hop']:.2f} ms/hop")
            else:
                progress(f"  {r['tasks_per_s']:.0f} tasks/s ({r['total_s']:.2f} s; submit "
                         f"{r['submit_per_s']:.0f} calls/s)")
            if r.get("warning"):
                progress(f"  warning: {r['warning']}")
        progress(f"machine limits run {rep}/{repeats} ...")
        lim = machine_limits(base, 0.3 if args.quick else 1.0)
        limits.append(lim)
        progress("  " + ", ".join(f"{k} {v:,.0f}" for k, v in lim.items()))

    results = build_results(runs, limits)
    table = render(results, sizes, repeats, runs, info)
    doc = {"mode": mode, "repeats": repeats, "sizes": sizes, "machine": info,
           "parsl_reference": PARSL, **results, "machine_limits_runs": limits,
           "runs": runs, "table": table}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    print(table)
    progress(f"done; figures in {os.path.abspath(args.json)}")
    return 0 if all(r.get("ok") for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
