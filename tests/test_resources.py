"""How a pool shares its node: worker count from cores, memory and accelerators; each
worker pinned to its CPUs and its own accelerator (real pools, real processes)."""

from __future__ import annotations

import os

import psutil
import pytest

import farm
from farm import python_app
from farm.errors import ConfigError
from farm.executors import SpoolExecutor
from farm.providers import LocalProvider
from farm.resources import cpus_for, parse_end, worker_count

T = 60


def _load(tmp_path, **opts):
    ex = SpoolExecutor(spool=tmp_path / "s", provider=LocalProvider(), idle_timeout=5,
                       heartbeat_period=0.5, **opts)
    farm.load(farm.Config(executors=[ex]))
    return ex


@python_app
def placement(i):
    import os
    import time
    time.sleep(0.3)
    return os.environ.get("CUDA_VISIBLE_DEVICES"), tuple(sorted(os.sched_getaffinity(0)))


def test_each_worker_gets_its_accelerator_and_its_cpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cpus = sorted(os.sched_getaffinity(0))
    ex = _load(tmp_path, available_accelerators=["gpu-a", "gpu-b"], cpu_affinity="block")
    seen = {f.result(T) for f in [placement(i) for i in range(10)]}
    # Two workers (two accelerators), each always with the same accelerator and CPUs.
    assert {acc for acc, _ in seen} == {"gpu-a", "gpu-b"} and len(seen) == 2, seen
    pinned = [set(c) for _, c in seen]
    if len(cpus) >= 2:
        assert not pinned[0] & pinned[1]  # disjoint CPU sets
    assert all(p <= set(cpus) for p in pinned)
    assert [p["workers"] for p in ex.spool.pools()] == [2]


def test_worker_count_follows_cores_memory_and_accelerators(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert worker_count(None, 1, None, []) == cores
    assert worker_count(None, 0.5, None, []) == 2 * cores
    assert worker_count(3, 0.5, None, []) == min(3, 2 * cores)
    assert worker_count(None, 1, None, ["0"]) == 1
    gib = psutil.virtual_memory().available / 2**30
    assert worker_count(None, 0.01, gib / 2.5, []) == 2  # memory for two workers only
    assert worker_count(None, 1, gib * 10, []) == 1  # never fewer than one
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")  # srun -c 8
    assert worker_count(None, 2, None, []) == 4


def test_affinity_modes():
    cpus = sorted(os.sched_getaffinity(0))
    assert cpus_for(0, 2, "none") is None
    assert cpus_for(0, 1, "block") == cpus
    assert cpus_for(0, 1, "block-reverse") == cpus[::-1]
    assert cpus_for(1, len(cpus), "alternating") == cpus[1::len(cpus)] or len(cpus) == 1
    with pytest.raises(ConfigError, match="cpu_affinity 'spread'"):
        cpus_for(0, 1, "spread")


def test_bad_resource_options_are_refused_naming_them():
    with pytest.raises(ConfigError, match="cpu_affinity"):
        SpoolExecutor(cpu_affinity="spread")
    with pytest.raises(ConfigError, match="cores_per_worker"):
        SpoolExecutor(cores_per_worker=0)
    with pytest.raises(ConfigError, match="available_accelerators"):
        SpoolExecutor(available_accelerators=["0,1"])


def test_block_end_time_formats():
    assert parse_end("1700000000") == 1700000000.0
    assert parse_end("UNLIMITED") is None and parse_end("") is None
    assert parse_end("N/A") is None and parse_end("garbage") is None
    import datetime
    t = datetime.datetime(2030, 1, 2, 3, 4, 5)
    assert parse_end("2030-01-02T03:04:05") == t.timestamp()


def test_worker_count_follows_the_jobs_memory_not_the_nodes(monkeypatch, tmp_path):
    """Slurm's --mem (SLURM_MEM_PER_NODE, MB) and a real memory cgroup's limit bound the
    workers, not the node's free memory."""
    import subprocess
    import sys
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1100")  # srun --mem=1100M
    assert worker_count(None, 0.01, 0.5, []) == 2
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    # A cgroup of its own, limited to 600 MiB (v2 if this machine has it, else v1), with a
    # process in it that counts its workers as a pool would.
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    group = (f"/sys/fs/cgroup/farm-test-{os.getpid()}" if v2
             else f"/sys/fs/cgroup/memory/farm-test-{os.getpid()}")
    os.mkdir(group)
    try:
        with open(f"{group}/{'memory.max' if v2 else 'memory.limit_in_bytes'}", "w") as f:
            f.write(str(600 * 2**20))
        code = ("import sys; from farm.resources import worker_count; "
                "print(worker_count(None, 0.01, 0.25, []))")
        r = subprocess.run(["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$0" -c "$1"',
                            sys.executable, code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert int(r.stdout) == 2, r.stdout  # 600 MiB less what the process uses: two 0.25s
    finally:
        os.rmdir(group)
