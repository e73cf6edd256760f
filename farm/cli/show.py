"""farm show SPOOL TASK: everything the spool knows about one task."""

from __future__ import annotations

import argparse
import time
from typing import Any

HELP = """Everything the spool knows about one task (TASK: NAME-KEY8 as farm prints it, a
key, or a key prefix): its state, app, directory and files, its dependencies and theirs
states, every attempt (where it ran, how long, why it ended), and its outcome: the value,
or the error with the traceback from where it ran."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="everything about one task", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("task", help="NAME-KEY8, a key, or a key prefix")


def run(args: argparse.Namespace) -> int:
    from farm import history
    from farm.spool import Spool
    spool = Spool(args.spool)
    t = history.find(spool, args.task)
    h = t.header
    print(f"task {t.label}  ({t.state})")
    print(f"  key      {t.key}")
    if h:
        print(f"  app      {h.get('name')} ({h.get('kind')} app), submitted "
              f"{_when(h.get('created'))}")
        for name in ("cwd", "walltime"):
            if h.get(name):
                print(f"  {name:8} {h[name]}")
        if isinstance(h.get("resources"), dict) and h["resources"]:
            asked = " ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                             for k, v in h["resources"].items())
            print(f"  asks     {asked}" + (" (first attempt; retries may ask for more)"
                                          if h.get("sizer") else ""))
        for stream in ("stdout", "stderr"):
            if h.get(stream):
                print(f"  {stream:8} {h[stream][0]}")
        for d in h.get("deps", []):
            dep = history.find(spool, d)
            print(f"  needs    {dep.label} ({dep.state})")
    reason = history.why_it_ran(spool, t)
    if reason:
        print(f"  why      {reason}")
    print(f"  payload  {spool.payload_path(t.key) or spool.task_path(t.key)}")
    if t.result is not None:
        print(f"  result   {spool.result_path(t.key)}")
    past = history.attempts(spool, t)
    if past:
        print("attempts:")
    for a in past:
        took = (f", {a['t_end'] - a['t_start']:.2f} s" if a.get("t_start") and a.get("t_end")
                else "")
        where = f" on {a.get('host')} (pool {a.get('pool')}, worker {a.get('worker')})" \
            if a.get("host") else ""
        if a.get("slots"):  # (a task with a request: what it held)
            where += f", {a['slots']} slots"
        if a.get("hosts"):
            where += f" and the nodes {', '.join(map(str, a['hosts']))}"
        print(f"  #{a.get('attempt', 0)} {a.get('status')}{where}{took}"
              + (f": {a['error']}" if a.get("error") else ""))
    if len(past) > 1:
        why = {"lost": "its worker or pool was lost", "failed": "it failed and was retried"}
        print("  ran again because: " + "; ".join(
            f"#{a.get('attempt', 0)} {why.get(str(a.get('status')), a.get('status'))}"
            for a in past[:-1]))
    _outcome(spool, t)
    return 0


def _outcome(spool: Any, t: Any) -> None:
    from farm.errors import unpack_exception
    from farm.spool import OK
    if t.result is None:
        print(f"outcome: none yet ({t.state})")
        return
    got = spool.read_result(t.key)
    if got is None:
        return
    head, body = got
    if head.get("status") == OK:
        import cloudpickle
        try:
            value = repr(cloudpickle.loads(body))
        except Exception as e:  # a value of a class this process cannot import
            value = f"(cannot unpickle here: {type(e).__name__}: {e})"
        print(f"outcome: ok, {value[:500]}")
        return
    print(f"outcome: {head.get('status')}: {head.get('error')}")
    if head.get("failed_deps"):
        print("  because these failed: " + ", ".join(spool.label(k)
                                                    for k in head["failed_deps"]))
    elif body:
        cause = unpack_exception(body).__cause__
        if cause is not None:
            print(str(cause).rstrip())


def _when(t: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))
    except (TypeError, ValueError):
        return "?"
