"""farm trace SPOOL: one row per attempt of every task, as TSV (or CSV)."""

from __future__ import annotations

import argparse
import csv
import sys

HELP = """One row per finished attempt of every task of the spool: key, task (NAME-KEY8),
app, attempt, status, exit code, host, pool, worker, when it was submitted, started and
ended (seconds since the epoch), duration and CPU (seconds), max RSS (KiB).  Tab-separated
with a header line (like GNU parallel's --joblog and Nextflow's trace), or --csv."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="one row per attempt of every task (TSV)",
                       description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("--csv", action="store_true", help="comma-separated instead of tabs")


def run(args: argparse.Namespace) -> int:
    from farm import history
    from farm.spool import Spool
    spool = Spool(args.spool)
    out = csv.DictWriter(sys.stdout, history.COLUMNS, delimiter="," if args.csv else "\t",
                         lineterminator="\n", extrasaction="ignore")
    out.writeheader()
    for row in history.trace_rows(spool):
        out.writerow({k: _cell(v) for k, v in row.items()})
    return 0


def _cell(v: object) -> object:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else v
