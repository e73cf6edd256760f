"""Limits: what bounds a pool's work, in time (its block's end) and on its node.

A pool in a batch job knows when the job ends.  In the last ``drain`` seconds its workers
claim nothing more and the pool leaves once idle; ``margin`` before the end it stops, so the
claims go back to ready/ before Slurm kills the job; a task whose walltime does not
``fit`` is left to another block (docs/spool-format.md, "Liveness, shutdown and pools").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from farm import requests, resources

log = logging.getLogger("farm.pool")


def local_node(nworkers: int, accelerators: list[str]) -> dict[str, Any]:
    """This node as a pool of nworkers slots sees it (farm.requests.shape)."""
    return requests.shape(nworkers, resources.node_cores(), resources.node_memory() / 2**20,
                          len(accelerators), resources.block_nodes())


@dataclasses.dataclass
class Limits:
    """What bounds a pool's work: its block's end time (epoch seconds, or None), how long
    before it the pool stops taking work (drain) and stops running it (margin: claims go
    back to ready/ before Slurm kills the job), and the workers' CPU and accelerator
    shares."""

    end: float | None = None
    drain: float = 0.0
    affinity: str = "none"
    accelerators: list[str] = dataclasses.field(default_factory=list)
    # The node as its slots see it (farm.requests.shape; None: worked out by the worker).
    node: dict[str, Any] | None = None

    @classmethod
    def of_block(cls, end_time: str | None, drain: float | None, affinity: str = "none",
                 accelerators: list[str] | None = None,
                 node: dict[str, Any] | None = None) -> Limits:
        """The limits of a pool started now (end_time, drain: as `farm pool` takes them;
        the end time defaults to the batch job's, see resources.block_end)."""
        end = resources.block_end(end_time)
        left = None if end is None else max(0.0, end - time.time())
        if drain is None:  # a tenth of the block's remaining time, at most two minutes
            drain = 120.0 if left is None else min(120.0, left / 10)
        elif left is not None and drain > left / 2:
            # A pool that drains from its first tick would leave at once, and the driver
            # would start block after block: keep half of the block for work.
            log.warning("farm pool: --drain %gs is over half of the %ds left in this block; "
                        "using %ds", drain, left, left / 2)
            drain = left / 2
        return cls(end, drain, affinity, list(accelerators or []), node)

    @property
    def margin(self) -> float:
        return min(15.0, self.drain)

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.time()

    def draining(self) -> bool:
        return self.left() <= self.drain

    def fits(self, walltime: float | None) -> bool:
        return not walltime or self.left() - self.margin >= float(walltime)
