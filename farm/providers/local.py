"""LocalProvider: blocks are local processes (pools that outlive the driver)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import yaml

from farm.errors import checked_options
from farm.launchers import Launcher, SingleNodeLauncher
from farm.providers.base import END_EXPORT, check_blocks, warn_ignored
from farm.spool import Spool


@checked_options
class LocalProvider:
    """Start pools on this machine, each in its own session so it survives the driver.

    A block's script (worker_init, then the launcher's command) and its record (pid, state)
    live in the spool's blocks/ directory; its output goes to logs/BLOCK.log.
    """

    label = "local"
    cores_per_node: int | None = None  # (the node is this machine)

    def __init__(self, nodes_per_block: int = 1, init_blocks: int = 1, min_blocks: int = 0,
                 max_blocks: int = 1, parallelism: float = 1.0, worker_init: str = "",
                 launcher: Launcher | None = None, cmd_timeout: int = 30,
                 channel: Any = None, move_files: bool | None = None):
        check_blocks("LocalProvider", nodes_per_block, init_blocks, min_blocks, max_blocks)
        # (Parsl's: where commands run and whether files are copied there; a block is a
        # local process group that reads the spool, so neither applies)
        warn_ignored("LocalProvider", channel=channel, move_files=move_files)
        self.nodes_per_block = nodes_per_block
        self.init_blocks, self.min_blocks, self.max_blocks = init_blocks, min_blocks, max_blocks
        self.parallelism = parallelism
        self.worker_init = worker_init
        self.launcher = launcher or SingleNodeLauncher()
        self.cmd_timeout = cmd_timeout
        self.procs: dict[str, subprocess.Popen] = {}

    def __repr__(self) -> str:
        return f"LocalProvider(init_blocks={self.init_blocks}, max_blocks={self.max_blocks})"

    def submit(self, spool: Spool, command: str, block: str) -> dict[str, Any]:
        script = spool.block_file(block, "sh")
        launch = self.launcher(command, 1, self.nodes_per_block)
        if launch == command:
            launch = f"exec {command}"  # the pool is the block's process: signals reach it
        # END_EXPORT: in the "headless" mode (the driver inside a Slurm allocation, pools
        # started by srun), the pools learn when the allocation ends.
        body = "\n".join(["#!/bin/bash", f"# farm block {block} on {spool.path}",
                          self.worker_init, END_EXPORT, launch, ""])
        spool.replace(script, body.encode())
        log = open(spool.block_log(block), "ab")
        try:
            proc = subprocess.Popen(["/bin/bash", script], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=os.getcwd())
        finally:
            log.close()
        self.procs[block] = proc
        info = {"block": block, "provider": self.label, "job_id": proc.pid,
                "script": script, "submitted": time.time()}
        spool.replace(spool.block_file(block, "yaml"), yaml.safe_dump(info).encode())
        return info

    def adopt(self, spool: Spool) -> None:
        """Nothing to take over: an earlier driver's local pools outlive it and are seen by
        their heartbeats, and cancel() finds their process groups in the block records."""

    def running(self) -> list[str]:
        """Blocks this provider started that are still running."""
        return [b for b, p in self.procs.items() if p.poll() is None]

    def cancel(self, spool: Spool, blocks: list[str]) -> None:
        """SIGTERM each block's process group: the pool returns unfinished claims to ready/
        and exits."""
        for b in blocks:
            p = self.procs.get(b)
            pid = p.pid if p else _recorded_pid(spool, b)
            if pid is None or (p is not None and p.poll() is not None):
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        # Wait for the whole process group, not just the block's shell: the pool returns
        # its claims to ready/ after the shell is gone.
        deadline = time.monotonic() + self.cmd_timeout
        for b in blocks:
            p = self.procs.get(b)
            if p is None:
                continue
            while _group_alive(p.pid) and time.monotonic() < deadline:
                p.poll()
                time.sleep(0.02)
            if _group_alive(p.pid):
                os.killpg(p.pid, signal.SIGKILL)
            p.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _recorded_pid(spool: Spool, block: str) -> int | None:
    for record in spool.blocks():
        if record.get("block") == block and str(record.get("job_id", "")).isdigit():
            return int(record["job_id"])
    return None
