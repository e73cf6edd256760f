"""farm list SPOOL: the spool's tasks, one line each, by state."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.history import Task

HELP = """The spool's tasks, one line each: state (waiting, ready, running, done, failed),
NAME-KEY8 (what farm show and farm logs take), duration, host, and for failures the error.
--failed, --running and --app NAME keep only those."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="the spool's tasks, one line each", description=HELP)
    p.add_argument("spool", help="the spool directory")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="failed tasks only")
    which.add_argument("--running", action="store_true", help="running tasks only")
    p.add_argument("--app", help="tasks of this app (function name) only")


def run(args: argparse.Namespace) -> int:
    from farm import history
    from farm.spool import Spool
    spool = Spool(args.spool)
    shown = 0
    for t in sorted(history.tasks(spool), key=_order):
        if (args.failed and t.state != "failed") or (args.running and t.state != "running") \
                or (args.app and t.name != args.app):
            continue
        r = t.result or {}
        took = (f"{r['t_end'] - r['t_start']:8.2f}s" if r.get("t_start") and r.get("t_end")
                else " " * 9)
        line = f"{t.state:8} {t.label:30} {took} {r.get('host') or ''}"
        if t.state == "failed":
            line += f"  {r.get('error') or r.get('status')}"
        print(line.rstrip())
        shown += 1
    if not shown:
        print("(no such task)")
    return 0


def _order(t: Task) -> tuple:
    return (("running", "ready", "waiting", "failed", "done").index(t.state)
            if t.state in ("running", "ready", "waiting", "failed", "done") else 5,
            (t.result or {}).get("t_end") or 0, t.key)
