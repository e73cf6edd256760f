"""What a pool's node offers and how its workers share it: worker count, CPU pinning,
accelerators, and when the block (batch job) that runs the pool ends."""

from __future__ import annotations

import datetime
import logging
import os
import subprocess

import psutil

from farm.errors import ConfigError

log = logging.getLogger("farm.pool")

AFFINITY = ("none", "block", "alternating", "block-reverse")
# Environment variables that select a worker's accelerator (NVIDIA, AMD, Intel GPUs).
ACCEL_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK")


def node_cores() -> int:
    """The cores this pool may use: what srun -c gave it (Slurm without CPU binding leaves
    the affinity mask wide open), else the CPUs in its affinity mask."""
    given = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(given) if given.isdigit() and int(given) > 0 else len(os.sched_getaffinity(0))


def node_memory() -> int:
    """Bytes this pool may use: the least of the node's available memory, what its cgroup
    (a batch job's, a container's) still allows, and Slurm's --mem for the job.  A job's
    limit is often far below the node's memory: sizing workers by the node would let the
    OOM killer pick among them."""
    got = [psutil.virtual_memory().available]
    limit = _cgroup_room()
    if limit is not None:
        got.append(limit)
    mb = os.environ.get("SLURM_MEM_PER_NODE", "")
    if mb.isdigit() and int(mb) > 0:
        got.append(int(mb) * 2**20)
    return min(got)


# A limit this large means none (cgroup v1 writes the largest page-aligned int64).
_NO_LIMIT = 2**60


def _cgroup_room() -> int | None:
    """What the memory cgroups this process is in still allow (limit - usage, the least
    over the group and its ancestors), or None without a limit.  cgroup v2: memory.max and
    memory.current; v1: memory.limit_in_bytes and memory.usage_in_bytes."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    places = []  # (directory of the group, limit file, usage file)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            places.append(("/sys/fs/cgroup" + path, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):
            places.append(("/sys/fs/cgroup/memory" + path, "memory.limit_in_bytes",
                           "memory.usage_in_bytes"))
    room: int | None = None
    for base, limit_file, usage_file in places:
        d = base.rstrip("/")
        while d.startswith("/sys/fs/cgroup"):
            limit, usage = _read_int(f"{d}/{limit_file}"), _read_int(f"{d}/{usage_file}")
            if limit is not None and limit < _NO_LIMIT:
                left = max(0, limit - (usage or 0))
                room = left if room is None else min(room, left)
            d = os.path.dirname(d)
    return room


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # ("max": no limit)


def worker_count(max_workers: int | None, cores_per_worker: float,
                 mem_per_worker: float | None, accelerators: list[str],
                 cores: float | None = None, memory: float | None = None) -> int:
    """As many workers as the node's cores (see node_cores), memory (bytes, see
    node_memory; inf: no limit) and accelerators allow, capped by max_workers; at least
    one.  cores, memory: another node's (a driver's view of its pools'), not this one's."""
    if cores_per_worker <= 0:
        raise ConfigError(f"farm pool: --cores-per-worker must be positive, got "
                          f"{cores_per_worker:g}")
    n = int((node_cores() if cores is None else cores) // cores_per_worker)
    if max_workers:
        n = min(n, max_workers)
    room = node_memory() if memory is None else memory
    if mem_per_worker and room != float("inf"):
        n = min(n, int(room / 2**30 // mem_per_worker))
    if accelerators:
        n = min(n, len(accelerators))
    return max(1, n)


def block_nodes() -> int:
    """Nodes in the batch job running this process (1 outside one)."""
    for var in ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return 1


def cpus_for(worker: int, nworkers: int, mode: str,
             among: set[int] | None = None) -> list[int] | None:
    """The CPUs worker (of nworkers) is pinned to under an affinity mode; None: no pinning.
    block: consecutive CPUs per worker; block-reverse: the same from the top CPU down;
    alternating: every nworkers-th CPU (spreads workers over sockets and hyperthreads).
    among: the pool's CPUs (default: this process's)."""
    if mode not in AFFINITY:
        raise ConfigError(f"cpu_affinity {mode!r}: use one of {', '.join(AFFINITY)}")
    if mode == "none":
        return None
    cpus = sorted(among if among is not None else os.sched_getaffinity(0))
    if mode == "block-reverse":
        cpus.reverse()
    if mode == "alternating":
        mine = cpus[worker::nworkers]
    else:
        per = max(1, len(cpus) // nworkers)
        mine = cpus[worker * per:(worker + 1) * per]
    return mine or [cpus[worker % len(cpus)]]  # more workers than CPUs: share round robin


def pin(worker: int, nworkers: int, mode: str, accelerators: list[str]) -> None:
    """Pin this worker process (and the apps it starts) to its CPUs and accelerator."""
    cpus = cpus_for(worker, nworkers, mode)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    if accelerators:
        for var in ACCEL_VARS:
            os.environ[var] = accelerators[worker % len(accelerators)]


def parse_end(text: str | None) -> float | None:
    """A block's end time as seconds since the epoch (farm asks squeue with
    SLURM_TIME_FORMAT=%s) or as a local ISO time (squeue's default); None for UNLIMITED,
    N/A, nothing, or what cannot be read."""
    text = (text or "").strip()
    if not text or text.upper() in ("UNLIMITED", "N/A", "NONE", "INVALID"):
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        log.warning("farm pool: cannot read the block end time %r; not draining", text)
        return None


def block_end(explicit: str | None = None) -> float | None:
    """When the batch job running this pool ends.  In order: the --end-time option,
    $FARM_BLOCK_END (set by farm's block scripts, which ask squeue once per block, so that
    pools without network know it too), $SLURM_JOB_END_TIME (newer Slurm), then one squeue
    call from here."""
    if explicit is not None:
        end = parse_end(explicit)
        if end is None:
            raise ConfigError(f"farm pool: --end-time {explicit!r} is not a time: give "
                              "seconds since the epoch or an ISO time (2030-01-02T03:04:05)")
        return end
    for text in (os.environ.get("FARM_BLOCK_END"), os.environ.get("SLURM_JOB_END_TIME")):
        if text and text.strip():
            return parse_end(text)
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        # Epoch seconds (SLURM_TIME_FORMAT=%s): no time zone or daylight-saving guesswork.
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True,
                             text=True, timeout=20,
                             env={**os.environ, "SLURM_TIME_FORMAT": "%s"})
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("farm pool: cannot ask squeue when job %s ends (%s); not draining", job, e)
        return None
    return parse_end(out.stdout) if out.returncode == 0 else None

