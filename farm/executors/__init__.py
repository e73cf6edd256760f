"""Executors run tasks: SpoolExecutor (the product) and ThreadPoolExecutor (in-process).

An executor has: label, start(dfk), native(future), log_path(key, name, stream),
submit(task) (it must eventually resolve task.future), shutdown().
"""

from farm.executors.spool import SpoolExecutor
from farm.executors.threads import ThreadPoolExecutor

__all__ = ["SpoolExecutor", "ThreadPoolExecutor"]
