"""farm report SPOOL [-o report.html]: one self-contained HTML report of a run."""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex

from farm.errors import ConfigError

HELP = """Write one self-contained HTML file about a spool's run, read from the spool alone:
task counts and wall time, a timeline of every attempt per pool and worker, per-app
durations, CPU and memory, a histogram of durations, and the failures with their error,
remote traceback and the last lines of their stderr.  The file loads nothing from the
network: open it in any browser, or copy it off the cluster first."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="an HTML report of a run", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("-o", "--output", default="report.html", help="where to write it")


def run(args: argparse.Namespace) -> int:
    from farm import report
    from farm.spool import Spool
    path = os.path.abspath(args.spool)
    if not os.path.isdir(path):
        raise ConfigError(f"no spool at {path}: the directory does not exist")
    spool = Spool(path)
    out = os.path.abspath(args.output)
    if os.path.isdir(out):
        out = os.path.join(out, "report.html")
    try:
        done = report.write(spool, out)
    except OSError as e:
        raise ConfigError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"farm report: wrote {out} ({len(done.tasks):,} tasks, {len(done.attempts):,} "
          f"attempts, {os.path.getsize(out) // 1024:,} KiB)")
    print(f"open it in a browser (it needs no network): {pathlib.Path(out).as_uri()}  or: "
          f"xdg-open {shlex.quote(out)}")
    return 0
