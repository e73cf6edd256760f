"""Executors run tasks: SpoolExecutor (the product) and ThreadPoolExecutor (in-process).

What the kernel asks of an executor is declared in farm.dataflow.executor (label, start,
native, log_path, submit, flush, shutdown; submit must eventually resolve task.future);
what a SpoolExecutor asks of its provider and launcher, in farm.executors.base.
"""

from farm.executors.spool import SpoolExecutor
from farm.executors.threads import ThreadPoolExecutor

__all__ = ["SpoolExecutor", "ThreadPoolExecutor"]
