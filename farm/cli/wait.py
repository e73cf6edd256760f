"""farm wait SPOOL: wait for a farm run's lines (even one whose driver is gone) and print
its summary."""

from __future__ import annotations

import argparse
import sys
import time

HELP = """Wait until every line of a farm run has finished (its driver may have been started
with --detach, or killed: the pools go on without it), printing progress every 30 s, then
the run's summary.  Exit status 0 when every line succeeded, 1 when some failed, 3 on
--timeout."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wait", help="wait for a farm run and print its summary",
                       description=HELP)
    p.add_argument("spool", help="the run's spool")
    p.add_argument("--run", help="which run (default: the latest; see SPOOL/runs/)")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")


def run(args: argparse.Namespace) -> int:
    from farm import runs
    from farm.spool import Spool
    spool = Spool(args.spool)
    manifest = runs.read_manifest(spool, args.run)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    next_report = time.monotonic() + 30
    while True:
        summary = runs.summarize(spool, manifest)
        if not summary.pending:
            break
        if deadline is not None and time.monotonic() > deadline:
            print(f"farm wait: {summary.progress()} after {args.timeout:g} s",
                  file=sys.stderr)
            return 3
        if time.monotonic() > next_report:
            print(f"farm wait: {summary.progress()}", file=sys.stderr)
            next_report = time.monotonic() + 30
        time.sleep(2.0)  # (a listing per results shard each time: 256 of them)
    print(summary.report(spool), file=sys.stderr)
    return 0 if summary.ok else 1
