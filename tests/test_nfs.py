"""farm on a real NFS (scripts/local-nfs): the driver on one kernel client, pools on the
other, each with its own cache, as on a cluster.  NFS v4.2 and v3; a server restart; a
mount with lookupcache=none.  The clients are an emulated VM where `import farm` costs
seconds, so the tests are few, each covering a sequence that once went wrong
(docs/spool-format.md, "Visibility delays")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from farm.spool import Spool
from tests.nfs import nfs_beds_fixture, nfs_fixture  # noqa: F401  (fixtures)

VERSIONS = ["vers=4.2", "vers=3"]
both = pytest.mark.parametrize("nfs", VERSIONS, indirect=True)
T = 120  # seconds: the bound on any one driver run in the VM

DRIVER = textwrap.dedent('''
    import os, signal, sys, time
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    mode, spool, marks, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    @python_app
    def mark(i, marks, nap=0.0):
        import os, time, uuid
        time.sleep(nap)
        open(os.path.join(marks, f"{i}.{uuid.uuid4().hex}"), "w").close()
        return i

    @python_app
    def hop(prev=None):
        return (prev or 0) + 1

    ex = SpoolExecutor(spool=spool, provider=LocalProvider(init_blocks=0, max_blocks=0),
                       heartbeat_period=0.5)
    with farm.load(farm.Config(executors=[ex])):
        if mode == "submit":  # submit one task, and leave
            f = mark(0, marks)
            ex.flush()
            print("KEY", f.key, flush=True)
        elif mode == "once":
            t0 = time.monotonic()
            print("VALUE", mark(0, marks).result(60), flush=True)
            print("WAITED", time.monotonic() - t0, flush=True)
        elif mode == "chain":
            prev, keys = None, []
            for _ in range(n):
                prev = hop(prev)
                keys.append(prev.key)
            print("LAST", prev.result(100), flush=True)
            print("KEYS", *keys, flush=True)
        elif mode in ("kill", "all"):
            futs = [mark(i, marks, 0.3) for i in range(n)]
            if mode == "kill":  # kill -9 of this driver once a third is done
                while sum(f.done() for f in futs) < n // 3:
                    time.sleep(0.05)
                print("KILLING", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            print("ALL", sorted(f.result(100) for f in futs) == list(range(n)), flush=True)
    print("EXITED", time.time(), flush=True)
''')



# A Python process in the VM starts in 3-7 s (emulated CPUs), and a test here starts five or
# six of them: 50-70 s on a quiet machine, twice that while the other bed's VM competes for
# the cores.  Each wait inside is bounded on its own; this bounds the whole test.
pytestmark = pytest.mark.timeout(300)

class Run:
    """A farm run on a bed: the driver script, pools, the spool seen through A, B, the
    server, and the marks the tasks leave (one file per execution)."""

    def __init__(self, nfs, tmp_path, name: str):
        self.nfs, self.tmp = nfs, tmp_path
        self.name = f"{name}-{nfs.opts.replace('=', '').replace(',', '-')}"
        self.script = tmp_path / "driver.py"  # (the VM sees this machine's files)
        self.script.write_text(DRIVER)
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        self.pools: list[subprocess.Popen] = []
        Spool.create(nfs.export / self.name)  # (on the server: pools may start first)

    def spool(self, client: str) -> str:
        return str((self.nfs.mnt_a if client == "A" else self.nfs.mnt_b) / self.name)

    def server_spool(self) -> Spool:
        return Spool(self.nfs.export / self.name)

    def driver(self, client: str, mode: str, n: int = 1) -> dict[str, list[str]]:
        out = self.nfs.run(sys.executable, self.script, mode, self.spool(client), self.marks,
                           n, timeout=T)
        assert out.returncode == 0, out.stdout + out.stderr
        lines = {}
        for line in out.stdout.splitlines():
            word, *rest = line.split()
            lines[word] = rest
        lines["stderr"] = [out.stderr]
        return lines

    def pool(self, client: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"pool{len(self.pools)}.log", "w")
        p = self.nfs.popen(sys.executable, "-m", "farm", "pool", self.spool(client),
                           "--workers", "2", "--heartbeat", "0.5", "--idle-timeout", "60",
                           *args, stdout=log, stderr=subprocess.STDOUT)
        self.pools.append(p)
        return p

    def wait_pools_up(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.server_spool().live_pools()) < n:
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.2)

    def runs(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in os.listdir(self.marks):
            i = name.split(".")[0]
            counts[i] = counts.get(i, 0) + 1
        return counts

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.tmp.glob("pool*.log")))

    def close(self) -> None:
        for p in self.pools:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()


@pytest.fixture
def run(nfs, tmp_path, request):
    r = Run(nfs, tmp_path, request.node.originalname)
    yield r
    r.close()


def _left_within(p: subprocess.Popen, seconds: float, what: str, run: Run) -> float:
    t0 = time.monotonic()
    try:
        p.wait(seconds + 2)  # (+ the relay from the VM: ~0.2 s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: the pool was still running after {seconds} s\n{run.logs()}")
    return time.monotonic() - t0


@both
def test_result_cached_as_missing_is_not_run_again_and_pools_leave(nfs, run):
    key = run.driver("B", "submit")["KEY"][0]
    # Client B looks the result up before it exists: it caches "no such file".
    stat = nfs.run("stat", os.path.join(run.spool("B"), "results", key[:2], key), timeout=30)
    assert stat.returncode != 0
    pool = run.pool("A")
    result = nfs.export / run.name / "results" / key[:2] / key
    deadline = time.monotonic() + 60
    while not result.exists():
        assert time.monotonic() < deadline, run.logs()
        time.sleep(0.1)
    # The script again, on B: the result is found (not run a second time, not waited for),
    # and the driver's exit (all done) reaches the pool on A.
    out = run.driver("B", "once")
    t_exit = time.monotonic()
    assert out["VALUE"] == ["0"]
    assert float(out["WAITED"][0]) < 5, out
    assert "1 of 1 tasks already done" in out["stderr"][0]
    assert run.runs() == {"0": 1}
    assert pool.wait(10) == 0, run.logs()
    assert time.monotonic() - t_exit < 5 + 2, run.logs()  # (+ the relay from the VM)
    # farm cancel from B reaches an idle pool on A as fast.
    pool = run.pool("A")
    run.wait_pools_up(1)
    cancel = nfs.run(sys.executable, "-m", "farm", "cancel", run.spool("B"), timeout=60)
    assert cancel.returncode == 0, cancel.stderr
    assert _left_within(pool, 5, "farm cancel", run) < 7
    assert pool.returncode == 0


def _chain_across_clients(run: Run, n: int = 20) -> None:
    run.pool("A")
    run.wait_pools_up(1)
    out = run.driver("B", "chain", n)
    assert out["LAST"] == [str(n)]
    spool = run.server_spool()
    heads = [spool.read_result(k)[0] for k in out["KEYS"]]
    gaps = [b["t_start"] - a["t_end"] for a, b in zip(heads, heads[1:], strict=False)]
    assert max(gaps) < 2.0, gaps


@both
def test_chain_across_clients_has_no_slow_hop(run):
    _chain_across_clients(run)


def test_chain_on_a_mount_without_lookup_cache(nfs_beds, tmp_path):
    run = Run(nfs_beds("vers=4.2,lookupcache=none"), tmp_path, "nocache")
    try:
        _chain_across_clients(run)
    finally:
        run.close()


@both
def test_driver_killed_mid_run_resumes_on_the_other_client(run):
    n = 30
    for _ in range(2):
        run.pool("B")
    run.wait_pools_up(2)
    # The driver on A is killed (kill -9) once a third of the tasks are done...
    out = run.nfs.run(sys.executable, run.script, "kill", run.spool("A"), run.marks, n,
                      timeout=T)
    assert out.returncode == 128 + 9 and "KILLING" in out.stdout, out.stdout + out.stderr
    # ...and the script runs again on B: every task ran exactly once (no pool died).
    out = run.driver("B", "all", n)
    assert out["ALL"] == ["True"]
    assert run.runs() == {str(i): 1 for i in range(n)}, run.runs()
    assert "resuming spool" in out["stderr"][0]


def test_server_restart_mid_run_loses_nothing(nfs, run):
    n = 30
    run.pool("A")
    run.wait_pools_up(1)
    driver = nfs.popen(sys.executable, run.script, "all", run.spool("B"), run.marks, n,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(run.runs()) < n // 3:
        assert time.monotonic() < deadline and driver.poll() is None, run.logs()
        time.sleep(0.05)
    nfs.restart_server()
    out, err = driver.communicate(timeout=T)
    assert driver.returncode == 0, out + err
    assert "ALL True" in out, out + err
    assert run.runs() == {str(i): 1 for i in range(n)}, run.runs()
