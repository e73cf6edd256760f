"""The machine's own limits: how fast this filesystem, Python and OS do the things a farm task
is made of, measured in the benchmark's own process, next to the spools.

Each figure is a rate (operations per second) measured for `seconds` on that operation
alone, one at a time, as the spool layer does them.  See benchmarks/README.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import cloudpickle

# (key in the results, label in the table, unit)
LIMITS = (
    ("rename_per_s", "rename", "ops/s"),
    ("create_write_rename_per_s", "create+write+rename (300 B)", "ops/s"),
    ("unlink_per_s", "unlink", "ops/s"),
    ("stat_per_s", "stat", "ops/s"),
    ("pickle_per_s", "cloudpickle round trip (dumps+loads)", "trips/s"),
    ("spawn_per_s", "process spawn (subprocess.run true)", "spawns/s"),
)

RECORD = b"x" * 300  # about the size of a no-op task record


def _rate(op: Callable[[int], None], seconds: float, batch: int = 50,
          limit: int = sys.maxsize) -> float:
    """Calls op(i) for i = 0, 1, ... in batches until `seconds` have passed (or `limit`
    calls were made); returns calls per second."""
    n, t0 = 0, time.perf_counter()
    while n < limit and time.perf_counter() - t0 < seconds:
        stop = min(n + batch, limit)
        for i in range(n, stop):
            op(i)
        n = stop
    return n / (time.perf_counter() - t0)


def sample_call(x, y=None):
    """The function of the pickled call (by reference, as farm pickles arguments)."""
    return x


def machine_limits(base: str, seconds: float) -> dict[str, float]:
    """One measurement of every limit, in a new directory under base (next to the spools, so
    on the same filesystem; left for the caller to remove)."""
    d = tempfile.mkdtemp(prefix="fs-", dir=base)
    out: dict[str, float] = {}

    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    open(a, "wb").close()

    def rename_pair(i: int) -> None:  # a -> b -> a: the file always exists under one name
        if i % 2 == 0:
            os.rename(a, b)
        else:
            os.rename(b, a)

    out["rename_per_s"] = _rate(rename_pair, seconds, batch=100)

    tmpd, final = os.path.join(d, "tmp"), os.path.join(d, "final")
    os.mkdir(tmpd)
    os.mkdir(final)

    def create_write_rename(i: int) -> None:  # new names each time, as task records have
        tmp = os.path.join(tmpd, str(i))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, RECORD)
        os.close(fd)
        os.rename(tmp, os.path.join(final, str(i)))

    out["create_write_rename_per_s"] = _rate(create_write_rename, seconds)
    made = len(os.listdir(final))

    # stat and unlink use the files just made (existing names in a populated directory, as
    # in the spool).  Unlink stops when they run out.
    def stat(i: int) -> None:
        os.stat(os.path.join(final, str(i % made)))

    out["stat_per_s"] = _rate(stat, seconds, batch=100)
    out["unlink_per_s"] = _rate(lambda i: os.unlink(os.path.join(final, str(i))), seconds,
                                limit=made)

    call = (sample_call, (12345, "some-argument"), {"y": 3.5})
    out["pickle_per_s"] = _rate(lambda i: cloudpickle.loads(cloudpickle.dumps(call)),
                                seconds, batch=100)

    out["spawn_per_s"] = _rate(lambda i: subprocess.run(["true"], check=True), seconds,
                               batch=1)
    return out
