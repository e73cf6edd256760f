"""Failed work on the user's terms: a re-run re-runs failures and their dependents, not the
successes; rerun_failed=False keeps failures; farm retry requeues without a driver."""

from __future__ import annotations

import os
import subprocess
import textwrap

from farm.spool import Spool
from tests.conftest import FARM, eventually, run_script

SCRIPT = textwrap.dedent("""
    import os, sys, farm
    from farm import python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    rerun = sys.argv[1] == "rerun"

    @python_app
    def step(name, *deps, flag=None):
        import os, uuid
        open(os.path.join("runs", f"{name}.{uuid.uuid4().hex}"), "w").close()
        if flag and not os.path.exists(flag):
            raise RuntimeError(f"{name}: {flag} is missing")
        return name

    ex = SpoolExecutor(spool="spool", max_workers_per_node=2, idle_timeout=5,
                       heartbeat_period=0.5, rerun_failed=rerun,
                       provider=LocalProvider(init_blocks=int(sys.argv[2]),
                                              max_blocks=int(sys.argv[2])))
    with farm.load(farm.Config(executors=[ex])):
        a = step("a", flag="fixed")          # fails until the file 'fixed' exists
        b = step("b", a)                     # depends on a
        c = step("c")                        # independent: succeeds
        for f in (a, b, c):
            e = f.exception(timeout=60)
            print(f.task.name, "FAILED" if e else "ok", flush=True)
""")


def _runs(tmp_path):
    out = {}
    for n in os.listdir(tmp_path / "runs"):
        out[n.split(".")[0]] = out.get(n.split(".")[0], 0) + 1
    return out


def _setup(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "s.py").write_text(SCRIPT)
    first = run_script(tmp_path / "s.py", tmp_path, "rerun", "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["step", "FAILED", "step", "FAILED", "step", "ok"]
    assert _runs(tmp_path) == {"a": 1, "c": 1}  # b never ran: its dependency failed


def test_rerun_runs_failures_and_dependents_not_successes(tmp_path):
    _setup(tmp_path)
    (tmp_path / "fixed").touch()
    again = run_script(tmp_path / "s.py", tmp_path, "rerun", "1")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["step", "ok"] * 3
    assert _runs(tmp_path) == {"a": 2, "b": 1, "c": 1}


def test_keep_failures_option(tmp_path):
    _setup(tmp_path)
    (tmp_path / "fixed").touch()
    again = run_script(tmp_path / "s.py", tmp_path, "keep", "1")
    assert again.stdout.split() == ["step", "FAILED", "step", "FAILED", "step", "ok"]
    assert _runs(tmp_path) == {"a": 1, "c": 1}  # nothing ran


def test_farm_retry_from_the_command_line(tmp_path, pools):
    _setup(tmp_path)
    (tmp_path / "fixed").touch()
    spool = Spool(tmp_path / "spool")
    r = subprocess.run([*FARM, "retry", spool.path, "--failed"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "2 task(s) requeued" in r.stdout and "no pool is running" in r.stdout
    pools.start(spool.path, "--idle-timeout", "30", log=open(tmp_path / "pool.log", "w"))
    eventually(lambda: spool.failed_keys() == [] and spool.counts()["ready"] == 0
               and spool.counts()["waiting"] == 0 and spool.counts()["running"] == 0,
               60, "the requeued tasks to finish")
    assert _runs(tmp_path) == {"a": 2, "b": 1, "c": 1}
    final = run_script(tmp_path / "s.py", tmp_path, "keep", "0")  # no pools needed now
    assert final.stdout.split() == ["step", "ok"] * 3
    bad = subprocess.run([*FARM, "retry", spool.path, "abc"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "too short" in bad.stderr
