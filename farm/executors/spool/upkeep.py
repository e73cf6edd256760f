"""Upkeep: the driver's heartbeat and fencing, its watch over pools, and its blocks.

Two threads, so that neither delays the other or the collector:

- farm-beat (Upkeep.beat): every 2 s, the driver's heartbeat; if another driver has taken
  the spool over meanwhile (this one was frozen past its lease), this driver is fenced: it
  stops and fails what it waits for.
- farm-scale (Upkeep.scale_loop): every 2 s, one read of the pools' heartbeats: pools that
  went silent are declared dead, the worker slots are counted (the writer sizes bundles
  by them), and blocks are added while work exceeds the slots (farm.executors.scaling:
  one squeue, which may take seconds on a busy cluster).

The writer thread calls want_blocks() when it queues a task: the first call wakes
farm-scale, which starts the initial blocks.  The writer does not wait for sbatch (seconds
on a busy cluster): the calls made meanwhile go on disk at once, where a dead driver's
pools still find them.  A flush, and a driver that ends, wait for the start (start_blocks).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from farm.errors import ProviderError, SpoolError
from farm.executors.base import Provider
from farm.executors.scaling import Blocks
from farm.executors.spool.pending import Pending
from farm.spool import PoolWatch, Spool

log = logging.getLogger("farm.executor")


class Upkeep:
    def __init__(self, spool: Spool, provider: Provider, scaler: Blocks, me: dict[str, Any],
                 pending: Pending, stop: threading.Event):
        self.spool = spool
        self.provider = provider
        self.scaler = scaler
        self.me = me  # this driver's identity (the driver lock's content)
        self.pending = pending
        self.stop = stop
        self.poolwatch = PoolWatch(spool)
        self.beats = 0
        self.fenced = False  # another driver took the spool over: see fence()
        self.slots = os.cpu_count() or 1  # worker slots of live pools (bundle sizing)
        self.busy = 0  # busy workers of live pools (the progress line)
        self.blocks_wanted = False  # a task was queued (by the writer thread)
        self.blocks_started = False  # the initial blocks were asked for (under lock)
        self.wake = threading.Event()  # farm-scale: blocks are wanted, or stop is set
        self.lock = threading.Lock()

    @property
    def broken(self) -> ProviderError | None:
        """Why the blocks keep failing, once the scaler has given up (else None)."""
        return self.scaler.broken

    # -- blocks -------------------------------------------------------------------------------

    def want_blocks(self) -> None:
        """A task is queued: the initial blocks are wanted (not at load: a resumed run
        whose work is all done needs no pool).  farm-scale starts them."""
        if not self.blocks_wanted:
            self.blocks_wanted = True
            self.wake.set()

    def start_blocks(self) -> None:
        """Start the initial blocks if they are wanted and not started yet, counting pools
        already live.  Whoever comes second waits for the first (a flush must see them)."""
        with self.lock:
            if not self.blocks_wanted or self.blocks_started:
                return
            self.blocks_started = True
            try:
                live = len(self.spool.live_pools())
            except (OSError, SpoolError) as e:
                log.warning("farm: cannot read the pools' heartbeats (%s): starting %d "
                            "blocks", e, self.provider.init_blocks)
                live = 0
            self.scaler.add(max(0, min(self.provider.init_blocks,
                                       self.provider.max_blocks) - live))
        self.give_up_if_broken()

    def give_up_if_broken(self) -> None:
        """Blocks keep failing (see farm.executors.scaling): fail what we wait for, with
        the reason."""
        if self.scaler.broken:
            self.pending.fail_all(self.scaler.broken)

    def scale_loop(self) -> None:
        """The loop of thread farm-scale, until stop is set."""
        while True:
            self.wake.wait(2.0)
            self.wake.clear()
            if self.stop.is_set():
                return
            try:
                self.start_blocks()
                self.watch_pools()
            except Exception:
                log.exception("farm: error in the pool watcher (going on)")

    def halt(self) -> None:
        """Stop the threads (they end within their current step)."""
        self.stop.set()
        self.wake.set()

    def watch_pools(self) -> None:
        read_at = time.monotonic()
        pools = self.spool.pools()  # one read of the heartbeats for liveness and scaling
        for pool in self.poolwatch.check(pools, read_at):
            print(f"farm: pool {pool} went silent and was declared dead", file=sys.stderr)
        live = self.spool.live_pools(pools)
        if live:
            self.slots = max(1, sum(int(p.get("workers") or 1) for p in live))
        self.busy = sum(int(p.get("busy") or 0) for p in live)
        pending = not self.pending.empty()
        if pending and self.blocks_started:
            self.scaler.scale(pending, pools)
            self.give_up_if_broken()

    # -- the driver's heartbeat -----------------------------------------------------------------

    def beat(self) -> None:
        """The driver's heartbeat, in a thread of its own (farm-beat): a long sweep or a
        slow filesystem in the watcher must not make a live driver look dead."""
        while not self.stop.wait(2.0):
            self.beats += 1
            try:
                ours = self.spool.driver_beat(self.me, self.beats)
            except Exception:
                log.exception("farm: cannot write the driver heartbeat (going on)")
                continue
            if not ours:
                self.fence()
                return

    def fence(self) -> None:
        """Another driver took over the spool while we were silent: stop, and fail what we
        were waiting for (the new driver owns those tasks now)."""
        self.fenced = True
        self.halt()
        err = SpoolError(f"another driver took over spool {self.spool.path} while this one "
                         "was not heartbeating; this driver has stopped")
        print(f"farm: {err}", file=sys.stderr)
        self.pending.fail_all(err)
