"""What an executor relies on in a provider and its launcher, declared (typing.Protocol).

Providers (farm.providers) and launchers (farm.launchers) sit above the executors: they
implement these without the executors importing them, and a user's own provider works if
it has the same shape.  A launcher turns the pool command into the command a block runs; a
provider gets blocks (local process groups, Slurm jobs) and starts the launched command in
each.
"""

from __future__ import annotations

from typing import Any, Protocol

from farm.spool import Spool


class Launcher(Protocol):
    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str: ...

    def pools(self, nodes_per_block: int) -> int:
        """How many pools a block of that many nodes runs."""
        ...


class Provider(Protocol):
    label: str
    nodes_per_block: int
    cores_per_node: int | None  # None: not known before a pool reports it
    init_blocks: int
    min_blocks: int
    max_blocks: int
    parallelism: float

    @property
    def launcher(self) -> Launcher:
        """What turns the pool command into the command a block runs."""
        ...

    def adopt(self, spool: Spool) -> None:
        """Take over the blocks earlier drivers of this spool started (their records)."""
        ...

    def submit(self, spool: Spool, command: str, block: str) -> dict[str, Any]:
        """Start a block that runs command; its record (provider, job id...) is returned
        and kept in the spool."""
        ...

    def running(self) -> list[str]:
        """The blocks of this provider that are queued or running (one call to the
        scheduler).  Raises ProviderError if the scheduler does not answer."""
        ...

    def cancel(self, spool: Spool, blocks: list[str]) -> None: ...
