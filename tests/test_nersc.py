"""The three NERSC examples (examples/nersc/) on a real local Slurm, run as a user runs
them, each to the right answer; and the detached-pool batch script (scripts/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import farm
from farm import python_app
from farm.executors import SpoolExecutor
from farm.providers import LocalProvider
from farm.spool import Spool
from tests.test_local_slurm import cluster  # noqa: F401 (the module's Slurm cluster)
from tests.test_local_slurm import pytestmark as _needs_root

pytestmark = [_needs_root, pytest.mark.usefixtures("cluster")]

ROOT = Path(__file__).resolve().parent.parent
NERSC = ROOT / "examples" / "nersc"
T = 180


def run_example(name: str, cwd: Path, **env: str) -> str:
    # (spools under the test's directory, not beside the examples in the checkout)
    proc = subprocess.run([sys.executable, str(NERSC / name)], cwd=cwd, timeout=T,
                          capture_output=True, text=True,
                          env={**os.environ, "FARM_SPOOL_ROOT": str(cwd), **env})
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def sbatch_wait(cwd: Path, *args: str, **env: str) -> str:
    """Submit a batch script, wait for the job to end; its job id."""
    proc = subprocess.run(["sbatch", "--parsable", "--wait", *args], cwd=cwd, timeout=T,
                          capture_output=True, text=True,
                          env={**os.environ, "FARM_SPOOL_ROOT": str(cwd), **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(";")[0].strip()


def test_map_sum_through_slurm_provider(tmp_path):
    out = run_example("map_sum_slurm.py", tmp_path, FARM_SLURM_CORES="4")
    sums = sorted(int(line.split()[-1]) for line in out.splitlines()
                  if line.startswith("sum is"))
    assert sums == [0, 1, 1, 1, 2, 2, 2, 3]
    assert "bash sums: 0 1 1 2 1 2 2 3" in out and "map_sum_slurm: OK" in out
    pools = Spool(str(tmp_path / "map_sum_slurm.farm")).pools()
    # One pool per node of the 2-node block, 2 workers each (4 cores / 2 per worker).
    assert len({p["host"] for p in pools}) == 2 and {p["workers"] for p in pools} == {2}


def test_headless_driver_inside_an_allocation(tmp_path):
    for name in ("headless.py", "headless.sbatch", "site_settings.py"):
        shutil.copy(NERSC / name, tmp_path)
    job = sbatch_wait(tmp_path, "headless.sbatch", FARM_PYTHON=sys.executable)
    out = (tmp_path / f"headless-{job}.out").read_text()
    assert out.count("Got result:") == 4, out
    assert "ran on 2 node(s)" in out and "headless: OK" in out, out


def test_multinode_mpi_style_bash_apps(tmp_path):
    out = run_example("mpi.py", tmp_path)
    assert "mpi: OK" in out, out
    ranks = [line for line in out.splitlines() if line.startswith("hello ")]
    assert len(ranks) == 40  # 10 apps of 4 ranks each


@python_app
def double(x):
    return 2 * x


def test_detached_pools_from_the_sbatch_template(tmp_path, monkeypatch):
    """A driver queues work and exits with no pool; the template's pools run it."""
    monkeypatch.chdir(tmp_path)
    spool_path = tmp_path / "s"
    ex = SpoolExecutor(spool=spool_path, provider=LocalProvider(init_blocks=0, max_blocks=0))
    farm.load(farm.Config(executors=[ex]))
    keys = [double(i).task.key for i in range(10)]
    farm.clear()
    spool = Spool(str(spool_path))
    assert all(spool.result_status(k) is None for k in keys)
    sbatch_wait(tmp_path, "--nodes=2", "--time=00:05:00", f"--output={tmp_path}/pools.log",
                str(ROOT / "scripts" / "farm-pools.sbatch"), str(spool_path),
                "--idle-timeout", "3", FARM_PYTHON=sys.executable)
    assert all(spool.result_status(k) == "ok" for k in keys), (tmp_path / "pools.log").read_text()
    hosts = {p["host"] for p in spool.pools()}
    assert len(hosts) == 2 and all(p["state"] == "exited" for p in spool.pools())
