"""farm retry SPOOL [--failed] [KEY...]: run failed tasks again, without a driver."""

from __future__ import annotations

import argparse

from farm.errors import ConfigError
from farm.spool import Spool

HELP = """Requeue failed tasks (and the dependents that failed because of them) so that the
spool's pools run them again.  KEY may be a unique prefix of a task key (as `farm status`
shows).  The next run of the script collects the new results."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retry", help="run failed tasks again", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("keys", nargs="*", metavar="KEY", help="tasks to run again")
    p.add_argument("--failed", action="store_true", help="every task that failed")


def _expand(spool: Spool, prefix: str) -> str:
    if len(prefix) < 6:
        raise ConfigError(f"task key prefix {prefix!r} is too short; give at least 6 characters")
    matches = spool.task_keys(prefix)
    if len(matches) != 1:
        raise ConfigError(f"{prefix!r} matches {len(matches)} tasks in {spool.path}; "
                          "give a longer prefix" if matches else f"no task {prefix!r} in "
                          f"{spool.path}")
    return matches[0]


def run(args: argparse.Namespace) -> int:
    spool = Spool(args.spool)
    if not args.keys and not args.failed:
        raise ConfigError("say which tasks: KEY... or --failed")
    keys = [_expand(spool, k) for k in args.keys]
    if args.failed:
        keys += spool.failed_keys()
    requeued = []
    for key in keys:
        requeued += spool.rerun(key)
    if requeued:
        spool.request_shutdown(False)  # a finished driver's request must not stop new pools
    print(f"farm retry: {len(requeued)} task(s) requeued in {spool.path}")
    if requeued and not spool.live_pools():
        print(f"farm retry: no pool is running: start one (farm pool {spool.path}) or run "
              "the script again")
    return 0
