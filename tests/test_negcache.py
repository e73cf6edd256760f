"""The rule "never decide that a file is missing from a lookup" (farm.spool.fs), tested on a
local disk by making processes behave as NFS clients: FARM_FAULTS=negcache=S caches every
"no such file" answer for S seconds, until the process lists the parent directory or makes
the name itself.  Each test is a sequence that went wrong on a real NFS (tests/test_nfs.py
runs the same on one); without the rule each one fails here too."""

from __future__ import annotations

import glob
import os
import time

import pytest

import farm
from farm import python_app
from farm.spool import Spool, fs
from tests.conftest import eventually, spool_config

T = 60


@python_app
def once(marker):
    import uuid
    open(f"{marker}.{uuid.uuid4().hex}", "w").close()
    return 42


@python_app
def hop(prev=None):
    return (prev or 0) + 1


@pytest.fixture
def negcache(monkeypatch):
    """This process caches negative lookups for 30 s, as an NFS client does."""
    monkeypatch.setattr(fs, "_NEG_TTL", 30.0)
    monkeypatch.setattr(fs, "_NEG", {})


def test_a_result_cached_as_missing_is_found_on_resume(tmp_path, pools, negcache, monkeypatch,
                                                       capsys):
    monkeypatch.chdir(tmp_path)
    marker = str(tmp_path / "ran")
    farm.load(spool_config(tmp_path / "s", blocks=0))
    ex = farm.dfk().executors["spool"]
    f = once(marker)
    assert ex.flush(T)
    # This "client" looks the result up before it exists: the answer stays cached.
    assert fs.peek(ex.spool.result_path(f.key)) is None
    farm.clear()
    pools.start(ex.spool.path, "--workers", "1", "--idle-timeout", "30")
    eventually(lambda: os.path.exists(ex.spool.result_path(f.key)), T, "the task to finish")
    assert fs.peek(ex.spool.result_path(f.key)) is None  # still cached as missing here
    # The script runs again on this client: the result is found, the task not run again.
    capsys.readouterr()
    farm.load(spool_config(tmp_path / "s", blocks=0))
    t0 = time.monotonic()
    assert once(marker).result(T) == 42
    assert time.monotonic() - t0 < 5
    assert len(glob.glob(marker + ".*")) == 1
    assert "1 of 1 tasks already done" in capsys.readouterr().err


def test_chain_hops_do_not_wait_for_the_sweep(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FARM_FAULTS", "negcache=30")  # the pools: another NFS client each
    cfg = spool_config(tmp_path / "s", blocks=0)
    cfg.executors[0].sweep_period = 600  # (only the protocol may promote, not a sweep)
    farm.load(cfg)
    spool = farm.dfk().executors["spool"].spool
    for _ in range(2):
        pools.start(spool.path, "--workers", "1", "--sweep", "600")
    # Tasks without dependents first, one at a time (not in bundles): the pools look up
    # (and cache as missing) the dependents index of each, in most shards.
    for i in range(100):
        assert hop(i).result(T) == i + 1
    prev, futs = None, []
    for _ in range(20):
        prev = hop(prev)
        futs.append(prev)
    assert prev.result(T) == 20
    ends = [spool.read_result(f.key)[0] for f in futs]
    gaps = [b["t_start"] - a["t_end"] for a, b in zip(ends, ends[1:], strict=False)]
    assert max(gaps) < 2.0, gaps


def test_shutdown_reaches_pools_that_cached_it_as_missing(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FARM_FAULTS", "negcache=30")
    farm.load(spool_config(tmp_path / "s", blocks=0))
    spool = farm.dfk().executors["spool"].spool
    p = pools.start(spool.path, "--workers", "1", "--idle-timeout", "60")
    assert hop(1).result(T) == 2  # (the pool has looked for control/shutdown by now)
    t0 = time.monotonic()
    farm.clear()  # all done: the driver asks the pools to stop
    assert p.wait(15) == 0
    assert time.monotonic() - t0 < 5


def test_missing_is_confirmed_by_a_listing(tmp_path, negcache):
    spool = Spool.create(tmp_path / "s")
    path = spool.p("control", "flag")
    assert fs.read(path) is None  # confirmed: not in the listing of control/
    assert fs.peek(path) is None  # a lookup: "not there" is cached
    with open(path, "wb") as f:  # made behind this client's back (another node)
        f.write(b"x")
    assert fs.peek(path) is None  # the cached answer...
    assert fs.read(path) == b"x"  # ...is not the answer: the listing shows the file
    assert fs.OPS["stale"] > 0
    deep = spool.p("deps", "zz", "k" * 32)
    assert fs.listdir(deep) == []  # neither the shard nor the directory exists
    os.makedirs(deep)
    open(os.path.join(deep, "d"), "w").close()
    assert fs.listdir(deep) == ["d"]  # the parent's parent is listed, then the parent
