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

import logging
import os
import threading
from typing import Any

from farm.apps import bash_app, join_app, python_app
from farm.config import Config
from farm.data import AUTO_LOGNAME, File
from farm.dataflow import AppFuture, DataFlowKernel, DataFuture
from farm.errors import ConfigError, NoDataFlowKernelError
from farm.version import __version__

_dfk: DataFlowKernel | None = None
_lock = threading.Lock()

if os.environ.get("FARM_PARSL_ALIAS") == "1":  # (a pool of a program run by `farm parsl`)
    from farm import parsl as _parsl
    _parsl.install()


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
        kernel = _dfk = DataFlowKernel(config)
        # Its cleanup (dfk().cleanup(), the end of a `with` block, clear()) unloads it.
        kernel.on_exit = lambda: _forget(kernel)
        return kernel


def _forget(kernel: DataFlowKernel) -> None:
    global _dfk
    with _lock:
        if _dfk is kernel:
            _dfk = None


def clear() -> None:
    """Clean up the loaded DataFlowKernel and unload it (nothing if none is loaded)."""
    with _lock:
        kernel = _dfk
    if kernel is not None:
        kernel.cleanup()  # (which unloads it)
        _forget(kernel)


def dfk() -> DataFlowKernel:
    """The loaded DataFlowKernel; NoDataFlowKernelError (a ConfigError) if none is."""
    if _dfk is None:
        raise NoDataFlowKernelError("no farm config is loaded: call farm.load() (or "
                                    "farm.load(config)) before calling apps")
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


def _logger_name(name: str) -> str:
    # (a ported script asks for Parsl's logger: farm's is the one that logs)
    return "farm" + name[len("parsl"):] if name == "parsl" or name.startswith("parsl.") else name


def set_stream_logger(name: str = "farm", level: int = logging.DEBUG,
                      format_string: str | None = None, stream: Any = None) -> logging.Logger:
    """Log farm's messages (logger `name`, "parsl" meaning "farm") at level to stream
    (default stderr); returns the logger."""
    logger = logging.getLogger(_logger_name(name))
    logger.setLevel(level)
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(
        format_string or "%(asctime)s %(name)s:%(lineno)d %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    return logger


def set_file_logger(filename: str, name: str = "farm", level: int = logging.DEBUG,
                    format_string: str | None = None) -> logging.Logger:
    """Log farm's messages (logger `name`, "parsl" meaning "farm") at level to the file
    filename (appended to; its directory is made); returns the logger."""
    logger = logging.getLogger(_logger_name(name))
    logger.setLevel(level)
    if os.path.dirname(filename):
        os.makedirs(os.path.dirname(filename), exist_ok=True)
    handler = logging.FileHandler(filename)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(
        format_string or "%(asctime)s.%(msecs)03d %(name)s:%(lineno)d %(processName)s(%(process)d) "
        "%(threadName)s %(funcName)s %(levelname)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    return logger


_EXECUTORS = ("HighThroughputExecutor", "SpoolExecutor", "ThreadPoolExecutor")


def __getattr__(name: str) -> Any:
    # farm.HighThroughputExecutor etc., as parsl.X has them (imported on first use: `import
    # farm` stays light)
    if name in _EXECUTORS:
        import farm.executors
        return getattr(farm.executors, name)
    raise AttributeError(f"module 'farm' has no attribute {name!r}")


__all__ = ["AUTO_LOGNAME", "AppFuture", "Config", "DataFlowKernel", "DataFuture", "File",
           "NoDataFlowKernelError", "bash_app", "clear", "dfk", "flush", "join_app", "load",
           "python_app", "set_file_logger", "set_stream_logger", "wait_for_current_tasks",
           "__version__"]
