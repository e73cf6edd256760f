"""farm watch: a live view of a run, on real spools made by real workflows."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest
import yaml

from farm import watch
from farm.spool import Spool
from tests.conftest import FARM, eventually, run_script

FAILING = textwrap.dedent("""
    import farm
    from farm import AUTO_LOGNAME, bash_app, python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    @python_app
    def sq(i):
        import sys
        if i == 3:
            print("sq is unhappy", file=sys.stderr)
            print("about three", file=sys.stderr)
            raise ValueError("three is bad")
        return i * i

    @python_app
    def after(x):
        return x + 1

    @bash_app
    def shout(i, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
        return (f"echo out {i}; echo err1 {i} >&2; echo err2 {i} >&2; echo err3 {i} >&2; "
                f"echo err4 {i} >&2; exit $(( {i} == 2 ))")

    ex = SpoolExecutor(spool="wf.farm", provider=LocalProvider(), idle_timeout=5,
                       heartbeat_period=0.5)
    with farm.load(farm.Config(executors=[ex])):
        s = [sq(i) for i in range(5)]
        futs = s + [after(s[3]), after(s[1])] + [shout(i) for i in range(3)]
        for f in futs:
            f.exception(60)
""")

# Tasks 0 and 1 finish first; 2..5 wait for the gate file, two of them running (one pool
# of two workers) and two ready; total() waits for all six.
GATED = textwrap.dedent("""
    import sys
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    @python_app
    def gated(gate, i):
        import os, time
        while i >= 2 and not os.path.exists(gate):
            time.sleep(0.02)
        return i

    @python_app
    def total(*xs):
        return sum(xs)

    ex = SpoolExecutor(spool="live.farm", provider=LocalProvider(), max_workers_per_node=2,
                       idle_timeout=3, heartbeat_period=0.5)
    with farm.load(farm.Config(executors=[ex])):
        first = [gated(sys.argv[1], i) for i in range(2)]
        [f.result(60) for f in first]
        print(total(*first, *[gated(sys.argv[1], i) for i in range(2, 6)]).result(120))
""")


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    """A finished run: 10 tasks of 3 apps, 3 of them failed (a python app that printed to
    stderr, a bash app with its own stderr file, a dependent of the first)."""
    d = tmp_path_factory.mktemp("watch")
    (d / "wf.py").write_text(FAILING)
    r = run_script(d / "wf.py", d, timeout=120)
    assert r.returncode == 0, r.stderr
    spool = Spool(d / "wf.farm")  # the pool leaves at its next heartbeat: wait for it
    eventually(lambda: [p["state"] for p in spool.pools()] == ["exited"], 30, "the pool's exit")
    return d / "wf.farm"


class Live:
    def __init__(self, d):
        self.spool = d / "live.farm"
        self.gate = d / "gate"
        (d / "live.py").write_text(GATED)
        self.driver = subprocess.Popen([sys.executable, str(d / "live.py"), str(self.gate)],
                                       cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)

    def snapshot(self) -> watch.Snapshot | None:
        if not Spool.exists(self.spool):
            return None
        return watch.Watcher(Spool(self.spool)).snapshot()

    def blocked(self) -> watch.Snapshot:
        """Wait until the run has settled: 2 done, 2 running, 2 ready, 1 waiting, and the
        pool's heartbeat says both its workers are busy."""
        return eventually(lambda: (s := self.snapshot()) and s.counts.done == 2
                          and s.counts.running == 2 and [p.busy for p in s.live_pools] == [2]
                          and s, 30, "two tasks done, two running in a busy pool", period=0.1)

    def open_gate(self) -> str:
        self.gate.touch()
        out, err = self.driver.communicate(timeout=60)
        assert self.driver.returncode == 0, err
        return out


@pytest.fixture
def live(tmp_path):
    run = Live(tmp_path)
    yield run
    run.gate.touch()
    try:
        run.driver.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        run.driver.kill()
        run.driver.communicate()
    if Spool.exists(run.spool):
        Spool(run.spool).request_shutdown()  # (pools outlive a killed driver)


def farm(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*FARM, *map(str, args)], capture_output=True, text=True,
                          timeout=60, **kw)


def row(out: str, first: str) -> list[str]:
    """The words of the frame's line that starts with first (a table row)."""
    lines = [line.split() for line in out.splitlines() if line.split()[:1] == [first]]
    assert len(lines) == 1, out
    return lines[0]


