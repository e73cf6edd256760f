"""Checks of farm's LightFuture (futures without a Condition of their own) and of the
cwd cache, against what concurrent.futures.Future does."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import threading
import time

import pytest

import farm
from farm.dataflow import kernel
from farm.dataflow.futures import LightFuture


def later(delay, fn, *a):
    t = threading.Timer(delay, fn, a)
    t.start()
    return t


@pytest.mark.parametrize("cls", [cf.Future, LightFuture])
def test_result_and_exception(cls):
    f = cls()
    assert not f.done() and not f.running() and not f.cancelled()
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.01)
    with pytest.raises(cf.TimeoutError):
        f.exception(timeout=0)
    later(0.05, f.set_result, 42)
    assert f.result(timeout=5) == 42
    assert f.exception() is None and f.done()
    with pytest.raises(cf.InvalidStateError):
        f.set_result(1)
    g = cls()
    later(0.05, g.set_exception, ValueError("x"))
    with pytest.raises(ValueError):
        g.result()
    assert isinstance(g.exception(), ValueError)
    assert "finished" in repr(g)


@pytest.mark.parametrize("cls", [cf.Future, LightFuture])
def test_cancel_wakes_waiters(cls):
    f = cls()
    got = []

    def wait():
        try:
            f.result(timeout=10)
        except cf.CancelledError:
            got.append("cancelled")

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.05)
    calls = []
    f.add_done_callback(calls.append)
    assert f.cancel() and f.cancelled() and f.done()
    t.join(5)
    assert got == ["cancelled"] and calls == [f]
    assert f.set_running_or_notify_cancel() is False
    with pytest.raises(cf.CancelledError):
        f.exception()
    h = cls()
    assert h.set_running_or_notify_cancel() and h.running() and not h.cancel()


@pytest.mark.parametrize("cls", [cf.Future, LightFuture])
def test_callbacks(cls):
    f = cls()
    seen = []
    f.add_done_callback(lambda x: seen.append(1))
    f.add_done_callback(lambda x: 1 / 0)  # logged, not raised
    f.add_done_callback(lambda x: seen.append(2))
    f.set_result(None)
    f.add_done_callback(lambda x: seen.append(3))  # done: called at once
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("cls", [cf.Future, LightFuture])
def test_wait_and_as_completed(cls):
    fs = [cls() for _ in range(50)]
    for i, f in enumerate(fs):
        later(0.001 * i, f.set_result, i)
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=10)) == list(range(50))
    more = [cls() for _ in range(3)]
    later(0.05, more[1].set_exception, KeyError())
    done, not_done = cf.wait(more, timeout=5, return_when=cf.FIRST_EXCEPTION)
    assert done == {more[1]} and len(not_done) == 2
    c = cls()
    c.cancel()
    later(0.05, c.set_running_or_notify_cancel)
    done, _ = cf.wait([c, cls()], timeout=5, return_when=cf.FIRST_COMPLETED)
    assert done == {c}
    # every waiter was taken out again
    assert all(not f._waiters for f in fs + more)


def test_many_threads_wait_one_each():
    fs = [LightFuture() for _ in range(20)]
    out = [None] * 20

    def w(i):
        out[i] = fs[i].result(timeout=10)

    ts = [threading.Thread(target=w, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for i, f in enumerate(reversed(fs)):
        f.set_result(19 - i)
    for t in ts:
        t.join(10)
    assert out == list(range(20))


def test_asyncio_wrap_future():
    f = LightFuture()

    async def main():
        later(0.05, f.set_result, "ok")
        return await asyncio.wrap_future(f)

    assert asyncio.run(main()) == "ok"


def test_light_future_has_no_condition_of_its_own():
    a, b = LightFuture(), LightFuture()
    assert a._condition is b._condition
    assert "_condition" not in vars(a)


def test_cwd_follows_chdir(tmp_path, monkeypatch):
    kernel._Cwd.install()
    start = os.getcwd()
    assert kernel._Cwd.get() == start
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert kernel._Cwd.get() == str(tmp_path / "a")
    monkeypatch.chdir(start)
    assert kernel._Cwd.get() == start
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)
    assert kernel._Cwd.get() == str(tmp_path)
    os.chdir(start)
    time.sleep(kernel._Cwd.SETTLE + 0.1)
    assert kernel._Cwd.get() == start  # settled: cached now
    assert kernel._Cwd.seen == kernel._Cwd.changed_at


def test_app_cwd_and_header(tmp_path, monkeypatch):
    """Calls made in two directories carry each its own cwd to the spool."""
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()

    @farm.python_app
    def where():
        import os
        return os.getcwd()

    with farm.load(farm.Config(executors=[SpoolExecutor(
            spool=str(tmp_path / "s.farm"), max_workers_per_node=1,
            provider=LocalProvider(init_blocks=1, max_blocks=1))])):
        a = where()
        os.chdir(tmp_path / "sub")
        b = where()
        os.chdir(tmp_path)
        assert a.result(60) == str(tmp_path)
        assert b.result(60) == str(tmp_path / "sub")
        assert a.task.opts["outputs"] == () and a.task.kwargs == {}
    farm.clear()
