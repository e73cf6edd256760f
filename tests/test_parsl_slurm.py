"""NERSC's three Parsl examples, as Parsl programs (Parsl's imports, HighThroughputExecutor,
address_by_interface), run through `farm parsl` on a real local Slurm (scripts/local-slurm,
root only).  Only what names NERSC's machine is changed: the partition, the node feature
(-C haswell) and srun's cores per task."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_local_slurm import cluster  # noqa: F401 (the module's Slurm cluster)
from tests.test_local_slurm import pytestmark as _needs_root

pytestmark = [_needs_root, pytest.mark.usefixtures("cluster")]

ROOT = Path(__file__).resolve().parent.parent
T = 180

# The page's map-sum (example 1), as it is but for the site: partition 'regular' -> the
# local cluster's, no '#SBATCH -C haswell', srun -c 64 -> -c 2.
MAP_SUM = textwrap.dedent('''
    import parsl
    from parsl.config import Config
    from parsl.providers import SlurmProvider
    from parsl.launchers import SrunLauncher
    from parsl.executors import HighThroughputExecutor
    from parsl.addresses import address_by_interface

    config = Config(
        executors=[
            HighThroughputExecutor(
                label='Cori_HTEX_multinode',
                address=address_by_interface('bond0.144'),
                cores_per_worker=2,
                provider=SlurmProvider(
                    'PARTITION',
                    nodes_per_block=2,
                    scheduler_options='',
                    worker_init='module load python; source activate parsl',
                    launcher=SrunLauncher(overrides='-c 2'),
                    walltime='00:10:00',
                    cmd_timeout=120,
                ),
            )
        ]
    )
    parsl.load(config)

    from parsl import python_app, bash_app

    @python_app
    def app_argsum(a, b, c):
        return a+b+c

    @bash_app
    def app_argsum_bash(a, b, c, stderr=parsl.AUTO_LOGNAME, stdout=parsl.AUTO_LOGNAME):
        return 'python3 calc_sum.py -a {} -b {} -c {}'.format(a,b,c)

    items = [(a,b,c) for a in [0,1] for b in [0,1] for c in [0,1]]
    mapping = []
    for i in items:
        x = app_argsum(*i)
        mapping.append(x)
    bashing = []
    for i in items:
        x = app_argsum_bash(*i)
        bashing.append(x)
    print("\\n".join(["sum is %d" %r.result() for r in mapping]))
    for r in bashing:
        r.result()
        with open(r.stdout, 'r') as f:
            print(f.read())
''')

# The page's multi-node MPI example (3): the default launcher puts the 4 workers on the
# block's first node, and each bash app runs srun over 1 or 2 nodes.  Site: partition
# 'debug' is the local cluster's too; no '-C haswell'; mpi_hello is a script on PATH.
MPI = textwrap.dedent('''
    import parsl
    from parsl import bash_app
    from parsl.config import Config
    from parsl.providers import SlurmProvider
    from parsl.executors import HighThroughputExecutor
    from parsl.addresses import address_by_interface

    config = Config(
        executors=[
            HighThroughputExecutor(
                label='Cori_HTEX_multinode',
                address=address_by_interface('bond0.144'),
                max_workers=4,
                provider=SlurmProvider(
                    'debug',
                    nodes_per_block=2,
                    scheduler_options='#SBATCH --job-name=mpi\\n module load openmpi',
                    worker_init='module load python; source activate parsl',
                    walltime='00:10:00',
                    cmd_timeout=120,
                ),
            )
        ]
    )
    parsl.load(config)

    @bash_app
    def mpi_hello(nodes, ranks, msg, stdout=parsl.AUTO_LOGNAME, stderr=parsl.AUTO_LOGNAME):
        cmd = f"srun -n {ranks} -N {nodes} mpi_hello hello {msg}"
        return cmd

    def print_file(filename):
        with open(filename) as f:
            print(f.read())

    futures = []
    for i in range(10):
        if i%2 == 0:
            x = mpi_hello(1, 4, i)
        else:
            x = mpi_hello(2, 4, i)
        futures.append(x)

    for i in futures:
        print(i.result())
        print(i.stdout, print_file(i.stdout))
''')


def farm_parsl(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    (cwd / "workflow.py").write_text(script)
    return subprocess.run([sys.executable, "-m", "farm", "parsl", "workflow.py"], cwd=cwd,
                          capture_output=True, text=True, timeout=T,
                          env={**os.environ, "FARM_SPOOL_ROOT": str(cwd), **env})


def test_nersc_map_sum_through_farm_parsl(tmp_path):
    shutil.copy(ROOT / "examples" / "calc_sum.py", tmp_path)
    partition = os.environ.get("FARM_SLURM_PARTITION", "debug")
    r = farm_parsl(MAP_SUM.replace("PARTITION", partition), tmp_path)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    sums = [int(line.split()[-1]) for line in r.stdout.splitlines() if line.startswith("sum")]
    bash = [int(line) for line in r.stdout.splitlines() if line.strip().isdigit()]
    assert sorted(sums) == sorted(bash) == [0, 1, 1, 1, 2, 2, 2, 3]
    assert r.stderr.count("farm ignores these HighThroughputExecutor options: address") == 1


def test_nersc_mpi_example_through_farm_parsl(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hello = bin_dir / "mpi_hello"
    shutil.copy(ROOT / "examples" / "nersc" / "mpi_hello.sh", hello)
    hello.chmod(hello.stat().st_mode | stat.S_IXUSR)
    r = farm_parsl(MPI, tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    ranks = [line for line in r.stdout.splitlines() if line.startswith("hello ")]
    assert len(ranks) == 40  # 10 apps of 4 ranks each
    two_node = {line.split()[-1] for line in ranks if line.startswith("hello 1 ")}
    assert len(two_node) == 2  # app 1 ran over both nodes of the block


# The page's headless example (2), run_parsl_inside_allocation.py, with the comma it lacks
# after address=... and the imports it forgets (python_app, address_by_interface); site:
# srun -c 32 -> -c 1.
HEADLESS = textwrap.dedent('''
    import parsl
    from parsl import python_app
    from parsl.config import Config
    from parsl.providers import LocalProvider
    from parsl.launchers import SrunLauncher
    from parsl.channels import LocalChannel
    from parsl.executors import HighThroughputExecutor
    from parsl.addresses import address_by_interface

    config = Config(
        executors=[
            HighThroughputExecutor(
                label='Cori_HTEX_headless',
                address=address_by_interface('ipogif0'),
                max_workers=1,
                provider=LocalProvider(
                    channel=LocalChannel(script_dir='.'),
                    nodes_per_block=2,
                    launcher=SrunLauncher(overrides='-c 1'),
                    cmd_timeout=120,
                    init_blocks=1,
                    max_blocks=1
                ),
            )
        ],
        strategy=None,
    )

    parsl.load(config)

    @python_app
    def platform():
        import platform
        import time
        time.sleep(2)
        return platform.uname()

    calls = [platform() for i in range(4)]
    print(calls)

    for c in calls:
        print("Got result: ", c.result())
''')


def test_nersc_headless_example_through_farm_parsl(tmp_path):
    (tmp_path / "run_parsl_inside_allocation.py").write_text(HEADLESS)
    (tmp_path / "submit_parsl.sl").write_text(textwrap.dedent(f'''\
        #!/bin/sh
        #SBATCH --nodes=2
        #SBATCH --time=00:05:00
        #SBATCH --output=headless-%j.out
        cd "$SLURM_SUBMIT_DIR"
        exec {sys.executable} -m farm parsl run_parsl_inside_allocation.py
    '''))
    r = subprocess.run(["sbatch", "--parsable", "--wait", "submit_parsl.sl"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=T,
                       env={**os.environ, "FARM_SPOOL_ROOT": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    job = r.stdout.split(";")[0].strip()
    out = (tmp_path / f"headless-{job}.out").read_text()
    results = [line for line in out.splitlines() if line.startswith("Got result:")]
    assert len(results) == 4, out
    nodes = {line.split("node='")[1].split("'")[0] for line in results}
    assert len(nodes) == 2, out  # one pool on each node of the allocation
