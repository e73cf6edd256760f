"""NERSC example 3, multi-node MPI apps: one pool on the block's first node runs 4
workers, and each bash app starts its own parallel job step with srun, over 1 or 2 nodes
of the block.  Ported from Parsl's NERSC page; mpi_hello.sh stands in for the compiled
mpi_hello (it prints one line per rank).

    python examples/nersc/mpi.py        # site settings: see site_settings.py
"""

import os
import shlex
import sys

import site_settings as site

import farm
from farm import AUTO_LOGNAME, bash_app
from farm.executors import SpoolExecutor
from farm.launchers import SimpleLauncher
from farm.providers import SlurmProvider

MPI_HELLO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_hello.sh")

config = farm.Config(executors=[SpoolExecutor(
    label="slurm_mpi",
    max_workers_per_node=4,                   # all on the block's first node
    provider=SlurmProvider(
        partition=site.PARTITION, account=site.ACCOUNT,
        nodes_per_block=2,
        scheduler_options=site.OPTIONS,       # NERSC: "#SBATCH -C cpu" (+ module load ...)
        worker_init=site.WORKER_INIT,
        launcher=SimpleLauncher(),            # one pool, in the batch script itself
        walltime="00:10:00",
        cmd_timeout=120,
    ),
)])


@bash_app
def mpi_hello(nodes, ranks, msg, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
    return f"srun -n {ranks} -N {nodes} {shlex.quote(MPI_HELLO)} hello {msg}"


def check(nodes, ranks, text):
    """One line per rank, ranks 0..ranks-1, spread over `nodes` nodes."""
    lines = text.split("\n")
    found = sorted(int(line.split()[4]) for line in lines if line)
    hosts = {line.split()[-1] for line in lines if line}
    return found == list(range(ranks)) and len(hosts) == nodes


def main():
    shapes = [(1, 4) if i % 2 == 0 else (2, 4) for i in range(10)]  # single and 2-node
    with farm.load(config):
        futures = [mpi_hello(n, r, i) for i, (n, r) in enumerate(shapes)]
        bad = 0
        for (n, r), f in zip(shapes, futures, strict=True):
            f.result()
            with open(f.stdout) as out:
                text = out.read()
            print(f"{f.stdout}:\n{text}", end="")
            bad += not check(n, r, text)
    if bad:
        sys.exit(f"mpi.py: {bad} task(s) printed the wrong ranks or nodes")
    print("mpi: OK")


if __name__ == "__main__":
    main()
