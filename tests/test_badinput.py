"""Bad input gives a clear error naming the task or file; the pool keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import farm
from farm import python_app
from farm.errors import SerializationError, SpoolError, WorkerLost
from farm.spool import Spool
from tests.conftest import FARM, spool_config

T = 60


@python_app
def add(a, b=0):
    return a + b


def _spool():
    return farm.dfk().executors["spool"].spool


def test_corrupt_payload_is_quarantined_and_pool_goes_on(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))
    bad, good = add(1, 1), add(2, 2)
    farm.flush()
    spool = _spool()
    with open(spool.task_path(bad.key), "r+b") as f:  # same inode as ready/KEY
        f.write(b"\x00garbage")
    pool = pools.start(spool.path, "--workers", "1", "--idle-timeout", "30")
    with pytest.raises(SpoolError) as info:
        bad.result(T)
    msg = str(info.value)
    assert bad.key[:8] in msg and "quarantined" in msg and spool.path in msg
    assert good.result(T) == 4
    assert add(3, 3).result(T) == 6  # the same pool still serves
    assert pool.poll() is None
    assert any(n.endswith(".why") for n in os.listdir(spool.p("quarantine")))
    farm.clear()
    farm.load(spool_config(tmp_path / "s"))  # a re-run submits the damaged task afresh
    assert add(1, 1).result(T) == 2


def test_damaged_waiting_payload_fails_its_task_not_the_pool(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))
    a = add(1, 1)
    farm.flush()  # (else a and b would be one chain bundle)
    b = add(a, 1)  # waits for a
    farm.flush()
    spool = _spool()
    with open(spool.task_path(b.key), "r+b") as f:  # the same inode as waiting/KEY
        f.write(b"\x00garbage")
    pool = pools.start(spool.path, "--workers", "1", "--idle-timeout", "30")
    assert a.result(T) == 2
    with pytest.raises(SpoolError, match="damaged or forged"):
        b.result(T)
    assert add(7, 7).result(T) == 14 and pool.poll() is None


def test_stray_files_in_ready_are_ignored(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))
    spool = _spool()
    for stray in (".nfs000123", "notes.txt", "ABCDEF"):
        open(spool.p("ready", stray), "w").close()
    f = add(2, 3)
    pool = pools.start(spool.path, "--workers", "2", "--idle-timeout", "30")
    assert f.result(T) == 5 and pool.poll() is None
    assert sorted(os.listdir(spool.p("ready"))) == [".nfs000123", "ABCDEF", "notes.txt"]


def test_corrupt_result_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s"))
    f = add(5)
    assert f.result(T) == 5
    key = f.key
    farm.clear()
    spool = Spool(tmp_path / "s")
    with open(spool.result_path(key), "wb") as fh:
        fh.write(b"FARM-RESULT 1\n{broken")
    cfg = spool_config(tmp_path / "s")
    cfg.executors[0].rerun_failed = False
    farm.load(cfg)
    g = add(5)
    assert g.key == key
    with pytest.raises(SpoolError, match=spool.result_path(key)):
        g.result(T)
    farm.clear()
    farm.load(spool_config(tmp_path / "s"))  # by default a damaged result is run again
    assert add(5).result(T) == 5
    assert any(n.startswith(f"{key}.rerun-") for n in os.listdir(spool.p("attempts")))


def test_unpicklable_argument_names_task_and_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s"))
    f = add(threading.Lock(), 1)
    exc = f.exception(T)
    assert isinstance(exc, SerializationError)
    assert f.task.label in str(exc) and "argument 0 (lock)" in str(exc)
    assert add(1, 1).result(T) == 2  # nothing else is affected


def test_worker_death_gives_worker_lost_and_pool_goes_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", workers=1))

    @python_app
    def die():
        import os
        os._exit(3)

    with pytest.raises(WorkerLost, match="died"):
        die().result(T)
    assert add(7).result(T) == 7


def test_app_not_importable_on_pool(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "private_mod.py").write_text("def twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(mods))
    import private_mod
    farm.load(spool_config(tmp_path / "s"))
    app = python_app(private_mod.twice)
    with pytest.raises(SerializationError, match="importable"):
        app(2).result(T)


def test_pool_on_missing_or_newer_spool(tmp_path):
    r = subprocess.run([*FARM, "pool", str(tmp_path / "nope")], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "does not exist" in r.stderr and "nope" in r.stderr
    Spool.create(tmp_path / "s")
    (tmp_path / "s" / "spool.yaml").write_text("format: 9\n")
    r = subprocess.run([*FARM, "pool", str(tmp_path / "s")], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "newer farm" in r.stderr
    with pytest.raises(SpoolError, match="newer farm"):
        farm.load(spool_config(tmp_path / "s"))


def test_status_shows_failures_with_stderr_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s"))

    @farm.bash_app
    def broken(stderr=farm.AUTO_LOGNAME):
        return "echo oops >&2; exit 4"

    f = broken()
    assert f.exception(T) is not None
    out = subprocess.run([*FARM, "status", str(tmp_path / "s")], capture_output=True,
                         text=True, timeout=30).stdout
    assert "failed 1" in out and "BashExitFailure" in out and f.stderr in out
    assert "pools: 1 live" in out


def test_walltime_must_be_positive(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s"))
    with pytest.raises(farm.ConfigError, match="walltime"):
        add(1, walltime="10m")
    assert sys.modules["farm"] is farm


def test_cancel_stops_pools_and_returns_their_work(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))

    @farm.bash_app
    def nap():
        return "sleep 30"

    f = nap()
    spool = _spool()
    pool = pools.start(spool.path, "--workers", "1", "--idle-timeout", "60")
    from tests.conftest import eventually
    eventually(lambda: spool.counts()["running"] == 1, 30, "the pool to claim the task")
    r = subprocess.run([*FARM, "cancel", spool.path, "--wait", "30"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "asked 1 live pool" in r.stdout
    assert pool.wait(30) == 0
    assert spool.ready_names() == [f.key]  # interrupted, back in ready/, attempt unchanged
    assert not f.done()


@pytest.mark.parametrize("make, words", [
    (lambda d: (d / "f").write_text("x") and d / "f", "it is a file, not a directory"),
    (lambda d: (d / "f").write_text("x") and d / "f" / "sub",
     "a part of the path is a file, not a directory"),
])
def test_a_bad_spool_path_is_one_clear_line(tmp_path, make, words):
    with pytest.raises(SpoolError, match=words) as info:
        Spool.create(make(tmp_path))
    assert "\n" not in str(info.value)
    r = subprocess.run([*FARM, "run", "--spool", str(make(tmp_path)), "--array", "1", "--",
                        "true"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_read_only_spool_disk_is_one_clear_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(ro)], check=True)
    try:
        with pytest.raises(SpoolError, match="the filesystem is read-only"):
            Spool.create(ro / "s")
    finally:
        subprocess.run(["umount", str(ro)], check=True)
