"""farm site check SITE: validate a site file and show what a block would run."""

from __future__ import annotations

import argparse
import os
import sys

HELP = """Check a site file (YAML, docs/run.md) without running anything: every mistake
is reported with its file, line and key; if the file is right, print what it sets up and
the script a block would get (the sbatch script on Slurm), as the driver would submit it."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("site", help="check a site file", description=HELP)
    p.add_argument("action", choices=["check"], help="check: validate, show a block")
    p.add_argument("site", help="the site file")
    p.add_argument("--spool", help="the spool to show in the script (default: "
                                   "SPOOL_ROOT/example.farm)")


def run(args: argparse.Namespace) -> int:
    from farm import site
    from farm.executors import SpoolExecutor
    from farm.executors.scaling import pool_command
    from farm.providers import SlurmProvider
    from farm.spool.layout import Paths

    config = site.load(args.site)
    ex = config.executors[0]
    assert isinstance(ex, SpoolExecutor)
    prov = ex.provider
    assert prov is not None  # (Config gives every SpoolExecutor one)
    root = config.run_dir or os.environ.get("FARM_SPOOL_ROOT")
    spool = Paths(args.spool or os.path.join(root or ".", "example.farm"))
    print(f"{args.site}: OK")
    print("  spools:   " + (f"{os.path.abspath(root)}/NAME.farm" if root else
                            "NAME.farm beside each script or task file"))
    print(f"  retries:  {config.retries}")
    print(f"  executor: {ex!r}")
    print(f"  provider: {prov!r}, blocks {prov.init_blocks} at start, "
          f"{prov.min_blocks}-{prov.max_blocks} while work waits, "
          f"{prov.nodes_per_block} node(s) each, launcher {prov.launcher!r}")
    command = pool_command(spool, "b1", sys.executable, ex.pool_options())
    if isinstance(prov, SlurmProvider):
        print(f"\nThe sbatch script of a block ({spool.block_file('b1', 'sh')}):\n")
        print(prov.script(spool, command, "b1"))
    else:
        print(f"\nA block runs, on this machine:\n\n    {prov.launcher(command, 1, 1)}")
    return 0
