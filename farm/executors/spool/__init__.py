"""The driver's SpoolExecutor: app calls go into a spool directory, results come back out.

    executor.py   SpoolExecutor: options, start/shutdown, submit (in the caller's thread)
    calls.py      an app call's header and pickled arguments; the apps' files
    writer.py     thread farm-write: queued calls into the spool (bundles, resume, backstop)
    collector.py  thread farm-watch: notices and results into futures; the repair sweep
    upkeep.py     threads farm-beat (heartbeat, fencing) and farm-scale (pools, blocks;
                  how many blocks to add is farm.executors.scaling)
    pending.py    the futures the driver waits for, shared by all of the above
"""

from farm.executors.spool.executor import SpoolExecutor, default_spool_path

__all__ = ["SpoolExecutor", "default_spool_path"]
