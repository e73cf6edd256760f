"""parsl.utils under farm: the checkpoint helpers (farm.checkpoints).

In farm a checkpoint is a spool.  get_all_checkpoints(rundir) lists the spools in rundir,
oldest first; get_last_checkpoint(rundir) the newest, in a list (empty if there is none);
pass either as Config(checkpoint_files=...).  rundir defaults to where the default spool
of this script goes ($FARM_SPOOL_ROOT, else the script's directory).
"""

from __future__ import annotations

import os

from farm.checkpoints import all_spools
from farm.dataflow.futures import lift_attributes

lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)


def _default_rundir() -> str:
    from farm.executors.spool import default_spool_path
    return os.path.dirname(default_spool_path(None))


def get_all_checkpoints(rundir: str | None = None) -> list[str]:
    """Every spool in rundir, oldest first."""
    return all_spools(rundir or _default_rundir())


def get_last_checkpoint(rundir: str | None = None) -> list[str]:
    """The newest spool in rundir, as a list of one (or an empty list)."""
    return get_all_checkpoints(rundir)[-1:]


__all__ = ["get_all_checkpoints", "get_last_checkpoint"]
