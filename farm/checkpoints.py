"""Parsl's checkpoints, mapped onto spools: a checkpoint is a spool's results.

A spool keeps the result of every task the moment it exists, which is what Parsl's
checkpointing is for; so there is nothing to write at task exit, at the end or
periodically.  What Parsl's checkpoint_files do, reuse an earlier run's results in a new
run, is done here: ``Config(checkpoint_files=[spool, ...])`` makes a call of a
``cache=True`` app whose result one of those spools holds (a success, under the same task
key) resolve at once to that result, without running.  farm.utils.get_all_checkpoints and
get_last_checkpoint list the spools of a run directory, as Parsl's list its checkpoints.

(A re-run of the same script on the same spool needs none of this: it resumes, every app
and not only cached ones; see docs/resume.md.)
"""

from __future__ import annotations

import os
from typing import Any

import cloudpickle

from farm.dataflow.errors import BadCheckpoint
from farm.errors import FarmError
from farm.spool import OK, Spool


def spool_root(path: str) -> str | None:
    """The spool path is in (it, or a directory above it), or None."""
    path = os.path.abspath(path)
    while True:
        if Spool.exists(path):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


class Checkpoints:
    """The spools of Config(checkpoint_files=...), asked for results by task key."""

    def __init__(self, paths: list[str]):
        self.paths: list[str] = []
        for p in paths:
            root = spool_root(p)
            if root is None:
                raise BadCheckpoint(f"checkpoint {p} is not a farm spool (nor inside one); "
                                    "pass spool directories, e.g. farm.utils."
                                    "get_last_checkpoint()")
            if root not in self.paths:
                self.paths.append(root)
        self.spools: list[Spool] | None = None  # opened at the first lookup

    def lookup(self, key: str) -> tuple[Any] | None:
        """(value,) of key's successful result in the newest spool that has one, else None."""
        if self.spools is None:
            self.spools = [Spool(p) for p in self.paths]
        for spool in reversed(self.spools):
            try:
                res = spool.read_result(key)
            except FarmError:
                continue  # (a damaged result: not reused, the task runs)
            if res is not None and res[0].get("status") == OK:
                return (cloudpickle.loads(res[1]),)
        return None


def all_spools(rundir: str) -> list[str]:
    """The spools directly in rundir, oldest first (by when they were made)."""
    try:
        names = os.listdir(rundir)
    except OSError:
        return []
    found = [os.path.join(os.path.abspath(rundir), n) for n in names]
    found = [p for p in found if Spool.exists(p)]
    return sorted(found, key=lambda p: os.stat(os.path.join(p, "spool.yaml")).st_mtime)
