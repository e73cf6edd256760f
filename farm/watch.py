"""farm watch: a live view of a run, read from the spool alone.

``Watcher.snapshot()`` gathers what the spool holds into a plain ``Snapshot`` (numbers and
strings, no rich objects); ``render()`` turns a snapshot into a rich renderable; ``run()``
is the command's loop.  Tests check the numbers of a snapshot, and the text of a frame.

What a refresh costs.  The spool may be on NFS or Lustre, where every metadata call is a
round trip to a server that every node shares, and a watch may run for hours; so a refresh
lists each state directory once and reads only what it has not read before:

- listings (always): waiting/, ready/, claimed/ and each claimed/POOL.W, the 256 shards of
  results/, pools/, blocks/, control/: 262 + (worker directories) listings;
- reads (only what is new since the last refresh): one per new result file (a results
  bundle is read once for all of its keys), one task header per task first seen queued (a
  task bundle once for all of its tasks), one record per new block, one stderr tail per
  new failure shown;
- reads (every refresh): a stat and a read of each running pool's heartbeat (exited pools
  are read once), and the driver's lock and heartbeat (2) while there is a driver;
- squeue: one call for all Slurm blocks not yet seen ended, at most every SQUEUE_EVERY
  seconds, in a thread of its own (a slow slurmctld does not hold a refresh up).

Results are written once and never change; a failure may be moved away by a rerun and a
new result linked in its place, which is then another file.  So each result's header is
cached by key together with the inode number its listing showed (os.scandir gives it with
no extra call): a key whose inode is unchanged is not read again.  A steady refresh of a
run with P pools and W workers is thus 262 + W listings, 2P + 2 small reads, plus the new
results.  ``run()`` waits at least 4 times as long as the last refresh took, so a slow
metadata server is never kept busy by a watch more than a fifth of the time.
"""

from __future__ import annotations

import heapq
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from farm.errors import CorruptFile, SpoolError
from farm.spool import (
    OK,
    SHARDS,
    Spool,
    entry_tasks,
    fs,
    is_bundle,
    is_entry,
    records,
    split_name,
)
from farm.spool.layout import HEAD

STATES = ("waiting", "ready", "running", "done", "failed")
UNKNOWN_APP = "?"  # tasks whose header is not read yet (see Watcher budget)
RATE_WINDOW = 60.0  # seconds of results the rate is measured over
SQUEUE_EVERY = 30.0  # seconds between two squeue calls
SQUEUE_TIMEOUT = 5.0
DRIVER_LEASE = 10.0  # a driver on another host whose counter stands still this long: gone
TAIL_BYTES = 4096  # how much of the end of a stream is read for its last lines
LIVE_BUDGET = 2000  # files a live refresh reads at most (the rest at the next ones)
MAX_ROWS = 20  # apps, pools and blocks shown at most

# Files read by watchers in this process, by kind ("result", "task", "tail", "pool",
# "block", "driver"): what tests measure the cache with.
READS: Counter[str] = Counter()


@dataclass
class Counts:
    """Tasks by state.  unread: results listed but not read yet (done or failed: not known
    until read); they count in the total and as finished."""
    waiting: int = 0
    ready: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    unread: int = 0

    def add(self, state: str, n: int = 1) -> None:
        setattr(self, state, getattr(self, state) + n)

    @property
    def remaining(self) -> int:
        return self.waiting + self.ready + self.running

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.unread

    @property
    def total(self) -> int:
        return self.remaining + self.finished


@dataclass
class PoolRow:
    pool: str
    host: str
    block: str
    workers: int
    busy: int
    age: float  # seconds since its heartbeat file was written (this machine's clock)
    state: str  # live, draining, silent


@dataclass
class BlockRow:
    block: str
    provider: str
    job_id: str
    state: str  # Slurm's (pending, running...; ended; unknown) or, for others, its pools'
    live_pools: int


