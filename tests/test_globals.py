"""Keys cover what an app reads beside it: a global edited between two runs re-runs the
tasks of the apps that read it, and nothing else; farm show says why."""

from __future__ import annotations

import re
import subprocess
import textwrap

from tests.conftest import FARM, run_script

SCRIPT = textwrap.dedent("""
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    SCALE = 10
    OTHER = "unchanged"

    def scaled(x):
        return x * SCALE

    @python_app
    def uses_scale(i):
        import os
        return scaled(i), os.getpid()

    @python_app
    def plain(i):
        import os
        return i + 1, os.getpid()

    @python_app
    def total(*values):
        return sum(v for v, _ in values)

    ex = SpoolExecutor(spool="wf.farm", provider=LocalProvider(), idle_timeout=5)
    with farm.load(farm.Config(executors=[ex])):
        a = [uses_scale(i) for i in range(5)]
        b = [plain(i) for i in range(5)]
        t = total(*a)
        for f in a + b:
            print(f.task.name, f.key, *f.result(60))
        print("total", t.key, t.result(60))
""")


def run(tmp_path) -> dict[str, tuple[str, str]]:
    r = run_script(tmp_path / "wf.py", tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        name, key, *rest = line.split()
        out[key] = (name, " ".join(rest))
    return out


def test_an_edited_global_reruns_the_apps_that_read_it_and_nothing_else(tmp_path):
    (tmp_path / "wf.py").write_text(SCRIPT)
    first = run(tmp_path)
    # Nothing changed: everything is reused (same keys, same pids: not run again).
    assert run(tmp_path) == first
    # A global nobody reads: still everything reused.
    (tmp_path / "wf.py").write_text(SCRIPT.replace('OTHER = "unchanged"', 'OTHER = "new"'))
    assert run(tmp_path) == first
    # SCALE, read by a helper of uses_scale: its tasks get new keys and run, and so does
    # the total of their values (its arguments changed); plain's are reused.
    (tmp_path / "wf.py").write_text(SCRIPT.replace("SCALE = 10", "SCALE = 1000"))
    third = run(tmp_path)
    new = {k: v for k, v in third.items() if k not in first}
    assert sorted(v[0] for v in new.values()) == ["total"] + ["uses_scale"] * 5
    assert {k: v for k, v in third.items() if v[0] == "plain"} == \
        {k: v for k, v in first.items() if v[0] == "plain"}
    assert sorted(int(v[1].split()[0]) for v in new.values() if v[0] == "uses_scale") == \
        [0, 1000, 2000, 3000, 4000]
    assert [v[1] for v in new.values() if v[0] == "total"] == ["10000"]
    # farm show says why one of them ran.
    key = next(k for k, v in new.items() if v[0] == "uses_scale")
    r = subprocess.run([*FARM, "show", str(tmp_path / "wf.farm"), key], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert re.search(r"why +the spool has 2 versions of app uses_scale", r.stdout), r.stdout
