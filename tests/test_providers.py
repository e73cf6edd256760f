"""Providers, launchers and scaling decisions as pure functions: no Slurm, no root, no
processes (the real thing is tested on the local Slurm in test_slurm*.py)."""

from __future__ import annotations

import re
import shlex

import pytest

from farm.errors import ConfigError
from farm.executors.scaling import blocks_to_add, pool_command
from farm.launchers import SrunLauncher
from farm.providers import LocalProvider, SlurmProvider
from farm.spool import Spool


def test_walltime_format_is_checked():
    with pytest.raises(ConfigError, match="not a Slurm time"):
        SlurmProvider(walltime="10 minutes")


def test_sbatch_script_is_as_expected(tmp_path):
    spool = Spool.create(tmp_path / "s")
    prov = SlurmProvider(partition="regular", account="m1234", nodes_per_block=2,
                         walltime="00:30:00", scheduler_options="#SBATCH -C haswell",
                         worker_init="module load python", launcher=SrunLauncher("-c 64"))
    assert prov.script(spool, "farm pool S", "b7") == "\n".join([
        "#!/bin/bash",
        "#SBATCH --job-name=farm-b7",
        f"#SBATCH --output={spool.path}/logs/b7.log",
        "#SBATCH --nodes=2",
        "#SBATCH --time=00:30:00",
        "#SBATCH --partition=regular",
        "#SBATCH --account=m1234",
        "#SBATCH --exclusive",
        "#SBATCH -C haswell",
        f"# farm block b7 on {spool.path}",
        "module load python",
        '[ -n "${SLURM_JOB_ID:-}" ] && export FARM_BLOCK_END="$(SLURM_TIME_FORMAT=%s squeue '
        '-h -j "$SLURM_JOB_ID" -o %e 2>/dev/null)"',
        "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=0 -c 64 farm pool S",
        "",
    ])


def test_mpiexec_launcher_command():
    from farm.launchers import MpiExecLauncher
    cmd = MpiExecLauncher(overrides="-localhost 127.0.0.1")("farm pool S", 1, 2)
    assert cmd.startswith("mpiexec -n 2 -ppn 1 $(if [ -n \"${SLURM_JOB_NODELIST:-}\" ]")
    assert cmd.endswith(" -localhost 127.0.0.1 farm pool S")


@pytest.mark.parametrize("provider", [LocalProvider, SlurmProvider])
@pytest.mark.parametrize("options, words", [
    ({"min_blocks": -1}, "0 <= min_blocks"),
    ({"init_blocks": 3, "max_blocks": 2}, "init_blocks <= max_blocks"),
    ({"min_blocks": 2, "init_blocks": 1, "max_blocks": 3}, "min_blocks <= init_blocks"),
    ({"nodes_per_block": 0}, "nodes_per_block must be at least 1"),
    ({"max_blocks": 1.5}, "max_blocks must be a whole number"),
])
def test_both_providers_check_block_counts_alike(provider, options, words):
    with pytest.raises(ConfigError, match=words) as info:
        provider(**options)
    assert str(info.value).startswith(provider.__name__)


def test_pool_command_quotes_every_argument(tmp_path):
    spool = Spool.create(tmp_path / "a spool's dir")
    cmd = pool_command(spool, "b1", "/usr/bin/python3", {
        "workers": 4, "idle-timeout": 60, "accelerators": "", "drain": None,
        "worker-init": "echo 'hi'"})
    assert shlex.split(cmd) == ["/usr/bin/python3", "-m", "farm", "pool", spool.path,
                                "--block", "b1", "--workers", "4", "--idle-timeout", "60",
                                "--worker-init", "echo 'hi'"]


@pytest.mark.parametrize("case, want", [
    # demand, parallelism, slots, per_block, active, pending, min, max -> blocks to add
    ((0, 1.0, 0, 4, 0, False, 0, 5), 0),  # nothing to do, nothing waited for
    ((0, 1.0, 0, 4, 0, True, 0, 5), 1),  # waiting: always one block (a sweep needs a pool)
    ((0, 1.0, 0, 4, 0, True, 2, 5), 2),  # ... or min_blocks
    ((0, 1.0, 0, 4, 2, True, 2, 5), 0),  # min_blocks already there
    ((10, 1.0, 0, 4, 0, True, 0, 5), 3),  # 10 tasks, 4 slots a block
    ((10, 1.0, 8, 4, 2, True, 0, 5), 1),  # 8 slots there: 2 more tasks, one more block
    ((10, 0.5, 0, 4, 0, True, 0, 5), 2),  # parallelism halves the want
    ((100, 1.0, 0, 4, 3, True, 0, 5), 2),  # capped at max_blocks
    ((100, 1.0, 0, 4, 5, True, 0, 5), 0),  # at max_blocks already
    ((5, 1.0, 0, 0, 0, True, 0, 5), 5),  # a block of unknown size counts as one slot
])
def test_blocks_to_add(case, want):
    assert blocks_to_add(*case) == want


@pytest.mark.parametrize("make, words", [
    (lambda: SlurmProvider(partiton="debug"), "SlurmProvider: unknown option 'partiton'; "
                                              "did you mean partition?"),
    (lambda: LocalProvider(max_block=2), "LocalProvider: unknown option 'max_block'; did you "
                                         "mean max_blocks"),
])
def test_a_misspelt_option_gets_a_did_you_mean(make, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        make()


@pytest.mark.parametrize("walltime, seconds", [("30", 1800), ("00:10:00", 600),
                                               ("1:00:05", 3605), ("2-03:00:00", 183600)])
def test_block_seconds_reads_slurm_times(walltime, seconds):
    assert SlurmProvider(walltime=walltime).block_seconds() == seconds


def test_a_task_longer_than_any_block_fails_at_once(tmp_path):
    """Instead of waiting for ever (every pool would hand it back): the error names the
    walltimes.  No block is asked for (no sbatch: nothing else was queued)."""
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor

    @python_app
    def long_one(walltime=None):
        return 1

    ex = SpoolExecutor(spool=tmp_path / "s", provider=SlurmProvider(walltime="00:10:00"))
    with farm.load(farm.Config(executors=[ex], progress=False)):
        fut = long_one(walltime=590)
        with pytest.raises(ConfigError, match=r"walltime \(590 s\) is longer than any block "
                                              r"can give it \(585 s: the provider's walltime "
                                              r"of 600 s"):
            fut.result(10)
        assert ex.blocks == []


def test_requests_a_slurm_block_can_never_hold_fail_at_once(tmp_path):
    """The provider says what a node has: a request above it, or a running time above the
    block's walltime, fails at submission with an error naming both."""
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor

    @python_app
    def step():
        return 1

    ex = SpoolExecutor(spool=tmp_path / "s", provider=SlurmProvider(
        walltime="00:10:00", cores_per_node=4, mem_per_node=8))
    spec = "parsl_resource_specification"
    with farm.load(farm.Config(executors=[ex], progress=False)):
        with pytest.raises(ConfigError, match=r"cores=8, more than the largest node of its "
                                              r"pools has \(4 cores, 8,192 MB, 0 GPUs"):
            step(**{spec: {"cores": 8}}).result(10)
        with pytest.raises(ConfigError, match=r"running_time \(900 s\) is longer than any"):
            step(**{spec: {"running_time_min": 15}}).result(10)
        with pytest.raises(ConfigError, match=r"num_nodes=2, more than a block of its pools "
                                              r"has \(1: one pool per node\); raise the "):
            step(**{spec: {"num_nodes": 2}}).result(10)
        assert ex.blocks == []
