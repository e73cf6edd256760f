"""Layer 3: the DataFlowKernel, futures and task keys."""

from farm.dataflow.futures import AppFuture, DataFuture
from farm.dataflow.kernel import DataFlowKernel, TaskRecord

__all__ = ["AppFuture", "DataFuture", "DataFlowKernel", "TaskRecord"]
