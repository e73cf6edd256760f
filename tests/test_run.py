"""farm run and farm wait: task files, arrays and each-line runs on local pools; resume,
failures, awkward inputs, detached runs.  (On Slurm: test_run_slurm.py.)"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.conftest import FARM, eventually

T = 120


def farm_run(cwd, *args: str, timeout: float = T) -> subprocess.CompletedProcess:
    return subprocess.run([*FARM, "run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def marks(d) -> dict[str, int]:
    """How many times each task left its mark (one file per execution)."""
    out: dict[str, int] = {}
    for name in os.listdir(d):
        tag = name.rsplit(".", 1)[0]
        out[tag] = out.get(tag, 0) + 1
    return out


def mark(tag: str, extra: str = "") -> str:
    """A task line that records one execution of `tag`."""
    return f"touch runs/{tag}.$RANDOM$RANDOM{extra}"


@pytest.fixture
def here(tmp_path):
    (tmp_path / "runs").mkdir()
    return tmp_path


def test_a_failing_line_is_named_and_only_it_runs_again(here):
    (here / "tasks.txt").write_text("\n".join([
        "# a comment, then an empty line", "",
        mark("a"), mark("b") + "; exit 3", mark("c"), mark("a"),  # a twice: two tasks
    ]) + "\n")
    r = farm_run(here, "tasks.txt")
    assert r.returncode == 1, r.stderr
    assert "4 lines: 3 done" in r.stderr and "1 failed" in r.stderr
    assert "line 4: touch runs/b." in r.stderr
    stderr_file = next(w for w in r.stderr.split() if w.endswith(".stderr"))
    assert os.path.exists(stderr_file)
    assert marks(here / "runs") == {"a": 2, "b": 1, "c": 1}
    # fixed, and run again: only line 4 runs
    text = (here / "tasks.txt").read_text().replace("; exit 3", "")
    (here / "tasks.txt").write_text(text)
    r = farm_run(here, "tasks.txt")
    assert r.returncode == 0, r.stderr
    assert "4 lines: 4 done (3 of them from an earlier run), 0 failed" in r.stderr
    assert marks(here / "runs") == {"a": 2, "b": 2, "c": 1}


def test_lines_moved_added_or_removed_are_not_run_again(here):
    lines = [mark(t) for t in "abcd"]
    (here / "tasks.txt").write_text("\n".join(lines) + "\n")
    assert farm_run(here, "tasks.txt").returncode == 0
    # reordered, one removed, one added, one changed
    new = [lines[3], lines[0], mark("e"), lines[1].replace("touch", "touch -c runs/x; touch")]
    (here / "tasks.txt").write_text("\n".join(new) + "\n")
    r = farm_run(here, "tasks.txt")
    assert r.returncode == 0, r.stderr
    assert "4 lines: 4 done (2 of them from an earlier run)" in r.stderr
    assert marks(here / "runs") == {"a": 1, "b": 2, "c": 1, "d": 1, "e": 1}


AWKWARD = ["a b", "  lead and trail  ", "x'y", 'say "hi"', "$HOME", "`id`", "a\\b",
           "ünï ✓", "--not-an-option", "*", "semi;colon"]


def test_each_line_values_reach_the_command_as_written(here):
    (here / "in.txt").write_text("\n".join(AWKWARD[:4] + ["", ""] + AWKWARD[4:]) + "\n")
    r = farm_run(here, "--each-line", "in.txt", "--", "printf", "'%s|%s\\n'", "{#}", "{}",
                 ">>", "out.txt")
    assert r.returncode == 0, r.stderr
    got = sorted((here / "out.txt").read_text().splitlines(), key=lambda s: int(s.split("|")[0]))
    assert got == [f"{i}|{v}" for i, v in enumerate(AWKWARD, 1)]  # (empty lines skipped)


def test_array_and_replacement_strings(here):
    r = farm_run(here, "--array", "1-9:4,20", "--", "echo {} {#} >> out.txt")
    assert r.returncode == 0, r.stderr
    assert sorted((here / "out.txt").read_text().splitlines()) == ["1 1", "20 4", "5 2", "9 3"]
    (here / "in.txt").write_text("dir/sub/file.tar.gz\n")
    r = farm_run(here, "--each-line", "in.txt", "--", "echo", "{.}", "{/}", "{//}", "{/.}",
                 ">", "parts.txt")
    assert r.returncode == 0, r.stderr
    assert (here / "parts.txt").read_text() == "dir/sub/file.tar file.tar.gz dir/sub file.tar\n"


@pytest.mark.parametrize("args, words", [
    (["--array", "5-1", "--", "true"], "is empty"),
    (["--array", "x", "--", "true"], "FIRST-LAST"),
    (["--array", "1-3"], "no command"),
    (["nosuchfile.txt"], "cannot read the task file"),
    (["--retries", "-1", "t.txt"], "--retries"),
    ([], "say what to run"),
])
def test_bad_arguments_get_one_clear_line(here, args, words):
    (here / "t.txt").write_text("true\n")
    r = farm_run(here, *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


def test_max_failures_stops_submitting(here):
    lines = [f"{mark(f'f{i}')}; exit 1" for i in range(3)] + [mark(f"ok{i}") for i in range(50)]
    (here / "tasks.txt").write_text("\n".join(lines) + "\n")
    r = farm_run(here, "--max-failures", "2", "tasks.txt")
    assert r.returncode == 1, r.stderr
    assert "2 lines failed; submitting no more" in r.stderr
    assert "not finished" in r.stderr
    assert len(marks(here / "runs")) < 53


def test_detached_run_and_farm_wait(here):
    (here / "tasks.txt").write_text("\n".join(f"sleep 0.2; {mark(str(i))}"
                                              for i in range(8)) + "\n")
    r = farm_run(here, "--detach", "tasks.txt")
    assert r.returncode == 0, r.stderr
    assert "farm wait" in r.stderr
    w = subprocess.run([*FARM, "wait", "tasks.farm", "--timeout", "60"], cwd=here,
                       capture_output=True, text=True, timeout=T)
    assert w.returncode == 0, w.stderr
    assert "8 lines: 8 done" in w.stderr
    assert marks(here / "runs") == {str(i): 1 for i in range(8)}


def test_killed_driver_is_resumed_and_each_line_runs_once(here):
    n = 40
    (here / "tasks.txt").write_text("\n".join(f"sleep 0.1; {mark(str(i))}"
                                              for i in range(n)) + "\n")
    p = subprocess.Popen([*FARM, "run", "tasks.txt"], cwd=here, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    eventually(lambda: len(marks(here / "runs")) >= 5, 60, "some lines to run")
    os.kill(p.pid, signal.SIGKILL)  # the driver only: its pools go on
    p.wait(10)
    r = farm_run(here, "tasks.txt")
    assert r.returncode == 0, r.stderr
    assert f"{n} lines: {n} done" in r.stderr
    assert marks(here / "runs") == {str(i): 1 for i in range(n)}


def test_farm_wait_on_a_spool_without_a_run(tmp_path):
    from farm.spool import Spool
    Spool.create(tmp_path / "s")
    w = subprocess.run([*FARM, "wait", str(tmp_path / "s")], capture_output=True, text=True,
                       timeout=60)
    assert w.returncode == 2 and "holds no farm run" in w.stderr


def test_site_file_is_used_by_farm_run(here):
    (here / "site.yaml").write_text(f"spool_root: {here}/spools\nexecutor:\n"
                                    "  max_workers_per_node: 1\n  idle_timeout: 5\n")
    (here / "tasks.txt").write_text(mark("x") + "\n")
    r = farm_run(here, "--site", "site.yaml", "tasks.txt")
    assert r.returncode == 0, r.stderr
    assert (here / "spools" / "tasks.farm" / "spool.yaml").exists()
    env = dict(os.environ, FARM_SITE=str(here / "site.yaml"))
    r = subprocess.run([*FARM, "run", "tasks.txt"], cwd=here, capture_output=True,
                       text=True, timeout=T, env=env)
    assert r.returncode == 0 and "1 of them from an earlier run" in r.stderr, r.stderr


def test_a_line_says_what_it_needs_in_a_comment(here):
    (here / "tasks.txt").write_text("\n".join([
        "echo $OMP_NUM_THREADS > runs/wide   # farm: cores=2 memory=100",
        "echo ${OMP_NUM_THREADS:-unset} > runs/narrow",
        "true   # farm: cores=64",
    ]) + "\n")
    env = {**os.environ, "SLURM_CPUS_PER_TASK": "2"}  # (a node of 2 cores)
    r = subprocess.run([*FARM, "run", "tasks.txt"], cwd=here, capture_output=True, text=True,
                       timeout=T, env=env)
    assert r.returncode == 1, r.stderr
    assert "3 lines: 2 done" in r.stderr and "line 3" in r.stderr
    assert (here / "runs" / "wide").read_text() == "2\n"
    assert (here / "runs" / "narrow").read_text() == "unset\n"
    # Changing a line's request does not run it again (it is not part of its key).
    text = (here / "tasks.txt").read_text().replace("cores=2 memory=100", "cores=1")
    (here / "tasks.txt").write_text(text.replace("cores=64", "cores=1"))
    (here / "runs" / "wide").unlink()
    r = subprocess.run([*FARM, "run", "tasks.txt"], cwd=here, capture_output=True, text=True,
                       timeout=T, env=env)
    assert r.returncode == 0, r.stderr
    assert not (here / "runs" / "wide").exists()
    (here / "bad.txt").write_text("true  # farm: cores=lots\n")
    r = farm_run(here, "bad.txt")
    assert r.returncode == 2 and "line 1: 'cores=lots'" in r.stderr, r.stderr


def test_a_refused_line_of_a_detached_run_ends_farm_wait(here):
    (here / "tasks.txt").write_text("true\ntrue  # farm: cores=100000\n")
    r = farm_run(here, "--detach", "tasks.txt")
    assert r.returncode == 0 and "line 2 refused: ConfigError" in r.stderr, r.stderr
    w = subprocess.run([*FARM, "wait", str(here / "tasks.farm"), "--timeout", "60"],
                       cwd=here, capture_output=True, text=True, timeout=T)
    assert w.returncode == 1 and "2 lines: 1 done" in w.stderr and "1 failed" in w.stderr, \
        w.stderr
