"""scripts/slow-fs: a slow-metadata FUSE mount that counts the requests it receives.

It needs root and /dev/fuse; without them these tests fail (they do not skip), saying so.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).resolve().parent.parent / "scripts" / "slow-fs")
DELAY_US = 2000


def run(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


def require_root_and_fuse() -> None:
    missing = [what for what, ok in (("root", os.geteuid() == 0),
                                     ("/dev/fuse", os.path.exists("/dev/fuse"))) if not ok]
    if missing:
        pytest.fail(f"scripts/slow-fs needs {' and '.join(missing)} (it mounts a FUSE "
                    "filesystem); run the tests as root on a machine (or a container started "
                    "with --device /dev/fuse --cap-add SYS_ADMIN) that has them")


def start(d: str, delay: int) -> subprocess.CompletedProcess:
    # The first start on a fresh machine installs fuse3 with apt.
    out = run(SCRIPT, "start", d, str(delay), timeout=600, check=False)
    if out.returncode != 0:
        run(SCRIPT, "stop", d, check=False)
        pytest.fail(f"slow-fs start failed ({out.returncode}):\n{out.stderr}")
    return out


def mounted(mnt: Path) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(mnt) for line in f)


def daemon_pid(d: Path) -> tuple[int, str]:
    _name, pid, started = (d / "pids").read_text().split()
    return int(pid), started


def alive(pid: int, started: str) -> bool:
    """Is this process (the pid with that start time) still running, and not a zombie?"""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == started


def stats(d: Path) -> dict[str, int]:
    return json.loads(run(SCRIPT, "stats", str(d)).stdout)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


@pytest.fixture(scope="module")
def slowfs():
    """A mount with DELAY_US per metadata request, in a fresh directory."""
    require_root_and_fuse()
    d = Path(tempfile.mkdtemp(prefix="farm-slowfs-", dir="/tmp"))
    try:
        out = start(str(d), DELAY_US)
        assert out.stdout == f"{d}/mnt\n"
        yield d
    finally:
        stop = run(SCRIPT, "stop", str(d), check=False)
        shutil.rmtree(d, ignore_errors=True)
        assert stop.returncode == 0, stop.stderr


def test_mount_appears(slowfs):
    mnt = slowfs / "mnt"
    with open("/proc/self/mounts") as f:
        kinds = [line.split()[2] for line in f if line.split()[1] == str(mnt)]
    assert kinds == ["fuse.slowfs"]
    (mnt / "through").write_text("hello")
    assert (slowfs / "backing" / "through").read_text() == "hello"
    (slowfs / "backing" / "behind").write_text("there")
    assert (mnt / "behind").read_text() == "there"
    assert {"through", "behind"} <= set(os.listdir(mnt))


def test_rename_and_lookups_are_counted(slowfs):
    mnt = slowfs / "mnt"
    (mnt / "a").write_text("x")
    before = stats(slowfs)
    os.rename(mnt / "a", mnt / "b")
    got = delta(before, stats(slowfs))
    assert got["rename"] == 1
    assert got["total"] >= 1 and got["delayed"] >= 1
    before = stats(slowfs)
    assert not (mnt / "no-such-name").exists()
    got = delta(before, stats(slowfs))
    assert got.get("lookup") == 1, got  # a lookup answered "no such name", counted too


def test_stat_costs_the_delay(slowfs):
    path = slowfs / "mnt" / "timed"
    path.write_text("")
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        os.stat(path)
        times.append(time.perf_counter() - t0)
    assert min(times) >= DELAY_US / 1e6, [round(t * 1e6) for t in times]


def test_reset_zeroes_the_counters(slowfs):
    os.stat(slowfs / "mnt")
    cleared = json.loads(run(SCRIPT, "reset", str(slowfs)).stdout)
    assert cleared["total"] >= 1
    # Asking costs the mount nothing.  (Only the kernel's asynchronous forget and release
    # requests, which are not delayed, could come in meanwhile.)
    assert stats(slowfs)["delayed"] == 0


def test_exclusive_operations_stay_exclusive(slowfs):
    # farm decides claims and publishes by these outcomes: the mount must keep them.
    mnt = slowfs / "mnt"
    (mnt / "src").write_text("1")
    (mnt / "taken").write_text("2")
    with pytest.raises(FileExistsError):
        os.link(mnt / "src", mnt / "taken")
    with pytest.raises(FileExistsError):
        os.open(mnt / "taken", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.renameat2(-100, bytes(mnt / "src"), -100, bytes(mnt / "taken"), 1)  # NOREPLACE
    assert rc != 0 and ctypes.get_errno() == errno.EEXIST
    assert (mnt / "taken").read_text() == "2"


def test_start_again_is_a_no_op(slowfs):
    pids = (slowfs / "pids").read_text()
    again = run(SCRIPT, "start", str(slowfs), str(DELAY_US))
    assert again.stdout == f"{slowfs}/mnt\n"
    assert (slowfs / "pids").read_text() == pids
    other = run(SCRIPT, "start", str(slowfs), "1", check=False)
    assert other.returncode != 0 and "other settings" in other.stderr


def test_stop_leaves_no_mount_and_no_process():
    require_root_and_fuse()
    d = Path(tempfile.mkdtemp(prefix="farm-slowfs-stop-", dir="/tmp"))
    try:
        start(str(d), 0)
        (d / "mnt" / "kept").write_text("data")
        pid, started = daemon_pid(d)
        assert alive(pid, started) and mounted(d / "mnt")
        fd = os.open(d / "mnt" / "kept", os.O_RDONLY)  # a busy mount goes all the same
        try:
            run(SCRIPT, "stop", str(d))
        finally:
            try:
                os.close(fd)
            except OSError:  # ENOTCONN: its filesystem is gone
                pass
        assert not mounted(d / "mnt")
        assert not alive(pid, started)
        assert (d / "backing" / "kept").read_text() == "data"
        assert json.loads((d / "stats.json").read_text())["create"] == 1
        assert run(SCRIPT, "stats", str(d), check=False).returncode != 0
        run(SCRIPT, "stop", str(d))  # twice is fine
    finally:
        run(SCRIPT, "stop", str(d), check=False)
        shutil.rmtree(d, ignore_errors=True)
