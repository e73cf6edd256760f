"""NERSC example 1, high throughput: the driver runs on a login (or workflow) node and
SlurmProvider asks Slurm for a block of 2 nodes; srun starts one pool per node, and each
pool runs a worker per 2 cores.  Ported from Parsl's NERSC page: only the imports and the
executor changed (no address: the pools talk to the driver through the spool alone).

    python examples/nersc/map_sum_slurm.py        # site settings: see site_settings.py

Map: the sum a+b+c of every (a, b, c) in {0,1}^3, by a python app and by a bash app that
runs examples/calc_sum.py.  Both totals must be 12.
"""

import os
import shlex
import sys

import site_settings as site

import farm
from farm import AUTO_LOGNAME, bash_app, python_app
from farm.executors import SpoolExecutor
from farm.launchers import SrunLauncher
from farm.providers import SlurmProvider

CALC_SUM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "calc_sum.py")

config = farm.Config(executors=[SpoolExecutor(
    label="slurm_multinode",
    cores_per_worker=2,
    provider=SlurmProvider(
        partition=site.PARTITION, account=site.ACCOUNT,
        nodes_per_block=2,
        scheduler_options=site.OPTIONS,       # e.g. "#SBATCH -C cpu"
        worker_init=site.WORKER_INIT,         # e.g. "module load python; source activate farm"
        launcher=SrunLauncher(overrides=site.SRUN_CORES),   # NERSC: "-c 64"
        walltime="00:10:00",
        cmd_timeout=120,                      # a busy Slurm can be slow to answer
    ),
)])


@python_app
def app_argsum(a, b, c):
    return a + b + c


@bash_app
def app_argsum_bash(a, b, c, stderr=AUTO_LOGNAME, stdout=AUTO_LOGNAME):
    python, helper = shlex.quote(sys.executable), shlex.quote(CALC_SUM)
    return f"{python} {helper} -a {a} -b {b} -c {c}"


def main():
    items = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    with farm.load(config):
        mapping = [app_argsum(*i) for i in items]
        bashing = [app_argsum_bash(*i) for i in items]
        print("\n".join(f"sum is {r.result()}" for r in mapping))
        bash_sums = []
        for r in bashing:
            r.result()  # the exit code; the sum is in the stdout file
            with open(r.stdout) as f:
                bash_sums.append(int(f.read()))
        print("bash sums:", " ".join(map(str, bash_sums)))
    totals = (sum(r.result() for r in mapping), sum(bash_sums))
    if totals != (12, 12):
        sys.exit(f"map_sum_slurm: totals {totals}, expected (12, 12)")
    print("map_sum_slurm: OK")


if __name__ == "__main__":
    main()
