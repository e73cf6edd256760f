"""The app decorators: python_app, bash_app, join_app.

Each works bare (``@python_app``) and with arguments (``@python_app(cache=True)``).  A call
returns an AppFuture at once; the DataFlowKernel loaded by ``farm.load`` runs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from farm import requests
from farm.dataflow import keys
from farm.dataflow.futures import AppFuture
from farm.dataflow.kernel import signature_info
from farm.errors import ConfigError


class App:
    """A decorated function.  Calling it submits a task to the loaded DataFlowKernel."""

    def __init__(self, func: Callable, kind: str, data_flow_kernel: Any = None,
                 cache: bool = False,
                 executors: str | Sequence[str] = "all",
                 ignore_for_cache: Sequence[str] | None = None,
                 resources: dict[str, Any] | None = None):
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
        # What each call asks of its node unless the call says otherwise (farm.requests).
        self.resources = requests.normalize(resources, f"app {self.name}")
        self._identity: str | None = None
        self._source = keys.source(func)  # (now: the script may be gone by the first call)
        self.params, self.defaults = signature_info(func)
        functools.update_wrapper(self, func)

    @property
    def identity(self) -> str:
        """What the app's keys cover (farm.dataflow.keys): worked out at its first call,
        not here, so that the globals and helpers defined below the app count too."""
        if self._identity is None:
            self._identity = keys.app_identity(self.func, self._source)
        return self._identity

    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        from farm import dfk
        return (self.dfk or dfk()).submit(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self.kind}_app {self.name}>"


def _decorator(kind: str) -> Callable[..., Any]:
    def decorator(function: Callable | None = None, data_flow_kernel: Any = None,
                  cache: bool = False,
                  executors: str | Sequence[str] = "all",
                  ignore_for_cache: Sequence[str] | None = None,
                  cores: Any = None, memory: Any = None, gpus: Any = None,
                  priority: Any = None, running_time: Any = None
                  ) -> App | Callable[[Callable], App]:
        asked = {"cores": cores, "memory": memory, "gpus": gpus, "priority": priority,
                 "running_time": running_time}

        def wrap(f: Callable) -> App:
            return App(f, kind, data_flow_kernel, cache, executors, ignore_for_cache,
                       {k: v for k, v in asked.items() if v is not None})
        return wrap(function) if function is not None else wrap

    decorator.__name__ = f"{kind}_app"
    decorator.__doc__ = _DOCS[kind] + _COMMON
    return decorator


_DOCS = {
    "python": """Make a function an app that runs in a worker: a call returns an AppFuture at
once, which resolves to the function's return value (or raises its exception, with the
remote traceback as its cause).

    @python_app
    def add(a, b):
        return a + b

    total = add(add(1, 2), 10)      # a future passed in is a dependency
    total.result()                  # 13
""",
    "bash": """Make a function an app whose return value is a command line that a worker runs
with bash: the future resolves to the exit code, 0; a non-zero exit raises
BashExitFailure (with .exitcode), a missing output MissingOutputs.

    @bash_app
    def compress(inputs=(), outputs=(), stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
        return f"gzip -c {inputs[0]} > {outputs[0]}"

    f = compress(inputs=[File("data.txt")], outputs=[File("data.txt.gz")])
    f.outputs[0]                    # a DataFuture: pass it to the next app
    open(f.stderr).read()           # what the command wrote to stderr
""",
    "join": """Make a function an app that runs in the driver and returns a future (or a list
of futures) of other apps; the app's own future resolves to their result(s), so a
workflow can decide what to run next from results.

    @join_app
    def fan_out(n):
        return [add(i, i) for i in range(n)]

    fan_out(3).result()             # [0, 2, 4]
""",
}

_COMMON = """
Decorator options: cache=True (identical calls share one task), ignore_for_cache=[names]
(arguments left out of the key), executors=[labels]; what each call asks of its node:
cores=, memory= (MB), gpus=, running_time= (seconds), priority= (higher runs first), each a
number or a function of the attempt number (0 first), e.g. memory=lambda n: 4000 * (n + 1).

Special keyword arguments of a call (the function may declare them to see their values):
  inputs=[File or future, ...]   files the task reads; futures among them are dependencies
  outputs=[File, ...]            files the task writes; future.outputs[i] is a DataFuture
  stdout=, stderr=               (bash apps) a path, a (path, mode) tuple, or AUTO_LOGNAME
                                 (a file in the spool, named for the task)
  walltime=SECONDS               the task is stopped and fails with AppTimeout past it
  parsl_resource_specification={"cores": 8, "memory": 16000, "gpus": 1, "priority": 5}
                                 what this call asks of its node (over the app's defaults)
Every argument is pickled when the app is called (later changes to it are not seen); a
future among the arguments is replaced by its result when the task runs.
"""


python_app = _decorator("python")
bash_app = _decorator("bash")
join_app = _decorator("join")
