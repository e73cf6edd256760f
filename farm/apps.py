"""The app decorators: python_app, bash_app, join_app.

Each works bare (``@python_app``) and with arguments (``@python_app(cache=True)``).  A call
returns an AppFuture at once; the DataFlowKernel loaded by ``farm.load`` runs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from farm.dataflow.futures import AppFuture
from farm.dataflow.kernel import signature_info
from farm.dataflow.keys import app_identity
from farm.errors import ConfigError


class App:
    """A decorated function.  Calling it submits a task to the loaded DataFlowKernel."""

    def __init__(self, func: Callable, kind: str, data_flow_kernel: Any = None,
                 cache: bool = False,
                 executors: str | Sequence[str] = "all",
                 ignore_for_cache: Sequence[str] | None = None):
        if not callable(func):
            raise ConfigError(f"@{kind}_app decorates functions, not {type(func).__name__}")
        if executors != "all" and isinstance(executors, str):
            executors = [executors]
        self.func = func
        self.kind = kind
        self.name = getattr(func, "__name__", "app")
        self.dfk = data_flow_kernel
        self.cache = cache
        self.executors = executors if executors == "all" else list(executors)
        self.ignore_for_cache = set(ignore_for_cache or ())
        self.identity = app_identity(func)
        self.params, self.defaults = signature_info(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        from farm import dfk
        return (self.dfk or dfk()).submit(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self.kind}_app {self.name}>"


def _decorator(kind: str) -> Callable[..., Any]:
    def decorator(function: Callable | None = None, data_flow_kernel: Any = None,
                  cache: bool = False,
                  executors: str | Sequence[str] = "all",
                  ignore_for_cache: Sequence[str] | None = None
                  ) -> App | Callable[[Callable], App]:
        def wrap(f: Callable) -> App:
            return App(f, kind, data_flow_kernel, cache, executors, ignore_for_cache)
        return wrap(function) if function is not None else wrap

    decorator.__name__ = f"{kind}_app"
    decorator.__doc__ = {
        "python": "Run the function in a worker; the future resolves to its return value.",
        "bash": "The function returns a command line; a worker runs it with bash.  The future "
                "resolves to the exit code (0); a non-zero exit raises BashExitFailure.",
        "join": "The function runs in the driver and returns a future (or list of futures); "
                "the app's future resolves to their result(s).",
    }[kind]
    return decorator


python_app = _decorator("python")
bash_app = _decorator("bash")
join_app = _decorator("join")
