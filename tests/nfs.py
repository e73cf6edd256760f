"""A real NFS for tests: scripts/local-nfs as pytest fixtures (root only, as CI runs).

A bed is nfs-ganesha serving `export` and one emulated VM whose Linux kernel mounts it
twice, at `mnt_a` and `mnt_b`, with caches of their own, like two client nodes.  The
mounts exist only inside the VM: run programs there with `run` or `popen` (same paths,
environment and working directory as here).  A test process here that uses `export`
directly plays a process on the NFS server itself.  Starting a bed takes ~15 s, so
there is one per option string per session, stopped at the session's end.

    from tests.nfs import nfs_fixture  # noqa: F401  (the fixture "nfs")

    NFS_OPTS = "vers=3"              # optional: the module's mount options

    def test_x(nfs):
        (nfs.export / "f").write_text("x")
        assert nfs.run("cat", nfs.mnt_b / "f", timeout=30).stdout == "x"

The fixture "nfs_beds" (import nfs_beds_fixture) is a function OPTS -> bed, for any
option string (see scripts/README.md, local-nfs).  The fixtures' functions have other
names than the fixtures so that the imports do not clash with test arguments.
The VM's CPUs are emulated: a Python start-up there costs 0.5-3 s, `import farm` 3-7 s,
so keep Python processes in the VM few, and prefer shell commands.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).resolve().parent.parent / "scripts" / "local-nfs")
DEFAULT_OPTS = "vers=4.2"
START_TIMEOUT = 600  # the first start on a fresh machine installs Debian packages


def _starttime(pid: str) -> str | None:
    """Field 22 of /proc/PID/stat, or None if the process is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


class NFSBed:
    """A running bed: paths, and ways to run commands in its client VM."""

    def __init__(self, directory: str, opts: str):
        self.dir = Path(directory)
        self.opts = opts
        self.export = self.dir / "export"  # the server's own view
        self.mnt_a = self.dir / "mnt-a"  # in the VM only; an empty directory here
        self.mnt_b = self.dir / "mnt-b"

    def argv(self, argv, timeout: float | None = None, cwd=None) -> list[str]:
        """The `local-nfs exec` command line that runs ARGV in the VM."""
        cmd = [SCRIPT, "exec", str(self.dir)]
        if cwd is not None:  # the VM's working directory; it may exist in the VM only
            cmd += ["--cwd", str(cwd)]
        if timeout is not None:
            cmd += ["--timeout", str(timeout)]
        return [*cmd, "--", *map(str, argv)]

    def popen(self, *argv, timeout: float | None = None, cwd=None, **kw) -> subprocess.Popen:
        """Start ARGV in the VM, e.g. a pool "on node A".  terminate() ends it there."""
        return subprocess.Popen(self.argv(argv, timeout, cwd), **kw)

    def run(self, *argv, timeout: float = 60, cwd=None, **kw) -> subprocess.CompletedProcess:
        """Run ARGV in the VM.  Output is captured as text unless stdout/stderr are given;
        past TIMEOUT seconds the command is ended in the VM and TimeoutExpired raised."""
        if "stdout" not in kw and "stderr" not in kw:
            kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        start = time.monotonic()
        # --timeout ends the command in the VM; the outer one only guards against a hung VM.
        out = subprocess.run(self.argv(argv, timeout, cwd), timeout=timeout + 30, **kw)
        if out.returncode == 124 and time.monotonic() - start >= timeout:
            raise subprocess.TimeoutExpired(out.args, timeout, out.stdout, out.stderr)
        return out

    def restart_server(self, timeout: float = 60) -> None:
        """Kill the NFS server and start it again; the VM and its mounts stay."""
        out = subprocess.run([SCRIPT, "restart-server", str(self.dir)], capture_output=True,
                             text=True, timeout=timeout)
        if out.returncode != 0:
            pytest.fail(f"local-nfs restart-server failed ({out.returncode}):\n{out.stderr}")

    def pids(self) -> dict[str, tuple[str, str]]:
        """NAME -> (PID, START) of the bed's processes (qemu, ganesha...)."""
        lines = (self.dir / "pids").read_text().splitlines()
        return {n: (p, s) for n, p, s in (line.split() for line in lines)}

    def stop(self, remove: bool = True) -> str:
        """Stop the bed (and REMOVE its directory); an error message if something it
        started still runs."""
        try:
            before = self.pids()
        except FileNotFoundError:
            return ""
        out = subprocess.run([SCRIPT, "stop", str(self.dir)], capture_output=True, text=True,
                             timeout=120)
        left = [n for n, (p, s) in before.items() if _starttime(p) == s]
        if out.returncode != 0 or left:
            return f"local-nfs stop {self.dir}: exit {out.returncode}, still running: " \
                   f"{left}\n{out.stderr}"
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
        return ""


