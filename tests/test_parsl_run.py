"""Parsl programs run on farm: unchanged through `farm parsl SCRIPT` (and `python -m
farm.parsl`), and with parsl -> farm in their imports, run by Python directly.  The programs
are those of Parsl's tutorial and NERSC's Parsl page (/work/shared/seeds)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import about_pi

T = 120

# Parsl's tutorial (its configuration and its first apps: hello, pi, files), as a Parsl
# user has it: Parsl's imports, HighThroughputExecutor, a LocalChannel.
TUTORIAL = textwrap.dedent('''
    import os
    import parsl
    from parsl.app.app import python_app, bash_app
    from parsl.config import Config
    from parsl.channels import LocalChannel
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider
    from parsl.data_provider.files import File

    config = Config(
        executors=[
            HighThroughputExecutor(
                label="htex_local",
                worker_debug=False,
                cores_per_worker=1,
                max_workers_per_node=2,
                provider=LocalProvider(
                    channel=LocalChannel(),
                    init_blocks=1,
                    max_blocks=1,
                ),
            )
        ],
        strategy=None,
    )
    parsl.load(config)

    @python_app
    def hello_python(message):
        return 'Hello %s' % message

    @bash_app
    def hello_bash(message, stdout='hello-stdout'):
        return 'echo "Hello %s"' % message

    print(hello_python('World (Python)').result())
    hello_bash('World (Bash)').result()
    with open('hello-stdout', 'r') as f:
        print(f.read().strip())

    @python_app
    def pi(num_points):
        from random import random
        inside = 0
        for i in range(num_points):
            x, y = random(), random()
            if x**2 + y**2 < 1:
                inside += 1
        return (inside*4 / num_points)

    @python_app
    def mean(a, b, c):
        return (a + b + c) / 3

    a, b, c = pi(10**5), pi(10**5), pi(10**5)
    print("pi is about", round(mean(a, b, c).result(), 1))

    @bash_app
    def generate(outputs=()):
        return 'echo $(( RANDOM % (10 - 5 + 1 ) + 5 )) &> {}'.format(outputs[0])

    @bash_app
    def concat(inputs=(), outputs=(), stdout='stdout.txt', stderr='stderr.txt'):
        return 'cat {0} >> {1}'.format(' '.join([i.filepath for i in inputs]), outputs[0])

    @python_app
    def total(inputs=()):
        total = 0
        with open(inputs[0].filepath, 'r') as f:
            for l in f:
                total += int(l)
        return total

    output_files = []
    for i in range(5):
        output_files.append(generate(outputs=[File(os.path.join(os.getcwd(),
                                                                'random-%s.txt' % i))]))
    cc = concat(inputs=[i.outputs[0] for i in output_files],
                outputs=[File(os.path.join(os.getcwd(), 'all.txt'))])
    t = total(inputs=[cc.outputs[0]])
    print("total", t.result())

    parsl.dfk().cleanup()
    parsl.clear()
''')

# NERSC's map-sum (its apps and workflow; its HTEX options, address included), on a
# LocalProvider: the Slurm version needs a cluster (tests/test_parsl_slurm.py runs it).
NERSC_MAP_SUM = textwrap.dedent('''
    import parsl
    from parsl.config import Config
    from parsl.providers import LocalProvider
    from parsl.launchers import SingleNodeLauncher
    from parsl.executors import HighThroughputExecutor
    from parsl.addresses import address_by_interface

    config = Config(
        executors=[
            HighThroughputExecutor(
                label='Cori_HTEX_multinode',
                address=address_by_interface('bond0.144'),
                cores_per_worker=1,
                provider=LocalProvider(
                    nodes_per_block=1,
                    worker_init='true',
                    launcher=SingleNodeLauncher(),
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
        return 'echo $(( {} + {} + {} ))'.format(a,b,c)

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


def ported(text: str) -> str:
    """The program with parsl -> farm in its imports (`import parsl` keeps the name)."""
    return (text.replace("import parsl\n", "import farm as parsl\n")
            .replace("from parsl", "from farm"))


def run(argv: list[str], cwd, timeout: float = T) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def check_tutorial(r: subprocess.CompletedProcess, cwd) -> None:
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["Hello World (Python)", "Hello World (Bash)"]
    assert about_pi(lines[2])
    assert 25 <= int(lines[3].split()[1]) <= 50  # five numbers in 5..10
    assert len((cwd / "all.txt").read_text().split()) == 5


def test_the_tutorial_runs_unchanged_through_farm_parsl(tmp_path):
    (tmp_path / "tutorial.py").write_text(TUTORIAL)
    r = run([sys.executable, "-m", "farm", "parsl", "tutorial.py"], tmp_path)
    check_tutorial(r, tmp_path)
    assert "farm ignores these Parsl Config options: ['strategy']" in r.stderr
    assert "farm ignores these LocalProvider options: channel" in r.stderr
    assert (tmp_path / "tutorial.farm").is_dir()  # the spool beside the script
    # Run again, with its imports changed this time: the same tasks, found in the spool.
    (tmp_path / "tutorial.py").write_text(ported(TUTORIAL))
    again = run([sys.executable, "tutorial.py"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == r.stdout  # (the random numbers too: nothing ran again)
    assert "13 of 13 tasks already done" in again.stderr


def test_the_tutorial_runs_with_its_imports_changed(tmp_path):
    (tmp_path / "tutorial.py").write_text(ported(TUTORIAL))
    r = run([sys.executable, "tutorial.py"], tmp_path)
    check_tutorial(r, tmp_path)


def test_nersc_map_sum_unchanged_through_python_m_farm_parsl(tmp_path):
    (tmp_path / "map_sum.py").write_text(NERSC_MAP_SUM)
    r = run([sys.executable, "-m", "farm.parsl", "map_sum.py"], tmp_path)
    assert r.returncode == 0, r.stderr
    sums = [line for line in r.stdout.splitlines() if line.startswith("sum is")]
    assert sorted(int(s.split()[-1]) for s in sums) == [0, 1, 1, 1, 2, 2, 2, 3]
    bash = [int(line) for line in r.stdout.splitlines() if line.strip().isdigit()]
    assert sorted(bash) == [0, 1, 1, 1, 2, 2, 2, 3]
    warned = [line for line in r.stderr.splitlines() if "HighThroughputExecutor options" in line]
    assert len(warned) == 1 and "address" in warned[0]


def test_nersc_map_sum_with_its_imports_changed(tmp_path):
    (tmp_path / "map_sum.py").write_text(ported(NERSC_MAP_SUM))
    r = run([sys.executable, "map_sum.py"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("sum is") == 8


# The configurations of NERSC's three examples, as the page has them (the headless one with
# the comma it lacks, and the imports it forgets): they must construct under farm.
NERSC_CONFIGS = textwrap.dedent('''
    import parsl
    from parsl.config import Config
    from parsl.providers import SlurmProvider, LocalProvider
    from parsl.launchers import SrunLauncher
    from parsl.channels import LocalChannel
    from parsl.executors import HighThroughputExecutor
    from parsl.addresses import address_by_interface
    import warnings
    warnings.simplefilter("always")

    multinode = Config(executors=[HighThroughputExecutor(
        label='Cori_HTEX_multinode',
        address=address_by_interface('bond0.144'),
        cores_per_worker=2,
        provider=SlurmProvider(
            'regular',
            nodes_per_block=2,
            scheduler_options='#SBATCH -C haswell',
            worker_init='module load python; source activate parsl',
            launcher=SrunLauncher(overrides='-c 64'),
            walltime='00:10:00',
            cmd_timeout=120,
        ),
    )])
    headless = Config(executors=[HighThroughputExecutor(
        label='Cori_HTEX_headless',
        address=address_by_interface('ipogif0'),
        max_workers=1,
        provider=LocalProvider(
            channel=LocalChannel(script_dir='.'),
            nodes_per_block=2,
            launcher=SrunLauncher(overrides='-c 32'),
            cmd_timeout=120,
            init_blocks=1,
            max_blocks=1
        ),
    )], strategy=None)
    mpi = Config(executors=[HighThroughputExecutor(
        label='Cori_HTEX_multinode',
        address=address_by_interface('bond0.144'),
        max_workers=4,
        provider=SlurmProvider(
            'debug',
            nodes_per_block=2,
            scheduler_options='#SBATCH -C haswell\\n module load openmpi',
            worker_init='module load python; source activate parsl',
            walltime='00:10:00',
            cmd_timeout=120,
        ),
    )])
    m = multinode.executors[0]
    print(m.label, m.cores_per_worker, m.provider.partition, m.provider.nodes_per_block)
    h = headless.executors[0]
    print(h.workers, h.provider.launcher)
    print(mpi.executors[0].workers, mpi.executors[0].provider.walltime)
''')


def test_the_nersc_configs_construct_unchanged(tmp_path):
    (tmp_path / "configs.py").write_text(NERSC_CONFIGS)
    r = run([sys.executable, "-m", "farm", "parsl", "configs.py"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Cori_HTEX_multinode 2 regular 2",
                                     "1 SrunLauncher(overrides='-c 32')", "4 00:10:00"]
    assert r.stderr.count("farm ignores these HighThroughputExecutor options: address") == 3


@pytest.mark.parametrize("code, expect", [
    ("from parsl.providers import PBSProProvider",
     "farm has no provider PBSProProvider: farm's blocks are local process groups or Slurm "
     "jobs; it supports LocalProvider, SlurmProvider"),
    ("from parsl.executors import WorkQueueExecutor", "farm has no executor WorkQueueExecutor"),
    ("import parsl.data_provider.globus", "farm has no parsl.data_provider.globus"),
    ("import parsl.no_such_module", "farm has no counterpart of Parsl's module "
                                    "parsl.no_such_module"),
])
def test_what_farm_lacks_is_one_clear_error(tmp_path, code, expect):
    (tmp_path / "s.py").write_text(code + "\n")
    r = run([sys.executable, "-m", "farm", "parsl", "s.py"], tmp_path, timeout=30)
    assert r.returncode == 1
    assert expect in r.stderr.splitlines()[-1], r.stderr


def test_apps_that_import_parsl_themselves_run_in_the_pools(tmp_path):
    (tmp_path / "s.py").write_text(textwrap.dedent('''
        import parsl
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor

        @parsl.python_app
        def inside():
            import os
            import parsl
            from parsl.app.errors import BashExitFailure
            return parsl.__name__, BashExitFailure.__module__, os.getpid()

        with parsl.load(Config(executors=[HighThroughputExecutor(max_workers_per_node=1)])):
            name, module, pid = inside().result()
        print(name, module, pid != os.getpid())
    ''').replace("@parsl", "import os\n@parsl", 1))
    r = run([sys.executable, "-m", "farm", "parsl", "s.py"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["farm", "farm.errors", "True"]


def test_monitoring_and_usage_tracking_are_accepted_and_ignored(tmp_path):
    (tmp_path / "s.py").write_text(textwrap.dedent('''
        import parsl
        from parsl.config import Config
        from parsl.executors import ThreadPoolExecutor
        from parsl.monitoring.monitoring import MonitoringHub
        from parsl.usage_tracking.levels import LEVEL_1

        config = Config(executors=[ThreadPoolExecutor()], usage_tracking=LEVEL_1,
                        monitoring=MonitoringHub(hub_address="localhost",
                                                 resource_monitoring_interval=10))
        with parsl.load(config):
            print(parsl.python_app(lambda: 42)().result())
    '''))
    r = run([sys.executable, "-m", "farm", "parsl", "s.py"], tmp_path, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "42"
    assert "farm ignores these Parsl Config options: ['monitoring', 'usage_tracking']" in r.stderr


def test_arguments_exit_status_and_the_aliases(tmp_path):
    (tmp_path / "s.py").write_text(textwrap.dedent('''
        import os, sys
        import parsl, farm
        from parsl.executors import HighThroughputExecutor
        from parsl.executors.high_throughput.executor import HighThroughputExecutor as H2
        from parsl.providers.slurm.slurm import SlurmProvider
        from parsl.dataflow.dflow import DataFlowKernel
        assert parsl is farm and H2 is HighThroughputExecutor
        assert SlurmProvider is farm.providers.SlurmProvider
        assert DataFlowKernel is farm.DataFlowKernel
        print(__name__, os.path.basename(sys.argv[0]), sys.argv[1:], os.path.isabs(__file__))
        sys.exit(int(sys.argv[2]))
    '''))
    r = run([sys.executable, "-m", "farm", "parsl", "s.py", "--flag", "3"], tmp_path, timeout=30)
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip() == "__main__ s.py ['--flag', '3'] True"
    # "--" before the script's arguments separates them (and later ones are the script's)
    r = run([sys.executable, "-m", "farm", "parsl", "s.py", "--", "--flag", "4", "--", "x"],
            tmp_path, timeout=30)
    assert r.returncode == 4, r.stderr
    assert r.stdout.strip() == "__main__ s.py ['--flag', '4', '--', 'x'] True"


@pytest.mark.parametrize("trigger", [
    "import farm.app.app", "from farm.data_provider.files import File",
    "from farm.addresses import address_by_hostname", "import farm.utils",
    "from farm.executors import HighThroughputExecutor; HighThroughputExecutor()",
    "from farm import parsl; parsl.install()",
])
def test_attribute_lifting_is_on_for_parsl_programs(tmp_path, trigger):
    code = ("import farm\nfrom farm.dataflow.futures import AppFuture\n"
            "print(hasattr(AppFuture, '__getattr__'))\n"
            f"{trigger}\nprint(hasattr(AppFuture, '__getattr__'))\n")
    r = run([sys.executable, "-c", code], tmp_path, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]  # (off for farm's own programs: speed)


def test_the_alias_in_this_process():
    from farm import parsl as alias
    from farm.launchers import SingleNodeLauncher, SrunLauncher
    from farm.providers import SlurmProvider
    alias.install()
    try:
        import parsl  # type: ignore[import-not-found]
        from parsl.app.app import python_app  # type: ignore[import-not-found]

        import farm
        assert parsl is farm and python_app is farm.python_app
        # Parsl's default launcher for Slurm blocks: all workers on the first node
        assert type(SlurmProvider().launcher) is SingleNodeLauncher
    finally:
        alias.uninstall()
    assert "parsl" not in sys.modules
    assert type(SlurmProvider().launcher) is SrunLauncher
    with pytest.raises(ImportError):
        import parsl  # type: ignore[import-not-found]  # noqa: F401
