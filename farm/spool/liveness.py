"""Liveness: pools' heartbeats, deciding that a silent pool is dead, and shutdown requests.

No clocks of two machines are ever compared: ``PoolWatch`` watches each pool's heartbeat
counter on the observer's own monotonic clock, and ``declare_dead`` lets exactly one
observer take a dead pool's claims over (its rename decides).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import yaml

from farm.spool import fs
from farm.spool.layout import _yaml
from farm.spool.recovery import Recovery


class Liveness(Recovery):
    def declare_dead(self, pool: str, why: str) -> int | None:
        """Take over a silent pool's claims.  Renaming its heartbeat to pools/POOL.dead
        decides: exactly one observer wins; the others, and a pool that exited meanwhile,
        get ENOENT and None.  The pool, if it was only slow, sees the .dead file at its next
        heartbeat and stops; a result it still publishes for a requeued task either wins
        the link race or is dropped: one result either way."""
        try:
            fs.rename(self.heartbeat_path(pool), self.p("pools", f"{pool}.dead"))
        except FileNotFoundError:
            return None
        lost = 0
        for w in fs.listdir(self.p("claimed")):
            if w.rpartition(".")[0] == pool:
                # (each task it was running is logged: requeued, or failed for good)
                lost += self.give_back_all(self.p("claimed", w), lost=why)
        return lost

    def write_heartbeat(self, pool: str, info: dict[str, Any]) -> None:
        self.replace(self.heartbeat_path(pool), yaml.safe_dump(info).encode())

    def is_fenced(self, pool: str) -> bool:
        """True if an observer declared this pool dead.  A fresh listing of pools/ (a stat
        of POOL.dead could say "not there" for seconds after it appeared, on NFS), so a
        pool asks only when it was silent long enough to be declared dead (Pool._tick)."""
        return f"{pool}.dead" in fs.listdir(self.p("pools"))

    def heartbeats(self, with_age: bool = False) -> list[dict[str, Any]]:
        """Heartbeat records of registered pools (not of those declared dead).  With
        with_age, each has 'age': seconds since its last write by this machine's clock,
        a display hint, never a liveness verdict (PoolWatch gives those)."""
        out = []
        now = time.time()
        for name in fs.listdir(self.p("pools")):
            if not name.endswith(".yaml"):
                continue
            path = self.p("pools", name)
            st = fs.stat(path) if with_age else None
            info = _yaml(fs.read(path))
            if with_age and st is None:
                continue
            if isinstance(info, dict) and "pool" in info:
                if st is not None:
                    info["age"] = now - st.st_mtime
                out.append(info)
        return out

    def pools(self) -> list[dict[str, Any]]:
        return self.heartbeats(with_age=True)

    def read_heartbeats(self, pools: Iterable[str]) -> list[dict[str, Any]]:
        """The heartbeat records of the given pools (those still readable)."""
        out = []
        for pool in pools:
            info = _yaml(fs.read(self.heartbeat_path(pool)))
            if isinstance(info, dict) and "pool" in info:
                out.append(info)
        return out

    def pool_record(self, pool: str) -> dict[str, Any]:
        """A pool's last heartbeat record, also of a pool that exited or was declared dead
        ({} if there is none)."""
        for name in (f"{pool}.yaml", f"{pool}.dead"):
            info = _yaml(fs.read(self.p("pools", name)))
            if isinstance(info, dict):
                return info
        return {}

    def blocks(self) -> list[dict[str, Any]]:
        """The block records (blocks/BLOCK.yaml: provider, job id) of this spool."""
        records = (_yaml(fs.read(self.p("blocks", n)))
                   for n in fs.listdir(self.p("blocks")) if n.endswith(".yaml"))
        return [r for r in records if isinstance(r, dict) and "block" in r]

    def live_pools(self, pools: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Pools whose heartbeat says running and was rewritten within three periods (by
        file age on this machine: good for display and scaling, not for declaring a pool
        dead).  pools: records from pools(), if the caller has them already."""
        return [p for p in (self.pools() if pools is None else pools)
                if p.get("state") == "running" and p["age"] < 3 * p.get("heartbeat", 2) + 2]

    def blocks_with_pools(self) -> set[str]:
        """The blocks any pool ever registered from, including pools since declared dead."""
        names = [n for n in fs.listdir(self.p("pools")) if n.endswith((".yaml", ".dead"))]
        records = (_yaml(fs.read(self.p("pools", n))) for n in names)
        return {str(r["block"]) for r in records if isinstance(r, dict) and r.get("block")}

    def shutdown_token(self) -> bytes | None:
        """The current shutdown request (a token), or None.  A pool stops when the token
        differs from the one it saw when it started: a request made before a pool started
        (a driver that finished, then `farm retry` and a new pool) does not stop it.
        control/ is listed first (one call, fresh, where a lookup of a missing name would
        be answered from the cache: a pool on another NFS client would learn of the
        request up to 30 s late)."""
        if "shutdown" not in fs.listdir(self.p("control")):
            return None
        return fs.read(self.shutdown_path())

    def request_shutdown(self, on: bool = True) -> None:
        """Ask the spool's pools to stop (on), or withdraw the request.  The token in
        control/ is the request; the doorbell in ready/ only makes cold pools look at it
        sooner, so a crash between the two steps loses nothing (the pools find the token
        at their next heartbeat, and a stale doorbell costs one listing of control/)."""
        path = self.shutdown_path()
        if on:
            self.replace(path, os.urandom(8).hex().encode())
            self.replace(self.doorbell_path(), b"")
        else:
            fs.unlink(self.doorbell_path())
            fs.unlink(path)


    # -- whole nodes for tasks across nodes (farm.pool.nodes) ----------------------------------

    def reserve_node(self, pool: str, record: dict[str, Any]) -> bool:
        """Reserve pool's node for a task across nodes (record: the task, and the pool and
        worker running it): nodes/POOL, published once; the link decides, False if
        another task holds it."""
        return self._publish(self.p("nodes", pool), yaml.safe_dump(record).encode())

    def release_node(self, pool: str) -> None:
        fs.unlink(self.p("nodes", pool))

    def node_names(self) -> list[str]:
        """The names in nodes/: POOL (a reservation), POOL@RID (its pool has lent its
        node to reservation RID).  A fresh listing: what it lacks is not there."""
        return fs.listdir(self.p("nodes"))

    def node_reservation(self, pool: str) -> dict[str, Any] | None:
        info = _yaml(fs.read(self.p("nodes", pool)))
        return info if isinstance(info, dict) else None

    def lend_node(self, pool: str, rid: str) -> None:
        """Say that pool's node is free of other work, for reservation rid
        (nodes/POOL@RID)."""
        self._publish(self.p("nodes", f"{pool}@{rid}"), b"")

    def unlend_node(self, name: str) -> None:
        fs.unlink(self.p("nodes", name))


