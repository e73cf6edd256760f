"""Blocks on a real local Slurm (scripts/local-slurm): elastic scaling out and in, blocks
cancelled or ending mid-task, a dead driver, blocks that fail, MPI-launched pools."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import farm
from farm import python_app
from farm.executors import SpoolExecutor
from farm.launchers import MpiExecLauncher
from farm.providers import SlurmProvider
from farm.providers.slurm import ProviderError
from farm.spool import Spool, is_bundle
from tests.conftest import eventually
from tests.test_local_slurm import (
    cluster,  # noqa: F401 (the module's Slurm cluster)
    job_state,
    run,
)
from tests.test_local_slurm import pytestmark as _needs_root

pytestmark = [_needs_root, pytest.mark.usefixtures("cluster")]

T = 120


def _load(tmp_path, idle=3.0, executor=None, **provider):
    provider.setdefault("walltime", "00:05:00")
    prov = SlurmProvider(partition="debug", **provider)
    ex = SpoolExecutor(spool=tmp_path / "s", provider=prov, max_workers_per_node=1,
                       idle_timeout=idle, heartbeat_period=0.5, **(executor or {}))
    farm.load(farm.Config(executors=[ex]))
    return ex


def farm_jobs() -> list[str]:
    lines = [line.split() for line in run("squeue", "-h", "-o", "%i %j").stdout.splitlines()]
    return [f[0] for f in lines if len(f) == 2 and f[1].startswith("farm-")]


@python_app
def nap(i, seconds=1.0):
    import socket
    import time
    time.sleep(seconds)
    return i, socket.gethostname()


def test_scale_out_from_zero_to_max_blocks_and_back_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = _load(tmp_path, init_blocks=0, max_blocks=3)
    futs = [nap(i, 1.5) for i in range(12)]
    eventually(lambda: len(ex.provider.running()) == 3, 60, "3 blocks in squeue", 0.2)
    results = [f.result(T) for f in futs]
    assert [r[0] for r in results] == list(range(12))
    assert len({r[1] for r in results}) == 3  # one block per node, all three used
    assert len(ex.blocks) == 3  # never more than max_blocks
    # Scale-in is the pools' own: idle past their limit, they leave and the jobs end,
    # while the driver is still running.
    eventually(lambda: ex.provider.running() == [], 60, "idle blocks to leave squeue", 0.2)
    assert farm_jobs() == []


def test_block_scancelled_mid_task_loses_no_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = _load(tmp_path, idle=5, init_blocks=2, max_blocks=2)
    futs = [nap(i, 2.0) for i in range(8)]
    farm.flush()  # (blocks start when the first task is written)
    spool = ex.spool
    victim = ex.blocks[0]

    def victim_claim():
        for pool in spool.pools():
            if pool.get("block") == victim:
                d = spool.worker_dir(pool["pool"], 0)
                names = os.listdir(d) if os.path.isdir(d) else []
                if names:
                    key = names[0].split("@")[0]
                    if is_bundle(key):  # (its first task is the one running: 2 s each)
                        key = spool.read_bundle(os.path.join(d, names[0]))[1][0][0]
                    return pool["pool"], key
        return None

    pool, key = eventually(victim_claim, 60, "the first block to run a task", 0.05)
    run("scancel", ex.provider.jobs[victim])
    results = [f.result(T) for f in futs]
    assert [r[0] for r in results] == list(range(8))
    header = spool.read_result(key)[0]
    assert header["status"] == "ok" and header["pool"] != pool  # re-run elsewhere
    assert sum(1 for _ in spool.iter_results()) == 8


DRIVER = textwrap.dedent("""
    import sys, time
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor
    from farm.providers import SlurmProvider

    @python_app
    def nap(i):
        import time
        time.sleep(1.5)
        return i

    ex = SpoolExecutor(spool=sys.argv[1], max_workers_per_node=1, idle_timeout=3,
                       heartbeat_period=0.5,
                       provider=SlurmProvider(partition="debug", walltime="00:05:00",
                                              init_blocks=2, max_blocks=2))
    farm.load(farm.Config(executors=[ex]))
    futs = [nap(i) for i in range(6)]
    farm.flush()  # (on disk: the pools find them when this driver is gone)
    print("submitted", flush=True)
    print(sum(f.result() for f in futs))
