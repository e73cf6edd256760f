"""farm report SPOOL: one self-contained HTML report of a run (to be written)."""

from __future__ import annotations

import argparse

HELP = "Write one self-contained HTML file about a spool's run."


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="an HTML report of a run", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("-o", "--output", default="report.html", help="where to write it")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
