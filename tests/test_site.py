"""Site files (farm.site): one YAML file says where things run; every mistake is one line
naming the file, the line and the key."""

from __future__ import annotations

import pytest

import farm
from farm import Config
from farm.executors import SpoolExecutor
from farm.launchers import SrunLauncher
from farm.providers import LocalProvider, SlurmProvider
from farm.site import SiteError, load

SLURM = """\
spool_root: {root}
retries: 2
executor:
  max_workers_per_node: 4
  cores_per_worker: 2
  idle_timeout: 30
provider:
  type: slurm
  partition: regular
  account: m1234
  qos: debug
  constraint: cpu
  walltime: 1:30:00        # YAML would read this as a number: it stays text
  nodes_per_block: 2
  min_blocks: 0
  init_blocks: 1
  max_blocks: 4
  worker_init: module load python
  scheduler_options: "#SBATCH --licenses=scratch"
  launcher: {{type: srun, overrides: "-c 64"}}
"""


def test_a_slurm_site_builds_its_config(tmp_path):
    (tmp_path / "site.yaml").write_text(SLURM.format(root=tmp_path / "spools"))
    cfg = load(tmp_path / "site.yaml")
    assert cfg.retries == 2 and cfg.run_dir == str(tmp_path / "spools")
    ex = cfg.executors[0]
    assert isinstance(ex, SpoolExecutor) and ex.workers == 4 and ex.cores_per_worker == 2
    p = ex.provider
    assert isinstance(p, SlurmProvider)
    assert (p.partition, p.account, p.qos, p.constraint, p.walltime) == (
        "regular", "m1234", "debug", "cpu", "1:30:00")
    assert (p.nodes_per_block, p.max_blocks, p.worker_init) == (2, 4, "module load python")
    assert isinstance(p.launcher, SrunLauncher) and p.launcher.overrides == "-c 64"
    assert Config.from_yaml(tmp_path / "site.yaml").retries == 2


def test_an_empty_site_is_local_pools(tmp_path):
    (tmp_path / "site.yaml").write_text("# nothing here\n")
    cfg = load(tmp_path / "site.yaml")
    assert isinstance(cfg.executors[0].provider, LocalProvider)


def test_farm_load_takes_a_site_file_or_FARM_SITE(tmp_path, monkeypatch):
    (tmp_path / "site.yaml").write_text("retries: 3\nexecutor:\n  spool_dir_unused: 1\n")
    with pytest.raises(SiteError, match="site.yaml:3: executor.spool_dir_unused"):
        farm.load(str(tmp_path / "site.yaml"))
    (tmp_path / "site.yaml").write_text(f"retries: 3\nspool_root: {tmp_path}\n")
    monkeypatch.chdir(tmp_path)
    with farm.load(str(tmp_path / "site.yaml")) as dfk:
        assert dfk.config.retries == 3
    monkeypatch.setenv("FARM_SITE", str(tmp_path / "site.yaml"))
    with farm.load() as dfk:
        assert dfk.config.retries == 3


@pytest.mark.parametrize("text, message", [
    ("executor: [1, 2\n", r"site.yaml:2: not valid YAML"),
    ("- a\n- b\n", r"site.yaml: a site file is a mapping"),
    ("spool_rot: /x\n", r"site.yaml:1: spool_rot: unknown key; did you mean spool_root\?"),
    ("executor:\n  max_worker_per_node: 4\n",
     r"site.yaml:2: executor.max_worker_per_node: unknown key; did you mean "
     r"max_workers_per_node\?"),
    ("provider:\n  type: slurm\n  max_blocks: -2\n",
     r"site.yaml:3: provider.max_blocks: SlurmProvider: need 0 <= min_blocks"),
    ("provider:\n  type: slurm\n  walltime: 90 minutes\n",
     r"site.yaml:3: provider.walltime: SlurmProvider: walltime '90 minutes' is not a Slurm "
     r"time"),
    ("provider:\n  type: slurn\n", r"site.yaml:2: provider.type: unknown provider 'slurn'; "
                                   r"did you mean slurm\?"),
    ("provider:\n  type: slurm\n  launcher: sprun\n",
     r"site.yaml:3: provider.launcher.type: unknown launcher 'sprun'; did you mean srun\?"),
    ("executor:\n  idle_timeout: soon\n",
     r"site.yaml:2: executor.idle_timeout: must be a number, got 'soon'"),
    ("provider:\n  type: local\n  max_blocks: two\n",
     r"site.yaml:3: provider.max_blocks: must be a whole number, got 'two'"),
    ("retries: -1\n", r"site.yaml:1: retries: must be a whole number >= 0"),
    ("provider: slurm\n", r"site.yaml:1: provider: must be a mapping"),
])
def test_each_mistake_is_one_line_naming_file_line_and_key(tmp_path, text, message):
    (tmp_path / "site.yaml").write_text(text)
    with pytest.raises(SiteError, match=message) as info:
        load(tmp_path / "site.yaml")
    assert "\n" not in str(info.value)


def test_a_missing_site_file(tmp_path):
    with pytest.raises(SiteError, match="nosuch.yaml: cannot read the site file"):
        load(tmp_path / "nosuch.yaml")


def test_farm_site_check_prints_the_block_script(tmp_path):
    import subprocess

    from tests.conftest import FARM
    (tmp_path / "site.yaml").write_text(SLURM.format(root=tmp_path / "spools"))
    r = subprocess.run([*FARM, "site", "check", str(tmp_path / "site.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "site.yaml: OK" in r.stdout
    assert "#SBATCH --qos=debug" in r.stdout and "#SBATCH --time=1:30:00" in r.stdout
    assert "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=0 -c 64 " in r.stdout
    assert "-m farm pool" in r.stdout and "--workers 4" in r.stdout
    (tmp_path / "bad.yaml").write_text("provider:\n  type: slurm\n  max_blocks: -1\n")
    r = subprocess.run([*FARM, "site", "check", str(tmp_path / "bad.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "bad.yaml:3: provider.max_blocks" in r.stderr
    assert "Traceback" not in r.stderr
