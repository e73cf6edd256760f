"""Elastic scaling: the blocks a driver starts through its provider, and when.

The driver adds blocks while the ready and running tasks, times the provider's parallelism,
exceed the worker slots of live pools plus those of blocks still queued, up to max_blocks.
It never removes a block: pools leave by themselves when idle past their limit (or before
their block's end), so allocations are released even when no driver is running.

A block that ends without ever starting a pool, or that the scheduler refuses, is a
failure.  While other pools are alive it only pauses scaling (PAUSE: the scheduler may
refuse jobs past a limit); with none, after MAX_FAILURES in a row the executor gives up and
fails what it waits for with the last error (the tasks stay in the spool: fix the config
and run the script again).
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
import threading
import time
from typing import Any

from farm.errors import ProviderError
from farm.executors.base import Provider
from farm.spool import Spool, fs
from farm.spool.layout import Paths

log = logging.getLogger("farm.executor")

MAX_FAILURES = 3
PAUSE = 60.0  # seconds without new blocks after a failure while other pools run


def blocks_to_add(demand: int, parallelism: float, slots: int, per_block: int, active: int,
                  pending: bool, min_blocks: int, max_blocks: int) -> int:
    """How many blocks to add.  demand: tasks ready or running; slots: worker slots of live
    pools and of queued blocks; active: blocks queued or running; pending: the driver
    waits for tasks (then at least one block, so a graph whose next step needs a sweep
    still has a pool to make it)."""
    want = math.ceil(demand * parallelism)
    add = math.ceil((want - slots) / max(1, per_block)) if want > slots else 0
    floor = max(min_blocks, 1) if pending else 0
    return max(0, min(max(add, floor - active), max_blocks - active))


class Blocks:
    """The blocks one driver started, and the scaling decisions over them."""

    def __init__(self, spool: Spool, provider: Provider, python: str, options: dict[str, Any],
                 workers: int | None, cores_per_worker: float, accelerators: int = 0):
        self.spool, self.provider, self.python, self.options = spool, provider, python, options
        self.workers, self.cores_per_worker = workers, cores_per_worker
        self.accelerators = accelerators
        self.started: list[str] = []
        self.unproven: set[str] = set()  # started, no pool seen from them yet
        self.failures = 0
        self.pause_until = 0.0  # after a failure while pools run: no new block until then
        self.broken: ProviderError | None = None
        # The whole decision is under the lock, not just the add: the writer thread
        # (init_blocks) and the scaling thread must not both count the same gap.
        self.lock = threading.RLock()
        self.pools_per_block = provider.launcher.pools(max(1, provider.nodes_per_block))

    def add(self, n: int = 1) -> None:
        with self.lock:
            for _ in range(n):
                if self.broken or time.monotonic() < self.pause_until:
                    return
                block = f"b{int(time.time() * 1000):x}-{len(self.started)}"
                cmd = pool_command(self.spool, block, self.python, self.options)
                try:
                    self.provider.submit(self.spool, cmd, block)
                except ProviderError as e:
                    self._failed(e)
                    return
                self.started.append(block)
                self.unproven.add(block)

    def scale(self, pending: bool, pools: list[dict[str, Any]] | None = None) -> None:
        """One look at demand and supply (one squeue, one listing of ready/ and pools/).
        pools: the heartbeat records (Spool.pools()), if the caller has just read them."""
        with self.lock:
            if self.broken:
                return
            try:
                running = self.provider.running()
            except ProviderError as e:  # no answer is not "no job": decide next time
                log.warning("farm: %s; scaling skips this round", e)
                return
            pools = self.spool.pools() if pools is None else pools
            seen: dict[Any, int] = {}  # block -> pools registered from it
            for p in pools:
                seen[p.get("block")] = seen.get(p.get("block"), 0) + 1
            self._check_unproven(running, seen)
            live = [p for p in self.spool.live_pools(pools) if not p.get("draining")]
            per_pool = self._per_pool(live)
            # Pools still to come: all of a queued block's, and the late nodes of a block
            # whose first pools are up (nodes import Python at different speeds).
            coming = sum(max(0, self.pools_per_block - seen.get(b, 0)) for b in running)
            slots = sum(int(p.get("workers") or 1) for p in live) + coming * per_pool
            demand = self.spool.ready_tasks() + sum(int(p.get("busy") or 0)
                                                         for p in live)
            active = len(set(running) | {p.get("block") or p["pool"] for p in live})
            prov = self.provider
            n = blocks_to_add(demand, prov.parallelism, slots,
                              per_pool * self.pools_per_block, active, pending,
                              prov.min_blocks, prov.max_blocks)
            if n and time.monotonic() >= self.pause_until:
                print(f"farm: {demand} tasks ready or running for {slots} worker slots in "
                      f"{active} block(s): adding {n} block(s)", file=sys.stderr)
                self.add(n)

    def _per_pool(self, live: list[dict[str, Any]]) -> int:
        """Worker slots a new pool brings: as its siblings have, else as configured."""
        if live:
            return max(int(p.get("workers") or 1) for p in live)
        cores = self.provider.cores_per_node or os.cpu_count() or 1
        guess = self.workers or max(1, int(cores // self.cores_per_worker))
        return min(guess, self.accelerators) if self.accelerators else guess

    def _check_unproven(self, running: list[str], seen: dict[Any, int]) -> None:
        ended = sorted(b for b in self.unproven if b not in seen and b not in running)
        for block in [b for b in self.unproven if b in seen]:
            self.unproven.discard(block)
            self.failures = 0
        # (pools since declared dead are not in the heartbeats: one look at all records)
        ran = self.spool.blocks_with_pools() if ended else set()
        for block in ended:
            self.unproven.discard(block)
            if block not in ran:
                self._failed(ProviderError(
                    f"block {block} ended without starting a pool; "
                    f"{self._log_tail(block)}"))

    def _log_tail(self, block: str, lines: int = 6) -> str:
        path = self.spool.block_log(block)
        text = (fs.read(path) or b"").decode(errors="replace").strip()
        if not text:
            return f"its log {path} is empty"
        tail = "\n    ".join(text.splitlines()[-lines:])
        return f"its log {path} ends with:\n    {tail}"

    def _failed(self, error: ProviderError) -> None:
        print(f"farm: {error}", file=sys.stderr)
        if self.spool.live_pools():
            # Pools are running the work (e.g. the scheduler refuses more jobs than a
            # limit): not a broken config.  Wait before asking again.
            self.pause_until = time.monotonic() + PAUSE
            return
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            self.broken = ProviderError(
                f"{self.failures} blocks in a row failed; giving up. The last: {error}. "
                "Fix the provider's configuration (partition, worker_init, launcher) and "
                "run the script again: the tasks wait in the spool")


def pool_command(spool: Paths, block: str, python: str, options: dict[str, Any]) -> str:
    """The command that starts one pool of a block: ``python -m farm pool SPOOL --block
    BLOCK --option value ...`` (options whose value is None or empty are left out; a true
    "debug" is farm's -v: the pool logs at debug level)."""
    verbose = ["-v"] if options.get("debug") else []
    argv = [python, "-m", "farm", *verbose, "pool", spool.path, "--block", block]
    for flag, value in options.items():
        if flag == "debug":
            continue
        if value is not None and value != "":
            argv += [f"--{flag}", str(value)]
    return shlex.join(argv)
