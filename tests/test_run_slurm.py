"""farm run on the real local Slurm (scripts/local-slurm), configured by a site file: a
task file of 500 lines on 2 blocks, its driver killed with kill -9 midway and run again:
each line runs exactly once, the summary is right, and no Slurm job is left."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.conftest import FARM, eventually
from tests.test_local_slurm import cluster  # noqa: F401 (the module's Slurm cluster)
from tests.test_local_slurm import pytestmark as _needs_root
from tests.test_run import marks

pytestmark = [_needs_root, pytest.mark.usefixtures("cluster")]

SITE = """\
spool_root: {root}
executor:
  max_workers_per_node: 2
  idle_timeout: 10
  heartbeat_period: 0.5
provider:
  type: slurm
  partition: {partition}
  walltime: "00:05:00"
  exclusive: false
  init_blocks: 2
  max_blocks: 2
  launcher: srun
"""


def squeue() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                          timeout=30, check=True).stdout.split()


def test_500_lines_on_slurm_with_the_driver_killed_midway(tmp_path):
    n = 500
    (tmp_path / "runs").mkdir()
    (tmp_path / "site.yaml").write_text(SITE.format(
        root=tmp_path / "spools", partition=os.environ.get("FARM_SLURM_PARTITION", "debug")))
    (tmp_path / "tasks.txt").write_text("".join(f"touch runs/{i}.$RANDOM$RANDOM\n"
                                                for i in range(n)))
    cmd = [*FARM, "run", "--site", "site.yaml", "tasks.txt"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    eventually(lambda: len(marks(tmp_path / "runs")) >= n // 4, 120, "a quarter of the lines")
    os.kill(p.pid, signal.SIGKILL)  # the driver alone: its blocks go on
    p.wait(10)
    assert squeue(), "the blocks should outlive the driver"
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"farm run: {n} lines: {n} done" in r.stderr, r.stderr
    assert marks(tmp_path / "runs") == {str(i): 1 for i in range(n)}
    eventually(lambda: not squeue(), 60, "every block to leave squeue")