def test_once_on_a_spool_with_failures(failed):
    r = farm("watch", failed, "--once")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "\x1b[" not in out  # (not a terminal: plain text)
    assert "tasks 10: waiting 0, ready 0, running 0, done 7, failed 3" in out
    assert "finished: 7 done, 3 failed" in out and "no driver" in out
    assert row(out, "sq")[1:] == ["0", "0", "0", "4", "1", "5"]
    assert row(out, "shout")[1:] == ["0", "0", "0", "2", "1", "3"]
    assert row(out, "after")[1:] == ["0", "0", "0", "1", "1", "2"]
    assert "pools: 0 live, 1 exited" in out and "blocks: 1 (1 exited)" in out
    assert "failures: 3\n" in out
    assert re.search(r"sq-[0-9a-f]{8} \[failed\] ValueError: three is bad", out)
    assert re.search(r"output: logs/\S+\.out bytes 0-26\n +\| sq is unhappy\n +\| about "
                     r"three\n", out), out
    assert re.search(r"shout-[0-9a-f]{8} \[failed\] BashExitFailure", out)
    # the last 3 lines of its own stderr file
    assert re.search(r"stderr: out/\S+\.stderr\n +\| err2 2\n +\| err3 2\n +\| err4 2\n",
                     out), out
    assert "err1 2" not in out
    assert re.search(r"after-[0-9a-f]{8} \[dep_failed\] DependencyError: dependencies "
                     r"failed:\s+sq-", out)

    one = farm("watch", failed, "--once", "--failures", "1").stdout
    assert "failures: 3 (the latest 1)" in one
    assert len(re.findall(r"-[0-9a-f]{8} \[(failed|dep_failed)\]", one)) == 1


def test_snapshot_numbers(failed):
    s = watch.Watcher(Spool(failed)).snapshot()
    assert (s.counts.total, s.counts.done, s.counts.failed, s.counts.remaining) == (10, 7, 3, 0)
    assert {a: (c.done, c.failed) for a, c in s.apps.items()} == {
        "sq": (4, 1), "shout": (2, 1), "after": (1, 1)}
    assert s.finished and s.driver == "none" and s.eta is None
    assert sorted(f.name for f in s.failures) == ["after", "shout", "sq"]
    assert [b.state for b in s.blocks] == ["exited"] and s.exited_pools == 1


def test_a_read_budget_spreads_the_first_reads_over_refreshes(failed):
    w = watch.Watcher(Spool(failed), budget=1)
    firsts = []
    for _ in range(25):
        before = watch.READS["result"] + watch.READS["task"]
        s = w.snapshot()
        assert watch.READS["result"] + watch.READS["task"] - before <= 1
        firsts.append(s.counts.unread)
        if not s.counts.unread:
            break
    assert firsts[0] >= 8 and firsts[-1] == 0  # (all 10 are listed from the start)
    assert (s.counts.done, s.counts.failed) == (7, 3) and "?" not in s.apps


def test_once_while_a_run_is_live(live):
    live.blocked()
    r = farm("watch", live.spool, "--once")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "tasks 7: waiting 1, ready 2, running 2, done 2, failed 0" in out, out
    assert f"driver pid {live.driver.pid} on " in out
    assert row(out, "gated")[1:] == ["0", "2", "2", "2", "0", "6"]
    assert row(out, "total")[1:] == ["1", "0", "0", "0", "0", "1"]
    assert "pools: 1 live; workers 2, busy 2" in out, out
    pool = next(line.split() for line in out.splitlines() if line.split()[-1:] == ["live"])
    assert pool[3:5] == ["2", "2"] and pool[-3:-1] == ["s", "ago"]
    assert re.search(r"^\S+ +local +\d+ +running +1 *$", out, re.M), out
    assert "ETA" in out and "finished: " not in out
    assert live.open_gate().strip() == "15"


