"""The --slow-fs mode of run.py: farm with its spool on slow-metadata FUSE mounts
(scripts/slow-fs), side by side with the native filesystem, counting the requests the
filesystem itself receives next to farm's own operation counters.  See benchmarks/README.md,
"Slow filesystem".

Parent side: start one mount per delay (DIR = <the run's temporary directory>/slowfs-<us>),
run the chain, no-op and bash workloads round robin through run.py's children (each on a
fresh spool: in the run's directory for the native column, under DIR/mnt for the others),
then one child that keeps an idle pool on every column at once, and stop the mounts.

Child side (a child's environment names its mount in FARM_BENCH_SLOWFS): the request
counts are read from the daemon's control socket (what `scripts/slow-fs stats` prints) at
the two points where the child takes farm's own counters (after farm.load(), and once the
pools have exited), so that both cover the same window.  The child looks at the spool's
files (the pools' heartbeats) through DIR/backing, not through the mount, so that its own
looking is not counted.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from report import OPKINDS, num

from farm.pool import WARM_IDLE
from farm.pool.shared import COLD_BEAT, COLD_RARE
from farm.spool.layout import Paths

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "slow-fs")
ENV = "FARM_BENCH_SLOWFS"  # a child's mount: the slow-fs DIR its spool is under
IDLE_ENV = "FARM_BENCH_SLOWFS_IDLE"  # the idle child's columns (JSON)
TARGET_DELAY = 500  # the targets are for this delay's column

# The workloads: (name, run.py workload, full size, --quick size).  The same sizes in every
# column, smaller than the native suite's (the 2000 us column runs ~60 no-ops/s).
WORKLOADS = (("chain", "chain", 100, 30), ("noop", "noop", 2_000, 500),
             ("bash", "bash", 1_000, 300))
# The idle rows (here and row 10 of the main suite): an idle pool once its backoff is over,
# over IDLE_WINDOW s.  A pool goes cold after WARM_IDLE s without work (it beats every
# COLD_BEAT s from then on, and writes a beat at once); its worker 0's polling interval
# then grows to COLD_POLL s within about 45 s.  So the window starts at the pool's second
# cold beat, and holds COLD_RARE cold beats: one whole round of its rhythm (it looks at
# control/ and at the other pools every COLD_RARE beats).
IDLE_WINDOW = int(COLD_RARE * COLD_BEAT)


def cold(beat: dict | None) -> bool:
    """Does this heartbeat say its pool is cold (it beats every COLD_BEAT s)?"""
    return beat is not None and float(beat.get("heartbeat") or 0) >= COLD_BEAT


class Backoff:
    """Watches one pool's heartbeats: past() says whether its backoff is over (this is a
    cold beat after the one it wrote when it went cold)."""

    def __init__(self) -> None:
        self.first: Any = None  # the counter of its first cold beat

    def past(self, beat: dict | None) -> bool:
        if not cold(beat):
            return False
        assert beat is not None
        if self.first is None:
            self.first = beat.get("counter")
        return beat.get("counter") != self.first

TARGETS: dict[str, tuple[str, float]] = {
    "chain_ms_per_hop": ("<=", 6), "chain_fs_calls": ("<=", 12),
    "noop_tasks_per_s": (">=", 1500), "noop_fs_calls": ("<=", 4),
    "bash_tasks_per_s": (">=", 400), "idle_fs_calls": ("<=", 1),
}


# -- child side --------------------------------------------------------------------------------

def counts(fsdir: str) -> dict[str, int]:
    """The mount's request counts so far (by kind, "total" and "delayed"): the daemon's
    answer to "stats" on DIR/control.sock, reached through DIR's descriptor (a socket
    address holds 107 bytes, DIR may be longer)."""
    fd = os.open(fsdir, os.O_PATH | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(f"/proc/self/fd/{fd}/control.sock")
            s.sendall(b"stats\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
    finally:
        os.close(fd)
    return json.loads(got)


def view(path: str, fsdir: str | None = None) -> str:
    """Where this process should look at a spool path without being counted: the same file
    in DIR/backing when the path is under the mount DIR/mnt (DIR: fsdir, default the one
    named in FARM_BENCH_SLOWFS)."""
    fsdir = fsdir or os.environ.get(ENV)
    if not fsdir:
        return path
    mnt = os.path.join(fsdir, "mnt")
    rel = os.path.relpath(os.path.abspath(path), mnt)
    return path if rel.startswith("..") else os.path.normpath(os.path.join(fsdir, "backing", rel))


def diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b[k] - a.get(k, 0) for k in b}


class Probe:
    """Request counts between start (construction) and stop, when the child's spool is on a
    slow-fs mount; nothing otherwise."""

    def __init__(self) -> None:
        self.fsdir = os.environ.get(ENV)
        self.before = counts(self.fsdir) if self.fsdir else None

    def stop(self) -> dict[str, Any]:
        if not self.fsdir:
            return {}
        return {"fs_calls": diff(self.before, counts(self.fsdir))}


def _beat(spool: str) -> dict | None:
    """The newest heartbeat of the spool's one pool, read from the backing directory."""
    import glob

    import yaml
    for path in glob.glob(Paths(spool).heartbeats_glob()):
        try:
            with open(path, "rb") as f:
                mtime = os.fstat(f.fileno()).st_mtime
                beat = yaml.safe_load(f.read())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(beat, dict):
            return {**beat, "_mtime": mtime}
    return None


