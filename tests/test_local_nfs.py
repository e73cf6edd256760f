"""The real-NFS test bed itself (scripts/local-nfs through tests/nfs.py): two Linux kernel
NFS clients with caches of their own, in a VM, on one nfs-ganesha server.  Root only, as
CI runs.  The commands in the VM are shell commands: a Python start-up costs seconds
there."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import eventually
from tests.nfs import SCRIPT, nfs_fixture  # noqa: F401  (the fixture "nfs")

VERSIONS = ["vers=4.2", "vers=3"]
both = pytest.mark.parametrize("nfs", VERSIONS, indirect=True)
T = 30  # seconds: the bound on any one command in the VM


def vm(nfs, script: str, *args, timeout: float = T) -> subprocess.CompletedProcess:
    """Run a shell script in the VM ($A and $B are the two mounts), asserting success."""
    out = nfs.run("sh", "-c", f'A="$NFS_MNT_A" B="$NFS_MNT_B"; {script}', "sh", *args,
                  timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out


@both
def test_both_mounts_are_the_export(nfs, request):
    name = request.node.name.replace("[", "-").strip("]")
    (nfs.export / name).write_text("from the server\n")
    out = vm(nfs, 'grep -E "^[^ ]+ $A nfs|^[^ ]+ $B nfs" /proc/mounts; cat "$A/$1" "$B/$1";'
                  ' echo "from B" > "$B/$1.b"', name)
    mounts, text = out.stdout.splitlines()[:2], out.stdout.splitlines()[2:]
    assert all("nosharecache" in m and nfs.opts.split(",")[0] in m for m in mounts), mounts
    assert len(mounts) == 2
    assert text == ["from the server"] * 2
    assert (nfs.export / f"{name}.b").read_text() == "from B\n"


@both
def test_a_negative_lookup_is_cached_but_a_listdir_is_not(nfs, request):
    # What farm relies on: through B, a stat() can miss a file A has made (the "no such
    # name" B cached is believed for up to acdirmin, 30 s), but a listdir sees it.
    d = f"neg-{request.node.callspec.id}"
    (nfs.export / d).mkdir()
    out = vm(nfs, """
        if stat "$B/$1/n" >/dev/null 2>&1; then echo "B: n before"; else echo "B: no n"; fi
        touch "$A/$1/n"
        if stat "$B/$1/n" >/dev/null 2>&1; then echo "B: n"; else echo "B: still no n"; fi
        ls "$B/$1"
        if stat "$B/$1/n" >/dev/null 2>&1; then echo "B: n"; else echo "B: still no n"; fi
        """, d)
    assert out.stdout.splitlines() == ["B: no n", "B: still no n", "n", "B: n"]


def test_exec_relays_status_output_environment_and_cwd(nfs):
    cwd = nfs.mnt_a / "cwd"
    (nfs.export / "cwd").mkdir()  # it exists here only as DIR/export/cwd
    out = nfs.run("sh", "-c", 'echo "$FARM_NFS_TEST $PWD"; echo oops >&2; exit 7',
                  cwd=cwd, env={"PATH": "/usr/bin:/bin", "FARM_NFS_TEST": "x y"}, timeout=T)
    assert (out.returncode, out.stdout, out.stderr) == (7, f"x y {cwd}\n", "oops\n")
    assert nfs.run("/no/such/program", timeout=T).returncode == 127


def test_exec_timeout_and_terminate_end_the_command_in_the_vm(nfs, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        nfs.run("sleep", "60", timeout=1)
    assert time.monotonic() - t0 < 10
    pid_file = tmp_path / "pid"  # not on NFS: the VM sees the host's files through 9p
    p = nfs.popen("sh", "-c", f'echo $$ > {pid_file}; exec sleep 60')
    try:
        eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), T, "the command")
        p.terminate()
        assert p.wait(timeout=T) == 128 + 15
    finally:
        p.kill()
    # The process group was signalled in the VM: that pid no longer runs there.
    assert nfs.run("sh", "-c", f"kill -0 {pid_file.read_text().strip()}",
                   timeout=T).returncode != 0


def test_start_again_is_idempotent(nfs):
    pids = (nfs.dir / "pids").read_text()
    out = subprocess.run([SCRIPT, "start", str(nfs.dir)], capture_output=True, text=True,
                         timeout=T, env={"PATH": "/usr/bin:/bin", "LOCAL_NFS_OPTS": nfs.opts})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(nfs.mnt_a), str(nfs.mnt_b)]
    assert (nfs.dir / "pids").read_text() == pids


@both
def test_the_mounts_survive_a_server_restart(nfs, tmp_path):
    # A file held open across the restart (v4: its state is reclaimed in the grace
    # period), and a write after it, within a bound.
    name = f"held-{nfs.opts.replace('=', '')}"
    ready, go = tmp_path / "ready", tmp_path / "go"
    held = nfs.popen("sh", "-c", f'exec 3> "$NFS_MNT_A/{name}"; echo before >&3; '
                     f'touch {ready}; while [ ! -e {go} ]; do sleep 0.2; done; echo after >&3',
                     stderr=subprocess.PIPE, text=True)
    try:
        eventually(ready.exists, T, "the file to be open in the VM")
        old = nfs.pids()["ganesha"]
        nfs.restart_server()
        assert nfs.pids()["ganesha"] != old
        go.touch()
        t0 = time.monotonic()
        vm(nfs, 'echo new > "$A/$1.new"; cat "$B/$1.new"', name, timeout=45)
        assert held.wait(timeout=T) == 0, held.stderr.read()
    finally:
        held.kill()
    assert time.monotonic() - t0 < 30  # measured: ~8 s on v4.2 (grace), <1 s on v3
    assert (nfs.export / name).read_text() == "before\nafter\n"
    assert (nfs.export / f"{name}.new").read_text() == "new\n"
