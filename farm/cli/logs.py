"""farm logs SPOOL TASK: what a task wrote to stdout and stderr."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.spool import Spool

HELP = """What a task wrote to its stdout and stderr (TASK: NAME-KEY8, a key or a prefix).
An app called with stdout=/stderr= (AUTO_LOGNAME, or a path) has each stream in a file of
its own; any other app's output is kept in its worker's output file in the spool, and the
task's part of it is shown."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="a task's stdout and stderr", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("task", help="NAME-KEY8, a key, or a key prefix")


def run(args: argparse.Namespace) -> int:
    from farm import history
    from farm.spool import Spool
    spool = Spool(args.spool)
    t = history.find(spool, args.task)
    r, h = t.result or {}, t.header
    shown = False
    for stream in ("stdout", "stderr"):
        path = r.get(stream) or (h.get(stream) or [None])[0]
        if not path:
            continue
        shown = True
        print(f"==> {stream}: {path}")
        try:
            with open(path, errors="replace") as f:
                sys.stdout.write(f.read())
        except OSError as e:
            print(f"(cannot read it: {e.strerror or e})")
    out = r.get("output")
    if isinstance(out, list) and len(out) == 3:
        # What the call printed with no stdout= or stderr= of its own: a byte range of its
        # worker's output file (stdout and stderr together, in the order written).
        name, start, end = out
        path = os.path.join(spool.path, str(name))
        print(f"==> output (stdout and stderr): {path}, bytes {start}-{end}")
        try:
            with open(path, "rb") as f:
                f.seek(int(start))
                sys.stdout.write(f.read(int(end) - int(start)).decode(errors="replace"))
        except (OSError, ValueError) as e:
            print(f"(cannot read it: {e})")
        shown = True
    if not shown and t.result is not None and r.get("t_start"):
        print(f"{t.label} printed nothing")
        return 0
    if not shown:
        block = _block_of(spool, r.get("pool"))
        where = (spool.block_log(block) if block else os.path.join(spool.p("logs"), "*.log"))
        print(f"{t.label} keeps no stream of its own (no stdout=/stderr= in its call); what "
              f"it printed is in the log of the pool that ran it: {where}")
    return 0


def _block_of(spool: Spool, pool: str | None) -> str | None:
    """The block a pool ran in, from its heartbeat (also a dead or exited pool's)."""
    block = spool.pool_record(pool).get("block") if pool else None
    return str(block) if block else None
