"""NERSC example 2, headless: the driver runs inside the allocation, on its first node, and
LocalProvider + SrunLauncher start one pool on each node of the allocation.  Submit the
batch script next to this file (or run this script inside `salloc -N 2`):

    cd examples/nersc && sbatch headless.sbatch

Ported from Parsl's NERSC page (run_parsl_inside_allocation.py).  Each of 4 tasks sleeps
2 s and returns the node's platform.uname(); the tasks must spread over the nodes.
"""

import os
import platform as _platform
import sys

import site_settings as site

import farm
from farm import python_app
from farm.executors import SpoolExecutor
from farm.launchers import SrunLauncher
from farm.providers import LocalProvider

NODES = int(os.environ.get("SLURM_JOB_NUM_NODES", "2"))

config = farm.Config(executors=[SpoolExecutor(
    label="slurm_headless",
    max_workers_per_node=1,                   # one worker per pool, i.e. per node
    provider=LocalProvider(
        nodes_per_block=NODES,                # the nodes of this allocation
        launcher=SrunLauncher(overrides=site.SRUN_CORES),   # NERSC: "-c 32"
        cmd_timeout=120,
        init_blocks=1,
        max_blocks=1,
    ),
)])


@python_app
def platform():
    import platform
    import time
    time.sleep(2)
    return platform.uname()


def main():
    if "SLURM_JOB_ID" not in os.environ:
        sys.exit("headless.py: run me inside a Slurm allocation (sbatch headless.sbatch, "
                 "or salloc -N 2)")
    print(f"driver on {_platform.node()}, allocation of {NODES} nodes")
    with farm.load(config):
        calls = [platform() for _ in range(4)]
        for c in calls:
            print("Got result:", c.result())
    nodes = {c.result().node for c in calls}
    print(f"ran on {len(nodes)} node(s): {', '.join(sorted(nodes))}")
    if len(nodes) != min(NODES, len(calls)):
        sys.exit(f"headless.py: expected the tasks on {NODES} nodes")
    print("headless: OK")


if __name__ == "__main__":
    main()
