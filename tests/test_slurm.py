"""SlurmProvider on a real local Slurm (scripts/local-slurm): blocks are sbatch jobs, pools
are started by srun on the nodes, errors quote Slurm."""

from __future__ import annotations

import os

import pytest
import yaml

import farm
from farm import python_app
from farm.executors import SpoolExecutor
from farm.launchers import SrunLauncher
from farm.providers import SlurmProvider
from farm.providers.slurm import ProviderError
from farm.spool import Spool
from tests.test_local_slurm import cluster  # noqa: F401 (the module's Slurm cluster)
from tests.test_local_slurm import pytestmark as _needs_root

pytestmark = [_needs_root, pytest.mark.usefixtures("cluster")]

T = 120


def _load(tmp_path, **provider):
    prov = SlurmProvider(partition="debug", walltime="00:05:00", **provider)
    ex = SpoolExecutor(spool=tmp_path / "s", provider=prov, max_workers_per_node=1,
                       idle_timeout=5, heartbeat_period=0.5)
    farm.load(farm.Config(executors=[ex]))
    return ex


@python_app
def where(i):
    import socket
    import time
    time.sleep(0.3)
    return socket.gethostname()


def test_workflow_on_two_blocks_on_different_nodes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = _load(tmp_path, init_blocks=2, max_blocks=2)
    hosts = {f.result(T) for f in [where(i) for i in range(24)]}
    assert len(hosts) == 2 and all(h.startswith("n") for h in hosts), hosts
    records = [yaml.safe_load(open(ex.spool.p("blocks", n)))
               for n in os.listdir(ex.spool.p("blocks")) if n.endswith(".yaml")]
    assert len(records) == 2 and all(r["provider"] == "slurm" and r["job_id"] for r in records)
    assert sorted(ex.provider.running()) == sorted(ex.blocks)  # one squeue for both


def test_pool_under_srun_with_no_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _load(tmp_path, launcher=SrunLauncher(overrides="unshare -n"))

    @python_app
    def net():
        import socket
        try:
            socket.create_connection(("127.0.0.1", 22), timeout=1)
            return "network"
        except OSError as e:
            return f"none: {e}"

    assert net().result(T).startswith("none")


@python_app
def fails_on_a_node(n):
    raise ArithmeticError(f"node says {n}")


def test_remote_traceback_from_a_slurm_node(tmp_path, monkeypatch):
    import traceback
    monkeypatch.chdir(tmp_path)
    _load(tmp_path)
    with pytest.raises(ArithmeticError) as info:
        fails_on_a_node(5).result(T)
    text = "".join(traceback.format_exception(info.value))
    line = fails_on_a_node.func.__code__.co_firstlineno + 2  # decorator, def, raise
    assert f'File "{__file__}", line {line}, in fails_on_a_node' in text, text
    assert 'raise ArithmeticError(f"node says {n}")' in text


def test_bad_partition_quotes_slurm_and_leaves_no_block(tmp_path):
    spool = Spool.create(tmp_path / "s")
    prov = SlurmProvider(partition="nosuchpartition", walltime="00:01:00")
    with pytest.raises(ProviderError, match="(?i)invalid partition"):
        prov.submit(spool, "true", "b1")
    assert os.listdir(spool.p("blocks")) == []


def test_farm_cancel_scancels_blocks(tmp_path):
    import subprocess

    from tests.conftest import FARM, eventually
    spool = Spool.create(tmp_path / "s")
    prov = SlurmProvider(partition="debug", walltime="00:05:00")
    info = prov.submit(spool, "sleep 300", "b1")
    eventually(lambda: prov.running() == ["b1"], 30, "the block to be queued")
    r = subprocess.run([*FARM, "cancel", spool.path, "--wait", "0"], capture_output=True,
                       text=True, timeout=60)
    assert f"scancel {info['job_id']}: done" in r.stdout, r.stdout + r.stderr
    eventually(lambda: prov.running() == [], 30, "the job to leave squeue")


def test_cancel_of_many_blocks_goes_in_chunks(tmp_path, monkeypatch):
    # 205 held jobs: scancel is called with at most 100 ids at a time (a single call with
    # thousands of ids times out on a busy controller), and every job goes.
    import subprocess

    from farm.providers.slurm import SCANCEL_CHUNK
    from tests.conftest import eventually
    log = tmp_path / "scancel.log"
    real = subprocess.run(["bash", "-c", "command -v scancel"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / "bin").mkdir()
    spy = tmp_path / "bin" / "scancel"  # the real scancel, with its arguments logged
    spy.write_text(f'#!/bin/sh\necho "$#" >> {log}\nexec {real} "$@"\n')
    spy.chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy.parent}:{os.environ['PATH']}")
    spool = Spool.create(tmp_path / "s")
    prov = SlurmProvider(partition="debug", walltime="00:05:00")
    n = 2 * SCANCEL_CHUNK + 5
    out = subprocess.run(["bash", "-c", f"for i in $(seq {n}); do sbatch --parsable --hold "
                          f"-p debug -o /dev/null --wrap true; done"],
                         capture_output=True, text=True, timeout=120, check=True)
    prov.jobs = {f"b{i}": j for i, j in enumerate(out.stdout.split())}
    assert len(prov.jobs) == n
    prov.cancel(spool, list(prov.jobs))
    assert [int(x) for x in log.read_text().split()] == [SCANCEL_CHUNK, SCANCEL_CHUNK, 5]
    eventually(lambda: prov.running() == [], 60, "every job to leave squeue")