def test_a_second_snapshot_reads_only_new_results(live):
    live.blocked()
    w = watch.Watcher(Spool(live.spool))
    before = watch.READS["result"]
    s1 = w.snapshot()
    first = watch.READS["result"] - before
    assert 1 <= first <= 2 and s1.counts.done == 2  # (two results; maybe in one file)
    s2 = w.snapshot()
    assert watch.READS["result"] - before == first  # nothing new: nothing read
    assert s2.counts == s1.counts
    # What a steady refresh costs: a listing per state directory and results shard (256),
    # per worker directory; a stat and read of the pool's heartbeat, the driver's 2 files.
    assert s2.cost["listdir"] <= 3 + 2 + 256 + 3, s2.cost
    assert s2.cost.get("open", 0) <= 3 and s2.cost.get("stat", 0) <= 1, s2.cost
    live.open_gate()
    s3 = w.snapshot()
    new = watch.READS["result"] - before - first
    assert 1 <= new <= 5  # the 5 new results, and not the 2 read before
    assert (s3.counts.done, s3.counts.total) == (7, 7) and s3.finished
    assert watch.READS["result"] - before == first + new
    assert w.snapshot().counts == s3.counts and watch.READS["result"] - before == first + new


def test_watch_exits_by_itself_when_the_run_is_finished(live):
    live.blocked()
    w = subprocess.Popen([*FARM, "watch", str(live.spool), "--interval", "0.2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = ""
        while "tasks 7" not in first:  # (the first frame is out: the run is still blocked)
            line = w.stdout.readline()
            assert line, w.stderr.read()
            first += line
        live.open_gate()
        rest, err = w.communicate(timeout=30)
    finally:
        w.kill()
    assert w.returncode == 0, err
    assert "running 2, done 2" in first
    frames = (first + rest).split("farm watch ")[1:]
    assert "finished: 7 done, 0 failed" in frames[-1]
    assert "finished: " not in "".join(frames[:-1])  # (it stopped at the first such frame)


def test_ctrl_c_quits_and_restores_the_terminal(live):
    live.blocked()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    for k in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        env.pop(k, None)
    w = subprocess.Popen([*FARM, "watch", str(live.spool), "--interval", "0.2"],
                         stdin=slave, stdout=slave, stderr=slave, env=env,
                         preexec_fn=_default_sigint)
    os.close(slave)
    got = b""

    def read(until) -> None:
        nonlocal got
        deadline = time.monotonic() + 30
        while not until() and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # (EIO: the child closed the terminal)
                    return
                if not chunk:
                    return
                got += chunk

    try:
        read(lambda: b"running 2" in got)
        assert b"\x1b[?1049h" in got  # the full screen
        w.send_signal(signal.SIGINT)
        read(lambda: w.poll() is not None)  # (reading on: a full terminal blocks writers)
        read(lambda: not select.select([master], [], [], 0.2)[0])  # (what is left)
        assert w.wait(10) == 0
    finally:
        w.kill()
        os.close(master)
    after = got.rpartition(b"\x1b[?1049l")[2]  # what follows leaving the full screen
    assert after and b"\x1b[?25h" in got  # (the cursor is shown again)
    assert b"farm watch " in after and b"running 2" in after  # the last frame stays
    assert b"Traceback" not in got and b"KeyboardInterrupt" not in got


def _default_sigint() -> None:
    """(A test run in the background of a shell inherits SIGINT ignored: Ctrl-C, as a
    terminal sends it, must reach the watch.)"""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_slurm_blocks_whose_state_squeue_cannot_tell(tmp_path, monkeypatch):
    (tmp_path / "slurm.conf").write_text("")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))  # (squeue fails at once)
    spool = Spool.create(tmp_path / "s.farm")
    spool.replace(spool.block_file("b1", "yaml"), yaml.safe_dump(
        {"block": "b1", "provider": "slurm", "job_id": "4242"}).encode())
    s = watch.Watcher(spool).snapshot(wait_squeue=True)
    assert [(b.block, b.job_id, b.state) for b in s.blocks] == [("b1", "4242", "unknown")]
    r = farm("watch", spool.path, "--once")
    assert r.returncode == 0, r.stderr
    assert re.search(r"b1 +slurm +4242 +unknown", r.stdout), r.stdout


@pytest.mark.parametrize("what", ["missing", "not a spool"])
def test_a_path_that_is_no_spool(tmp_path, what):
    path = tmp_path / "nope"
    if what == "not a spool":
        path.mkdir()
    r = farm("watch", path, "--once")
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("farm watch: ") and str(path) in r.stderr
    assert ("does not exist" if what == "missing" else "not a farm spool") in r.stderr
