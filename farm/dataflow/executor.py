"""What the DataFlowKernel relies on in an executor, declared (typing.Protocol).

Executors (farm.executors) sit above the kernel and implement this; the kernel never
imports them.  A task reaches its executor once every dependency the executor cannot wire
itself has finished; the executor must resolve task.future, eventually, in every case.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol

from farm.dataflow.task import TaskRecord


class Executor(Protocol):
    label: str

    def start(self, dfk: Any) -> None:
        """Called once by the kernel before the first task (dfk: the DataFlowKernel)."""
        ...

    def native(self, fut: Future) -> bool:
        """Can this executor wire fut as a dependency itself (a future of its own tasks),
        instead of waiting for it in the driver?"""
        ...

    def log_path(self, key: str, name: str, stream: str) -> str:
        """Where a task's stream goes when its app asks for AUTO_LOGNAME."""
        ...

    def submit(self, task: TaskRecord) -> None: ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every task submitted so far is where the workers find it; False on
        timeout."""
        ...

    def shutdown(self) -> None: ...