@dataclass
class Failure:
    key: str
    name: str
    status: str  # failed, dep_failed, corrupt
    error: str  # the first line of the error
    t_end: float | None
    stream: str  # where the tail is from: "stderr: PATH" (its own file) or "output: FILE
    # bytes A-B" (its part of its worker's output file), "" if the task kept no stream
    tail: list[str]

    @property
    def label(self) -> str:
        return f"{self.name}-{self.key[:8]}"


@dataclass
class Snapshot:
    spool: str
    time: float
    counts: Counts
    apps: dict[str, Counts]
    rate: float | None  # tasks finished per second over the last RATE_WINDOW seconds
    eta: float | None  # seconds until the remaining tasks are done, at that rate
    pools: list[PoolRow]  # live (and draining) pools, then silent ones
    exited_pools: int
    dead_pools: int
    blocks: list[BlockRow]
    failures: list[Failure]  # the latest ones, newest first
    failed_total: int
    driver: str  # running, gone, none
    driver_desc: str
    cost: dict[str, int] = field(default_factory=dict)  # filesystem calls of this refresh
    note: str = ""  # a problem reading the spool, shown above the rest

    @property
    def live_pools(self) -> list[PoolRow]:
        return [p for p in self.pools if p.state != "silent"]

    @property
    def silent_pools(self) -> list[PoolRow]:
        return [p for p in self.pools if p.state == "silent"]

    @property
    def finished(self) -> bool:
        """Nothing left to run and no driver to submit more."""
        return self.counts.remaining == 0 and self.driver != "running"


_SHOWN = ("status", "error", "t_end", "stderr", "output")  # a failure's fields kept


class _Result(NamedTuple):
    ino: int  # of the file the listing showed: another inode is another result
    ok: bool
    name: str
    t_start: float | None
    t_end: float | None


