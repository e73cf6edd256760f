"""farm: Parsl-style workflows whose workers talk to the driver only through a spool
directory on a shared filesystem.

    import farm
    from farm import python_app

    @python_app
    def add(a, b):
        return a + b

    with farm.load():            # local pools, spool <script>.farm beside the script
        print(add(1, 2).result())
"""

from __future__ import annotations

import os
import threading

from farm.apps import bash_app, join_app, python_app
from farm.config import Config
from farm.data import AUTO_LOGNAME, File
from farm.dataflow import AppFuture, DataFlowKernel, DataFuture
from farm.errors import ConfigError
from farm.version import __version__

_dfk: DataFlowKernel | None = None
_lock = threading.Lock()


def load(config: Config | str | os.PathLike[str] | None = None) -> DataFlowKernel:
    """Start farm with config: a Config, or the path of a site file (YAML, see farm.site);
    by default the site file named by $FARM_SITE, else a SpoolExecutor on local pools with
    its spool ``<script>.farm`` beside the script.  Returns the DataFlowKernel, also usable
    as a context manager."""
    global _dfk
    from farm import site
    if isinstance(config, (str, os.PathLike)):
        config = site.load(config)
    elif config is None:
        config = site.from_env() or Config()
    with _lock:
        if _dfk is not None:
            raise ConfigError("farm is already loaded; call farm.clear() before loading again")
        _dfk = DataFlowKernel(config)
        _dfk.on_exit = clear
        return _dfk


def clear() -> None:
    """Forget the loaded DataFlowKernel (after cleaning it up)."""
    global _dfk
    with _lock:
        if _dfk is not None:
            _dfk.cleanup()
        _dfk = None


def dfk() -> DataFlowKernel:
    """The loaded DataFlowKernel."""
    if _dfk is None:
        raise ConfigError("no farm config is loaded: call farm.load() (or farm.load(config)) "
                          "before calling apps")
    return _dfk


def flush(timeout: float | None = None) -> bool:
    """Wait until every app call made so far is written to the spool; False on timeout.
    App calls return before that (a writer thread does it, in call order, within
    milliseconds): a call not yet written when the driver is killed is made again by the
    re-run.  Call this before anything that needs the tasks on disk."""
    return dfk().flush(timeout)


def wait_for_current_tasks() -> None:
    """Block until every task submitted so far has finished."""
    dfk().wait_for_current_tasks()


__all__ = ["AUTO_LOGNAME", "AppFuture", "Config", "DataFlowKernel", "DataFuture", "File",
           "bash_app", "clear", "dfk", "flush", "join_app", "load", "python_app",
           "wait_for_current_tasks", "__version__"]
