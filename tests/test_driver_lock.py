"""One driver at a time: a second driver is refused with the live one's name; a dead or
silent one is taken over; a taken-over driver stops."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import yaml

import farm
from farm.errors import SpoolError
from farm.spool import Spool, driver_identity
from tests.conftest import spool_config

HOLDER = textwrap.dedent("""
    import sys, time, farm
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider
    farm.load(farm.Config(executors=[SpoolExecutor(spool=sys.argv[1],
                                                   provider=LocalProvider(init_blocks=0,
                                                                          max_blocks=0))]))
    print("loaded", flush=True)
    time.sleep(120)
""")


def test_second_driver_is_refused_then_takes_over_a_dead_one(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "s")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "loaded"
        with pytest.raises(SpoolError, match=f"pid {holder.pid} on ") as info:
            farm.load(spool_config(tmp_path / "s"))
        # durations in words, never an epoch time or a raw record
        assert re.search(r"started \d+ s ago \((last heartbeat \d+ s ago|no heartbeat "
                         r"yet: it has just started)\)", str(info.value)), info.value
        assert "{" not in str(info.value)
        holder.kill()
        holder.wait(10)
        farm.load(spool_config(tmp_path / "s"))  # the dead driver's lock is stale
        assert farm.dfk().executors["spool"].spool.path == str(tmp_path / "s")
    finally:
        holder.kill()


def _foreign_owner(spool: Spool) -> dict:
    owner = {"id": "elsewhere-1-x", "host": "elsewhere", "pid": 1, "proc_start": 0}
    spool._publish(spool.p("control", "driver.lock"), yaml.safe_dump(owner).encode())
    return owner


def test_driver_on_another_host_is_live_while_its_counter_moves(tmp_path):
    spool = Spool.create(tmp_path / "s")
    owner = _foreign_owner(spool)
    stop = threading.Event()

    def beat():
        n = 0
        while not stop.is_set():
            n += 1
            spool.driver_beat(owner, n)
            time.sleep(0.05)

    t = threading.Thread(target=beat)
    t.start()
    try:
        with pytest.raises(SpoolError, match="pid 1 on elsewhere"):
            spool.acquire_driver(driver_identity(), lease=1.0)
    finally:
        stop.set()
        t.join()
    me = driver_identity()
    spool.acquire_driver(me, lease=0.5)  # counter stopped: stale, taken over
    assert yaml.safe_load(open(spool.p("control", "driver.lock")))["id"] == me["id"]
    assert spool.driver_beat(owner, 99) is False  # the old driver learns it was fenced
    assert spool.driver_beat(me, 1) is True
    spool.release_driver(me)
    spool.acquire_driver(driver_identity(), lease=0.5)
