"""farm parsl SCRIPT [ARGS]: run a Parsl program unchanged, its `import parsl` served by farm."""

from __future__ import annotations

import argparse

HELP = """Run a Parsl program on farm without editing it: within this process `import parsl`
(and parsl.config, parsl.executors, parsl.providers, ...) is farm.  HighThroughputExecutor
becomes a SpoolExecutor with its options mapped; options with no meaning for a spool are
ignored with one warning.  See docs/parsl.md for what maps and what does not."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parsl", help="run a Parsl program unchanged", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("script", help="the Parsl program (a Python script)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")


def run(args: argparse.Namespace) -> int:
    from farm import parsl
    return parsl.run(args.script, list(args.args))