class PoolWatch:
    """Liveness by counters, not clocks: a pool whose heartbeat counter has not moved for
    its lease, timed on this observer's own monotonic clock, is declared dead.  Any number
    of observers (the driver, idle pools) may watch; Spool.declare_dead lets one win."""

    def __init__(self, spool: Liveness, me: str | None = None):
        self.spool = spool
        self.me = me
        self.seen: dict[str, tuple[Any, float]] = {}

    def check(self, records: list[dict[str, Any]] | None = None,
              read_at: float | None = None) -> dict[str, int]:
        """Look once; returns {pool: tasks lost} for each pool this observer declared dead.
        records: the heartbeats, if the caller has just read them, starting at read_at
        (time.monotonic()).

        A pool is timed only while this observer can see the spool: if reading the
        heartbeats took over a quarter of a pool's lease, this observer's own calls hung
        (as they do while an NFS server restarts, when the pools' heartbeats hang too), so
        how long the counter really stood still is unknown, and its timing starts again."""
        if records is None:
            read_at = time.monotonic()
            records = self.spool.heartbeats()
        now = time.monotonic()
        hung = 0.0 if read_at is None else now - read_at
        dead = {}
        for hb in records:
            pool = hb["pool"]
            if pool == self.me or hb.get("state") != "running":
                continue
            counter = hb.get("counter")
            prev = self.seen.get(pool)
            try:
                lease = float(hb.get("lease") or 30)
            except (TypeError, ValueError):
                lease = 30.0  # a damaged heartbeat: assume the default lease
            if prev is None or prev[0] != counter or hung > lease / 4:
                self.seen[pool] = (counter, now)
                continue
            if now - prev[1] > lease:
                lost = self.spool.declare_dead(
                    pool, f"pool {pool} on {hb.get('host')} stopped its heartbeat "
                          f"(silent for over {lease:g} s) while running it")
                if lost is not None:
                    dead[pool] = lost
                self.seen.pop(pool, None)
        return dead
