"""A real multi-node Slurm cluster on this machine, from scripts/local-slurm (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="local-slurm needs root"
)

SCRIPT = str(Path(__file__).resolve().parent.parent / "scripts" / "local-slurm")
NODES = 3


def run(*args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


def parse_env(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line.startswith("export ")]
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


def start(d: str, nodes: int) -> subprocess.CompletedProcess:
    # The first start on a fresh machine installs the Debian packages.
    out = run(SCRIPT, "start", d, str(nodes), timeout=300, check=False)
    if out.returncode != 0:
        run(SCRIPT, "stop", d, timeout=120, check=False)
        pytest.fail(f"local-slurm start failed ({out.returncode}):\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def cluster():
    """A NODES-node cluster whose env (SLURM_CONF...) is in os.environ meanwhile."""
    d = tempfile.mkdtemp(prefix="farm-slurm-", dir="/tmp")  # unix socket paths: keep it short
    saved = dict(os.environ)
    try:
        out = start(d, NODES)
        env = parse_env(out.stdout)
        assert env["SLURM_CONF"] == f"{d}/slurm.conf"
        assert env["FARM_SLURM_NODES"] == str(NODES)
        os.environ.update(env)
        yield d
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stop = run(SCRIPT, "stop", d, timeout=120, check=False)
        shutil.rmtree(d, ignore_errors=True)
        assert stop.returncode == 0, stop.stderr


def queued(job: str) -> bool:
    """Is the job still pending, running or completing?"""
    return job in run("squeue", "-h", "-o", "%i").stdout.split()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def job_state(job: str) -> str:
    fields = run("scontrol", "show", "job", job).stdout.split()
    return next(f.split("=", 1)[1] for f in fields if f.startswith("JobState="))


def test_srun_runs_on_every_node(cluster):
    out = run("srun", "-N", str(NODES), "hostname")
    names = out.stdout.split()
    assert len(names) == NODES
    assert len(set(names)) == NODES, names


def test_sbatch_two_node_job_completes(cluster):
    work = Path(cluster) / "work"
    work.mkdir(exist_ok=True)
    script = work / "two.sh"
    script.write_text(
        "#!/bin/bash\n"
        "#SBATCH -N 2\n"
        f"#SBATCH -o {work}/two-%j.out\n"
        "srun -N 2 hostname\n"
    )
    job = run("sbatch", "--parsable", str(script)).stdout.strip().split(";")[0]
    wait_for(lambda: not queued(job), 60, f"job {job} to finish")
    assert job_state(job) == "COMPLETED"
    names = (work / f"two-{job}.out").read_text().split()
    assert len(names) == 2 and len(set(names)) == 2, names


def test_scancel_removes_running_job(cluster):
    out = f"{cluster}/cancel-%j.out"
    job = run("sbatch", "--parsable", "-o", out, "--wrap", "sleep 300").stdout.split(";")[0].strip()
    wait_for(lambda: job_state(job) == "RUNNING", 30, f"job {job} to run")
    run("scancel", job)
    wait_for(lambda: not queued(job), 30, f"job {job} to leave the queue")
    assert job_state(job) == "CANCELLED"


def test_step_without_network(cluster):
    # farm's firewalled-node emulation: a compute step with no network at all.
    run("srun", "-N", "1", "unshare", "-n", "true")
    out = run("srun", "-N", "1", "unshare", "-n", "cat", "/proc/net/dev")
    interfaces = {line.split(":")[0].strip() for line in out.stdout.splitlines() if ":" in line}
    assert interfaces == {"lo"}


def test_start_again_and_env_are_idempotent(cluster):
    pids = (Path(cluster) / "pids").read_text()
    again = run(SCRIPT, "start", cluster, str(NODES))
    assert again.stdout == (Path(cluster) / "env").read_text()
    assert run(SCRIPT, "env", cluster).stdout == again.stdout
    assert (Path(cluster) / "pids").read_text() == pids


def test_second_cluster_alongside(cluster):
    d = tempfile.mkdtemp(prefix="farm-slurm2-", dir="/tmp")
    try:
        env = dict(os.environ, **parse_env(start(d, 1).stdout))
        assert env["SLURM_CONF"] != os.environ["SLURM_CONF"]
        out = subprocess.run(
            ["srun", "hostname"], env=env, capture_output=True, text=True, timeout=30, check=True
        )
        assert out.stdout.split() == ["n1"]
        run(SCRIPT, "stop", d, timeout=120)
        assert run(SCRIPT, "env", d, check=False).returncode != 0
    finally:
        run(SCRIPT, "stop", d, timeout=120)
        shutil.rmtree(d, ignore_errors=True)
    # The first cluster is untouched.
    assert len(set(run("srun", "-N", str(NODES), "hostname").stdout.split())) == NODES
