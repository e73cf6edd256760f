"""farm watch SPOOL: a live view of a run."""

from __future__ import annotations

import argparse
import os

from farm.errors import ConfigError

HELP = """A live full-screen view of a spool's run: tasks by state, overall and per app; the
rate tasks finish at over the last minute and an ETA; live and silent pools with their
workers; blocks and their state (Slurm's, from squeue); the latest failures with the last
lines of their stderr.  It reads only what changed since the last refresh, and exits by
itself once nothing is waiting, ready or running and the driver has exited (Ctrl-C quits
before).  With --once, or when stdout is not a terminal, frames are printed as plain text."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="a live view of a run", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="seconds between refreshes (default 2)")
    p.add_argument("--failures", type=int, default=5, metavar="N",
                   help="how many of the latest failures to show (default 5)")


def run(args: argparse.Namespace) -> int:
    from farm import watch
    from farm.spool import Spool
    if not args.interval > 0:
        raise ConfigError(f"--interval {args.interval:g}: give a number of seconds above 0")
    if args.failures < 0:
        raise ConfigError(f"--failures {args.failures}: give 0 or more")
    path = os.path.abspath(args.spool)
    if not os.path.isdir(path):
        raise ConfigError(f"no spool at {path}: the directory does not exist")
    return watch.run(Spool(path), once=args.once, interval=args.interval,
                     failures=args.failures)
