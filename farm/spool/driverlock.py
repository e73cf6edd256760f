"""One driver at a time: the driver lock, its heartbeat, and taking over from a dead driver.
"""

from __future__ import annotations

import os
import random
import socket
import time
from typing import Any

import yaml

from farm.errors import SpoolError
from farm.spool import fs
from farm.spool.layout import Layout, _yaml, log


class DriverLock(Layout):
    def acquire_driver(self, me: dict[str, Any], lease: float = 10.0) -> None:
        """Become the spool's driver, or raise SpoolError naming the live one.

        control/driver.lock is created with os.link (exactly one creator wins, on NFS too:
        no flock involved).  If it exists, its owner is live when it is a process on this
        host with the recorded pid and start time, or when its heartbeat counter
        (control/driver-ID.yaml) moves within `lease` seconds on our own clock; otherwise
        it is stale, and we take it over by renaming it away (again one winner) and
        retrying the link.
        """
        lock = self.p("control", "driver.lock")
        data = yaml.safe_dump(me).encode()
        for _ in range(10):
            if self._publish(lock, data):
                return
            raw = fs.read(lock)
            owner = _yaml(raw) if raw is not None else None
            if raw is None:
                continue  # released meanwhile
            if isinstance(owner, dict) and _driver_alive(self, owner, lease):
                hb = _yaml(fs.read(self.p("control", f"driver-{owner.get('id')}.yaml")))
                raise SpoolError(
                    f"spool {self.path} is in use by another driver: {_describe(owner)} "
                    f"({_last_beat(hb)}). One driver at a time: wait for it to end, "
                    "stop it, or use another spool")
            stale = self.p("control", f"driver.lock.stale-{me['id']}")
            try:
                fs.rename(lock, stale)
            except FileNotFoundError:
                continue
            if fs.read(stale) != raw:
                # Not the lock we judged dead: another new driver took over meanwhile.
                # Put its lock back (unless yet another exists) and look again.
                try:
                    fs.link(stale, lock)
                except FileExistsError:
                    pass
                fs.unlink(stale)
                continue
            fs.unlink(stale)
            log.warning("spool %s: taking over from a driver that is gone (%s)", self.path,
                        _describe(owner))
        raise SpoolError(f"{lock}: could not take the driver lock after 10 tries")

    def driver_beat(self, me: dict[str, Any], counter: int) -> bool:
        """Rewrite our driver heartbeat; False if the lock is no longer ours (a new driver
        took over while we were frozen: we must stop)."""
        owner = _yaml(fs.read(self.p("control", "driver.lock")))
        if not isinstance(owner, dict) or owner.get("id") != me["id"]:
            return False
        self.replace(self.p("control", f"driver-{me['id']}.yaml"),
                     yaml.safe_dump({"counter": counter, "time": time.time()}).encode())
        return True

    def release_driver(self, me: dict[str, Any]) -> None:
        owner = _yaml(fs.read(self.p("control", "driver.lock")))
        if isinstance(owner, dict) and owner.get("id") == me["id"]:
            fs.unlink(self.p("control", "driver.lock"))
        fs.unlink(self.p("control", f"driver-{me['id']}.yaml"))


def _describe(owner: Any) -> str:
    """A driver, in words: pid 123 on node7, started 5 min ago."""
    if not isinstance(owner, dict):
        return "an unknown driver (its lock file is damaged)"
    words = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}"
    try:
        words += f", started {_ago(time.time() - float(owner['since']))} ago"
    except (KeyError, TypeError, ValueError):
        pass
    return words


def _last_beat(hb: Any) -> str:
    try:
        return f"last heartbeat {_ago(time.time() - float(hb['time']))} ago"
    except (KeyError, TypeError, ValueError):
        return "no heartbeat yet: it has just started"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def driver_identity() -> dict[str, Any]:
    """Who this process is, for the driver lock: unique id, host, pid, process start time."""
    import psutil
    return {"id": f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(32):08x}",
            "host": socket.gethostname(), "pid": os.getpid(),
            "proc_start": psutil.Process().create_time(), "since": time.time()}


def _driver_alive(spool: DriverLock, owner: dict[str, Any], lease: float) -> bool:
    if owner.get("host") == socket.gethostname():
        import psutil
        try:
            return abs(psutil.Process(int(owner["pid"])).create_time()
                       - float(owner["proc_start"])) < 1.0
        except (psutil.Error, KeyError, TypeError, ValueError):
            return False
    # Another host: watch its heartbeat counter on our own clock for one lease.
    path = spool.p("control", f"driver-{owner.get('id')}.yaml")
    first = (_yaml(fs.read(path)) or {}).get("counter")
    deadline = time.monotonic() + lease
    while time.monotonic() < deadline:
        time.sleep(0.25)
        if (_yaml(fs.read(path)) or {}).get("counter") != first:
            return True
    return False