class Watcher:
    """Snapshots of one spool, each reading only what changed since the last (see the
    module's docstring for the cost).  budget: files read at most per snapshot (None: no
    limit); what is left is read by the next ones, and counted meanwhile as unread results
    or tasks of app '?'."""

    def __init__(self, spool: Spool, failures: int = 5, tail: int = 3,
                 budget: int | None = None):
        self.spool = spool
        self.nfailures = failures
        self.ntail = tail
        self.budget = budget
        self._results: dict[str, _Result] = {}
        self._failed: dict[str, dict[str, Any]] = {}  # key -> header, of failures
        self._names: dict[str, str] = {}  # key -> app name, from task headers
        self._bundles: dict[str, list[str]] = {}  # task bundle id -> its keys
        self._exited: dict[str, dict[str, Any]] = {}  # pool -> its last heartbeat
        self._blocks: dict[str, dict[str, Any]] = {}  # block record name -> record
        self._tails: dict[tuple[str, int], tuple[str, list[str]]] = {}
        self._driver_seen: tuple[str, Any, float] | None = None  # id, counter, since
        self._squeue = _Squeue()
        self._left = 0

    # -- the snapshot ---------------------------------------------------------------------

    def snapshot(self, wait_squeue: bool = False) -> Snapshot:
        """What the spool holds now.  wait_squeue: wait for squeue's answer (--once) instead
        of showing the last one."""
        ops0 = Counter(fs.OPS)
        now = time.time()
        self._left = self.budget if self.budget is not None else -1
        queued, anon = self._queued()  # before the results: a task moves forward only
        listed = self._list_results()
        self._read_results(listed)
        counts, apps = Counts(), dict[str, Counts]()
        for key, state in queued.items():
            if key in listed:
                continue
            name = self._name(key) or UNKNOWN_APP
            counts.add(state)
            apps.setdefault(name, Counts()).add(state)
        for state, n in anon.items():
            counts.add(state, n)
            apps.setdefault(UNKNOWN_APP, Counts()).add(state, n)
        recent, first = 0, None
        for key in listed:
            r = self._results.get(key)
            if r is None:
                counts.unread += 1
                continue
            state = "done" if r.ok else "failed"
            counts.add(state)
            apps.setdefault(r.name, Counts()).add(state)
            if r.t_end is not None:
                recent += r.t_end > now - RATE_WINDOW
                start = r.t_start if r.t_start is not None else r.t_end
                first = start if first is None else min(first, start)
        rate = None
        if first is not None:
            rate = recent / max(1.0, min(RATE_WINDOW, now - first))
        eta = counts.remaining / rate if rate and counts.remaining else None
        pools, exited, dead = self._pools()
        driver, desc = self._driver()
        snap = Snapshot(
            spool=self.spool.path, time=now, counts=counts, apps=apps, rate=rate, eta=eta,
            pools=pools, exited_pools=exited, dead_pools=dead,
            blocks=self._block_rows(pools, wait_squeue), failures=self._failures(listed),
            failed_total=counts.failed, driver=driver, driver_desc=desc)
        snap.cost = {k: v - ops0[k] for k, v in fs.OPS.items() if v - ops0[k]}
        return snap

    def _spend(self) -> bool:
        """May this snapshot read one more file?"""
        if self._left == 0:
            return False
        self._left -= 1
        return True

    # -- tasks without a result: listings of waiting/, ready/, claimed/ -------------------

    def _queued(self) -> tuple[dict[str, str], Counter[str]]:
        """key -> waiting/ready/running (a later state wins: listed in the order tasks
        move, so a task moving on between two listings is seen in one of them), and how
        many tasks of entries not read yet are in each state."""
        out: dict[str, str] = {}
        anon: Counter[str] = Counter()
        dirs = [(self.spool.p("waiting"), "waiting"), (self.spool.p("ready"), "ready")]
        dirs += [(self.spool.p("claimed", w), "running")
                 for w in sorted(fs.listdir(self.spool.p("claimed")))]
        seen_bundles = set()
        for d, state in dirs:
            for name in fs.listdir(d):
                if not is_entry(name):
                    continue
                key = split_name(name)[0]
                if not is_bundle(key):
                    out[key] = state
                    continue
                seen_bundles.add(key)
                keys = self._bundle_keys(key, os.path.join(d, name))
                if keys is None:
                    anon[state] += entry_tasks(name)
                for k in keys or ():
                    out[k] = state
        for bid in set(self._bundles) - seen_bundles:
            del self._bundles[bid]  # (entries come and go; a bundle's id is never reused)
        return out, anon

    def _bundle_keys(self, bid: str, path: str) -> list[str] | None:
        keys = self._bundles.get(bid)
        if keys is None and self._spend():
            READS["task"] += 1
            data = fs.peek(path)  # (None: moved on meanwhile; seen where it went, or later)
            try:
                heads = _headers("TASK", data, path, None) if data is not None else None
            except CorruptFile:
                heads = None  # (counted as tasks of app '?'; a worker will quarantine it)
            if heads is not None:
                for k, h in heads:
                    self._names[k] = sys.intern(str(h.get("name") or "task"))
                keys = self._bundles[bid] = [k for k, _ in heads]
        return keys

    def _name(self, key: str) -> str | None:
        """A task's app name, from its header (read once); None if this snapshot may read
        no more files.  A payload that is gone or damaged (quarantined: its state entry
        was seen, so it was published before) is app '?'."""
        name = self._names.get(key)
        if name is None:
            if not self._spend():
                return None
            READS["task"] += 1
            path = self.spool.task_path(key)
            data = _read_head(path)
            if data is None and (kept := self.spool.kept_bundle(key)) is not None:
                path, data = kept, _read_head(kept)  # (of a bundle without links)
            try:
                heads = _headers("TASK", data, path, key)
            except CorruptFile:
                heads = []
            for k, h in heads:  # (a bundle's file: every task of it)
                self._names[k] = sys.intern(str(h.get("name") or "task"))
            name = self._names.setdefault(key, UNKNOWN_APP)
        return name

    # -- results: the shards' listings, and the headers not read yet ----------------------

    def _list_results(self) -> dict[str, int]:
        """key -> inode of every result: one listing per shard."""
        listed: dict[str, int] = {}
        for s in SHARDS:
            listed.update({n: i for n, i in fs.scan(self.spool.p("results", s)).items()
                           if is_entry(n)})
        for key in [k for k in self._results if k not in listed]:
            del self._results[key]  # (a failure moved away by a rerun)
            self._failed.pop(key, None)
        return listed

    def _read_results(self, listed: dict[str, int]) -> None:
        for key, ino in listed.items():
            r = self._results.get(key)
            if r is not None and r.ino == ino:
                continue
            if not self._spend():
                return
            READS["result"] += 1
            path = self.spool.result_path(key)
            data = _read_head(path)
            if data is None:
                continue  # moved away since the listing (a rerun): the next one says
            try:
                heads = _headers("RESULT", data, path, key)
            except CorruptFile as e:
                heads = [(key, {"status": "corrupt", "error": f"CorruptFile: {e}"})]
            for k, h in heads:
                # A results bundle holds records of keys that lost their link race too:
                # only those whose result is this very file are theirs.
                if listed.get(k) == ino and (k == key or k not in self._results
                                             or self._results[k].ino != ino):
                    self._keep(k, ino, h)

    def _keep(self, key: str, ino: int, h: dict[str, Any]) -> None:
        ok = h.get("status") == OK
        name = h.get("name") or self._name(key)  # (a dep_failed result may not name it)
        if name is None:
            return  # (its task header is not read yet: the result is read again later)
        self._results[key] = _Result(ino, ok, sys.intern(str(name)), _num(h.get("t_start")),
                                     _num(h.get("t_end")))
        self._names.pop(key, None)  # (the result names it now)
        if ok:
            self._failed.pop(key, None)
        else:
            # (only what a frame shows: a run may have many failures)
            self._failed[key] = {k: h.get(k) for k in _SHOWN if h.get(k) is not None}

    def _failures(self, listed: dict[str, int]) -> list[Failure]:
        latest = heapq.nlargest(self.nfailures, self._failed.items(),
                                key=lambda kh: _num(kh[1].get("t_end")) or 0)
        out = []
        for key, h in latest:
            stream, tail = self._tail(key, listed.get(key, 0), h)
            error = str(h.get("error") or h.get("status") or "").strip().splitlines()
            out.append(Failure(key, self._results[key].name, str(h.get("status")),
                               error[0] if error else "", _num(h.get("t_end")), stream, tail))
        return out

    def _tail(self, key: str, ino: int, h: dict[str, Any]) -> tuple[str, list[str]]:
        """The last lines a failed task wrote to stderr (its own file, or its part of its
        worker's output file), read once per result."""
        got = self._tails.get((key, ino))
        if got is not None:
            return got
        stream, tail = "", []
        out = h.get("output")
        if h.get("stderr"):
            path = str(h["stderr"])
            stream = "stderr: " + (os.path.relpath(path, self.spool.path) if path.startswith(
                self.spool.path + os.sep) else path)
            tail = _last_lines(path, 0, None, self.ntail)
        elif isinstance(out, list) and len(out) == 3:
            path = os.path.join(self.spool.path, str(out[0]))
            stream = f"output: {out[0]} bytes {out[1]}-{out[2]}"
            try:
                tail = _last_lines(path, int(out[1]), int(out[2]), self.ntail)
            except (TypeError, ValueError):
                tail = []
        if len(self._tails) > 10 * max(self.nfailures, 10):
            self._tails.clear()
        self._tails[(key, ino)] = (stream, tail)
        return stream, tail

    # -- pools, blocks, the driver --------------------------------------------------------

    def _pools(self) -> tuple[list[PoolRow], int, int]:
        names = fs.listdir(self.spool.p("pools"))
        running = []
        now = time.time()
        for n in names:
            pool = n[:-5]
            if not n.endswith(".yaml") or pool in self._exited:
                continue
            path = self.spool.p("pools", n)
            READS["pool"] += 1
            st = fs.stat(path)
            info = _yaml(fs.peek(path))
            if st is None or not isinstance(info, dict) or "pool" not in info:
                continue
            info["age"] = now - st.st_mtime
            if info.get("state") == "running":
                running.append(info)
            else:
                self._exited[pool] = info  # (its last heartbeat: it never writes again)
        live = {id(p) for p in self.spool.live_pools(running)}
        rows = [PoolRow(str(p["pool"]), str(p.get("host") or "?"), str(p.get("block") or ""),
                        _int(p.get("workers")), _int(p.get("busy")), float(p["age"]),
                        ("draining" if p.get("draining") else "live") if id(p) in live
                        else "silent") for p in running]
        rows.sort(key=lambda r: (r.state == "silent", r.pool))
        present = {n[:-5] for n in names if n.endswith(".yaml")}
        for pool in [p for p in self._exited if p not in present]:
            del self._exited[pool]  # (declared dead, or cleaned up)
        dead = sum(n.endswith(".dead") for n in names)
        return rows, len(self._exited), dead

    def _block_rows(self, pools: list[PoolRow], wait_squeue: bool) -> list[BlockRow]:
        names = [n for n in fs.listdir(self.spool.p("blocks")) if n.endswith(".yaml")]
        for n in names:
            if n not in self._blocks:
                READS["block"] += 1
                rec = _yaml(fs.peek(self.spool.p("blocks", n)))
                if isinstance(rec, dict) and "block" in rec:
                    self._blocks[n] = rec  # (written once, when the block is submitted)
        recs = [self._blocks[n] for n in sorted(names) if n in self._blocks]
        slurm = [str(r.get("job_id")) for r in recs
                 if r.get("provider") == "slurm" and r.get("job_id")]
        jobs = self._squeue.states(slurm, wait_squeue) if slurm else {}
        rows = []
        for r in recs:
            block, job = str(r["block"]), str(r.get("job_id") or "")
            mine = [p for p in pools if p.block == block]
            live = sum(p.state != "silent" for p in mine)
            if r.get("provider") == "slurm":
                state = jobs.get(job, "unknown")
            elif live:
                state = "running"
            elif mine:
                state = "silent"
            elif any(str(e.get("block")) == block for e in self._exited.values()):
                state = "exited"
            else:
                state = "no pool"
            rows.append(BlockRow(block, str(r.get("provider") or "?"), job, state, live))
        return rows

    def _driver(self) -> tuple[str, str]:
        """running / gone / none, and who it is.  On this host the lock's pid and process
        start time decide; on another, its heartbeat counter standing still for
        DRIVER_LEASE seconds on this machine's clock (no clocks compared)."""
        if "driver.lock" not in fs.listdir(self.spool.p("control")):
            self._driver_seen = None
            return "none", "no driver"
        READS["driver"] += 2
        owner = _yaml(fs.peek(self.spool.p("control", "driver.lock")))
        if not isinstance(owner, dict):
            return "running", "driver: its lock is being written, or is damaged"
        desc = f"driver pid {owner.get('pid', '?')} on {owner.get('host', '?')}"
        hb = _yaml(fs.peek(self.spool.p("control", f"driver-{owner.get('id')}.yaml")))
        counter = hb.get("counter") if isinstance(hb, dict) else None
        if owner.get("host") == socket.gethostname():
            alive = _same_host_alive(owner)
        else:
            mono = time.monotonic()
            seen = self._driver_seen
            if seen is None or seen[0] != owner.get("id") or seen[1] != counter:
                self._driver_seen = seen = (str(owner.get("id")), counter, mono)
            alive = mono - seen[2] < DRIVER_LEASE
        if alive:
            return "running", desc
        return "gone", f"{desc} is gone (it left its lock behind)"


