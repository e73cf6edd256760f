"""Shared fixtures: real spools, real pool processes, bounded waits."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest

import farm
from farm.executors import SpoolExecutor, ThreadPoolExecutor
from farm.providers import LocalProvider

FARM = [sys.executable, "-m", "farm"]


@pytest.fixture(autouse=True, scope="session")
def _signing_key(tmp_path_factory):
    """Tests sign with their own key (inherited by every driver and pool they start)."""
    os.environ["FARM_KEY_FILE"] = str(tmp_path_factory.mktemp("home") / "farm-key")
    yield


@pytest.fixture(autouse=True)
def _unload():
    yield
    farm.clear()


def spool_config(path, blocks: int = 1, workers: int = 2, idle: float = 10.0,
                 launcher=None, **config) -> farm.Config:
    provider = LocalProvider(init_blocks=blocks, max_blocks=blocks, launcher=launcher)
    ex = SpoolExecutor(spool=path, provider=provider, max_workers_per_node=workers,
                       idle_timeout=idle, heartbeat_period=0.5)
    return farm.Config(executors=[ex], **config)


@pytest.fixture(params=["threads", "spool"])
def loaded(request, tmp_path, monkeypatch):
    """farm loaded on each executor kind in turn (cwd = tmp_path)."""
    monkeypatch.chdir(tmp_path)
    if request.param == "threads":
        cfg = farm.Config(executors=[ThreadPoolExecutor(max_threads=4)], run_dir=str(tmp_path))
    else:
        cfg = spool_config(tmp_path / "spool")
    dfk = farm.load(cfg)
    dfk.kind = request.param
    yield dfk


class Pools:
    """Pool processes started by a test; all killed at teardown."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, spool, *args: str, prefix: tuple[str, ...] = (), log=None):
        cmd = [*prefix, *FARM, "pool", str(spool), "--heartbeat", "0.5", *args]
        p = subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL,
                             stderr=subprocess.STDOUT if log else subprocess.PIPE,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait(10)


@pytest.fixture
def pools():
    ps = Pools()
    yield ps
    ps.stop_all()


def eventually(predicate, timeout: float, what: str, period: float = 0.02):
    """Wait (bounded) for a condition that another process makes true."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(period)


def run_script(path, cwd, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def about_pi(line: str) -> bool:
    """The tutorial's Monte Carlo estimate of pi, rounded to 0.1: 3.1, or 3.2 now and then
    (3e5 random points: the mean passes 3.15 about one run in 400)."""
    head, _, value = line.rpartition(" ")
    return head == "pi is about" and abs(float(value) - math.pi) < 0.1
