"""Resume and driver death: the graph advances without the driver; re-running a script runs
nothing that finished and attaches to what is queued or running."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import yaml

import farm
from farm import python_app
from farm.executors import SpoolExecutor
from farm.launchers import Launcher
from farm.providers import LocalProvider
from farm.spool import Spool
from tests.conftest import eventually, run_script, spool_config

DRIVER = textwrap.dedent("""
    import os, sys, time
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    runs, mode = sys.argv[1], sys.argv[2]

    @python_app
    def step(i, prev=0, runs=None):
        import os, time, uuid
        open(os.path.join(runs, f"{i}.{uuid.uuid4().hex}"), "w").close()
        time.sleep(0.01)
        return prev + i

    @python_app
    def gather(*xs):
        return sum(xs)

    ex = SpoolExecutor(spool="spool", max_workers_per_node=2, idle_timeout=8,
                       heartbeat_period=0.5, provider=LocalProvider())
    with farm.load(farm.Config(executors=[ex])):
        ends = []
        n = 0
        for leaf in range(12):              # fan-out: 12 chains of 4 ...
            f = step(n, runs=runs); n += 1
            for _ in range(3):
                f = step(n, f, runs=runs); n += 1
            ends.append(f)
        total = gather(*ends)               # ... and a fan-in
        farm.flush()                        # the calls are in the spool now
        print("submitted", n + 1, flush=True)
        if mode == "hang":
            time.sleep(3600)
        print("total", total.result(timeout=120), flush=True)
""")
N_TASKS = 49
TOTAL = sum(range(48))


def _setup(tmp_path):
    (tmp_path / "runs").mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return script


def _executions(tmp_path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in os.listdir(tmp_path / "runs"):
        i = name.split(".")[0]
        counts[i] = counts.get(i, 0) + 1
    return counts


def _kill_pools(spool_path):
    for name in os.listdir(os.path.join(spool_path, "pools")):
        info = yaml.safe_load(open(os.path.join(spool_path, "pools", name)))
        try:
            os.killpg(os.getpgid(info["pid"]), signal.SIGKILL)
        except (ProcessLookupError, KeyError, TypeError):
            pass


def test_graph_finishes_after_driver_is_killed(tmp_path):
    script = _setup(tmp_path)
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs"), "hang"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert driver.stdout.readline().split() == ["submitted", str(N_TASKS)]
        driver.kill()  # SIGKILL: no cleanup of any kind
        driver.wait(10)
        spool = Spool(tmp_path / "spool")
        eventually(lambda: spool.counts()["results"] == N_TASKS, 60, "pools to finish alone")
        again = run_script(script, tmp_path, str(tmp_path / "runs"), "wait")
        assert again.returncode == 0, again.stderr
        assert f"total {TOTAL}" in again.stdout
        assert f"{N_TASKS} of {N_TASKS} tasks already done" in again.stderr
        counts = _executions(tmp_path)
        assert len(counts) == 48 and set(counts.values()) == {1}  # nothing ran twice
    finally:
        driver.kill()
        _kill_pools(tmp_path / "spool")


class SlowSubmit(LocalProvider):
    """A provider whose block submission (sbatch on a busy cluster) takes until the test
    lets it go on."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.asked, self.go = threading.Event(), threading.Event()

    def submit(self, spool, command, block):
        self.asked.set()
        if not self.go.wait(60):
            raise AssertionError("the test never let the block start")
        return super().submit(spool, command, block)


@python_app
def twice(i):
    return 2 * i


def test_calls_reach_the_spool_while_a_block_is_slow_to_start(tmp_path, monkeypatch):
    # A driver killed while sbatch is still busy must leave its calls on disk, where the
    # pools find them: the writer does not wait for the block's start.
    monkeypatch.chdir(tmp_path)
    provider = SlowSubmit(init_blocks=1, max_blocks=1)
    ex = SpoolExecutor(spool=tmp_path / "s", provider=provider, max_workers_per_node=1,
                       idle_timeout=5, heartbeat_period=0.5)
    farm.load(farm.Config(executors=[ex]))
    futs = [twice(i) for i in range(40)]
    try:
        assert provider.asked.wait(30), "no block was asked for"
        spool = Spool(tmp_path / "s")
        eventually(lambda: len(spool.known_keys()[1]) == 40, 30, "the 40 calls in the spool")
        assert not ex.blocks  # still in its sbatch
    finally:
        provider.go.set()
    assert [f.result(60) for f in futs] == [2 * i for i in range(40)]
    _kill_pools(tmp_path / "s")


def test_driver_killed_at_random_moments_then_resumed(tmp_path):
    script = _setup(tmp_path)
    rng = random.Random(7)
    kills = 0
    try:
        for _ in range(6):
            d = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs"), "wait"],
                                 cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            try:
                d.wait(rng.uniform(0.05, 0.8))
            except subprocess.TimeoutExpired:
                d.send_signal(signal.SIGKILL)
                kills += 1
            d.wait(10)
        final = run_script(script, tmp_path, str(tmp_path / "runs"), "wait", timeout=90)
        assert final.returncode == 0, final.stderr
        assert f"total {TOTAL}" in final.stdout
        counts = _executions(tmp_path)
        # pools were never killed, so no task may have run twice, however the driver died
        assert len(counts) == 48 and set(counts.values()) == {1}, counts
        assert kills >= 3
    finally:
        _kill_pools(tmp_path / "spool")


class Unshared(Launcher):
    """Run the pool with no network at all (a firewalled compute node)."""

    def __call__(self, command, tasks_per_node, nodes_per_block):
        return f"exec unshare -n {command}"


def test_pool_without_network_completes_a_workflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    farm.load(spool_config(tmp_path / "s", launcher=Unshared()))

    @python_app
    def reach(port):
        import socket
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return "connected"
        except OSError as e:
            return f"no network: {e}"

    @python_app
    def square(x):
        return x * x

    @python_app
    def add_all(*xs):
        return sum(xs)

    assert reach(port).result(60).startswith("no network")
    assert add_all(*[square(i) for i in range(10)]).result(60) == 285
    listener.close()


HONEST = textwrap.dedent("""
    import farm
    from farm import python_app

    @python_app
    def check(i):
        if i % 4 == 0:
            raise ValueError(f"bad {i}")
        return i

    with farm.load():
        futs = [check(i) for i in range(12)]
        print("failed", sum(1 for f in futs if f.exception(60) is not None))
""")


def test_the_default_spool_follows_the_script_and_resume_counts_failures(tmp_path):
    (tmp_path / "job").mkdir()
    script = tmp_path / "job" / "honest.py"
    script.write_text(HONEST)
    env = {k: v for k, v in os.environ.items() if k != "FARM_SPOOL_ROOT"}
    first = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "failed 3" in first.stdout, first.stderr
    spool = tmp_path / "job" / "honest.farm"
    assert f"farm: new spool {spool}" in first.stderr  # beside the script, path in full
    # Started from elsewhere (a batch job starts in $HOME): the same spool, honestly counted.
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    again = subprocess.run([sys.executable, str(script)], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (f"farm: resuming spool {spool}: 9 of 12 tasks already done, 3 failed (they run "
            "again), 0 queued or running") in again.stderr
    assert not (elsewhere / "honest.farm").exists()
