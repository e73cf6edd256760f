"""Invariants of the spool protocol (docs/spool-format.md), each with real processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import shutil
import time
import uuid

import pytest

import farm
from farm import python_app
from farm.errors import CorruptFile, SpoolError
from farm.spool import DEP_FAILED, OK, Spool, fs, records
from tests.conftest import eventually, spool_config

CTX = mp.get_context("fork")


def _publisher(path, keys, size, start):
    spool = Spool(path)
    start.wait(10)
    for k in keys:
        spool.publish_result(k, {"status": OK}, os.urandom(size))


def _reader(path, keys, start, bad):
    spool = Spool(path)
    start.wait(10)
    seen = 0
    while seen < len(keys):
        seen = 0
        for k in keys:
            try:
                res = spool.read_result(k)
            except CorruptFile as e:
                bad.put(str(e))
                return
            if res is not None:
                seen += 1
                assert len(res[1]) == 1 << 20


def test_partial_files_are_never_read(tmp_path):
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(60)]
    start, bad = CTX.Barrier(3), CTX.Queue()
    procs = [CTX.Process(target=_publisher, args=(spool.path, keys, 1 << 20, start))]
    procs += [CTX.Process(target=_reader, args=(spool.path, keys, start, bad)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert bad.empty(), bad.get()
    assert os.listdir(spool.p("tmp")) == []  # tmp files are published or removed


def _racer(path, keys, me, start, wins):
    spool = Spool(path)
    start.wait(10)
    for k in keys:
        if spool.publish_result(k, {"status": OK, "pool": me}, me.encode()):
            wins.put((k, me))


def test_a_result_is_published_once_when_pools_race(tmp_path):
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(200)]
    n = 6
    start, wins = CTX.Barrier(n), CTX.Queue()
    procs = [CTX.Process(target=_racer, args=(spool.path, keys, f"p{i}", start, wins))
             for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    winners = {}
    while not wins.empty():
        k, me = wins.get()
        assert k not in winners, f"{k} published twice"
        winners[k] = me
    assert set(winners) == set(keys)
    for k, me in winners.items():
        header, body = spool.read_result(k)
        assert header["pool"] == me and body == me.encode()
    assert sorted(spool.notices()) == sorted(keys)  # one notice per result


def test_two_pools_racing_for_1000_tasks_run_each_once(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    farm.load(spool_config(tmp_path / "s", blocks=0))  # we start the pools ourselves

    @python_app
    def mark(i, d):
        import os
        import uuid
        open(os.path.join(d, f"{i}.{uuid.uuid4().hex}"), "w").close()
        return i

    spool = farm.dfk().executors["spool"].spool
    for _ in range(2):
        pools.start(spool.path, "--workers", "2", "--idle-timeout", "30")
    eventually(lambda: len(spool.live_pools()) == 2, 30, "both pools to start")
    futs = [mark(i, str(runs)) for i in range(1000)]
    assert sorted(f.result(120) for f in futs) == list(range(1000))
    ran = [name.split(".")[0] for name in os.listdir(runs)]
    assert len(ran) == 1000 and len(set(ran)) == 1000
    by_pool = {}
    for _, h in spool.iter_results([f.key for f in futs]):
        by_pool[h["pool"]] = by_pool.get(h["pool"], 0) + 1
    assert len(by_pool) == 2, by_pool  # both pools took part in the race


def _task(spool, key, deps, state="waiting"):
    assert spool.put_task(key, {"key": key, "name": "t", "kind": "python", "app": "x",
                                "deps": deps}, b"", state)


def test_dependent_enqueued_after_dep_finished_is_promoted(tmp_path):
    """The driver adds the edge after the completer looked: the re-check promotes."""
    spool = Spool.create(tmp_path / "s")
    d, t = "aa" + uuid.uuid4().hex[2:], "bb" + uuid.uuid4().hex[2:]
    _task(spool, d, [], "ready")
    os.unlink(spool.p("ready", d))  # (as if claimed and run)
    spool.publish_result(d, {"status": OK})
    assert spool.settle_dependents(d) is None  # nobody waits yet
    _task(spool, t, [d])
    spool.add_dependent(d, t)
    assert spool.try_promote(t) == "ready"
    assert spool.ready_names() == [t]


def test_failed_dependency_fails_dependents_transitively(tmp_path):
    spool = Spool.create(tmp_path / "s")
    a, b, c = (uuid.uuid4().hex for _ in range(3))
    _task(spool, a, [], "ready")
    for key, dep in ((b, a), (c, b)):
        _task(spool, key, [dep])
        spool.add_dependent(dep, key)
    spool.publish_result(a, {"status": "failed"})
    spool.settle_dependents(a)
    assert spool.result_status(b) == DEP_FAILED
    assert spool.result_status(c) == DEP_FAILED
    assert spool.read_result(c)[0]["failed_deps"] == [b]
    assert os.listdir(spool.p("waiting")) == []


def test_sweep_repairs_a_lost_wakeup(tmp_path):
    spool = Spool.create(tmp_path / "s")
    d, t = uuid.uuid4().hex, uuid.uuid4().hex
    _task(spool, d, [], "ready")
    _task(spool, t, [d])  # crash: the edge was never written
    os.unlink(spool.p("ready", d))  # (as if claimed and run)
    spool.publish_result(d, {"status": OK})
    spool.settle_dependents(d)
    assert spool.ready_names() == []
    assert spool.sweep()["promoted"] == 1
    assert spool.ready_names() == [t]


def test_interrupted_submit_is_finished_by_the_next_driver(tmp_path):
    spool = Spool.create(tmp_path / "s")
    k = uuid.uuid4().hex
    header = {"key": k, "name": "t", "kind": "python", "app": "x", "deps": []}
    # kill -9 between the link into tasks/ and the rename into ready/:
    tmp = spool.p("tmp", f"{k}.new")
    with open(tmp, "wb") as f:
        f.write(records.encode("TASK", header, b"args"))
    os.makedirs(os.path.dirname(spool.task_path(k)), exist_ok=True)
    os.link(tmp, spool.task_path(k))
    # the next driver derives the same key:
    assert spool.put_task(k, header, b"args", "ready") is False  # the task exists
    assert not os.path.exists(tmp)
    assert spool.is_orphan(k)  # ... but is in no state
    spool.enqueue(k, ready=True)
    assert not spool.is_orphan(k) and spool.ready_names() == [k]


def test_records_name_the_file_when_damaged(tmp_path):
    path = str(tmp_path / "f")
    with pytest.raises(CorruptFile, match=str(path)):
        records.decode("RESULT", b"garbage", path)
    with pytest.raises(CorruptFile, match="truncated"):
        records.decode("RESULT", b"FARM-RESULT 1\n{\"status\": ", path)
    with pytest.raises(CorruptFile, match="newer farm"):
        records.decode("TASK", b"FARM-TASK 99\n{}\n", path)
    assert records.decode("TASK", records.encode("TASK", {"a": 1}, b"xy"), path) == ({"a": 1},
                                                                                      b"xy")


def test_spool_open_errors(tmp_path):
    with pytest.raises(SpoolError, match="does not exist"):
        Spool(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.csv").write_text("x")
    with pytest.raises(SpoolError, match="not a farm spool"):
        Spool(tmp_path / "plain")
    with pytest.raises(SpoolError, match="other files"):
        Spool.create(tmp_path / "plain")
    s = Spool.create(tmp_path / "s")
    assert os.stat(s.path).st_mode & 0o777 == 0o700
    (tmp_path / "s" / "spool.yaml").write_text("format: 7\n")
    with pytest.raises(SpoolError, match="newer farm.*format 7"):
        Spool(tmp_path / "s")


def test_kill_between_dep_failure_and_unlink_is_swept(tmp_path):
    """A dependency failure is recorded (result) before waiting/ is cleared: a kill -9 in
    between leaves an entry with a result, which the sweep clears; nothing is lost."""
    spool = Spool.create(tmp_path / "s")
    t = uuid.uuid4().hex
    _task(spool, t, ["ff" * 16])
    spool.publish_result(t, {"status": DEP_FAILED, "failed_deps": ["ff" * 16]})
    assert spool.sweep()["cleared"] == 1
    assert os.listdir(spool.p("waiting")) == [] and spool.result_status(t) == DEP_FAILED


def test_a_pool_sweep_leaves_its_own_claims_and_tmp_alone_when_told(tmp_path):
    """A pool's sweep skips the worker directories of pools with a heartbeat (each looks
    after its own), and looks at tmp/ only now and then; another caller's sweep does
    both."""
    spool = Spool.create(tmp_path / "s")
    mine, other = spool.worker_dir("me", 0), spool.worker_dir("you", 0)
    for wdir in (mine, other):
        k = uuid.uuid4().hex
        _task(spool, k, [], "ready")
        os.makedirs(wdir)
        spool.claim(k, wdir)
        spool.publish_result(k, {"status": OK})  # (its pool died before dropping the claim)
    old = spool.p("tmp", "left.new")
    open(old, "w").close()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    got = spool.sweep(set(), skip={"me"}, tmp=False)
    assert got["cleared"] == 1 and got["tmp"] == 0
    assert len(os.listdir(mine)) == 1 and os.listdir(other) == [] and os.path.exists(old)
    spool.sweep({"me"}, skip={"me"}, tmp=False)  # (a pool declared dead is looked at)
    assert os.listdir(mine) == [] and os.path.exists(old)
    assert spool.sweep()["tmp"] == 1 and not os.path.exists(old)


def test_listings_follow_a_spool_removed_and_made_again_at_its_path(tmp_path):
    """A spool removed and made again at the same path is listed as it is now (no
    directory of the old one is held open for it)."""
    path = tmp_path / "s"
    spool = Spool.create(path)
    k = uuid.uuid4().hex
    _task(spool, k, [], "ready")
    assert fs.listdir(spool.p("ready")) == [k]
    shutil.rmtree(path)
    again = Spool.create(path)
    assert fs.listdir(again.p("ready")) == []
    k2 = uuid.uuid4().hex
    _task(again, k2, [], "ready")
    assert fs.listdir(again.p("ready")) == [k2] and fs.scan(again.p("ready")).keys() == {k2}


def test_a_process_holds_few_directories_open(tmp_path, monkeypatch):
    """Links are made relative to directories held open, but not to directories named by
    a key (one per task with dependents), and never more than a quarter of the file limit
    allows: a long-lived driver keeps its descriptors."""
    monkeypatch.setattr(fs, "_DIR_FDS", {})
    src = tmp_path / "f"
    src.write_text("x")
    try:
        for i in range(fs._HELD_CAP + 40):
            for name in (f"{i:02x}", uuid.uuid4().hex):
                d = tmp_path / name
                d.mkdir()
                fs.link(str(src), str(d / "l"))
                assert (d / "l").exists()
        assert len(fs._DIR_FDS) == fs._HELD_CAP
        assert all(len(os.path.basename(p)) < 32 for p in fs._DIR_FDS)
    finally:
        for fd in fs._DIR_FDS.values():
            os.close(fd)
    assert fs._HELD_CAP <= resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4
