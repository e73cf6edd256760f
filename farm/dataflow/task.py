"""TaskRecord: one app call, as the kernel, its futures and the executors see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (the future holds its task, the task its future)
    from farm.dataflow.futures import AppFuture


@dataclass(eq=False, slots=True)
class TaskRecord:
    """One app call.  Kept as long as its future: small on purpose (slots; the empty
    sequences, and opts of calls made in the same directory, are shared: read-only)."""
    key: str
    name: str
    kind: str  # "python" | "bash" | "join"
    func: Any
    args: tuple
    kwargs: dict
    opts: dict
    outputs: list | tuple
    executor: Any
    retries: int = 0
    retry_handler: Any = None
    waits_on: list | tuple = ()  # AppFutures this task depends on
    deps: list | tuple = ()  # keys of deps the executor wires itself
    # Set by the kernel right after the record is made (the future needs its task): every
    # task has one by the time anybody else sees it.
    future: AppFuture = None  # type: ignore[assignment]
    tally: Any = None  # the kernel's progress.Tally, which the future counts into


    @property
    def label(self) -> str:
        return f"{self.name}-{self.key[:8]}"
