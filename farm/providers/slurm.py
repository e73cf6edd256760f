"""SlurmProvider: a block is one sbatch job; the launcher starts a pool on each node.

The block's script and record (job id) live in the spool's blocks/ directory, so any later
driver, or `farm cancel`, can find the job.  Status is one squeue call for all blocks,
cancellation one scancel call per 100 blocks.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import yaml

from farm.errors import ConfigError, ProviderError, checked_options
from farm.launchers import Launcher, SrunLauncher
from farm.providers.base import END_EXPORT, check_blocks, warn_ignored
from farm.spool import Spool, fs
from farm.spool.layout import Paths

_WALLTIME = re.compile(r"(\d+-)?\d{1,2}:\d{2}:\d{2}|\d+")
SCANCEL_CHUNK = 100  # job ids per scancel call
# The launcher of a SlurmProvider given none: SrunLauncher, one pool on each node.  `farm
# parsl` sets Parsl's default, SingleNodeLauncher (one pool, on the block's first node), so
# that an unchanged Parsl program places its workers as it would under Parsl.
default_launcher: type[Launcher] = SrunLauncher
LIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "RESIZING", "REQUEUED", "SUSPENDED"}


@checked_options
class SlurmProvider:
    label = "slurm"

    def __init__(self, partition: str | None = None, account: str | None = None,
                 qos: str | None = None, constraint: str | None = None,
                 nodes_per_block: int = 1, cores_per_node: int | None = None,
                 mem_per_node: int | None = None, exclusive: bool = True,
                 walltime: str = "00:10:00", scheduler_options: str = "",
                 worker_init: str = "", launcher: Launcher | None = None,
                 cmd_timeout: int = 30, init_blocks: int = 1, min_blocks: int = 0,
                 max_blocks: int = 1, parallelism: float = 1.0, clusters: str | None = None,
                 channel: Any = None, regex_job_id: str | None = None,
                 move_files: bool | None = None):
        if not isinstance(walltime, str) or not _WALLTIME.fullmatch(walltime):
            raise ConfigError(f"SlurmProvider: walltime {walltime!r} is not a Slurm time; use "
                              "HH:MM:SS, D-HH:MM:SS or minutes, e.g. '01:30:00'")
        check_blocks("SlurmProvider", nodes_per_block, init_blocks, min_blocks, max_blocks)
        if clusters:
            raise ConfigError("SlurmProvider: clusters= (a federation of Slurm clusters) is "
                              "not supported by farm; submit from the cluster itself")
        warn_ignored("SlurmProvider", channel=channel, regex_job_id=regex_job_id,
                     move_files=move_files)
        self.partition, self.account, self.qos, self.constraint = (partition, account, qos,
                                                                   constraint)
        self.nodes_per_block = nodes_per_block
        self.cores_per_node, self.mem_per_node = cores_per_node, mem_per_node
        self.exclusive = exclusive
        self.walltime = walltime
        self.scheduler_options = scheduler_options
        self.worker_init = worker_init
        self.launcher = launcher or default_launcher()
        self.cmd_timeout = cmd_timeout
        self.init_blocks, self.min_blocks, self.max_blocks = init_blocks, min_blocks, max_blocks
        self.parallelism = parallelism
        self.jobs: dict[str, str] = {}  # block -> job id
        self.ended: set[str] = set()  # job ids seen finished

    def block_seconds(self) -> float:
        """How long a block runs: walltime in seconds (Slurm's forms: minutes, H:MM:SS,
        D-HH:MM:SS)."""
        days, _, clock = self.walltime.rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        seconds = parts[0] * 60 if len(parts) == 1 else (
            parts[0] * 3600 + parts[1] * 60 + parts[2])
        return float(seconds + int(days or 0) * 86400)

    def __repr__(self) -> str:
        return (f"SlurmProvider(partition={self.partition!r}, nodes_per_block="
                f"{self.nodes_per_block}, walltime={self.walltime!r})")

    def script(self, spool: Paths, command: str, block: str) -> str:
        """The sbatch script of a block (pinned by a golden test)."""
        opts = [f"--job-name=farm-{block}", f"--output={spool.block_log(block)}",
                f"--nodes={self.nodes_per_block}", f"--time={self.walltime}"]
        for flag, value in (("partition", self.partition), ("account", self.account),
                            ("qos", self.qos), ("constraint", self.constraint),
                            ("cpus-per-task", self.cores_per_node)):
            if value:
                opts.append(f"--{flag}={value}")
        if self.mem_per_node:
            opts.append(f"--mem={self.mem_per_node}G")
        if self.exclusive:
            opts.append("--exclusive")
        lines = ["#!/bin/bash"] + [f"#SBATCH {o}" for o in opts]
        lines += [self.scheduler_options, f"# farm block {block} on {spool.path}",
                  self.worker_init, END_EXPORT,
                  self.launcher(command, 1, self.nodes_per_block), ""]
        return "\n".join(line for line in lines if line is not None)

    def submit(self, spool: Spool, command: str, block: str) -> dict[str, Any]:
        path = spool.block_file(block, "sh")
        spool.replace(path, self.script(spool, command, block).encode())
        out = self._run(["sbatch", "--parsable", path])
        if out.returncode != 0 or not out.stdout.strip():
            fs.unlink(path)  # no half-made block
            raise ProviderError(f"sbatch refused block {block}: "
                                f"{(out.stderr or out.stdout).strip() or 'no job id'}")
        job = out.stdout.strip().split(";")[0]
        self.jobs[block] = job
        info = {"block": block, "provider": self.label, "job_id": job, "script": path,
                "submitted": time.time()}
        spool.replace(spool.block_file(block, "yaml"), yaml.safe_dump(info).encode())
        return info

    def adopt(self, spool: Spool) -> None:
        """Know the blocks an earlier driver submitted on this spool (for scaling, cancel)."""
        for record in spool.blocks():
            if record.get("provider") == self.label and record.get("job_id"):
                self.jobs.setdefault(str(record["block"]), str(record["job_id"]))

    def running(self) -> list[str]:
        """Blocks whose job is pending or running: one squeue call for all of them (those
        seen ended are not asked about again).  Raises ProviderError if squeue fails: "no
        answer" must not read as "no job"."""
        jobs = {b: j for b, j in list(self.jobs.items()) if j not in self.ended}
        if not jobs:
            return []
        out = self._run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(jobs.values())])
        if out.returncode != 0 and "invalid job id" not in out.stderr.lower():
            raise ProviderError(f"squeue failed: {out.stderr.strip() or out.returncode}")
        states = dict(line.split() for line in out.stdout.splitlines()
                      if len(line.split()) == 2)
        self.ended.update(j for j in jobs.values() if states.get(j) not in LIVE)
        return [b for b, j in jobs.items() if states.get(j) in LIVE]

    def cancel(self, spool: Spool, blocks: list[str]) -> None:
        """scancel the blocks' jobs, SCANCEL_CHUNK ids per call (one call with thousands
        of ids can time out on a busy controller: Parsl issue #2232).  Every chunk is
        tried; the first failure is raised after the others."""
        jobs = [self.jobs[b] for b in blocks if b in self.jobs]
        errors = []
        for i in range(0, len(jobs), SCANCEL_CHUNK):
            chunk = jobs[i:i + SCANCEL_CHUNK]
            try:
                out = self._run(["scancel", *chunk])
            except ProviderError as e:
                errors.append(str(e))
                continue
            if out.returncode != 0:
                errors.append(f"scancel of {len(chunk)} jobs ({chunk[0]}...) failed: "
                              f"{out.stderr.strip()}")
        if errors:
            raise ProviderError(errors[0] + (f" (and {len(errors) - 1} more chunks failed)"
                                             if len(errors) > 1 else ""))

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=self.cmd_timeout)
        except FileNotFoundError:
            raise ProviderError(f"{argv[0]} not found: is Slurm installed on this machine, and "
                                "its commands on PATH?") from None
        except subprocess.TimeoutExpired:
            raise ProviderError(f"{argv[0]} did not answer within {self.cmd_timeout} s "
                                "(raise cmd_timeout if the scheduler is busy)") from None
