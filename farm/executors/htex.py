"""HighThroughputExecutor: Parsl's executor, as farm runs it (a SpoolExecutor).

Parsl's HTEX sends tasks over the network to managers on the nodes; farm's pools read them
from the spool.  So the options that say how a node shares its work carry over as they
are, and those about addresses, ports, the interchange and its network protocol have no
meaning here: they are accepted, with one warning naming them, so that a Parsl config runs
unchanged.  A misspelt option is still an error (with a did-you-mean).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from typing import Any

from farm.dataflow.futures import lift_attributes
from farm.errors import ConfigError
from farm.executors.base import Provider
from farm.executors.spool import SpoolExecutor

# Options of Parsl's HighThroughputExecutor (across its versions) that have no meaning when
# pools talk to the driver only through a spool.
IGNORED = frozenset({
    "launch_cmd", "interchange_launch_cmd", "address", "loopback_address", "worker_ports",
    "worker_port_range", "interchange_port_range", "storage_access", "working_dir",
    "start_method", "prefetch_capacity", "heartbeat_threshold", "heartbeat_period",
    "poll_period", "address_probe_timeout", "worker_logdir_root", "manager_selector",
    "block_error_handler", "encrypted", "enable_mpi_mode", "mpi_launcher", "interchange_address",
    "public_address", "worker_port", "suppress_failure", "managed", "max_calls_per_worker",
    "interchange_port", "cert_dir", "worker_mode", "container_image", "launch_cmd_timeout",
})
MAPPED = ("label", "provider", "max_workers_per_node", "max_workers", "cores_per_worker",
          "mem_per_worker", "available_accelerators", "cpu_affinity", "worker_debug",
          "drain_period")
# farm's own SpoolExecutor options, also taken here (so one class serves both)
OWN = ("spool", "idle_timeout", "python", "rerun_failed", "sweep_period")


class HighThroughputExecutor(SpoolExecutor):
    """Parsl's HTEX on farm: a SpoolExecutor.

    Mapped: label, provider, max_workers_per_node (max_workers, its older name),
    cores_per_worker, mem_per_worker (GB), available_accelerators, cpu_affinity (none,
    block, alternating, block-reverse), drain_period, worker_debug (pools log at debug
    level).  Accepted and ignored, with one warning: address, ports, the interchange,
    encryption, start_method, prefetching, heartbeats and the like (IGNORED).  farm's own
    SpoolExecutor options (spool=, idle_timeout=...) work too.
    """

    def __init__(self, label: str = "HighThroughputExecutor",
                 provider: Provider | None = None,
                 max_workers_per_node: int | float | None = None,
                 max_workers: int | float | None = None,
                 cores_per_worker: float = 1.0, mem_per_worker: float | None = None,
                 available_accelerators: int | Sequence[str] = (),
                 cpu_affinity: str = "none", worker_debug: bool = False,
                 drain_period: float | None = None, **options: Any):
        lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)
        unknown = sorted(set(options) - IGNORED - set(OWN))
        if unknown:
            near = difflib.get_close_matches(unknown[0], [*MAPPED, *OWN, *IGNORED], n=2)
            raise ConfigError(f"HighThroughputExecutor: unknown option {unknown[0]!r}; "
                              + (f"did you mean {' or '.join(near)}?" if near else
                                 f"it takes {', '.join(MAPPED + OWN)}"))
        ignored = sorted(set(options) & IGNORED)
        if ignored:
            warnings.warn(f"farm ignores these HighThroughputExecutor options: "
                          f"{', '.join(ignored)} (pools talk to the driver only through the "
                          "spool; see docs/parsl.md)", stacklevel=2)
        workers = max_workers_per_node if max_workers_per_node is not None else max_workers
        if workers is not None:
            if workers == float("inf"):
                workers = None  # (Parsl's default: as many as the cores allow)
            elif not float(workers).is_integer() or workers < 1:
                raise ConfigError(f"HighThroughputExecutor: max_workers_per_node must be a "
                                  f"whole number >= 1, got {workers!r}")
            else:
                workers = int(workers)
        own = {k: v for k, v in options.items() if k in OWN}
        super().__init__(label=label, provider=provider, max_workers_per_node=workers,
                         cores_per_worker=cores_per_worker, mem_per_worker=mem_per_worker,
                         available_accelerators=available_accelerators,
                         cpu_affinity=cpu_affinity, drain_period=drain_period, **own)
        self.worker_debug = bool(worker_debug)
        self.ignored_options = {k: options[k] for k in ignored}

    def pool_options(self) -> dict[str, Any]:
        return {**super().pool_options(), "debug": self.worker_debug}

    def __repr__(self) -> str:
        return f"HighThroughputExecutor(label={self.label!r}, spool={self.spool_path!r})"