def _ops(beat: dict, field: str = "ops") -> dict[str, int]:
    got = beat.get(field) or {}
    return {k: int(got.get(k, 0)) for k in OPKINDS}


def idle_columns(window: float, deadline, workers: int) -> dict[str, Any]:
    """The idle-pool workload of every column at once (IDLE_ENV: a list of {"key", "spool",
    "fsdir"}): one pool of `workers` workers on each new spool, no driver.  Once every
    pool's backoff is over (Backoff), the request counts of each mount are taken, then again
    `window` seconds later (IDLE_WINDOW); each pool's own counters from that beat to the one
    `window` s later."""
    from farm.spool import Spool
    cols = json.loads(os.environ[IDLE_ENV])
    procs = {}
    try:
        for c in cols:
            Spool.create(c["spool"])
            c["look"] = view(c["spool"], c["fsdir"]) if c["fsdir"] else c["spool"]
            with open(f"pool-{c['key']}.log", "wb") as log:
                procs[c["key"]] = subprocess.Popen(
                    [sys.executable, "-m", "farm", "pool", c["spool"], "--workers", str(workers),
                     "--idle-timeout", "300"], stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT)
        for c in cols:  # every pool is up
            while _beat(c["look"]) is None:
                if procs[c["key"]].poll() is not None or time.monotonic() > deadline.end:
                    raise RuntimeError(f"the pool of {c['key']} did not start: see its log")
                time.sleep(0.05)
        if time.monotonic() + WARM_IDLE + COLD_BEAT + window > deadline.end:
            raise TimeoutError("the run's time limit is shorter than the backoff and window")
        backoffs = {c["key"]: Backoff() for c in cols}
        while not all([backoffs[c["key"]].past(_beat(c["look"])) for c in cols]):
            if time.monotonic() > deadline.end:
                raise TimeoutError("the pools' backoff did not end within the run's time limit")
            time.sleep(0.05)
        t0 = time.monotonic()
        first = {c["key"]: (_beat(c["look"]), counts(c["fsdir"]) if c["fsdir"] else None)
                 for c in cols}
        time.sleep(window)
        t1 = time.monotonic()
        fs1 = {c["key"]: counts(c["fsdir"]) if c["fsdir"] else None for c in cols}
        last = {}
        for c in cols:  # (the beat of the window's end: its pool writes it at most ~1 s late)
            b0 = first[c["key"]][0]
            while (b := _beat(c["look"]))["_mtime"] - b0["_mtime"] < window - COLD_BEAT / 2:
                if time.monotonic() > deadline.end:
                    raise TimeoutError("no cold beat at the window's end")
                time.sleep(0.05)
            last[c["key"]] = (b, fs1[c["key"]])
        busy = [c["key"] for c in cols if int(last[c["key"]][0].get("busy") or 0)]
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    out = {}
    for c in cols:
        (b0, fs0), (b1, fs1) = first[c["key"]], last[c["key"]]
        span = max(b1["_mtime"] - b0["_mtime"], 1e-9)
        ops = {k: _ops(b1)[k] - _ops(b0)[k] for k in OPKINDS}
        manager = sum(_ops(b1, "ops_manager").values()) - sum(_ops(b0, "ops_manager").values())
        res = {"window_s": t1 - t0, "beats_span_s": span, "ops": ops,
               "farm_ops_per_s": sum(ops.values()) / span, "manager_ops_per_s": manager / span}
        if fs0 is not None:
            res["fs_calls"] = diff(fs0, fs1)
        out[c["key"]] = res
    return {"columns": out, "failed": 0, "first_error": None, "ok": not busy, "tasks": 0,
            **({"error": f"a worker was busy during the window: {busy}"} if busy else {})}


