"""farm cancel SPOOL: ask every pool on the spool to stop."""

from __future__ import annotations

import argparse
import shutil
import time

from farm.providers.slurm import ProviderError, SlurmProvider
from farm.spool import Spool

HELP = """Write the spool's shutdown request: every pool stops at its next heartbeat,
returning unfinished tasks to ready/ (they run again when a driver or pool next starts;
the next driver removes the request).  Waits until the live pools have exited."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="stop all pools of a spool", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for pools to exit (default 60; 0: don't wait)")


def run(args: argparse.Namespace) -> int:
    spool = Spool(args.spool)
    spool.request_shutdown()
    live = spool.live_pools()
    print(f"farm cancel: asked {len(live)} live pool(s) of {spool.path} to stop")
    deadline = time.monotonic() + args.wait
    while live and time.monotonic() < deadline:
        time.sleep(0.2)
        live = spool.live_pools()
    _scancel(spool)
    if live:
        print(f"farm cancel: {len(live)} pool(s) still running: "
              + ", ".join(p["pool"] for p in live))
        return 1
    return 0


def _scancel(spool: Spool) -> None:
    """Cancel the spool's Slurm blocks, as the provider does (one scancel call)."""
    slurm = SlurmProvider()
    slurm.adopt(spool)
    if not slurm.jobs or shutil.which("scancel") is None:
        return
    jobs = " ".join(slurm.jobs.values())
    try:
        slurm.cancel(spool, list(slurm.jobs))
        print(f"farm cancel: scancel {jobs}: done")
    except ProviderError as e:
        print(f"farm cancel: {e}")
