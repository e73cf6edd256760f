"""farm list, show, logs and trace: what happened to each task, read from the spool."""

from __future__ import annotations

import csv
import io
import subprocess
import textwrap

import pytest

from tests.conftest import FARM, run_script

SCRIPT = textwrap.dedent("""
    import farm
    from farm import AUTO_LOGNAME, bash_app, python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    @python_app
    def sq(i):
        if i == 3:
            raise ValueError("three is bad")
        return i * i

    @python_app
    def flaky(marker):
        import os
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first try fails")
        return "second try"

    @bash_app
    def shout(i, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
        return f"echo out {i}; echo err {i} >&2; exit $(( {i} == 2 ))"

    ex = SpoolExecutor(spool="wf.farm", provider=LocalProvider(), idle_timeout=5)
    with farm.load(farm.Config(executors=[ex], retries=1)):
        futs = [sq(i) for i in range(5)] + [shout(i) for i in range(3)] + [flaky("m")]
        for f in futs:
            f.exception(60)
""")


@pytest.fixture(scope="module")
def spool(tmp_path_factory):
    d = tmp_path_factory.mktemp("history")
    (d / "wf.py").write_text(SCRIPT)
    r = run_script(d / "wf.py", d, timeout=120)
    assert r.returncode == 0, r.stderr
    return d / "wf.farm"


def farm(*args: str) -> str:
    r = subprocess.run([*FARM, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_list_by_state_and_app(spool):
    lines = farm("list", spool).splitlines()
    assert len(lines) == 9
    assert sum(line.startswith("done") for line in lines) == 7
    failed = farm("list", spool, "--failed").splitlines()
    assert len(failed) == 2 and any("ValueError: three is bad" in f for f in failed)
    assert len(farm("list", spool, "--app", "shout").splitlines()) == 3
    assert farm("list", spool, "--running").strip() == "(no such task)"


def test_trace_has_one_row_per_attempt(spool):
    rows = list(csv.DictReader(io.StringIO(farm("trace", spool)), delimiter="\t"))
    assert len(rows) == 12  # 9 tasks; three failed once and were tried again (retries=1)
    flaky = sorted((r for r in rows if r["app"] == "flaky"), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["status"]) for r in flaky] == [("0", "failed"), ("1", "ok")]
    shout = [r for r in rows if r["app"] == "shout"]
    assert sorted(r["exit_code"] for r in shout) == ["0", "0", "1", "1"]  # (shout 2 twice)
    for r in rows:
        assert float(r["ended"]) >= float(r["started"]) >= float(r["submitted"]) > 0
        assert r["host"] and r["pool"] and r["worker"] != ""
    as_csv = list(csv.DictReader(io.StringIO(farm("trace", spool, "--csv"))))
    assert [r["key"] for r in as_csv] == [r["key"] for r in rows]


def test_show_a_failure_with_its_traceback_and_a_retried_task(spool):
    bad = next(line.split()[1] for line in farm("list", spool, "--failed").splitlines()
               if "sq-" in line)
    out = farm("show", spool, bad)
    assert f"task {bad}  (failed)" in out
    assert 'raise ValueError("three is bad")' in out and "wf.py" in out
    flaky = next(line.split()[1] for line in farm("list", spool, "--app", "flaky").splitlines())
    out = farm("show", spool, flaky[-8:])  # a key prefix will do
    assert "#0 failed" in out and "#1 ok" in out
    assert "ran again because: #0 it failed and was retried" in out
    assert "outcome: ok, 'second try'" in out


def test_logs_of_a_bash_app_and_of_a_python_app(spool):
    shout = next(line.split()[1] for line in farm("list", spool, "--failed").splitlines()
                 if "shout-" in line)
    out = farm("logs", spool, shout)
    assert "==> stdout:" in out and "out 2" in out and "err 2" in out
    sq = next(line.split()[1] for line in farm("list", spool, "--app", "sq").splitlines())
    assert "printed nothing" in farm("logs", spool, sq)


def test_a_task_that_does_not_exist(spool):
    r = subprocess.run([*FARM, "show", str(spool), "nosuch-abcdef12"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "matches 0 tasks" in r.stderr


PRINTS = textwrap.dedent("""
    import farm
    from farm import AUTO_LOGNAME, bash_app, python_app

    @python_app
    def talk(i):
        import sys
        print(f"hello from {i}")
        print(f"oops {i}", file=sys.stderr)
        return i

    @python_app
    def own(i, stdout=AUTO_LOGNAME):
        print(f"to my own file {i}")
        return i

    @python_app
    def undeclared(i):
        print(f"undeclared {i}")
        return i

    @bash_app
    def shell(i):
        return f"echo bash says {i}"

    with farm.load():
        futs = [talk(i) for i in range(4)] + [own(1), shell(7)]
        futs.append(undeclared(2, stdout=AUTO_LOGNAME))
        print([f.result(60) for f in futs])
        print("own:", futs[4].stdout)
""")


def test_what_apps_print_is_found_by_farm_logs(tmp_path):
    (tmp_path / "p.py").write_text(PRINTS)
    r = run_script(tmp_path / "p.py", tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "[0, 1, 2, 3, 1, 0, 2]" in r.stdout
    own = r.stdout.split("own: ")[1].strip()
    assert open(own).read() == "to my own file 1\n"  # stdout= of a python app, as in Parsl
    spool = tmp_path / "p.farm"
    for line in farm("list", spool).splitlines():
        label = line.split()[1]
        out = farm("logs", spool, label)
        if label.startswith("talk-"):
            i = next(i for i in range(4) if f"hello from {i}\n" in out)
            assert f"oops {i}\n" in out and out.count("hello from") == 1, out
        elif label.startswith("shell-"):
            assert "bash says 7" in out
        elif label.startswith("own-"):
            assert "==> stdout:" in out and "to my own file 1" in out
        else:
            assert "undeclared 2" in out and "==> stdout:" in out