# -- parent side -------------------------------------------------------------------------------

def _subreaper(on: bool) -> None:
    """Turn run.py's PR_SET_CHILD_SUBREAPER off while a mount starts: its daemon outlives the
    script that started it, and must not become our descendant (run.py stops every
    descendant left after a run)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def start_mounts(delays: list[int], base: str, progress) -> dict[int, str]:
    dirs = {}
    for d in delays:
        fsdir = os.path.join(base, f"slowfs-{d}")
        _subreaper(False)
        try:
            p = subprocess.run([SCRIPT, "start", fsdir, str(d)], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=900)
        finally:
            _subreaper(True)
        for line in p.stderr.splitlines():
            progress(f"  {line}")
        if p.returncode != 0:
            raise RuntimeError(f"scripts/slow-fs start {fsdir} {d} failed (exit {p.returncode})")
        dirs[d] = fsdir
    return dirs


def stop_mounts(dirs: dict[int, str], progress) -> None:
    for fsdir in dirs.values():
        try:
            p = subprocess.run([SCRIPT, "stop", fsdir], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                progress(f"  slow-fs stop {fsdir} failed: {p.stderr.strip()}")
        except (OSError, subprocess.SubprocessError) as e:
            progress(f"  slow-fs stop {fsdir} failed: {e}")


def _columns(delays: list[int], fstype: str) -> list[tuple[str, str, int | None]]:
    """(key, title, delay or None for the native filesystem)."""
    return [("native", fstype, None)] + [(f"slowfs_{d}", f"slow-fs {d} us", d) for d in delays]


def _per_task(r: dict, what: str) -> float | None:
    """One run's figure per task: the FS requests (all, or the delayed ones), farm's own
    ops (driver + pools), or the ratio of the two."""
    n = r.get("tasks") or 0
    fs = r.get("fs_calls")
    farm_ops = sum(r.get("driver_ops", {}).values()) + sum(r.get("pool_ops", {}).values())
    if not n or not r.get("ok"):
        return None
    if what == "farm":
        return farm_ops / n
    if fs is None:
        return None
    if what == "ratio":
        return fs["total"] / farm_ops if farm_ops else None
    return fs[what] / n


def _stats(values: list[float | None]) -> dict[str, Any]:
    v = [x for x in values if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v),
            "runs": v}


def _rows(sizes: dict) -> list[tuple[str, str, str, str]]:
    """(key, unit, label, how) of every line of the table, in order."""
    rows = []
    for name, what, unit, head in (
            ("chain", "ms_per_hop", "ms/hop", "1. chain of {n} dependent no-ops (warm)"),
            ("noop", "tasks_per_s", "tasks/s", "2. {n:,} no-op python apps"),
            ("bash", "tasks_per_s", "tasks/s", "3. {n:,} bash apps running `true`")):
        per = "hop" if name == "chain" else "task"
        rows += [(f"{name}_{what}", unit, head.format(n=sizes[name]), what),
                 (f"{name}_fs_calls", f"calls/{per}", f"   FS requests per {per} (all)", "total"),
                 (f"{name}_fs_delayed", f"calls/{per}", "   of them metadata (delayed)",
                  "delayed"),
                 (f"{name}_farm_ops", f"ops/{per}", f"   farm's own spool ops per {per}", "farm"),
                 (f"{name}_fs_per_op", "ratio", "   FS requests per farm op", "ratio")]
    rows += [("idle_fs_calls", "calls/s", f"4. idle pool (2 workers), cold, {IDLE_WINDOW} s",
              "total"),
             ("idle_fs_delayed", "calls/s", "   of them metadata (delayed)", "delayed"),
             ("idle_farm_ops", "ops/s", "   farm's own spool ops per second", "farm"),
             ("idle_fs_per_op", "ratio", "   FS requests per farm op", "ratio")]
    return rows


def build(runs: dict[str, list[dict]], cols: list, sizes: dict) -> dict[str, Any]:
    """metrics[key][column] = median/min/max over the runs, with the target and pass for
    the TARGET_DELAY column; by_kind[workload][column][kind] = FS requests per task (per
    second for the idle pool), medians."""
    metrics: dict[str, Any] = {}
    idle = [r for r in runs.get("idle_fs", []) if r.get("ok")]
    for key, unit, _label, how in _rows(sizes):
        name = key.split("_")[0]
        m: dict[str, Any] = {"unit": unit}
        for ckey, _title, _delay in cols:
            if name == "idle":
                vals = []
                for r in idle:
                    c = r["columns"].get(ckey, {})
                    fs = c.get("fs_calls")
                    if how == "farm":
                        vals.append(c.get("farm_ops_per_s"))
                    elif fs is None:
                        vals.append(None)
                    elif how == "ratio":
                        per_s = fs["total"] / c["window_s"]
                        vals.append(per_s / c["farm_ops_per_s"] if c["farm_ops_per_s"] else None)
                    else:
                        vals.append(fs[how] / c["window_s"])
            elif how in ("ms_per_hop", "tasks_per_s"):
                vals = [r.get(how) for r in runs.get(f"{name}@{ckey}", []) if r.get("ok")]
            else:
                vals = [_per_task(r, how) for r in runs.get(f"{name}@{ckey}", [])]
            m[ckey] = _stats(vals)
        if key in TARGETS:
            op, goal = TARGETS[key]
            m["target"] = f"{op} {goal:g}"
            tcol = m.get(f"slowfs_{TARGET_DELAY}", {})
            med = tcol.get("median")
            m["pass"] = None if med is None else (med >= goal if op == ">=" else med <= goal)
        metrics[key] = m
    by_kind: dict[str, Any] = {}
    for name, _w, _f, _q in WORKLOADS:
        by_kind[name] = {}
        for ckey, _t, _delay in cols:
            good = [r for r in runs.get(f"{name}@{ckey}", []) if r.get("ok") and "fs_calls" in r]
            if good:
                by_kind[name][ckey] = {k: statistics.median(r["fs_calls"][k] / r["tasks"]
                                                           for r in good)
                                       for k in good[0]["fs_calls"]}
    by_kind["idle"] = {}
    for ckey, _t, _delay in cols:
        got = [r["columns"][ckey] for r in idle if "fs_calls" in r["columns"].get(ckey, {})]
        if got:
            by_kind["idle"][ckey] = {k: statistics.median(c["fs_calls"][k] / c["window_s"]
                                                          for c in got)
                                     for k in got[0]["fs_calls"]}
    return {"metrics": metrics, "fs_calls_by_kind": by_kind}


W, V = 42, 16  # label and value column widths


def render(results: dict, cols: list, sizes: dict, runs: dict, info: dict) -> str:
    M = results["metrics"]
    titles = [t for _k, t, _d in cols]
    head = (f"{'figure':<{W}} {'unit':<10}" + "".join(f"{t:>{V}}" for t in titles)
            + f"  {'target (' + str(TARGET_DELAY) + ' us)':>16}")
    rule = "-" * len(head)
    lines = [
        f"farm {info['farm']} slow-fs benchmark ({info['git']}): {info['cpus']} cores, "
        f"Python {info['python']}, {info['platform']}",
        f"spools on {info['base']} ({info['fstype']}) and on slow-fs FUSE mounts of the same "
        f"disk; 1 local pool, 2 workers; {info['repeats']} run(s) per workload, medians",
        rule, head, rule]
    tkey = f"slowfs_{TARGET_DELAY}"
    for key, unit, label, _how in _rows(sizes):
        m = M[key]
        cells = []
        for ckey, _t, _d in cols:
            cell = num(m[ckey]["median"])
            if "target" in m and ckey == tkey:
                cell += {True: " pass", False: " FAIL", None: " -"}[m.get("pass")]
            cells.append(f"{cell:>{V}}")
        lines.append(f"{label:<{W}} {unit:<10}" + "".join(cells)
                     + f"  {m.get('target', ''):>16}".rstrip())
        if key.endswith("_fs_per_op"):
            lines.append("")
    failures = [f"    !! {name}: {r.get('error') or r.get('first_error')}"
                for name, rs in runs.items() for r in rs if not r.get("ok")]
    lines += failures[:8]
    lines.append(rule)
    lines += _kinds(results["fs_calls_by_kind"], cols)
    lines.append(rule)
    lines += [
        "FS requests: every request the mount's daemon received (scripts/slow-fs stats), from",
        "after farm.load() until the pools exited, as farm's own ops (driver + pools, row 8 of",
        "the main suite), per task (the chain: per hop; its warm-up and gate tasks included);",
        "the idle pool: per second over the window, no driver.  Metadata requests sleep the",
        "delay; flush, release, forget, read and write do not.  Targets: for the "
        f"{TARGET_DELAY} us column.",
        f"Kernel caches of the mounts: {info.get('slowfs_caches', '?')}."]
    return "\n".join(lines)


def _kinds(by_kind: dict, cols: list) -> list[str]:
    """FS requests by kind, for the first slow-fs column: kinds down, workloads across."""
    fcols = [c for c in cols if c[2] is not None]
    if not fcols:
        return []
    ckey, title, _d = fcols[0]
    work = [w for w in ("chain", "noop", "bash", "idle") if ckey in by_kind.get(w, {})]
    if not work:
        return []
    units = {"chain": "per hop", "noop": "per task", "bash": "per task", "idle": "per second"}
    kinds = sorted({k for w in work for k, v in by_kind[w][ckey].items()
                    if v and k not in ("total", "delayed")},
                   key=lambda k: -max(by_kind[w][ckey].get(k, 0) for w in work))
    lines = [f"{'FS requests by kind, ' + title:<{W}} {'kind':<10}"
             + "".join(f"{w + ' ' + units[w]:>{V}}" for w in work)]
    for k in (*kinds, "total"):
        lines.append(f"{'':<{W}} {k:<10}"
                     + "".join(f"{num(by_kind[w][ckey].get(k, 0)):>{V}}" for w in work))
    return lines


def run_mode(args, base: str, info: dict, rt) -> int:
    """The whole --slow-fs run; rt is run.py's module (its Job, _run_job, progress...)."""
    try:
        delays = sorted({int(x) for x in args.slow_fs.split(",") if x.strip()})
    except ValueError:
        rt.progress(f"--slow-fs takes microseconds, as in 500,2000 (not {args.slow_fs!r})")
        return 2
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        rt.progress("--slow-fs needs root and /dev/fuse (scripts/slow-fs mounts FUSE "
                    "filesystems)")
        return 2
    mode = "quick" if args.quick else "full"
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = {name: (quick if args.quick else full) for name, _w, full, quick in WORKLOADS}
    sizes["idle"] = IDLE_WINDOW
    cols = _columns(delays, info["fstype"])
    rt.progress(f"farm slow-fs benchmark ({mode}, {repeats} run(s) per workload), columns: "
                + ", ".join(t for _k, t, _d in cols) + f"; under {base}")
    t_start = time.monotonic()
    runs: dict[str, list[dict]] = {}
    dead: set[str] = set()
    dirs: dict[int, str] = {}
    settings: dict[int, str] = {}
    try:
        dirs = start_mounts(delays, base, rt.progress)
        for d, fsdir in dirs.items():
            with open(os.path.join(fsdir, "settings")) as f:
                settings[d] = f.read().strip()
        for rep in range(1, repeats + 1):
            for name, workload, _full, _quick in WORKLOADS:
                job = rt.Job(name, "farm", workload, sizes[name], sizes[name])
                for ckey, title, delay in cols:
                    key = f"{name}@{ckey}"
                    if key in dead:
                        continue
                    kw: dict[str, Any] = {}
                    if delay is not None:
                        kw = {"spool_dir": os.path.join(dirs[delay], "mnt"),
                              "env": {ENV: dirs[delay]}}
                    rt._run_job(job, sizes[name], f"{title}, run {rep}/{repeats}", base, runs,
                                dead, key=key, **kw)
                    _report_fs(runs[key][-1], rt.progress)
        job = rt.Job("idle_fs", "farm", "idle_fs", IDLE_WINDOW, IDLE_WINDOW, once=True)
        idle_cols = [{"key": ck, "spool": os.path.join(dirs[d], "mnt", f"idle-{ck}", "spool")
                      if d is not None else os.path.join(base, f"idle-{ck}", "spool"),
                      "fsdir": dirs.get(d) if d is not None else None} for ck, _t, d in cols]
        rt._run_job(job, IDLE_WINDOW, "(one run, every column at once)", base, runs, dead,
                    env={IDLE_ENV: json.dumps(idle_cols)})
    finally:
        stop_mounts(dirs, rt.progress)
    caches = {s.split(" ", 1)[1].split(" data_delay")[0] for s in settings.values()}
    info = {**info, "repeats": repeats, "mode": mode, "slowfs_settings": settings,
            "slowfs_caches": "; ".join(sorted(caches)) + " (seconds: entry, attributes, "
                             "negative entries; SLOW_FS_*_TIMEOUT)"}
    results = build(runs, cols, sizes)
    table = render(results, cols, sizes, runs, info)
    doc = {"mode": f"slow-fs {mode}", "delays_us": delays, "repeats": repeats, "sizes": sizes,
           "columns": [{"key": k, "title": t, "delay_us": d} for k, t, d in cols],
           "machine": info, "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
           **results, "runs": runs, "elapsed_s": time.monotonic() - t_start, "table": table}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    print(table)
    rt.progress(f"done in {time.monotonic() - t_start:.0f} s; figures in "
                f"{os.path.abspath(args.json)}")
    return 0 if all(r.get("ok") for rs in runs.values() for r in rs) else 1


def idle_summary(r: dict) -> str:
    """The progress line of the idle child."""
    parts = []
    for ck, c in r["columns"].items():
        fs = c.get("fs_calls")
        parts.append(f"{ck} farm {c['farm_ops_per_s']:.2f} ops/s"
                     + (f", FS {fs['total'] / c['window_s']:.2f} requests/s" if fs else ""))
    return "; ".join(parts)


def _report_fs(r: dict, progress) -> None:
    fs, n = r.get("fs_calls"), r.get("tasks")
    if r.get("ok") and n:
        farm_ops = sum(r.get("driver_ops", {}).values()) + sum(r.get("pool_ops", {}).values())
        progress(f"  farm {farm_ops / n:.1f} ops/task"
                 + (f"; at the FS {fs['total'] / n:.1f} requests/task "
                    f"({fs['delayed'] / n:.1f} delayed)" if fs else ""))
