"""farm pool SPOOL: the worker pool a launcher starts, one per node."""

from __future__ import annotations

import argparse

from farm.pool import Pool
from farm.resources import AFFINITY

HELP = """Run a worker pool on SPOOL: claim ready tasks and run them in worker processes.
Needs only the spool path and the signing key (~/.farm/key or $FARM_KEY_FILE): no network.

The pool ends when it has been idle past --idle-timeout, when `farm cancel SPOOL` asks
pools to stop, on SIGTERM or SIGINT (unfinished tasks go back to the queue, as they were),
or shortly before its batch job's time limit (see --drain).  Observers (the driver, idle
pools) declare a pool dead when its heartbeat stops for --lease seconds, and requeue what
it was running.

Workers: one per core this process may use (see taskset, srun -c), divided by
--cores-per-worker, and no more than --workers, the memory allows (--mem-per-worker), or
--accelerators lists."""

EPILOG = """Examples:
  farm pool run.farm                              # one worker per core, idle limit 120 s
  farm pool run.farm --workers 4 --idle-timeout 600
  farm pool run.farm --accelerators 0,1,2,3 --cpu-affinity block   # 4 GPU workers
  srun --ntasks-per-node=1 farm pool /scratch/me/run.farm         # one pool per node
Detached pools (no driver running): scripts/farm-pools.sbatch."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pool", help="run a worker pool on a spool", description=HELP,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spool", help="the spool directory (made by the driver)")
    g = p.add_argument_group("workers")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="at most N worker processes (default: as many as the cores allow)")
    g.add_argument("--cores-per-worker", type=float, default=1.0, metavar="C",
                   help="cores each worker needs (default 1; 0.5 runs two per core)")
    g.add_argument("--mem-per-worker", type=float, default=None, metavar="GB",
                   help="GiB each worker needs: no more workers than the memory available "
                        "at start allows (default: no limit)")
    g.add_argument("--accelerators", default="", metavar="A,B,...",
                   help="accelerators (GPU ids) to share: worker i gets the i-th one in "
                        "CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES and ZE_AFFINITY_MASK; "
                        "no more workers than accelerators")
    g.add_argument("--cpu-affinity", choices=AFFINITY, default="none",
                   help="pin each worker (and its apps) to its own CPUs: consecutive ones "
                        "(block, block-reverse) or every N-th (alternating); default none")
    g = p.add_argument_group("lifetime")
    g.add_argument("--idle-timeout", type=float, default=120.0, metavar="S",
                   help="exit after S seconds without work (default 120)")
    g.add_argument("--end-time", default=None, metavar="T",
                   help="when this pool's batch job ends: seconds since the epoch or an ISO "
                        "time as squeue prints it (default: $FARM_BLOCK_END, which farm's "
                        "block scripts set, else $SLURM_JOB_END_TIME, else asked from Slurm "
                        "if in a job, else none)")
    g.add_argument("--drain", type=float, default=None, metavar="S",
                   help="take no new task in the last S seconds before the end time, and "
                        "leave once idle (default: a tenth of the time left at start, at "
                        "most 120; never more than half of it); tasks still running "
                        "min(15, S) seconds before the end go back to the queue. A task "
                        "whose walltime would overrun the end is left to other pools")
    g = p.add_argument_group("liveness")
    g.add_argument("--heartbeat", type=float, default=2.0, metavar="S",
                   help="seconds between heartbeat writes (default 2)")
    g.add_argument("--lease", type=float, default=None, metavar="S",
                   help="seconds without a heartbeat after which observers declare this pool "
                        "dead and requeue its tasks (default: 10 heartbeats, at least 5)")
    g.add_argument("--sweep", type=float, default=30.0, metavar="S",
                   help="seconds between the repair sweeps an idle pool makes (default 30)")
    g = p.add_argument_group("naming")
    g.add_argument("--pool-id", default=None,
                   help="name of this pool (default HOST-PID-RANDOM)")
    g.add_argument("--block", default=None,
                   help="the block (batch job) this pool belongs to, for scaling and status")


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise SystemExit("farm pool: --workers must be at least 1")
    if args.mem_per_worker is not None and args.mem_per_worker <= 0:
        raise SystemExit("farm pool: --mem-per-worker must be positive (GiB)")
    if args.drain is not None and args.drain < 0:
        raise SystemExit("farm pool: --drain must be 0 or more seconds")
    accelerators = [a.strip() for a in args.accelerators.split(",") if a.strip()]
    pool = Pool(args.spool, workers=args.workers, idle_timeout=args.idle_timeout,
                heartbeat=args.heartbeat, pool_id=args.pool_id, block=args.block,
                lease=args.lease, sweep=args.sweep, cores_per_worker=args.cores_per_worker,
                mem_per_worker=args.mem_per_worker, accelerators=accelerators,
                cpu_affinity=args.cpu_affinity, end_time=args.end_time, drain=args.drain)
    return pool.run()
