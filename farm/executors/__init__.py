"""Executors run tasks: SpoolExecutor (the product) and ThreadPoolExecutor (in-process).

What the kernel asks of an executor is declared in farm.dataflow.executor (label, start,
native, log_path, submit, flush, shutdown; submit must eventually resolve task.future);
what a SpoolExecutor asks of its provider and launcher, in farm.executors.base.
"""

from typing import Any

from farm.errors import unsupported
from farm.executors.htex import HighThroughputExecutor
from farm.executors.spool import SpoolExecutor
from farm.executors.threads import ThreadPoolExecutor

# Parsl's other executors: importing one is an error that says what farm has.
PARSL_ONLY = ("WorkQueueExecutor", "TaskVineExecutor", "FluxExecutor", "MPIExecutor",
              "GlobusComputeExecutor", "RadicalPilotExecutor", "ExtremeScaleExecutor",
              "LowLatencyExecutor", "IPyParallelExecutor", "SwiftTurbineExecutor")


def __getattr__(name: str) -> Any:
    if name in PARSL_ONLY:
        raise unsupported("executor", name, ["HighThroughputExecutor (a SpoolExecutor)",
                                            "SpoolExecutor", "ThreadPoolExecutor"])
    raise AttributeError(f"module 'farm.executors' has no attribute {name!r}")


__all__ = ["HighThroughputExecutor", "SpoolExecutor", "ThreadPoolExecutor"]
