"""Fuzz: corrupt every kind of spool file in generated ways; the code that reads it (a
worker, a liveness observer, the driver) never crashes, and every case ends in a clear
error naming the file, or a quarantine.  Counts of cases tried are printed."""

from __future__ import annotations

import os
import sys
import uuid
from collections import Counter

import cloudpickle
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from farm.errors import CorruptFile, SpoolError
from farm.pool import Worker
from farm.spool import OK, PoolWatch, Spool

TRIED: Counter[str] = Counter()


def add(a, b):
    return a + b


def mutate(data: bytes, how: tuple) -> bytes:
    kind, a, b = how
    if not data:
        return os.urandom(b % 20)
    if kind == "truncate":
        return data[: a % (len(data) + 1)]
    if kind == "flip":
        i = a % len(data)
        return data[:i] + bytes([data[i] ^ (b % 255 + 1)]) + data[i + 1:]
    if kind == "random":
        return os.urandom(a % 300)
    if kind == "prefix":
        return os.urandom(b % 20 + 1) + data
    return b""  # empty


MUTATIONS = st.tuples(st.sampled_from(["truncate", "flip", "random", "prefix", "empty"]),
                      st.integers(0, 10_000), st.integers(0, 10_000))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    spool = Spool.create(tmp_path_factory.mktemp("fuzz") / "s")
    worker = Worker(spool.path, "fz", 0, 1)
    worker.spool = spool
    worker.dir = spool.worker_dir("fz", 0)
    os.mkdir(worker.dir)
    blob = cloudpickle.dumps(add)
    spool.put_app("addapp", {"name": "add", "python": sys.version.split()[0]}, blob)
    yield spool, worker
    print("\nfuzz cases tried:", dict(TRIED))


def _task(spool, deps=(), args=(1, 2), app="addapp"):
    key = uuid.uuid4().hex
    header = {"key": key, "name": "add", "kind": "python", "app": app, "deps": list(deps)}
    assert spool.put_task(key, header, cloudpickle.dumps((args, {})), "ready")
    return key


def _run(spool, worker, key):
    path = spool.claim(key, worker.dir)
    assert path
    worker.run(path)  # must not raise, whatever the files hold
    assert os.listdir(worker.dir) == []  # the claim is settled, one way or the other
    res = spool.read_result(key)
    if res is None:
        # Given back to look again later (a file it names is missing: on NFS that may be
        # a visibility delay, so the worker waits out a grace period before failing it).
        assert spool.ready_names().count(key) == 1
        os.unlink(spool.p("ready", key))
        return {"status": OK}
    return res[0]


def _clear_or_quarantined(spool, header, path):
    if header["status"] == OK:
        return  # the mutation happened to leave a valid record
    assert header["status"] == "failed"
    assert path in header["error"] or "quarantined" in header["error"] \
        or "cannot" in header["error"], header["error"]


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(how=MUTATIONS)
@example(how=("flip", 256, 443))  # unpickled into a call without its arguments (unsigned)
def test_corrupt_task_payload(world, signed, how):
    spool, worker = world
    signing_key = spool.key  # (the spool is shared by the module's tests: put it back)
    spool.key = signing_key if signed else None
    try:
        key = _task(spool)
        path = spool.task_path(key)
        data = open(path, "rb").read()
        with open(path, "r+b") as f:  # in place: the ready/ entry is the same inode
            f.write(mutate(data, how))
            f.truncate()
        TRIED[f"task-{how[0]}"] += 1
        _clear_or_quarantined(spool, _run(spool, worker, key), path)
    finally:
        spool.key = signing_key


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(how=MUTATIONS)
def test_corrupt_app_payload(world, how):
    spool, worker = world
    app = uuid.uuid4().hex
    spool.put_app(app, {"name": "add"}, cloudpickle.dumps(add))
    path = spool.p("apps", app)
    data = open(path, "rb").read()
    open(path, "wb").write(mutate(data, how))
    TRIED[f"app-{how[0]}"] += 1
    _clear_or_quarantined(spool, _run(spool, worker, _task(spool, app=app)), path)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(how=MUTATIONS)
def test_corrupt_dependency_result(world, how):
    spool, worker = world
    from farm.data import DepRef
    dep = uuid.uuid4().hex
    spool.publish_result(dep, {"status": OK}, cloudpickle.dumps(40))
    path = spool.result_path(dep)
    data = open(path, "rb").read()
    open(path, "wb").write(mutate(data, how))
    TRIED[f"result-{how[0]}"] += 1
    key = _task(spool, deps=[dep], args=(DepRef(dep), 2))
    _clear_or_quarantined(spool, _run(spool, worker, key), path)
    try:  # and the driver's reading of the damaged result names the file
        spool.read_result(dep)
    except CorruptFile as e:
        assert e.path == path


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(how=MUTATIONS)
def test_corrupt_heartbeats_and_locks(world, how):
    spool, _ = world
    pool = uuid.uuid4().hex[:8]
    spool.write_heartbeat(pool, {"pool": pool, "state": "running", "counter": 1, "lease": 1})
    for path in (spool.p("pools", f"{pool}.yaml"), spool.p("control", "driver.lock")):
        data = open(path, "rb").read() if os.path.exists(path) else b"id: x\n"
        open(path, "wb").write(mutate(data, how))
    TRIED[f"heartbeat-{how[0]}"] += 1
    PoolWatch(spool).check()  # must not raise
    spool.live_pools()
    from farm.spool import driver_identity
    try:
        me = driver_identity()
        spool.acquire_driver(me, lease=0.05)
        spool.release_driver(me)
    except SpoolError as e:
        assert spool.path in str(e)
    os.unlink(spool.p("pools", f"{pool}.yaml"))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(how=MUTATIONS)
def test_corrupt_spool_metadata(tmp_path_factory, how):
    s = Spool.create(tmp_path_factory.mktemp("meta") / "s")
    path = os.path.join(s.path, "spool.yaml")
    open(path, "wb").write(mutate(open(path, "rb").read(), how))
    TRIED[f"spool.yaml-{how[0]}"] += 1
    try:
        Spool(s.path)
    except SpoolError as e:
        assert "spool.yaml" in str(e) or s.path in str(e)
