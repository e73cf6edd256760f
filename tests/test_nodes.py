"""Tasks across nodes, the spool's side (farm.pool.nodes), with real pool processes that
stand for the nodes of one block (SLURM_JOB_NUM_NODES=3, the same --block): nodes lent
and given back, and a kill -9 of the pool running such a task."""

from __future__ import annotations

import os
import signal
import time
import uuid

import cloudpickle

from farm.spool import OK, Spool
from tests.conftest import eventually

T = 90


def _spool(tmp_path) -> Spool:
    spool = Spool.create(tmp_path / "s")
    return spool


def _bash(spool: Spool, command: str, cwd: str, **resources) -> str:
    """A bash task straight into ready/ (no driver), asking for resources."""
    app = uuid.uuid4().hex

    def line():
        return command
    spool.put_app(app, {"name": "line"}, cloudpickle.dumps(line))
    key = uuid.uuid4().hex
    header = {"key": key, "name": "line", "kind": "bash", "app": app, "deps": [],
              "retries": 0, "cwd": cwd, "resources": resources}
    assert spool.put_task(key, header, cloudpickle.dumps(((), {})), "ready")
    return key


def _block(pools, spool, n: int = 3):
    env = ("env", f"SLURM_JOB_NUM_NODES={n}")
    return [pools.start(spool.path, "--block", "B1", "--workers", "2", "--lease", "3",
                        "--idle-timeout", "60", prefix=env) for _ in range(n)]


def _result(spool, key):
    got = eventually(lambda: spool.read_result(key), T, f"the result of {key[:8]}")
    return got[0]


def test_a_task_across_two_nodes_borrows_and_gives_them_back(tmp_path, pools):
    spool = _spool(tmp_path)
    _block(pools, spool)
    eventually(lambda: len(spool.live_pools()) == 3, T, "three pools up")
    key = _bash(spool, "echo $FARM_MPI_NODES $PARSL_NUM_RANKS $(wc -l < $PARSL_MPI_NODEFILE)"
                       " > across; echo $FARM_MPI_PREFIX > prefix", str(tmp_path),
                num_nodes=2, ranks_per_node=3)
    assert _result(spool, key)["status"] == OK
    nodes, ranks, lines = (tmp_path / "across").read_text().split()
    assert len(nodes.split(",")) == 2 and ranks == "6" and lines == "2"
    assert "-ppn 3" in (tmp_path / "prefix").read_text()  # (no Slurm job: mpiexec's)
    eventually(lambda: spool.node_names() == [], 10, "the nodes given back")
    # The lenders work again: six one-core tasks on three pools.
    keys = [_bash(spool, "true", str(tmp_path)) for _ in range(6)]
    assert all(_result(spool, k)["status"] == OK for k in keys)


def test_killed_borrower_frees_its_lenders_and_the_task_runs_again(tmp_path, pools):
    spool = _spool(tmp_path)
    procs = _block(pools, spool)
    eventually(lambda: len(spool.live_pools()) == 3, T, "three pools up")
    marks = tmp_path / "marks"
    key = _bash(spool, f"echo $FARM_MPI_NODES >> {marks}; "
                       f"[ $(wc -l < {marks}) -gt 1 ] || sleep 120", str(tmp_path),
                num_nodes=2)
    eventually(lambda: marks.exists(), T, "the first run")
    owner = eventually(lambda: next((w.rpartition(".")[0] for w in os.listdir(spool.p("claimed"))
                                     if key in "".join(os.listdir(spool.p("claimed", w)))),
                                    None), T, "its claim")
    lent = [n for n in spool.node_names() if "@" not in n and n != owner]
    assert len(lent) == 1
    victim = next(p for p in procs if owner.split("-")[-2] == str(p.pid))
    os.killpg(victim.pid, signal.SIGKILL)
    t0 = time.monotonic()
    head = _result(spool, key)  # run again on the two pools left (a WorkerLost attempt)
    assert head["status"] == OK and head["attempt"] == 1 and head["pool"] != owner
    assert len(marks.read_text().split()) == 2
    eventually(lambda: spool.node_names() == [], 30, "no reservation left")
    assert time.monotonic() - t0 < 60
