"""farm watch SPOOL: a live view of a run (to be written)."""

from __future__ import annotations

import argparse

HELP = "A live full-screen view of a spool's run."


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="a live view of a run", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("--once", action="store_true", help="print one frame and exit")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
