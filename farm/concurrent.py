"""FarmPoolExecutor: the concurrent.futures.Executor interface over farm (Parsl's
ParslPoolExecutor, under farm; ParslPoolExecutor is the same class).

    with FarmPoolExecutor(config) as pool:          # or FarmPoolExecutor(dfk=farm.dfk())
        squares = list(pool.map(lambda x: x * x, range(10)))
        print(pool.submit(pow, 2, 10).result())

Each function submitted becomes a python app (once per function), run by the kernel's
executors (executors=[labels] picks some); its futures are AppFutures.  Given a config,
the executor starts a kernel of its own (not the one farm.load loaded) and cleans it up at
shutdown; given a dfk, it uses that one and leaves it running.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from typing import Any

from farm.apps import App
from farm.config import Config
from farm.dataflow import AppFuture, DataFlowKernel
from farm.dataflow.futures import lift_attributes
from farm.errors import ConfigError

lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)


class FarmPoolExecutor(concurrent.futures.Executor):
    def __init__(self, config: Config | None = None, dfk: DataFlowKernel | None = None,
                 executors: str | Sequence[str] = "all"):
        if (config is None) == (dfk is None):
            raise ConfigError("FarmPoolExecutor takes a config (it starts a kernel of its "
                              "own) or a dfk (a running kernel, e.g. farm.dfk()): one of them")
        self.owns_dfk = config is not None
        self.dfk: DataFlowKernel = DataFlowKernel(config) if config is not None else dfk  # type: ignore[assignment]
        self.executors = executors
        self._apps: dict[Any, App] = {}
        self._lock = threading.Lock()
        self._shut = False

    def get_app(self, fn: Callable[..., Any]) -> App:
        """The python app that runs fn (made at fn's first submit)."""
        with self._lock:
            app = self._apps.get(fn)
            if app is None:
                app = self._apps[fn] = App(fn, "python", data_flow_kernel=self.dfk,
                                           executors=self.executors)
            return app

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> AppFuture:
        if self._shut:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self.get_app(fn)(*args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; with wait, first wait for the tasks submitted so far.  A kernel
        this executor started is cleaned up (its pools go on with unfinished tasks, and a
        re-run collects them, as for any farm driver)."""
        if self._shut:
            return
        self._shut = True
        if cancel_futures:
            with self.dfk._lock:
                live = [f for r in self.dfk._live if (f := r()) is not None]
            for f in live:
                f.cancel()
        if wait:
            self.dfk.wait_for_current_tasks()
        if self.owns_dfk:
            self.dfk.cleanup()


ParslPoolExecutor = FarmPoolExecutor

__all__ = ["FarmPoolExecutor", "ParslPoolExecutor"]
