"""Providers get blocks of resources and start a pool command in each."""

from typing import Any

from farm.errors import unsupported
from farm.providers.local import LocalProvider
from farm.providers.slurm import SlurmProvider

# Parsl's other providers: importing one is an error that says what farm has.
PARSL_ONLY = ("PBSProProvider", "TorqueProvider", "CondorProvider", "GridEngineProvider",
              "LSFProvider", "CobaltProvider", "AWSProvider", "GoogleCloudProvider",
              "KubernetesProvider", "AdHocProvider", "AzureProvider", "ClusterProvider",
              "AdHocProvider")


def __getattr__(name: str) -> Any:
    if name in PARSL_ONLY:
        raise unsupported("provider", name, ["LocalProvider", "SlurmProvider"],
                          "farm's blocks are local process groups or Slurm jobs")
    raise AttributeError(f"module 'farm.providers' has no attribute {name!r}")


__all__ = ["LocalProvider", "SlurmProvider"]
