"""What happened to the tasks of a spool, read from the spool alone (no database): each
task's state, its attempts and their outcomes.  Used by farm trace, list, show and logs.

A task is in exactly one state (docs/spool-format.md): waiting, ready or running while its
entry is in waiting/, ready/ or claimed/, done or failed once it has a result.  An attempt
that failed and was retried, or was lost with its worker, left attempts/KEY.N; the last
attempt is the result itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from farm.errors import ConfigError, CorruptFile
from farm.spool import OK, Spool, fs, is_bundle

# The columns of farm trace, one row per attempt (GNU parallel's joblog and Nextflow's
# trace have the same habits).
COLUMNS = ("key", "task", "app", "attempt", "status", "exit_code", "host", "pool", "worker",
           "submitted", "started", "ended", "duration", "cpu", "maxrss_kb")


@dataclass
class Task:
    key: str
    state: str  # waiting, ready, running, done, failed
    header: dict[str, Any] = field(default_factory=dict)  # the task's own (name, app...)
    result: dict[str, Any] | None = None  # the result's header, once it has one

    @property
    def name(self) -> str:
        return str(self.header.get("name") or (self.result or {}).get("name") or "task")

    @property
    def label(self) -> str:
        return f"{self.name}-{self.key[:8]}"


def states(spool: Spool) -> dict[str, str]:
    """key -> waiting/ready/running for the tasks without a result (one listing per state
    directory; a bundle's entry stands for each of its tasks)."""
    out: dict[str, str] = {}
    for state, path, keys in spool.entries():
        if is_bundle(os.path.basename(path)):
            for k in keys:
                out.setdefault(k, state)
        else:
            out[keys[0]] = state
    return out


def tasks(spool: Spool) -> list[Task]:
    """Every task of the spool, with its state and its result's header (if any)."""
    out = [Task(k, "done" if h.get("status") == OK else "failed", result=h)
           for k, h in spool.iter_results()]
    have = {t.key for t in out}
    out += [Task(k, s) for k, s in states(spool).items() if k not in have]
    for t in out:
        t.header = _header(spool, t.key)
    return out


def _header(spool: Spool, key: str) -> dict[str, Any]:
    try:
        return spool.task_header(key) or {}
    except CorruptFile:
        return {}


def find(spool: Spool, ref: str) -> Task:
    """The task named by ref: NAME-KEY8 (as messages print it), a key, or a key prefix of
    at least 6 characters."""
    m = re.fullmatch(r"(?:.*-)?([0-9a-f]{6,32})", ref)
    if not m:
        raise ConfigError(f"{ref!r} names no task: give NAME-KEY8 (as farm prints it), a key "
                          "or a key prefix of 6 characters or more")
    keys = spool.task_keys(m[1])
    queued = states(spool) if not keys else None
    if queued is not None:  # (queued in a bundle without links: no name of its own yet)
        keys = sorted(k for k in queued if k.startswith(m[1]))
    if len(keys) != 1:
        raise ConfigError(f"{ref!r} matches {len(keys)} tasks in {spool.path}"
                          + ("; give more of the key" if keys else ""))
    key = keys[0]
    result = next(iter(spool.iter_results([key])), (key, None))[1]
    state = ("done" if result.get("status") == OK else "failed") if result else \
        (states(spool) if queued is None else queued).get(key, "unknown")
    return Task(key, state, _header(spool, key) or _queued_header(spool, key), result)


def _queued_header(spool: Spool, key: str) -> dict[str, Any]:
    """The header of a task queued in a bundle without links, from its entry's file."""
    for _, path, keys in spool.entries():
        if key in keys and is_bundle(os.path.basename(path)):
            try:
                return spool.read_task(path, key)[0]
            except (CorruptFile, FileNotFoundError):
                continue  # (moved on meanwhile: perhaps seen again in the next state)
    return {}


def attempts(spool: Spool, task: Task) -> list[dict[str, Any]]:
    """The headers of the task's attempts, in order: the retried or lost ones
    (attempts/KEY.N), then its result."""
    prefix = f"{task.key}."
    names = sorted((n for n in fs.listdir(spool.p("attempts")) if n.startswith(prefix)),
                   key=lambda n: int(n[len(prefix):]) if n[len(prefix):].isdigit() else -1)
    out = []
    for n in names:
        if not n[len(prefix):].isdigit():
            continue  # (a failure moved aside by a rerun: attempts/KEY.rerun-T)
        try:
            got = spool.read_result(task.key, spool.p("attempts", n))
        except CorruptFile:
            continue
        if got:
            out.append(got[0])
    if task.result:
        out.append(task.result)
    return out


def trace_rows(spool: Spool) -> list[dict[str, Any]]:
    """One row per finished attempt of every task (COLUMNS)."""
    rows = []
    for t in tasks(spool):
        if t.result is None and t.state != "failed":
            continue
        for a in attempts(spool, t):
            start, end = a.get("t_start"), a.get("t_end")
            rows.append({
                "key": t.key, "task": t.label, "app": t.header.get("name", t.name),
                "attempt": a.get("attempt", 0), "status": a.get("status"),
                "exit_code": a.get("exit_code"), "host": a.get("host"), "pool": a.get("pool"),
                "worker": a.get("worker"), "submitted": t.header.get("created"),
                "started": start, "ended": end,
                "duration": round(end - start, 6) if start and end else None,
                "cpu": a.get("cpu"), "maxrss_kb": a.get("maxrss_kb")})
    rows.sort(key=lambda r: (r["started"] or r["ended"] or 0, r["key"], r["attempt"]))
    return rows


def why_it_ran(spool: Spool, task: Task) -> str | None:
    """Why a task ran though the spool may have looked as if it had its answer: it failed in
    an earlier run (its failure was moved aside, attempts/KEY.rerun-T), or its app is a
    version the spool had not seen (its code, or a global or helper it reads, changed: a
    new key).  None when neither is the case."""
    prefix = f"{task.key}.rerun-"
    reruns = [n for n in fs.listdir(spool.p("attempts")) if n.startswith(prefix)]
    if reruns:
        return (f"it failed in an earlier run, and farm runs failures again "
                f"({len(reruns)} time{'s' if len(reruns) > 1 else ''})")
    app = task.header.get("app")
    name = task.header.get("name")
    if not app or not name:
        return None
    versions = {}
    for app_id in fs.listdir(spool.p("apps")):
        try:
            head = spool.read_app(app_id)[0]
        except (OSError, CorruptFile):
            continue
        if head.get("name") == name:
            versions[app_id] = head.get("identity") or app_id
    mine = versions.get(app)
    others = {v for a, v in versions.items() if v != mine}
    if not others:
        return None
    return (f"the spool has {len(others) + 1} versions of app {name}: this task's key is "
            "new because the app's code, or a global or helper function it reads, differs "
            "from an earlier run's (tasks of the other versions were not reused)")
