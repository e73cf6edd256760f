"""Config: which executors run apps, and the kernel-wide options."""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Callable
from typing import Any

from farm.errors import ConfigError

# Parsl Config options that farm accepts (so ported scripts run) but has no use for.
_IGNORED = {"strategy", "strategy_period", "max_idletime", "usage_tracking", "monitoring",
            "checkpoint_mode", "checkpoint_files", "checkpoint_period", "initialize_logging",
            "garbage_collect", "internal_tasks_max_threads", "exit_mode", "project_name"}


class Config:
    """What ``farm.load`` needs.

    executors: executors to run apps on (default: one SpoolExecutor with local pools).
    retries: how much failure a task may cost before it fails for good (each failure costs
        1, or what retry_handler(exception, task_info) returns).
    retry_handler: see retries.  It runs in the pool, so it must be picklable.
    crash_retries: how many times a task whose worker or pool died (a killed node, the
        OOM killer) is run again before it fails with WorkerLost; not counted against
        retries, since that is not the task's fault (default 2).
    app_cache: allow ``@python_app(cache=True)`` to reuse results of identical calls.
    run_dir: where the default spool is created, ``<run_dir>/<script>.farm`` (default:
        $FARM_SPOOL_ROOT if set, else the script's own directory).
    progress: the driver's progress line (on a terminal; else a line every 30 s) and its
        summary at the end.  Default: on, unless $FARM_PROGRESS is 0.
    """

    def __init__(self, executors: list | None = None, retries: int = 0,
                 retry_handler: Callable[[BaseException, dict], float] | None = None,
                 app_cache: bool = True, run_dir: str | None = None, crash_retries: int = 2,
                 progress: bool | None = None, **parsl_options: Any):
        unknown = sorted(set(parsl_options) - _IGNORED)
        if unknown:
            known = ["executors", "retries", "retry_handler", "app_cache", "run_dir",
                     "crash_retries", "progress"]
            near = difflib.get_close_matches(unknown[0], known + sorted(_IGNORED), n=1)
            raise ConfigError(f"Config got unknown option{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(unknown)}"
                              + (f"; did you mean {near[0]}?" if near else
                                 f"; it takes {', '.join(known)}"))
        if parsl_options:
            warnings.warn(f"farm ignores these Parsl Config options: {sorted(parsl_options)}",
                          stacklevel=2)
        for name, value in (("retries", retries), ("crash_retries", crash_retries)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"Config({name}=...) must be a whole number >= 0, got "
                                  f"{value!r}")
        # (imported here: `import farm` stays light, and the kernel below never needs them)
        from farm.executors import SpoolExecutor
        from farm.providers import LocalProvider
        self.executors = list(executors) if executors is not None else [SpoolExecutor()]
        for ex in self.executors:
            if isinstance(ex, SpoolExecutor) and ex.provider is None:
                ex.provider = LocalProvider()
        self.retries = retries
        self.crash_retries = crash_retries
        self.retry_handler = retry_handler
        self.app_cache = app_cache
        self.run_dir = run_dir
        self.progress = progress

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Config:
        """The Config a site file describes (farm.site)."""
        from farm.site import load
        return load(path)

    def __repr__(self) -> str:
        return (f"Config(executors={self.executors!r}, retries={self.retries}, "
                f"app_cache={self.app_cache}, run_dir={self.run_dir!r})")
