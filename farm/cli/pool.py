"""farm pool SPOOL: the worker pool a launcher starts, one per node."""

from __future__ import annotations

from farm.pool import Pool

HELP = """Claim ready tasks from SPOOL and run them in N worker processes, until idle past
--idle-timeout, until `farm cancel` (control/shutdown in the spool), or SIGTERM (which
returns unfinished tasks to the queue).  Needs only the spool path: no network."""


def add_parser(sub) -> None:
    p = sub.add_parser("pool", help="run a worker pool on a spool", description=HELP)
    p.add_argument("spool", help="the spool directory (made by the driver)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core this process may use)")
    p.add_argument("--idle-timeout", type=float, default=120.0,
                   help="exit after this many seconds without work (default 120)")
    p.add_argument("--heartbeat", type=float, default=2.0,
                   help="seconds between heartbeat writes (default 2)")
    p.add_argument("--lease", type=float, default=None,
                   help="seconds without a heartbeat after which observers declare this pool "
                        "dead and requeue its tasks (default: 10 heartbeats, at least 5)")
    p.add_argument("--sweep", type=float, default=30.0,
                   help="seconds between the repair sweeps an idle pool makes (default 30)")
    p.add_argument("--pool-id", default=None, help="name of this pool (default HOST-PID)")
    p.add_argument("--block", default=None, help="the block (batch job) this pool belongs to")


def run(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise SystemExit("farm pool: --workers must be at least 1")
    pool = Pool(args.spool, workers=args.workers, idle_timeout=args.idle_timeout,
                heartbeat=args.heartbeat, pool_id=args.pool_id, block=args.block,
                lease=args.lease, sweep=args.sweep)
    return pool.run()
