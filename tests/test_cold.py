"""A cold pool (idle past WARM_IDLE, here 1 s) beats rarely with a longer lease, still runs
what comes, and hears a shutdown request through the doorbell in ready/, long before its
rare look at control/."""

from __future__ import annotations

import time

import farm
from farm import python_app
from farm.pool.shared import COLD_BEAT, COLD_LEASE_BEATS, COLD_POLL, COLD_RARE
from farm.spool import Spool
from tests.conftest import eventually, spool_config


@python_app
def pid():
    import os
    return os.getpid()


def beats(spool: Spool) -> list[dict]:
    return [p for p in spool.pools() if p.get("state") in ("running", "exited")]


def cold(spool: Spool) -> dict | None:
    got = [p for p in beats(spool) if p.get("heartbeat") == COLD_BEAT]
    return got[0] if got else None


def test_a_cold_pool_beats_rarely_runs_new_work_and_hears_the_doorbell(tmp_path, monkeypatch,
                                                                        pools):
    monkeypatch.setenv("FARM_WARM_IDLE", "1")  # (inherited by the pool)
    # A pool of its own (the driver's provider starts none, so it cancels none at exit:
    # only the shutdown request can end it).
    dfk = farm.load(spool_config(tmp_path / "s", blocks=0))
    spool = dfk.executors["spool"].spool
    pools.start(spool.path, "--idle-timeout", "300")
    pid().result(60)

    # Cold: the heartbeat says so, with a lease of several cold beats (observers wait).
    beat = eventually(lambda: cold(spool), 30, "the pool's first cold heartbeat")
    assert beat["lease"] == COLD_LEASE_BEATS * COLD_BEAT
    assert [p["pool"] for p in spool.live_pools()] == [beat["pool"]]  # (still live)

    # A task that comes now runs (worker 0 looks at ready/ every COLD_POLL s), on that pool.
    t0 = time.monotonic()
    assert isinstance(pid().result(COLD_POLL + 30), int)
    assert time.monotonic() - t0 < COLD_POLL + 10
    assert [p["pool"] for p in beats(spool)] == [beat["pool"]]

    # Cold again, then the driver ends with nothing left: its shutdown request rings the
    # doorbell, and the pool leaves within a poll, not at its next look at control/.
    eventually(lambda: cold(spool), 30, "the pool to be cold again")
    t0 = time.monotonic()
    farm.clear()
    eventually(lambda: all(p.get("state") == "exited" for p in spool.pools()), COLD_POLL + 15,
               "the cold pool to leave after the shutdown request")
    assert time.monotonic() - t0 < COLD_RARE * COLD_BEAT / 2
    assert spool.pools()[0]["reason"] == "the spool asked pools to shut down"