# One bed per option string for the whole session, even when several test modules
# import the fixture (each import is a fixture of its own to pytest).
_beds: dict[str, NFSBed] = {}
_failed: dict[str, str] = {}
_registered: list = []  # the session teardown, once registered


def _cached_dirs() -> str:
    """What the VM may cache: the system's and this Python's files (not the checkout's,
    which may change during a session)."""
    dirs = ["/usr"]
    for prefix in (sys.base_prefix, sys.prefix):
        p = os.path.realpath(prefix)
        if not any(p == d or p.startswith(d + "/") for d in dirs):
            dirs.append(p)
    return " ".join(dirs)


def _start(opts: str) -> NFSBed:
    if opts in _failed:
        pytest.fail(_failed[opts])
    bed = _beds.get(opts)
    if bed is not None and (bed.dir / "pids").exists():
        return bed
    d = tempfile.mkdtemp(prefix="farm-nfs-", dir="/tmp")
    bed = NFSBed(d, opts)
    env = dict(os.environ, LOCAL_NFS_OPTS=opts, LOCAL_NFS_CACHED=_cached_dirs())
    try:
        out = subprocess.run([SCRIPT, "start", d], capture_output=True, text=True, env=env,
                             timeout=START_TIMEOUT)
    except BaseException:  # a timeout, ^C: stop what the killed start had begun
        bed.stop(remove=False)
        raise
    if out.returncode != 0 or out.stdout.split() != [str(bed.mnt_a), str(bed.mnt_b)]:
        _failed[opts] = f"local-nfs start ({opts}) failed ({out.returncode}), " \
                        f"logs in {d}/log:\n{out.stderr}"
        bed.stop(remove=False)
        pytest.fail(_failed[opts])
    _beds[opts] = bed
    return bed


def _stop_all() -> list[str]:
    errors = [bed.stop() for bed in _beds.values()]
    _beds.clear()
    return [e for e in errors if e]


def _teardown() -> None:
    errors = _stop_all()
    assert not errors, "\n".join(errors)


atexit.register(_stop_all)  # in case the session ends without its teardown


def _bed(request, opts: str) -> NFSBed:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.fail("the NFS test bed (scripts/local-nfs) needs root: run the tests as root, "
                    "as CI does")
    # On the session, not on a fixture: a test module may import only one of the two.
    if _teardown not in _registered:
        request.session.addfinalizer(_teardown)
        _registered.append(_teardown)
    return _start(opts)



@pytest.fixture(scope="session", name="nfs_beds")
def nfs_beds_fixture(request):
    """A function OPTS -> NFSBed, OPTS being client mount options (default vers=4.2)."""
    return lambda opts=DEFAULT_OPTS: _bed(request, opts)


@pytest.fixture(scope="module", name="nfs")
def nfs_fixture(request) -> NFSBed:
    """The bed for the module's NFS_OPTS (default vers=4.2), or for the parameter of an
    indirect parametrization."""
    opts = getattr(request, "param", None) or getattr(request.module, "NFS_OPTS", DEFAULT_OPTS)
    return _bed(request, opts)