""")


def test_killed_driver_leaves_no_job_after_the_idle_limit(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    spool = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, str(script), str(spool)], cwd=tmp_path,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "submitted"
        eventually(lambda: len(farm_jobs()) == 2, 60, "the driver's 2 blocks", 0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    # The pools finish the work without a driver, idle past their limit, and leave.
    s = Spool(str(spool))
    eventually(lambda: sum(1 for _ in s.iter_results()) == 6, T, "the pools to finish", 0.2)
    eventually(lambda: farm_jobs() == [], 60, "the blocks to leave squeue", 0.2)


def test_pool_near_its_walltime_stops_claiming_and_returns_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A one-minute block; pools take no new task in its last 28 s and give back what is
    # still running 15 s before the end.
    ex = _load(tmp_path, idle=120, walltime="00:01:00",
               executor={"drain_period": 28.0})
    spool = ex.spool
    long = nap(0, 300)
    farm.flush()
    job = ex.provider.jobs[ex.blocks[0]]

    def pool():
        hbs = [p for p in spool.pools() if p.get("block") == ex.blocks[0]]
        return hbs[0] if hbs else None

    hb = eventually(lambda: (p := pool()) and p["busy"] and p, 60, "the long task to run")
    fields = dict(f.split("=", 1) for f in run("scontrol", "show", "job", job).stdout.split()
                  if "=" in f)
    end = datetime.datetime.fromisoformat(fields["EndTime"]).timestamp()
    assert hb["block_end"] == pytest.approx(end, abs=1)  # the pool knows it from Slurm
    ex.provider.max_blocks = 0  # no replacement block: we look at what this one did
    eventually(lambda: pool()["draining"], 60, "the pool to start draining", 0.2)
    late = nap(1, 0)
    hb = eventually(lambda: (p := pool())["state"] == "exited" and p, 60, "the pool to leave",
                    0.2)
    assert "ends soon" in hb["reason"]
    assert sorted(spool.ready_names()) == sorted([long.task.key, late.task.key])
    assert spool.result_status(long.task.key) is None
    assert spool.result_status(late.task.key) is None
    eventually(lambda: job_state(job) == "COMPLETED", 30, "the job to end by itself", 0.2)


def test_blocks_that_cannot_start_a_pool_fail_the_tasks_quoting_the_log(tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = _load(tmp_path, worker_init="PATH=/nonexistent")  # no srun on the node
    err = nap(0).exception(T)
    assert isinstance(err, ProviderError)
    assert "3 blocks in a row failed" in str(err) and "srun: command not found" in str(err)
    assert len(ex.blocks) == 3 and farm_jobs() == []
    late = nap(1).exception(5)  # the executor has given up: later calls fail at once
    assert isinstance(late, ProviderError)


def test_sbatch_refusal_fails_the_tasks_quoting_slurm(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = SpoolExecutor(spool=tmp_path / "s", provider=SlurmProvider(
        partition="nosuchpartition", walltime="00:01:00"))
    farm.load(farm.Config(executors=[ex]))
    err = nap(0).exception(T)
    assert isinstance(err, ProviderError) and "invalid partition" in str(err).lower()
    assert os.listdir(ex.spool.p("blocks")) == []  # no half-made block


def test_mpiexec_launcher_starts_a_pool_on_each_node(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The cluster's node names do not resolve: Hydra must call back on 127.0.0.1.
    ex = _load(tmp_path, nodes_per_block=2,
               launcher=MpiExecLauncher(overrides="-localhost 127.0.0.1"))
    hosts = {f.result(T)[1] for f in [nap(i, 0.5) for i in range(12)]}
    assert len(hosts) == 2, hosts
    assert {p.get("block") for p in ex.spool.pools()} == {ex.blocks[0]}
