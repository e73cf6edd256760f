"""Providers get blocks of resources and start a pool command in each."""

from farm.providers.local import LocalProvider
from farm.providers.slurm import SlurmProvider

__all__ = ["LocalProvider", "SlurmProvider"]
