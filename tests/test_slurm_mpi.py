"""Tasks across nodes on the real local Slurm (scripts/local-slurm): an MPI program built
with Debian's MPICH runs on two nodes of a three-node block through $FARM_MPI_PREFIX,
while the third node's pool runs small tasks and the two nodes' pools run nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import farm
from farm import bash_app, python_app
from farm.executors import SpoolExecutor
from farm.providers import SlurmProvider
from tests.conftest import eventually
from tests.test_local_slurm import cluster  # noqa: F401 (the module's Slurm cluster)
from tests.test_local_slurm import pytestmark as _needs_root

pytestmark = [_needs_root, pytest.mark.usefixtures("cluster"), pytest.mark.timeout(300)]

T = 180

HELLO = r"""
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int rank, size, one = 1, sum = 0;
    char host[256];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    gethostname(host, sizeof host);
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d of %d on %s sum %d\n", rank, size, host, sum);
    MPI_Finalize();
    return 0;
}
"""


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    """The MPI hello, built with mpicc (MPICH comes with local-slurm; its headers are in
    Debian's libmpich-dev, installed here if missing)."""
    d = tmp_path_factory.mktemp("mpi")
    (d / "hello.c").write_text(HELLO)

    def build():
        return subprocess.run(["mpicc", "-o", str(d / "hello"), str(d / "hello.c")],
                              capture_output=True, text=True, timeout=120)

    if shutil.which("mpicc") is None or build().returncode != 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        got = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                              "mpich", "libmpich-dev"], capture_output=True, text=True,
                             timeout=600, env=env)
        assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
        out = build()
        assert out.returncode == 0, out.stderr
    return str(d / "hello")


@bash_app
def mpi_hello(program, stdout=None, parsl_resource_specification=None):
    # The node is held for the whole command: the sleep keeps it long enough to see the
    # third node's tasks run beside it.
    return f"date +%s.%N; $FARM_MPI_PREFIX {program}; echo $PARSL_NUM_RANKS; sleep 2; date +%s.%N"


@python_app
def small(i):
    import socket
    import time
    t0 = time.time()
    time.sleep(0.2)
    return socket.gethostname(), t0, time.time()


def test_an_mpi_task_on_two_nodes_while_the_third_runs_small_tasks(tmp_path, monkeypatch,
                                                                      hello):
    monkeypatch.chdir(tmp_path)
    provider = SlurmProvider(partition="debug", walltime="00:05:00", nodes_per_block=3)
    ex = SpoolExecutor(spool=tmp_path / "s", provider=provider, max_workers_per_node=2,
                       idle_timeout=30, heartbeat_period=0.5)
    farm.load(farm.Config(executors=[ex]))
    warm = [small(i) for i in range(12)]
    assert all(f.result(T) for f in warm)
    eventually(lambda: len(ex.spool.live_pools()) == 3, T, "three pools up")
    mpi = mpi_hello(hello, stdout=str(tmp_path / "mpi.out"),
                    parsl_resource_specification={"num_nodes": 2, "ranks_per_node": 2})
    smalls = [small(100 + i) for i in range(60)]
    assert mpi.result(T) == 0
    runs = [f.result(T) for f in smalls]
    lines = (tmp_path / "mpi.out").read_text().split("\n")
    start, end = float(lines[0]), float(lines[6])
    ranks = sorted(line.split() for line in lines[1:5])
    assert [r[1] for r in ranks] == ["0", "1", "2", "3"] and {r[3] for r in ranks} == {"4"}
    assert [r[-1] for r in ranks] == ["4"] * 4  # the allreduce went through every rank
    hosts = {r[5] for r in ranks}
    assert len(hosts) == 2 and lines[5] == "4", lines
    beside = [(h, a, b) for h, a, b in runs if a < end and b > start]
    assert beside, (start, end, runs)  # the third node worked meanwhile...
    assert not [r for r in beside if r[0] in hosts], (hosts, beside)  # ...and only it
    eventually(lambda: os.listdir(ex.spool.p("nodes")) == [], 10, "the nodes given back")
