"""parsl.app.futures under farm: DataFuture (farm.dataflow.futures)."""

from farm.dataflow.futures import DataFuture

__all__ = ["DataFuture"]
