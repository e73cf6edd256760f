"""The trust boundary: a task not signed with the user's key is quarantined, never run."""

from __future__ import annotations

import os
import pickle
import subprocess
import uuid

import pytest

import farm
from farm import python_app
from farm.errors import SpoolError
from farm.spool import Spool, records
from tests.conftest import FARM, eventually, spool_config

T = 60


@python_app
def add(a, b=0):
    return a + b


def _evil_task(spool: Spool, marker: str, key: bytes | None) -> str:
    """A task that would create `marker` if it ran: its app is os.system."""
    app_id = uuid.uuid4().hex
    spool._publish(spool.p("apps", app_id),
                   records.encode("APP", {"name": "system"}, pickle.dumps(os.system), key))
    k = uuid.uuid4().hex
    body = pickle.dumps(((f"touch {marker}",), {}))
    header = {"key": k, "name": "evil", "kind": "python", "app": app_id, "deps": []}
    data = records.encode("TASK", header, body, key)
    path = spool.task_path(k)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.link(path, spool.p("ready", k))
    return k


@pytest.mark.parametrize("forger_key", [None, b"f" * 64], ids=["unsigned", "other-key"])
def test_injected_task_never_runs(tmp_path, monkeypatch, forger_key):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s"))
    assert add(1, 1).result(T) == 2  # the pool is up and serving
    spool = farm.dfk().executors["spool"].spool
    marker = tmp_path / "pwned"
    k = _evil_task(spool, str(marker), forger_key)
    eventually(lambda: spool.result_status(k) is not None, 30, "the pool to reject it")
    header, _ = spool.read_result(k)
    assert header["status"] == "failed" and "quarantined" in header["error"]
    assert not marker.exists()
    why = [n for n in os.listdir(spool.p("quarantine")) if n.endswith(".why")]
    assert why and ("unsigned" in open(spool.p("quarantine", why[0])).read()
                    or "signature" in open(spool.p("quarantine", why[0])).read())
    assert add(2, 2).result(T) == 4  # and the pool goes on


def test_altered_payload_is_rejected(tmp_path, pools, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))
    f = add(20, 1)
    farm.flush()
    spool = farm.dfk().executors["spool"].spool
    data = open(spool.task_path(f.key), "rb").read()
    altered = data.replace(pickle.dumps(20)[2:-1], pickle.dumps(99)[2:-1])
    assert altered != data
    with open(spool.task_path(f.key), "r+b") as fh:  # same inode as ready/KEY
        fh.write(altered)
    pools.start(spool.path, "--idle-timeout", "30")
    with pytest.raises(SpoolError, match="altered or forged"):
        f.result(T)


def test_pool_refuses_shared_spool_without_key(tmp_path, monkeypatch):
    s = Spool.create(tmp_path / "s")
    os.chmod(s.path, 0o777)
    env = {**os.environ, "FARM_KEY_FILE": str(tmp_path / "no-such-key")}
    r = subprocess.run([*FARM, "pool", s.path], capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.returncode == 2 and "others can write to it" in r.stderr
    key = os.environ["FARM_KEY_FILE"]
    assert os.stat(key).st_mode & 0o777 == 0o600
    os.chmod(key, 0o644)
    try:
        with pytest.raises(SpoolError, match="chmod 600"):
            Spool(s.path)
    finally:
        os.chmod(key, 0o600)


def _first_key(path, start, out):
    os.environ["FARM_KEY_FILE"] = path
    from farm.spool import sign
    start.wait(10)
    try:
        out.put(sign.load_key(create=True))
    except Exception as e:  # e.g. "too short": a key read while it was being written
        out.put(repr(e))


def test_processes_racing_to_make_the_key_all_get_the_same_whole_key(tmp_path):
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    for round_ in range(5):
        path = str(tmp_path / f"home{round_}" / "key")
        start, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_first_key, args=(path, start, out)) for _ in range(6)]
        for p in procs:
            p.start()
        keys = [out.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(30)
        assert len(set(keys)) == 1 and isinstance(keys[0], bytes) and len(keys[0]) == 64, keys
        assert os.listdir(os.path.dirname(path)) == ["key"]  # no temporary file left
