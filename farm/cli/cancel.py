"""farm cancel SPOOL: ask every pool on the spool to stop."""

from __future__ import annotations

import shutil
import subprocess
import time

from farm.spool import Spool

HELP = """Write the spool's shutdown request: every pool stops at its next heartbeat,
returning unfinished tasks to ready/ (they run again when a driver or pool next starts;
the next driver removes the request).  Waits until the live pools have exited."""


def add_parser(sub) -> None:
    p = sub.add_parser("cancel", help="stop all pools of a spool", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for pools to exit (default 60; 0: don't wait)")


def run(args) -> int:
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
    """Cancel the spool's Slurm blocks (one scancel call; finished jobs are ignored)."""
    jobs = [str(b.get("job_id")) for b in spool.blocks() if b.get("provider") == "slurm"]
    if not jobs or shutil.which("scancel") is None:
        return
    out = subprocess.run(["scancel", *jobs], capture_output=True, text=True, timeout=60)
    print(f"farm cancel: scancel {' '.join(jobs)}: "
          f"{'done' if out.returncode == 0 else out.stderr.strip()}")
