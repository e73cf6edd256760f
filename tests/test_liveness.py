"""Dead pools: found by heartbeat counters, declared dead by exactly one observer, their
running tasks re-run (or failed with WorkerLost); a slow pool is fenced, not duplicated."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import uuid

import pytest
import yaml

import farm
from farm import python_app
from farm.errors import WorkerLost
from farm.spool import PoolWatch, Spool, split_name
from tests.conftest import eventually, spool_config

CTX = mp.get_context("fork")
T = 60


def _observer(path, start, out):
    watch = PoolWatch(Spool(path))
    start.wait(10)
    deadline = time.monotonic() + 10
    won = {}
    while time.monotonic() < deadline and os.path.exists(os.path.join(path, "pools", "p1.yaml")):
        won.update(watch.check())
        time.sleep(0.01)
    out.put(won)


@pytest.mark.parametrize("crash_retries", [0, None])  # None: the default budget (2)
def test_exactly_one_observer_declares_a_silent_pool_dead(tmp_path, crash_retries):
    spool = Spool.create(tmp_path / "s")
    key = uuid.uuid4().hex
    budget = {} if crash_retries is None else {"crash_retries": crash_retries}
    spool.put_task(key, {"key": key, "name": "t", "kind": "python", "app": "x", "deps": [],
                         "retries": 0, **budget}, b"", "ready")
    wdir = spool.worker_dir("p1", 0)
    os.mkdir(wdir)
    assert spool.claim(key, wdir)
    spool.write_heartbeat("p1", {"pool": "p1", "state": "running", "counter": 7, "lease": 0.3})
    start, out = CTX.Barrier(5), CTX.Queue()
    procs = [CTX.Process(target=_observer, args=(spool.path, start, out)) for _ in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    wins = [out.get(timeout=5) for _ in procs]
    assert sorted(len(w) for w in wins) == [0, 0, 0, 0, 1]  # one winner
    assert os.listdir(wdir) == []
    if crash_retries is None:  # requeued: a lost pool is not the task's fault
        assert [split_name(n) for n in spool.ready_names()] == [(key, 1)]
        lost = spool.prior_attempt(key, 1)
        assert lost["status"] == "lost" and lost["crashes"] == 1
    else:
        header, _ = spool.read_result(key)
        assert header["status"] == "failed" and "WorkerLost" in header["error"]


def test_killed_pool_is_declared_dead_and_its_task_reruns(tmp_path, monkeypatch):
    # The default config (retries=0): a pool killed mid-run is not the task's fault.
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s"))
    spool = farm.dfk().executors["spool"].spool

    @python_app
    def slow(marker):
        import os
        import time
        open(f"{marker}.{os.getpid()}", "w").close()
        time.sleep(1)
        return "done"

    f = slow(str(tmp_path / "ran"))
    eventually(lambda: spool.counts()["running"] == 1, 30, "the task to start")
    first = spool.live_pools()[0]
    os.killpg(os.getpgid(first["pid"]), signal.SIGKILL)  # the whole block, at once
    assert f.result(T) == "done"
    header = spool.read_result(f.key)[0]
    assert header["attempt"] == 1 and header["pool"] != first["pool"]
    assert os.path.exists(spool.p("pools", f"{first['pool']}.dead"))
    assert len([n for n in os.listdir(tmp_path) if n.startswith("ran.")]) == 2


def test_killed_pool_without_a_crash_budget_gives_worker_lost(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", crash_retries=0))
    spool = farm.dfk().executors["spool"].spool

    @python_app
    def nap():
        import time
        time.sleep(30)

    f = nap()
    eventually(lambda: spool.counts()["running"] == 1, 30, "the task to start")
    os.killpg(os.getpgid(spool.live_pools()[0]["pid"]), signal.SIGKILL)
    with pytest.raises(WorkerLost, match="stopped its heartbeat"):
        f.result(T)


def test_frozen_pool_is_fenced_and_publishes_no_second_result(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0, retries=1))
    spool = farm.dfk().executors["spool"].spool

    @python_app
    def work(marker):
        import os
        import time
        time.sleep(1.5)
        open(f"{marker}.{os.getpid()}", "w").close()
        return os.getpid()

    f = work(str(tmp_path / "ran"))
    a = pools.start(spool.path, "--workers", "1", "--heartbeat", "0.2", "--lease", "1",
                    "--pool-id", "A")
    eventually(lambda: spool.counts()["running"] == 1, 30, "pool A to start the task")
    os.killpg(a.pid, signal.SIGSTOP)  # alive but silent: a frozen node
    eventually(lambda: os.path.exists(spool.p("pools", "A.dead")), 30, "A declared dead")
    pools.start(spool.path, "--workers", "1", "--heartbeat", "0.2", "--pool-id", "B")
    pid = f.result(T)
    os.killpg(a.pid, signal.SIGCONT)
    assert a.wait(30) == 0  # A notices it was fenced and stops
    header = spool.read_result(f.key)[0]
    assert header["pool"] == "B" and header["pid"] == pid and header["attempt"] == 1
    with open(spool.p("pools", "A.yaml")) as fh:
        assert yaml.safe_load(fh)["state"] == "exited"


def test_sweep_finishes_a_half_done_declaration(tmp_path):
    spool = Spool.create(tmp_path / "s")
    key = uuid.uuid4().hex
    spool.put_task(key, {"key": key, "name": "t", "kind": "python", "app": "x", "deps": [],
                         "retries": 2}, b"", "ready")
    os.mkdir(spool.worker_dir("p9", 3))
    assert spool.claim(key, spool.worker_dir("p9", 3))
    spool.write_heartbeat("p9", {"pool": "p9", "state": "running", "counter": 1})
    # an observer renamed the heartbeat, then died before requeueing anything
    os.rename(spool.p("pools", "p9.yaml"), spool.p("pools", "p9.dead"))
    assert spool.sweep()["requeued"] == 1
    assert [split_name(n) for n in spool.ready_names()] == [(key, 1)]


def test_an_observer_whose_own_reads_hung_does_not_declare_a_pool_dead(tmp_path):
    # While an NFS server restarts, the observer's reads hang as long as the pools' beats:
    # a counter that stood still meanwhile proves nothing.
    spool = Spool.create(tmp_path / "s")
    spool.write_heartbeat("p1", {"pool": "p1", "state": "running", "counter": 1, "lease": 1})
    watch = PoolWatch(spool)
    assert watch.check() == {}
    time.sleep(1.2)
    hung_since = time.monotonic() - 0.5  # the read took half a second
    assert watch.check(spool.heartbeats(), hung_since) == {}
    assert os.path.exists(spool.p("pools", "p1.yaml"))
    time.sleep(1.2)
    assert watch.check() == {"p1": 0}  # watched for a whole lease: dead


def test_a_workflow_survives_a_pool_killed_mid_run_with_the_default_config(tmp_path, pools,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))  # defaults: retries=0, crash_retries=2
    spool = farm.dfk().executors["spool"].spool

    @python_app
    def square(i):
        import time
        time.sleep(0.3)
        return i * i

    @python_app
    def total(*xs):
        return sum(xs)

    victim = pools.start(spool.path, "--workers", "2", "--lease", "3")
    futs = [square(i) for i in range(20)]
    result = total(*futs)
    eventually(lambda: spool.counts()["running"] >= 2, 30, "the victim to be running tasks")
    os.killpg(victim.pid, signal.SIGKILL)  # the whole pool, mid-task
    pools.start(spool.path, "--workers", "2")
    assert [f.result(T) for f in futs] == [i * i for i in range(20)]
    assert result.result(T) == sum(i * i for i in range(20))
    lost = [h for _, h in spool.iter_results([f.key for f in futs]) if h["attempt"] == 1]
    assert lost  # the tasks the victim was running ran again, as attempt 1


def test_a_task_that_always_kills_its_worker_fails_after_its_crash_budget(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", workers=1))

    @python_app
    def die():
        import os
        os._exit(3)

    f = die()
    with pytest.raises(WorkerLost, match="its worker was lost 3 times; the last time: "
                                         "worker 0 of pool .* died"):
        f.result(T)
    spool = farm.dfk().executors["spool"].spool
    assert [spool.prior_attempt(f.key, n)["crashes"] for n in (1, 2)] == [1, 2]
