"""Bad disks: a full filesystem, a read-only spool, an EXDEV rename.  Real mounts (a small
tmpfs), so these need root, as CI has: the pool survives, the error names the cause, and
nothing already published is damaged."""

from __future__ import annotations

import os
import subprocess

import pytest

import farm
from farm import python_app
from farm.errors import SpoolError
from tests.conftest import eventually, spool_config

T = 60
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@python_app
def add(a, b=0):
    return a + b


@pytest.fixture
def small_fs(tmp_path):
    d = tmp_path / "mnt"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)], check=True)
    yield d
    farm.clear()  # before the spool's filesystem goes away
    subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(path):
    """Write until the filesystem is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_full_filesystem(small_fs, pools, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(small_fs / "s", blocks=0))
    spool = farm.dfk().executors["spool"].spool
    before = add(1, 1)
    log = open(tmp_path / "pool.log", "w")
    pool = pools.start(spool.path, "--workers", "1", "--idle-timeout", "60", log=log)
    assert before.result(T) == 2
    published = open(spool.result_path(before.key), "rb").read()
    _fill(small_fs / "filler")
    stuck = add(2, 2)  # submitted while the disk is full
    assert isinstance(stuck.exception(T), SpoolError)
    assert "the filesystem is full" in str(stuck.exception()) and "Nothing was lost" in str(
        stuck.exception())
    os.unlink(small_fs / "filler")
    later = add(3, 3)
    farm.flush()  # in the spool before the disk fills up again
    _fill(small_fs / "filler")  # full again, with a task queued: the pool cannot publish
    eventually(lambda: "the filesystem is full" in open(tmp_path / "pool.log").read(), 30,
               "the pool to report the full filesystem")
    assert pool.poll() is None  # the pool is still alive
    os.unlink(small_fs / "filler")
    assert later.result(T) == 6
    assert open(spool.result_path(before.key), "rb").read() == published
    assert add(4, 4).result(T) == 8


def test_read_only_spool(small_fs, pools, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(small_fs / "s", blocks=0))
    spool = farm.dfk().executors["spool"].spool
    f = add(5, 5)
    farm.flush()  # in the spool before it turns read-only
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    log = open(tmp_path / "pool.log", "w")
    pool = pools.start(spool.path, "--workers", "1", "--idle-timeout", "60", log=log)
    try:
        eventually(lambda: "read-only" in open(tmp_path / "pool.log").read(), 30,
                   "the pool to report the read-only filesystem")
        assert pool.poll() is None
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert f.result(T) == 10


def test_exdev_inside_the_spool(small_fs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))
    spool = farm.dfk().executors["spool"].spool
    subprocess.run(["mount", "--bind", str(small_fs), spool.p("tmp")], check=True)
    try:
        exc = add(6).exception(T)
    finally:
        subprocess.run(["umount", "-l", spool.p("tmp")], check=False)
    assert isinstance(exc, SpoolError) and "different filesystems" in str(exc)