# -- helpers --------------------------------------------------------------------------------

def _read_head(path: str) -> bytes | None:
    """Enough of a record for its header (a bundle whole), as a hint: None if this client
    cannot see it now (the next refresh looks again)."""
    data = fs.peek(path, HEAD)
    if data is not None and len(data) == HEAD and (
            records.is_bundle(data) or data.count(b"\n", 0, HEAD) < 2):
        data = fs.peek(path)
    return data


def _headers(kind: str, data: bytes | None, path: str,
             key: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(key, header) of the record of key in data, or of every record if data is a bundle
    (key None: a bundle is expected).  Signatures are not checked: nothing is unpickled."""
    if data is None:
        return []
    if records.is_bundle(data):
        out = []
        for k, rec in records.bundle_records(data, path)[1]:
            try:
                out.append((k, records.decode_in_bundle(kind, rec, path, k)[0]))
            except CorruptFile:
                continue
        return out
    header = records.decode(kind, data, path)[0]
    return [(key or str(header.get("key")), header)]


def _last_lines(path: str, start: int, end: int | None, n: int) -> list[str]:
    """The last n lines of path's bytes start..end (end None: the end of the file)."""
    READS["tail"] += 1
    try:
        with open(path, "rb") as f:
            if end is None:
                end = f.seek(0, os.SEEK_END)
            at = max(start, end - TAIL_BYTES)
            f.seek(at)
            data = f.read(max(0, end - at))
    except OSError as e:
        return [f"(cannot read it: {e.strerror or e})"]
    lines = data.decode(errors="replace").splitlines()
    if at > start and lines:
        lines = lines[1:]  # (the first one is cut)
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines[-n:] if n > 0 else []


def _same_host_alive(owner: dict[str, Any]) -> bool:
    import psutil
    try:
        return abs(psutil.Process(int(owner["pid"])).create_time()
                   - float(owner["proc_start"])) < 1.0
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


class _Squeue:
    """Slurm jobs' states from squeue: one call for all job ids not seen ended, at most
    every SQUEUE_EVERY seconds, in a thread (the answer shows at the next refresh).  A
    failure is "unknown", never an error."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self.ended: set[str] = set()
        self.last = -1e9
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def states(self, jobs: list[str], wait: bool) -> dict[str, str]:
        ask = [j for j in jobs if j not in self.ended]
        if ask and (self.thread is None or not self.thread.is_alive()) and (
                time.monotonic() - self.last >= SQUEUE_EVERY):
            self.last = time.monotonic()
            self.thread = threading.Thread(target=self._ask, args=(ask,), daemon=True,
                                           name="farm-squeue")
            self.thread.start()
            if wait:
                self.thread.join(SQUEUE_TIMEOUT + 1)
        with self.lock:
            return {j: "ended" if j in self.ended else self.known.get(j, "unknown")
                    for j in jobs}

    def _ask(self, jobs: list[str]) -> None:
        exe = shutil.which("squeue")
        got: dict[str, str] | None = None
        if exe is not None:
            try:
                out = subprocess.run([exe, "-h", "-o", "%i %T", "-j", ",".join(jobs)],
                                     capture_output=True, text=True, timeout=SQUEUE_TIMEOUT,
                                     stdin=subprocess.DEVNULL)
                if out.returncode == 0 or "invalid job id" in out.stderr.lower():
                    got = dict(line.split() for line in out.stdout.splitlines()
                               if len(line.split()) == 2)
            except (OSError, subprocess.SubprocessError):
                got = None
        with self.lock:
            for j in jobs:
                if got is None:
                    self.known[j] = "unknown"
                elif j in got:
                    self.known[j] = got[j].lower()
                else:
                    self.ended.add(j)  # (squeue forgets a job a while after it ends)


def _yaml(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return yaml.safe_load(data)
    except (yaml.YAMLError, ValueError):
        return None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


# -- rendering --------------------------------------------------------------------------------

STYLE = {"waiting": "dim", "ready": "cyan", "running": "yellow", "done": "green",
         "failed": "red"}


def render(snap: Snapshot, bar: bool = True) -> RenderableType:
    """A frame: the snapshot as a rich renderable.  bar: draw a progress bar (on a
    terminal; in plain text it is only noise)."""
    c = snap.counts
    parts: list[RenderableType] = []
    parts.append(Text.assemble(("farm watch ", "bold"), snap.spool))
    parts.append(Text.assemble(time.strftime("%H:%M:%S", time.localtime(snap.time)), "  ",
                               _driver_text(snap)))
    if snap.note:
        parts.append(Text(snap.note, style="bold red"))
    line = Text(f"tasks {c.total}: ")
    for i, state in enumerate(STATES):
        line.append(", " if i else "")
        line.append(f"{state} {getattr(c, state)}", style=STYLE[state] if getattr(
            c, state) else "")
    if c.unread:
        line.append(f" ({c.unread} results not read yet)", style="dim")
    parts.append(line)
    if bar and c.total:
        grid = Table.grid(padding=(0, 1))
        grid.add_row(ProgressBar(total=c.total, completed=c.finished, width=40),
                     Text(f"{100 * c.finished / c.total:.0f}%"))
        parts.append(grid)
    parts.append(_rate_text(snap))
    if snap.apps:
        parts.append(_apps_table(snap))
    parts.append(Text(""))
    parts.append(_pools_part(snap))
    if snap.blocks:
        parts.append(_blocks_part(snap))
    if snap.failures:
        parts.append(Text(""))
        parts.append(_failures_part(snap))
    return Group(*parts)


def _driver_text(snap: Snapshot) -> Text:
    style = {"running": "green", "gone": "red"}.get(snap.driver, "dim")
    return Text(snap.driver_desc, style=style)


def _rate_text(snap: Snapshot) -> Text:
    c = snap.counts
    if snap.finished:
        return Text(f"finished: {c.done} done, {c.failed} failed", style="bold")
    rate = "rate -" if snap.rate is None else f"rate {_per_s(snap.rate)} tasks/s"
    eta = (f"ETA {_hms(snap.eta)} for {c.remaining} tasks" if snap.eta is not None
           else f"ETA - for {c.remaining} tasks")
    return Text(f"{rate} (last minute)   {eta}")


def _apps_table(snap: Snapshot) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    t.add_column("app", overflow="fold")
    for state in (*STATES, "total"):
        t.add_column(state, justify="right", style=STYLE.get(state, ""))
    apps = sorted(snap.apps.items(), key=lambda kv: (-kv[1].remaining, kv[0]))
    for name, ac in apps[:MAX_ROWS]:
        t.add_row(Text(name), *(str(getattr(ac, s)) for s in STATES), str(ac.total))
    if len(apps) > MAX_ROWS:
        t.add_row(Text(f"... {len(apps) - MAX_ROWS} more apps", style="dim"))
    return t


def _pools_part(snap: Snapshot) -> RenderableType:
    live, silent = snap.live_pools, snap.silent_pools
    head = f"pools: {len(live)} live"
    for n, what in ((len(silent), "silent"), (snap.exited_pools, "exited"),
                    (snap.dead_pools, "declared dead")):
        if n:
            head += f", {n} {what}"
    if live:
        head += (f"; workers {sum(p.workers for p in live)}, "
                 f"busy {sum(p.busy for p in live)}")
    if not snap.pools:
        return Text(head, style="bold")
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    for col in ("pool", "host", "block", "workers", "busy", "heartbeat", "state"):
        t.add_column(col, justify="right" if col in ("workers", "busy") else "left",
                     overflow="fold")
    for p in snap.pools[:MAX_ROWS]:
        style = "red" if p.state == "silent" else ""
        t.add_row(Text(p.pool), Text(p.host), Text(p.block), str(p.workers), str(p.busy),
                  f"{_ago(p.age)} ago", Text(p.state, style=style))
    if len(snap.pools) > MAX_ROWS:
        t.add_row(Text(f"... {len(snap.pools) - MAX_ROWS} more", style="dim"))
    return Group(Text(head, style="bold"), t)


def _blocks_part(snap: Snapshot) -> RenderableType:
    over = {"ended", "exited", "completed", "cancelled", "failed", "timeout"}
    active = [b for b in snap.blocks if b.state not in over]
    states = Counter(b.state for b in snap.blocks)
    head = f"blocks: {len(snap.blocks)} (" + ", ".join(
        f"{n} {s}" for s, n in sorted(states.items())) + ")"
    if not active:
        return Text(head, style="bold")
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    for col in ("block", "provider", "job id", "state", "live pools"):
        t.add_column(col, justify="right" if col == "live pools" else "left", overflow="fold")
    for b in active[:MAX_ROWS]:
        t.add_row(Text(b.block), Text(b.provider), Text(b.job_id),
                  Text(b.state, style="red" if b.state in ("unknown", "silent") else ""),
                  str(b.live_pools))
    if len(active) > MAX_ROWS:
        t.add_row(Text(f"... {len(active) - MAX_ROWS} more", style="dim"))
    return Group(Text(head, style="bold"), t)


def _failures_part(snap: Snapshot) -> RenderableType:
    shown = len(snap.failures)
    lines = [Text(f"failures: {snap.failed_total}"
                  + (f" (the latest {shown})" if shown < snap.failed_total else ""),
                  style="bold")]
    for f in snap.failures:
        when = time.strftime("%H:%M:%S", time.localtime(f.t_end)) if f.t_end else "--:--:--"
        lines.append(Text.assemble(f"  {when} ", (f.label, "bold"), f" [{f.status}] ",
                                   (f.error, "red")))
        if f.stream:
            lines.append(Text(f"      {f.stream}", style="dim"))
        for t in f.tail:
            lines.append(Text(f"      | {t}"))
    return Group(*lines)


def _per_s(rate: float) -> str:
    return f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


# -- the command's loop -----------------------------------------------------------------------

def run(spool: Spool, once: bool = False, interval: float = 2.0, failures: int = 5,
        console: Console | None = None) -> int:
    """farm watch: one frame (once), or a frame every interval until the run is finished
    (no task waiting, ready or running, and no live driver) or Ctrl-C.  On a terminal the
    frames replace each other on the full screen, and the last one stays printed after;
    otherwise (a pipe, a file) they follow each other as plain text."""
    console = console or Console(highlight=False)
    tty = console.is_terminal
    if once:
        try:
            snap = Watcher(spool, failures).snapshot(wait_squeue=True)
        except OSError as e:
            raise SpoolError(f"cannot read the spool: {fs.explain(e)}") from None
        console.print(render(snap, bar=tty))
        return 0
    watcher = Watcher(spool, failures, budget=LIVE_BUDGET)
    last: Snapshot | None = None
    restore = _sigterm_as_interrupt()
    try:
        if not tty:
            for last in _frames(watcher, interval):
                console.print(render(last, bar=False))
                console.print()
            return 0
        from rich.live import Live
        with Live(console=console, screen=True, auto_refresh=False) as live:
            for last in _frames(watcher, interval):
                live.update(render(last), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        restore()
    if tty and last is not None:
        console.print(render(last))  # (the full screen is gone: keep the last frame)
    return 0


def _frames(watcher: Watcher, interval: float) -> Iterator[Snapshot]:
    """Snapshots every interval (or 4 times as long as the last took, if more), the last
    one when the run is finished.  A spool that cannot be read for a while (an NFS server
    restarting) shows the last snapshot with the error, until it can."""
    last: Snapshot | None = None
    while True:
        t0 = time.monotonic()
        try:
            snap = watcher.snapshot()
        except OSError as e:
            if last is None:
                raise SpoolError(f"cannot read the spool: {fs.explain(e)}") from None
            snap = last
            snap.note = (f"cannot read the spool ({fs.explain(e)}) at "
                         f"{time.strftime('%H:%M:%S')}; showing what it held before")
        yield snap
        if snap.finished and not snap.counts.unread and not snap.note:
            return
        last = snap
        took = time.monotonic() - t0
        time.sleep(max(interval - took, 4 * took, 0.0))


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM (kill, timeout) quits like Ctrl-C, so that the terminal is restored.
    Returns what puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)

    def restore() -> None:
        signal.signal(signal.SIGTERM, old)

    return restore
