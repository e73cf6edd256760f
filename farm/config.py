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
            "initialize_logging", "garbage_collect", "internal_tasks_max_threads",
            "project_name"}
EXIT_MODES = ("cleanup", "skip", "wait")
CHECKPOINT_MODES = (None, "task_exit", "periodic", "dfk_exit", "manual")


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

    As in Parsl:
    exit_mode: what the end of a ``with farm.load(config):`` block does: "cleanup" (the
        default), "wait" (for the tasks submitted so far, unless the block raised, then
        cleanup) or "skip" (nothing: farm stays loaded).
    dependency_resolver: where futures are looked for in arguments (default: passed
        directly or in inputs=[...]; DEEP_DEPENDENCY_RESOLVER from
        farm.dataflow.dependency_resolvers: also inside lists, tuples, sets and dicts).
    std_autopath: f(task_record, "stdout" or "stderr") -> the path of an AUTO_LOGNAME
        stream (task_record has the task's id, func_name and kwargs).
    memoizer: a BasicMemoizer (farm.dataflow.memoization): memoize= is app_cache=, and
        the checkpoint options below.
    checkpoint_files: spools (or paths inside them) whose results cache=True apps reuse,
        e.g. farm.utils.get_last_checkpoint(); checkpoint_mode, checkpoint_period are
        accepted: every result is in the spool the moment it exists (see docs/parsl.md).
    """

    def __init__(self, executors: list | None = None, retries: int = 0,
                 retry_handler: Callable[[BaseException, dict], float] | None = None,
                 app_cache: bool = True, run_dir: str | None = None, crash_retries: int = 2,
                 progress: bool | None = None, exit_mode: str = "cleanup",
                 dependency_resolver: Any = None,
                 std_autopath: Callable[[dict, str], Any] | None = None,
                 memoizer: Any = None, checkpoint_files: list[str] | None = None,
                 checkpoint_mode: str | None = None, checkpoint_period: str | None = None,
                 **parsl_options: Any):
        unknown = sorted(set(parsl_options) - _IGNORED)
        if unknown:
            known = ["executors", "retries", "retry_handler", "app_cache", "run_dir",
                     "crash_retries", "progress", "exit_mode", "dependency_resolver",
                     "std_autopath", "memoizer", "checkpoint_files", "checkpoint_mode",
                     "checkpoint_period"]
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
        if exit_mode not in EXIT_MODES:
            raise ConfigError(f"Config(exit_mode={exit_mode!r}): use one of "
                              f"{', '.join(EXIT_MODES)}")
        if dependency_resolver is not None and not (
                callable(getattr(dependency_resolver, "traverse_to_gather", None))
                and callable(getattr(dependency_resolver, "traverse_to_unwrap", None))):
            raise ConfigError("Config(dependency_resolver=...) must be a DependencyResolver "
                              "(farm.dataflow.dependency_resolvers), got "
                              f"{type(dependency_resolver).__name__}")
        if std_autopath is not None and not callable(std_autopath):
            raise ConfigError("Config(std_autopath=...) must be a function (task_record, "
                              f"stream) -> path, got {std_autopath!r}")
        if memoizer is not None:
            # (Parsl's newer spelling of the same options)
            app_cache = app_cache and memoizer.memoize
            checkpoint_files = memoizer.checkpoint_files or checkpoint_files
            checkpoint_mode = memoizer.checkpoint_mode or checkpoint_mode
            checkpoint_period = memoizer.checkpoint_period or checkpoint_period
        if checkpoint_mode not in CHECKPOINT_MODES:
            raise ConfigError(f"Config(checkpoint_mode={checkpoint_mode!r}): use one of "
                              f"{', '.join(map(str, CHECKPOINT_MODES))}")
        if isinstance(checkpoint_files, (str, os.PathLike)):
            checkpoint_files = [os.fspath(checkpoint_files)]
        self.exit_mode = exit_mode
        self.dependency_resolver = dependency_resolver
        self.std_autopath = std_autopath
        self.memoizer = memoizer
        self.checkpoint_files = [os.fspath(f) for f in checkpoint_files or ()]
        self.checkpoint_mode = checkpoint_mode
        self.checkpoint_period = checkpoint_period
        self.memo_lookup = None  # (the kernel asks it for cached calls' results)
        if self.checkpoint_files:
            from farm.checkpoints import Checkpoints
            self.memo_lookup = Checkpoints(self.checkpoint_files).lookup
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
