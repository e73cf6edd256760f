"""The spool: farm's on-disk protocol, and the only code that knows spool paths.

docs/spool-format.md is the contract; the short version:

    tasks/XX/KEY            payload, written once (XX = first two hex digits of KEY)
    waiting/KEY             hard link of the payload: some dependency has no result yet
    ready/KEY[@N]           hard link of the payload: runnable (N = attempt, when > 0)
    claimed/POOL.W/KEY[@N]  moved here by the worker W of POOL that runs it
    results/XX/KEY          the outcome, written once (os.link: the first writer wins)
    notices/KEY             hard link of a new result, for the driver to consume
    deps/XX/KEY/DEPENDENT   empty file: DEPENDENT waits for KEY

A state change is one rename or link.  Who wins a race is decided by that call alone; a
stat or listdir made before it is only a hint (on NFS it may be seconds out of date).  That
a file is missing is decided only by fs (a lookup confirmed by a fresh listing) or by a
rename, link or O_EXCL outcome; ``peek_status`` and ``fs.peek`` are hints, used only where a
later look is certain (each use says why).

``Spool`` is built in layers, one module per concept, each on the one before:

    fs, records, sign   counted calls and the rule for "missing"; record files; signatures
    layout.Layout       paths (only here), opening and creating a spool, atomic writes
    results.Results     outcomes published once, notices, result_status / peek_status
    tasks.Tasks         apps and task payloads, state entries, claims
    graph.Graph         the dependents index, promotion, rerun
    recovery.Recovery   orphans, half-written bundles, dead workers' claims, the sweep
    liveness.Liveness   heartbeats, PoolWatch and declare_dead, shutdown requests
    driverlock          one driver at a time
"""

from __future__ import annotations

from farm.spool.driverlock import DriverLock, driver_identity
from farm.spool.layout import (
    DEP_FAILED,
    DIRS,
    FAILED,
    OK,
    SHARDS,
    entry_name,
    entry_priority,
    entry_tasks,
    is_bundle,
    is_entry,
    new_bundle_id,
    priority_of,
    shard,
    split_name,
)
from farm.spool.liveness import Liveness, PoolWatch
from farm.spool.recovery import FIRST

__all__ = ["DEP_FAILED", "DIRS", "FAILED", "FIRST", "OK", "SHARDS", "PoolWatch", "Spool",
           "driver_identity", "entry_name", "entry_priority", "entry_tasks", "is_bundle",
           "is_entry", "new_bundle_id", "priority_of", "shard", "split_name"]


class Spool(Liveness, DriverLock):
    """One spool directory.  ``Spool(path)`` opens an existing spool; ``Spool.create``
    makes one.

    Every method is safe to call from many processes on many nodes at once; where a method
    can race, its docstring says which call decides.
    """
