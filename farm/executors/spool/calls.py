"""What an app call becomes before it is queued for the writer: the task's header, its
pickled arguments, and (once per app) the app's own file in the spool.

All of it runs in the caller's thread (SpoolExecutor.submit), so that a call is a snapshot
of its arguments as they were when it was made, and a call that cannot be pickled fails
at once, in the script, with a message that names the argument.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from typing import Any

import cloudpickle

from farm import serialize
from farm.dataflow.keys import app_identity
from farm.dataflow.task import TaskRecord
from farm.errors import SerializationError, SpoolError
from farm.spool import Spool, fs
from farm.spool.recovery import CRASH_RETRIES

_NO_ARGS = pickle.dumps(((), {}), protocol=5)  # the body of every call without arguments


def pickle_args(task: TaskRecord) -> bytes:
    if not task.args and not task.kwargs:
        return _NO_ARGS
    try:
        # Plain pickle is several times faster; it refers to classes and functions by
        # module and name, which is wrong only for __main__ (the pool's __main__ is not
        # the script's): those go through cloudpickle, which pickles them by value.
        blob = pickle.dumps((task.args, task.kwargs), protocol=5)
        if b"__main__" not in blob:
            return blob
    except Exception:
        pass
    try:
        return serialize.dumps((task.args, task.kwargs))
    except Exception as e:
        culprit = "an argument"
        named = [(f"argument {i}", a) for i, a in enumerate(task.args)]
        named += [(f"argument {k!r}", v) for k, v in task.kwargs.items()]
        for what, v in named:
            try:
                cloudpickle.dumps(v)
            except Exception:
                culprit = f"{what} ({type(v).__name__})"
                break
        raise SerializationError(
            f"task {task.label}: {culprit} cannot be pickled ({type(e).__name__}: {e}); "
            "pass plain data, or a File and let the app open it") from e


class Apps:
    """The apps of one spool: each app's pickled function is stored once (apps/APP, named
    by the hash of the pickle), the first time it is called."""

    def __init__(self, spool: Spool, crash_retries: int = 2):
        self.spool = spool
        self.ids: dict[int, str] = {}  # id(function) -> APP
        self.written: set[str] = set()  # the APPs stored
        # In headers only when not the pools' default (Spool's CRASH_RETRIES).
        self.extra = {} if crash_retries == CRASH_RETRIES else {"crash_retries": crash_retries}

    def header(self, task: TaskRecord) -> dict[str, Any]:
        """The task's header (docs/spool-format.md, Records).  Writes the app's file at its
        first call."""
        # One dict display, in the order the header always had (key ... created,
        # retry_handler, then the opts: cwd, walltime, outputs, inputs, stdout, stderr).
        # task.deps and opts values may be tuples: JSON writes them as the lists they are.
        app = self.app_id(task.func)
        opts = task.opts
        if "sizer" in opts:  # (a request that depends on the attempt: the pool calls it)
            opts = {**opts, "sizer": self.app_id(opts["sizer"], remember=False)}
        if task.retry_handler is None:
            return {"key": task.key, "name": task.name, "kind": task.kind, "app": app,
                    "deps": task.deps, "retries": task.retries, "created": time.time(),
                    **self.extra, **opts}
        return {"key": task.key, "name": task.name, "kind": task.kind, "app": app,
                "deps": task.deps, "retries": task.retries, "created": time.time(),
                "retry_handler": self.app_id(task.retry_handler), **self.extra, **opts}

    def app_id(self, func: Any, remember: bool = True) -> str:
        """Store each app's pickled function once per spool (named by its hash).  Not
        remember: a function made for one call (its id may be another's later)."""
        app_id = self.ids.get(id(func)) if remember else None
        if app_id is None:
            try:
                blob = serialize.dumps(func)
            except Exception as e:
                raise SerializationError(f"app {getattr(func, '__name__', func)} cannot be "
                                         f"pickled: {type(e).__name__}: {e}") from e
            app_id = hashlib.sha256(blob).hexdigest()[:32]
            if app_id in self.written:  # (a new function object, the same pickle)
                if remember:
                    self.ids[id(func)] = app_id
                return app_id
            self.written.add(app_id)
            # (identity: what its keys cover, so that farm show can tell a task that ran
            # again because its app, or what the app reads, changed)
            self.spool.put_app(app_id, {"name": getattr(func, "__name__", "?"),
                                        "python": sys.version.split()[0],
                                        "identity": app_identity(func)}, blob)
            if remember:
                self.ids[id(func)] = app_id
        return app_id


def not_submitted(task: TaskRecord, e: OSError) -> SpoolError:
    return SpoolError(f"task {task.label} was not submitted: {fs.explain(e)}. Nothing was "
                      "lost: fix this and run the script again")
