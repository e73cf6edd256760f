"""Layer 3: the DataFlowKernel, futures and task keys."""

from farm.dataflow.futures import AppFuture, DataFuture
from farm.dataflow.kernel import DataFlowKernel
from farm.dataflow.task import TaskRecord

__all__ = ["AppFuture", "DataFuture", "DataFlowKernel", "TaskRecord"]
