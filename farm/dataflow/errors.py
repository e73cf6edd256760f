"""Parsl's parsl.dataflow.errors under farm: the errors of the dataflow kernel."""

from farm.dataflow.futures import lift_attributes
from farm.errors import (
    ConfigError as ConfigurationError,
)
from farm.errors import (
    DependencyError,
    FarmError,
    JoinError,
)

lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)

DataFlowException = FarmError
PropagatedException = DependencyError  # (JoinError is a DependencyError in farm)


class BadCheckpoint(ConfigurationError):
    """A checkpoint (a spool) named in checkpoint_files cannot be read."""


__all__ = ["BadCheckpoint", "ConfigurationError", "DataFlowException", "DependencyError",
           "JoinError", "PropagatedException"]
