"""Visibility delays: with every process acting as an NFS client that caches "no such file"
for 30 s (fault injection, farm.spool.fs), a workflow still finishes with the right answer,
no task failed or lost, and no task run twice."""

from __future__ import annotations

import os
import textwrap

from tests.conftest import run_script

SCRIPT = textwrap.dedent("""
    import os, farm
    from farm import File, bash_app, python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    @python_app
    def leaf(i):
        import os, uuid
        open(os.path.join("runs", f"L{i}.{uuid.uuid4().hex}"), "w").close()
        return i

    @bash_app
    def double(x, outputs=()):
        return f"echo {2 * x} > {outputs[0]}"

    @python_app
    def total(inputs=()):
        return sum(int(open(f).read()) for f in inputs)

    ex = SpoolExecutor(spool="spool", max_workers_per_node=2, idle_timeout=20,
                       heartbeat_period=0.5, sweep_period=2,
                       provider=LocalProvider(init_blocks=2, max_blocks=2))
    with farm.load(farm.Config(executors=[ex])):
        outs = [double(leaf(i), outputs=[File(f"work/{i}")]).outputs[0] for i in range(40)]
        t = total(inputs=outs)
        print("answer", t.result(timeout=240), flush=True)
""")


def test_workflow_survives_visibility_delays(tmp_path, monkeypatch):
    monkeypatch.setenv("FARM_FAULTS", "negcache=30")
    for d in ("runs", "work"):
        (tmp_path / d).mkdir()
    (tmp_path / "w.py").write_text(SCRIPT)
    r = run_script(tmp_path / "w.py", tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:2] == ["answer", str(2 * sum(range(40)))], r.stdout
    runs = [n.split(".")[0] for n in os.listdir(tmp_path / "runs")]
    assert len(runs) == 40 and len(set(runs)) == 40  # nothing ran twice
    from farm.spool import Spool
    statuses = {h["status"] for _, h in Spool(tmp_path / "spool").iter_results()}
    assert statuses == {"ok"}  # nothing declared failed or lost
