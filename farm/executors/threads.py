"""ThreadPoolExecutor: run apps in threads of the driver (debugging, tests, light work).

No spool: nothing survives the driver, and python-app walltimes are not enforced (a thread
cannot be interrupted).  Apps run exactly as in a pool, through farm.execute.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from concurrent.futures import Future
from typing import Any

from farm import execute
from farm.dataflow.task import TaskRecord
from farm.errors import ConfigError


class ThreadPoolExecutor:
    def __init__(self, label: str = "threads", max_threads: int | None = 2,
                 thread_name_prefix: str = "", storage_access: Any = None,
                 working_dir: str | None = None):
        # (Parsl's storage_access and working_dir: for staging files, which farm's driver
        # does itself)
        if storage_access is not None or working_dir is not None:
            import warnings
            given = [n for n, v in (("storage_access", storage_access),
                                    ("working_dir", working_dir)) if v is not None]
            warnings.warn(f"farm ignores these ThreadPoolExecutor options: {', '.join(given)}",
                          stacklevel=2)
        self.label = label
        self.max_threads = max_threads or os.cpu_count() or 2
        self.thread_name_prefix = thread_name_prefix or f"farm-{label}"
        # Both set by start(): the kernel's run_dir (AUTO_LOGNAME streams go below it),
        # and the threads (a new pool at each start: shutdown ends the old one).
        self.run_dir = ""
        self.threads: concurrent.futures.ThreadPoolExecutor | None = None
        self.busy = 0  # calls running now (the progress line)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ThreadPoolExecutor(label={self.label!r}, max_threads={self.max_threads})"

    def start(self, dfk: Any) -> None:
        self.run_dir = os.path.abspath(dfk.config.run_dir or ".")
        self.threads = concurrent.futures.ThreadPoolExecutor(
            self.max_threads, thread_name_prefix=self.thread_name_prefix)

    def native(self, fut: Future[Any]) -> bool:
        return False  # the kernel resolves every dependency before a task reaches us

    def stage_dir(self) -> str:
        """Where the driver downloads input URLs."""
        return os.path.join(self.run_dir, "farm-staged")

    def log_path(self, key: str, name: str, stream: str) -> str:
        return os.path.join(self.run_dir, "farm-out", key[:2], f"{name}-{key}.{stream}")

    def submit(self, task: TaskRecord) -> None:
        if self.threads is None:
            raise ConfigError(f"{self!r} is not started (farm.load starts it)")
        self.threads.submit(self._run, task)

    def progress(self) -> dict[str, Any]:
        return {"running": self.busy}

    def _run(self, task: TaskRecord) -> None:
        with self._lock:
            self.busy += 1
        try:
            self._attempts(task)
        finally:
            with self._lock:
                self.busy -= 1

    def _attempts(self, task: TaskRecord) -> None:
        cost = 0.0
        attempt = 0
        while True:
            head, value, exc = execute.call(task.kind, task.name, task.func, task.args,
                                            task.kwargs, task.opts, in_main_thread=False,
                                            raw=True)
            if exc is None:
                task.future.set_result(value)
                return
            info = {"key": task.key, "func_name": task.name, "try_id": attempt,
                    "fail_count": attempt + 1, "fail_cost": cost}
            cost += execute.retry_cost(exc, task.retry_handler, info)
            if cost > task.retries:
                task.future.set_exception(exc)
                return
            attempt += 1

    def flush(self, timeout: float | None = None) -> bool:
        return True  # (nothing is written anywhere: a call is running or queued here)

    def shutdown(self) -> None:
        if self.threads is not None:
            self.threads.shutdown(wait=False)
