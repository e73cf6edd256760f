"""Run each script in examples/ as a user would: ``python examples/NAME.py`` from some
other directory (here a fresh tmp_path), and check what it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from farm.spool import Spool

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 60


def run_example(name: str, cwd: Path) -> subprocess.CompletedProcess:
    # A spool goes beside its script by default; $FARM_SPOOL_ROOT keeps the tests' spools
    # out of the checkout (each test's own directory).
    env = dict(os.environ, FARM_SPOOL_ROOT=str(cwd))
    return subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=cwd, timeout=TIMEOUT,
                          capture_output=True, text=True, env=env)


def check_ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def stop_pools(spool_path: Path) -> None:
    """Ask the pools still running on a spool to exit (control/shutdown) and wait for them.
    A driver killed by SIGKILL leaves its pools running; the test must not leave them."""
    if not (spool_path / "spool.yaml").exists():
        return
    spool = Spool(spool_path)
    spool.request_shutdown()
    for rec in spool.pools():
        if rec.get("state") != "running":
            continue
        try:
            proc = psutil.Process(rec["pid"])
            if str(spool_path) not in " ".join(proc.cmdline()):
                continue  # the pid was reused by something else
            proc.wait(timeout=30)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, KeyError):
            pass


def test_hello(tmp_path):
    out = check_ok(run_example("hello.py", tmp_path))
    assert "python app returned: 'hello, farm, from process" in out
    assert "HELLO FROM BASH" in out
    assert "hello: OK" in out
    assert (tmp_path / "hello.farm" / "spool.yaml").exists()  # under $FARM_SPOOL_ROOT


def test_map_sum(tmp_path):
    out = check_ok(run_example("map_sum.py", tmp_path))
    assert "python total: 12" in out
    assert "bash total: 12" in out
    assert out.count("python: sum(") == 8 and out.count("bash:   sum(") == 8
    assert "map_sum: OK" in out


def test_pipeline(tmp_path):
    out = check_ok(run_example("pipeline.py", tmp_path))
    assert "pipeline: OK" in out
    merged = tmp_path / "pipeline.work" / "merged.txt"
    assert merged.read_text().split() == [str(n * n) for n in range(20)]
    assert (tmp_path / "pipeline.farm" / "spool.yaml").exists()


def test_pipeline_second_run_resumes(tmp_path):
    check_ok(run_example("pipeline.py", tmp_path))
    again = run_example("pipeline.py", tmp_path)
    out = check_ok(again)
    assert "pipeline: OK" in out
    assert "resuming spool" in again.stderr and "11 of 11 tasks already done" in again.stderr


def counts(pattern: str, text: str) -> tuple[int, ...]:
    m = re.search(pattern, text)
    assert m, f"no line matching {pattern!r} in:\n{text}"
    return tuple(int(g) for g in m.groups())


def test_resume_demo(tmp_path):
    try:
        first = run_example("resume_demo.py", tmp_path)
        assert first.returncode == -signal.SIGKILL, \
            f"exit {first.returncode}\n{first.stdout}\n{first.stderr}"
        assert "first run: 10 of 20 results are in" in first.stdout
        assert (tmp_path / "resume_demo.work" / "first-run.json").exists()

        second = run_example("resume_demo.py", tmp_path)
        out = check_ok(second)
        assert "resuming spool" in second.stderr
        assert counts(r"first run: collected (\d+) of (\d+) results", out) == (10, 20)
        done, total = counts(r"this run: (\d+) of (\d+) tasks were already done", out)
        assert total == 20 and 10 <= done <= 20
        assert counts(r"executions recorded: (\d+) for (\d+) tasks", out) == (20, 20)
        assert counts(r"interrupted executions \(re-run by farm\): (\d+)", out) == (0,)
        assert counts(r"finished more than once \(re-executed\): (\d+)", out) == (0,)
        assert "resume_demo: OK" in out
        markers = os.listdir(tmp_path / "resume_demo.work" / "runs")
        assert len(markers) == 20 and all(m.endswith(".done") for m in markers)
    finally:
        stop_pools(tmp_path / "resume_demo.farm")


def test_tutorial_reruns_what_reads_an_edited_global(tmp_path):
    """docs/tutorial.md's walk-through: a second run reuses everything; after LONG is
    edited, the 4 count_long tasks and total run again and the 4 words tasks do not."""
    first = run_example("tutorial.py", tmp_path)
    assert "words of 6 letters or more: 14" in check_ok(first)
    assert "9 tasks: 9 done, 0 failed in" in first.stderr
    again = run_example("tutorial.py", tmp_path)
    assert "9 tasks: 9 done, 0 failed, 9 reused from the spool in" in again.stderr
    edited = tmp_path / "tutorial.py"
    edited.write_text((EXAMPLES / "tutorial.py").read_text().replace("LONG = 6", "LONG = 8"))
    env = dict(os.environ, FARM_SPOOL_ROOT=str(tmp_path))
    third = subprocess.run([sys.executable, str(edited)], cwd=tmp_path, timeout=TIMEOUT,
                           capture_output=True, text=True, env=env)
    # (same spool: its name comes from the script's, and FARM_SPOOL_ROOT is the same)
    assert "words of 8 letters or more:" in check_ok(third)
    assert "9 tasks: 9 done, 0 failed, 4 reused from the spool in" in third.stderr, \
        third.stderr


@pytest.mark.parametrize("name", ["hello.py", "map_sum.py", "pipeline.py", "resume_demo.py",
                                  "tutorial.py"])
def test_example_has_run_instructions(name):
    doc = (EXAMPLES / name).read_text()
    assert f"python examples/{name}" in doc
