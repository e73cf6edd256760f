"""The farm command: one module per subcommand."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from farm.cli import (
    cancel,
    listing,
    logs,
    parsl,
    pool,
    report,
    retry,
    run,
    show,
    site,
    status,
    trace,
    wait,
    watch,
)
from farm.errors import FarmError

COMMANDS = {"run": run, "wait": wait, "site": site, "pool": pool, "status": status,
            "list": listing, "show": show, "logs": logs, "trace": trace, "cancel": cancel,
            "retry": retry, "watch": watch, "report": report, "parsl": parsl}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="farm", description="Run and inspect farm workflows through their spool.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in COMMANDS.values():
        mod.add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    # What follows the first "--" is a command line for `farm run` (--array, --each-line),
    # taken as it is: argparse would hand its first word to a positional argument.
    tail: list[str] = []
    command = next((a for a in argv if not a.startswith("-")), None)
    if "--" in argv and command != "parsl":  # (farm parsl passes its tail on, "--" and all)
        at = argv.index("--")
        argv, tail = argv[:at], argv[at + 1:]
    args = parser.parse_args(argv)
    if tail and args.command != "run":
        parser.error(f"farm {args.command} takes nothing after --")
    args.cmd = tail
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return COMMANDS[args.command].run(args) or 0
    except BrokenPipeError:  # (farm trace SPOOL | head): the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FarmError as e:
        print(f"farm {args.command}: {e}", file=sys.stderr)
        return 2
