"""Bundles: many ready tasks in one file and one ready/ entry, results published in batches.
The crash and requeue paths keep each task's own attempt count and publish each result once."""

from __future__ import annotations

import operator
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import cloudpickle
import pytest

import farm
from farm import python_app
from farm.errors import DependencyError, WorkerLost
from farm.executors.spool.writer import Flush
from farm.spool import OK, Spool, fs, is_bundle
from farm.spool.layout import shard

from .conftest import FARM, eventually, run_script, spool_config


class GatedQueue:
    """The executor's outbox, held shut until open(): the calls of a test queue up and
    the writer thread then writes them together (in bundles), as under a fast script."""

    def __init__(self):
        self.q, self.gate = queue.SimpleQueue(), threading.Event()

    def put(self, item):
        self.q.put(item)

    def get(self):
        assert self.gate.wait(60), "the test never opened the gate"
        return self.q.get()

    def get_nowait(self):
        return self.q.get_nowait()

    def qsize(self):
        return self.q.qsize()

    def open(self):
        self.gate.set()


def gated_driver(tmp_path, monkeypatch):
    """A driver with no pool (the test starts them), whose app calls queue up until the
    test opens the gate: (executor, gate)."""
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s", blocks=0))
    ex = farm.dfk().executors["spool"]
    ex.running.upkeep.slots = 1  # bundles of half the queued calls, at most 64
    return ex, _gate(ex)


def _gate(ex):
    """Hold the executor's writer shut again (its calls queue up until gate.open())."""
    writer = ex.running.writer
    old, writer.outbox = writer.outbox, GatedQueue()
    flush = Flush()
    old.put(flush)  # the writer, blocked on the old queue, moves on to the gated one
    assert flush.done.wait(10)
    return writer.outbox


def test_a_worker_killed_in_a_bundle_charges_only_the_task_it_was_running(
        tmp_path, pools, monkeypatch):
    ex, gate = gated_driver(tmp_path, monkeypatch)

    @python_app
    def task(i):
        import os
        import signal
        if i == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-bundle
        return i

    futs = [task(i) for i in range(10)]
    gate.open()
    farm.flush()
    names = ex.spool.ready_names()
    assert names and all(is_bundle(n) for n in names), names
    assert ex.spool.ready_tasks() == 10
    pools.start(ex.spool.path, "--workers", "1", "--idle-timeout", "30")
    with pytest.raises(WorkerLost):
        futs[5].result(60)
    assert [f.result(60) for i, f in enumerate(futs) if i != 5] == [
        i for i in range(10) if i != 5]
    # The others were not charged an attempt: they ran (again) as attempt 0.
    for i, f in enumerate(futs):
        if i != 5:
            assert ex.spool.read_result(f.key)[0]["attempt"] == 0


def test_long_tasks_of_a_bundle_are_shared_out_to_idle_workers(tmp_path, pools, monkeypatch):
    ex, gate = gated_driver(tmp_path, monkeypatch)

    @python_app
    def slow(i):
        import time
        time.sleep(0.4)
        return i

    futs = [slow(i) for i in range(6)]
    gate.open()
    farm.flush()
    assert len(ex.spool.ready_names()) == 2  # two bundles of three
    pools.start(ex.spool.path, "--workers", "4", "--cores-per-worker", "0.25",
                "--idle-timeout", "30")
    assert sorted(f.result(60) for f in futs) == list(range(6))
    ran_by = {(h["pool"], h["worker"]) for _, h in ex.spool.iter_results([f.key for f in futs])}
    # Unsplit, the two bundles would keep their tasks on two workers.
    assert len(ran_by) >= 3, ran_by


def _items(keys):
    return [(k, {"key": k, "name": "t", "kind": "python", "app": "x", "deps": []}, b"")
            for k in keys]


def _killed_before_entering(monkeypatch, spool, items, links=True):
    """spool.put_tasks(items), the driver killed before the bundle's rename."""
    real = fs.rename

    def killed(src, dst):
        if src.endswith(".bundle"):
            raise KeyboardInterrupt  # (as far as the spool is concerned: kill -9 here)
        real(src, dst)

    monkeypatch.setattr(fs, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        spool.put_tasks(items, links=links)
    monkeypatch.setattr(fs, "rename", real)


def test_a_driver_killed_inside_put_bundle_leaves_nothing_lost(tmp_path, monkeypatch):
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(3)]
    _killed_before_entering(monkeypatch, spool, _items(keys))
    assert spool.ready_names() == []
    assert all(spool.is_orphan(k) for k in keys)
    # The next driver enters each linked key on its own, and drops the bundle's tmp name.
    again = Spool(spool.path)
    assert again.recover_bundles() == 3
    assert sorted(again.ready_names()) == sorted(keys)
    assert not [n for n in os.listdir(again.p("tmp")) if n.endswith(".bundle")]
    assert not any(again.is_orphan(k) for k in keys)
    header, _ = again.read_task(again.p("ready", keys[1]))
    assert header["key"] == keys[1] and header["bundle"]


def test_a_result_batch_with_a_loser_gives_notices_to_the_winners_only(tmp_path):
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(3)]
    assert spool.publish_result(keys[1], {"status": OK}, b"first")
    won = spool.publish_results([(k, {"status": OK}, f"v{i}".encode())
                                 for i, k in enumerate(keys)])
    assert won == [keys[0], keys[2]]
    assert sorted(spool.notices()) == sorted(keys)  # keys[1]'s is its own, earlier one
    assert spool.read_result(keys[1])[1] == b"first"
    assert spool.read_result(keys[2])[1] == b"v2"
    assert [k for k, _ in spool.read_notice(keys[0])] == [keys[0]]


def test_a_large_result_batch_goes_out_in_several_files_each_key_once(tmp_path):
    from farm.spool.results import LINK_FILE, LINK_FILES
    spool = Spool.create(tmp_path / "s")
    n = LINK_FILE * LINK_FILES + 5
    keys = [uuid.uuid4().hex for _ in range(n)]
    first = {keys[3], keys[-1]}  # losers in the first file and in the last
    for k in first:
        assert spool.publish_result(k, {"status": OK}, b"first")
    won = spool.publish_results([(k, {"status": OK}, f"v{i}".encode())
                                 for i, k in enumerate(keys)])
    assert won == [k for k in keys if k not in first]
    for i, k in enumerate(keys):
        assert spool.read_result(k)[1] == (b"first" if k in first else f"v{i}".encode())
    # The driver's notices: several files (the links of one file wait for each other),
    # each winner in exactly one, and the earlier results' own.
    noticed = [k for name in spool.notices() for k, _ in spool.read_notice(name)]
    assert sorted(noticed) == sorted(keys)
    assert len([name for name in spool.notices() if is_bundle(name)]) == LINK_FILES - 2
    assert os.listdir(spool.p("tmp")) == []  # the files with a loser left tmp/ too


def test_a_bundle_is_not_split_for_the_time_its_results_wait_to_be_published(
        tmp_path, monkeypatch):
    # A worker whose results wait for a slow filesystem (a backlog, Results.add) judges
    # the rest of its bundle by the time its tasks ran: giving the rest back one entry per
    # task would cost a link and a claim each, and publish no faster.
    from farm.pool import Worker
    from farm.pool.bundles import SPLIT_ALWAYS, Results
    spool = Spool.create(tmp_path / "s")
    spool.put_app("negate", {"name": "negate", "python": sys.version.split()[0]},
                  cloudpickle.dumps(operator.neg))
    keys = [uuid.uuid4().hex for _ in range(8)]
    assert spool.put_bundle([(k, {"key": k, "name": "negate", "kind": "python",
                                  "app": "negate", "deps": []}, cloudpickle.dumps(((i,), {})))
                             for i, k in enumerate(keys)]) == []
    (bundle,) = spool.ready_names()
    worker = Worker(spool.path, "w", 0, 1)  # (one worker: the rest goes back past 2 s)
    worker.spool, worker.dir = spool, spool.worker_dir("w", 0)
    worker.results = Results(spool)
    worker.output.open(spool.path)
    os.mkdir(worker.dir)
    real = Results.add

    def waits(self, *args, **kwargs):
        time.sleep(SPLIT_ALWAYS / 4)  # as the worker does with a backlog
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Results, "add", waits)
    worker.run(spool.claim(bundle, worker.dir))
    worker.results.flush()
    assert spool.ready_names() == []  # nothing given back
    assert [cloudpickle.loads(spool.read_result(k)[1]) for k in keys] == [-i for i in range(8)]


def test_a_bundled_task_without_result_or_entry_is_an_orphan(tmp_path):
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(3)]
    assert spool.put_bundle(_items(keys)) == []
    (bundle,) = spool.ready_names()
    assert not any(spool.is_orphan(k) for k in keys)
    spool.publish_results([(k, {"status": OK}, b"") for k in keys[:2]])
    os.unlink(spool.p("ready", bundle))  # as a rerun killed between its two steps leaves it
    fresh = Spool(spool.path)
    assert [fresh.is_orphan(k) for k in keys] == [False, False, True]


def test_a_damaged_bundle_fails_its_tasks_when_they_are_entered_again(tmp_path):
    from farm.pool import Worker
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(2)]
    assert spool.put_bundle(_items(keys)) == []
    (bundle,) = spool.ready_names()
    with open(spool.task_path(keys[0]), "r+b") as f:  # the same inode as the entry
        f.seek(20)
        f.write(b"\x00garbage\x00")
    worker = Worker(spool.path, "w", 0, 1)
    worker.spool, worker.dir = spool, spool.worker_dir("w", 0)
    os.mkdir(worker.dir)
    worker.run(spool.claim(bundle, worker.dir))  # quarantined, not run
    assert os.listdir(worker.dir) == [] and os.listdir(spool.p("quarantine"))
    fresh = Spool(spool.path)
    assert fresh.is_orphan(keys[0])  # so a re-run of the script enters it again...
    fresh.enqueue(keys[0], ready=True)
    worker.run(spool.claim(keys[0], worker.dir))
    header, _ = spool.read_result(keys[0])  # ...and it fails, naming the damaged file
    assert header["status"] == "failed" and "damaged or forged" in header["error"]


def test_dependents_of_bundled_tasks_are_indexed_by_bundle_and_promoted_by_the_pool(
        tmp_path, pools, monkeypatch):
    ex, gate = gated_driver(tmp_path, monkeypatch)

    @python_app
    def double(i):
        return 2 * i

    @python_app
    def add(a, b):
        return a + b

    firsts = [double(i) for i in range(8)]
    gate.open()
    farm.flush()
    (bid, *_) = ex.spool.ready_names()
    assert is_bundle(bid)
    sums = [add(firsts[i], firsts[i + 1]) for i in range(0, 8, 2)]
    farm.flush()
    edges = [n for s in os.listdir(ex.spool.p("deps")) for d in os.listdir(ex.spool.p("deps", s))
             for n in os.listdir(ex.spool.p("deps", s, d))]
    assert edges and all("." in n for n in edges)  # DEP.DEPENDENT: under their bundle
    pools.start(ex.spool.path, "--workers", "2", "--idle-timeout", "30")
    assert [f.result(60) for f in sums] == [2, 10, 18, 26]


def test_a_damaged_task_in_a_bundle_fails_its_dependents_at_once(tmp_path):
    from farm.pool import Results, Worker
    spool = Spool.create(tmp_path / "s")
    a, t = (uuid.uuid4().hex for _ in range(2))
    assert spool.put_bundle(_items([a])) == []  # (a's failure is the bundle's only result)
    (bundle,) = spool.ready_names()
    assert spool.put_task(t, {"key": t, "name": "t", "kind": "python", "app": "x",
                              "deps": [a]}, b"", "waiting")
    spool.add_dependent(a, t, bundle)
    data = open(spool.task_path(a), "rb").read()
    at = data.index(b'"key":"' + a.encode())  # inside a's record: its signature fails
    with open(spool.task_path(a), "r+b") as f:
        f.seek(at + 7)
        f.write(b"0" if data[at + 7:at + 8] != b"0" else b"1")
    worker = Worker(spool.path, "w", 0, 1)
    worker.spool, worker.dir = spool, spool.worker_dir("w", 0)
    worker.results = Results(spool)
    os.mkdir(worker.dir)
    worker.run(spool.claim(bundle, worker.dir))
    assert spool.read_result(a)[0]["status"] == "failed"
    assert spool.result_status(t) == "dep_failed"  # promoted (failed) by the worker
    assert os.listdir(worker.dir) == []


# -- chain bundles: a run of calls each waiting for the one before, in one file ----------------


def _edges(spool):
    return [n for s in os.listdir(spool.p("deps")) for d in os.listdir(spool.p("deps", s))
            for n in os.listdir(spool.p("deps", s, d))]


def test_a_chain_is_one_bundle_that_waits_for_the_task_outside_it(tmp_path, pools,
                                                                    monkeypatch):
    ex, gate = gated_driver(tmp_path, monkeypatch)

    @python_app
    def hop(x):
        return x + 1

    first = hop(0)
    gate.open()
    farm.flush()
    gate = _gate(ex)
    prev, chain = first, []
    for _ in range(10):
        prev = hop(prev)
        chain.append(prev)
    fan = [hop(chain[0]) for _ in range(2)]  # (a fan-out: not serialised into the chain)
    gate.open()
    farm.flush()
    waiting = os.listdir(ex.spool.p("waiting"))
    bundles = [n for n in waiting if is_bundle(n)]
    assert len(bundles) == 1 and bundles[0].endswith("-10"), waiting
    assert sorted(n for n in waiting if not is_bundle(n)) == sorted(f.key for f in fan)
    assert ex.spool.counts()["waiting"] == 12
    # One edge for the whole chain (the bundle waits for `first`), two for the fan-out.
    assert len(_edges(ex.spool)) == 3
    pools.start(ex.spool.path, "--workers", "2", "--idle-timeout", "30")
    assert [f.result(60) for f in chain] == list(range(2, 12))
    assert [f.result(60) for f in fan] == [3, 3]
    ran_by = {(h["pool"], h["worker"]) for _, h in ex.spool.iter_results([f.key for f in chain])}
    assert len(ran_by) == 1


def _queued_chain(gate, hop, n, **flag_at):
    """hop(0), then n hops each taking the one before (flag=True at the i given as
    flag=i), written together; the n hops' futures."""
    ((flag, at),) = flag_at.items()
    prev, chain = hop(0), []
    for i in range(n):
        prev = hop(prev, **{flag: i == at})
        chain.append(prev)
    gate.open()
    farm.flush()
    return chain


def test_a_failure_in_a_chain_bundle_fails_the_rest_with_a_dependency_error(tmp_path, pools,
                                                                           monkeypatch):
    ex, gate = gated_driver(tmp_path, monkeypatch)

    @python_app
    def hop(x, fail=False):
        if fail:
            raise ValueError(f"hop after {x} failed")
        return x + 1

    chain = _queued_chain(gate, hop, 6, fail=2)
    assert len(ex.spool.ready_names()) == 1  # (the whole chain: nothing outside to wait for)
    pools.start(ex.spool.path, "--workers", "1", "--idle-timeout", "30")
    assert [f.result(60) for f in chain[:2]] == [2, 3]
    with pytest.raises(ValueError, match="hop after 3 failed"):
        chain[2].result(60)
    for f in chain[3:]:
        with pytest.raises(DependencyError):
            f.result(60)
    assert [ex.spool.result_status(f.key) for f in chain[3:]] == ["dep_failed"] * 3


def test_a_worker_killed_in_a_chain_bundle_leaves_the_rest_waiting_link_by_link(
        tmp_path, pools, monkeypatch):
    ex, gate = gated_driver(tmp_path, monkeypatch)

    @python_app
    def hop(x, die=False):
        import os
        import signal
        if die:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-chain, every time
        return x + 1

    chain = _queued_chain(gate, hop, 8, die=4)
    pools.start(ex.spool.path, "--workers", "1", "--idle-timeout", "30")
    assert [f.result(60) for f in chain[:4]] == [2, 3, 4, 5]
    with pytest.raises(WorkerLost):
        chain[4].result(60)
    for f in chain[5:]:
        with pytest.raises(DependencyError):
            f.result(60)
    # Before the one that died, each task ran once, as attempt 0, and has one result.
    for f in chain[:4]:
        assert ex.spool.read_result(f.key)[0]["attempt"] == 0
    assert ex.spool.counts()["waiting"] == 0


def test_a_driver_killed_inside_put_tasks_of_a_chain_enters_it_link_by_link(tmp_path,
                                                                          monkeypatch):
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(3)]
    items = _items(keys)
    for (_, head, _), before in zip(items[1:], keys, strict=False):
        head["deps"] = [before]  # keys[1] waits for keys[0], keys[2] for keys[1]
    _killed_before_entering(monkeypatch, spool, items)
    again = Spool(spool.path)
    assert again.recover_bundles() == 3
    assert again.ready_names() == [keys[0]]  # the others wait, each for the one before
    assert sorted(os.listdir(again.p("waiting"))) == sorted(keys[1:])
    bid = again.task_header(keys[0])["bundle"]
    assert sorted(os.listdir(again.p("deps", shard(bid), bid))) == sorted(
        [f"{keys[0]}.{keys[1]}", f"{keys[1]}.{keys[2]}"])
    again.publish_result(keys[0], {"status": OK}, b"")
    again.settle_dependents(keys[0])
    assert sorted(again.ready_names()) == sorted(keys[:2])  # (keys[0]'s entry: no claim here)


def test_a_chain_result_computed_from_a_lost_one_is_not_published(tmp_path):
    spool = Spool.create(tmp_path / "s")
    a, b, c = (uuid.uuid4().hex for _ in range(3))
    assert spool.publish_result(a, {"status": OK}, b"theirs")  # another run of a won
    lost: set[str] = set()
    won = spool.publish_results([(k, {"status": OK}, b"ours") for k in (a, b, c)],
                                {b: {a}}, lost)
    assert won == [c] and lost == {a, b}
    assert spool.result_status(b) is None  # the run that won a publishes b
    # ...and later batches of the same chain too.
    d = uuid.uuid4().hex
    assert spool.publish_results([(d, {"status": OK}, b"")], {d: {b}}, lost) == []


# -- bundles without links: ready tasks known to be new have no tasks/XX/KEY --------------------


def test_a_bulk_bundle_has_no_links_and_its_file_stays_as_the_payload(tmp_path, pools,
                                                                       monkeypatch):
    ex, gate = gated_driver(tmp_path, monkeypatch)

    @python_app
    def square(i):
        if i == 3:
            raise ValueError("three")
        return i * i

    futs = [square(i) for i in range(8)]
    gate.open()
    farm.flush()
    bids = ex.spool.ready_names()
    assert len(bids) == 2 and all(is_bundle(b) for b in bids)  # (two bundles of four)
    assert not [n for s in os.listdir(ex.spool.p("tasks"))
                for n in os.listdir(ex.spool.p("tasks", s))]  # no name per task
    pools.start(ex.spool.path, "--workers", "1", "--idle-timeout", "30")
    assert [f.exception(60) is None for f in futs] == [i != 3 for i in range(8)]
    # The bundle's file is kept; each result names it; the header is found through it.
    assert all(os.path.exists(ex.spool.bundle_path(b)) for b in bids)
    bid = ex.spool.read_result(futs[5].key)[0]["bundle"]
    assert bid in bids and ex.spool.read_result(futs[3].key)[0]["bundle"] in bids
    assert ex.spool.task_header(futs[5].key)["name"] == "square"
    assert ex.spool.payload_path(futs[5].key) == ex.spool.bundle_path(bid)
    assert ex.spool.counts()["tasks"] == 8
    # farm show and farm retry find it too (retry links it back in tasks/ to requeue it).
    show = subprocess.run([*FARM, "show", ex.spool.path, futs[3].key[:10]],
                          capture_output=True, text=True, timeout=30)
    bid3 = ex.spool.read_result(futs[3].key)[0]["bundle"]
    assert show.returncode == 0 and ex.spool.bundle_path(bid3) in show.stdout, show.stderr
    retry = subprocess.run([*FARM, "retry", ex.spool.path, "--failed"], capture_output=True,
                           text=True, timeout=30)
    assert "1 task(s) requeued" in retry.stdout, retry.stdout + retry.stderr
    assert [n for n in os.listdir(ex.spool.p("attempts")) if n.startswith(futs[3].key)]
    eventually(lambda: ex.spool.result_status(futs[3].key) == "failed", 30,
               "the requeued task to run (and fail) again")


def test_a_resumed_driver_does_not_submit_again_what_a_bundle_without_links_holds(tmp_path,
                                                                                  pools):
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent("""
        import sys, farm
        from farm import python_app
        from farm.executors import SpoolExecutor
        from farm.providers import LocalProvider

        @python_app
        def mark(i):
            import os, uuid
            open(os.path.join("runs", f"{i}.{uuid.uuid4().hex}"), "w").close()
            return i

        blocks = int(sys.argv[1])
        ex = SpoolExecutor(spool="s", provider=LocalProvider(init_blocks=blocks,
                           max_blocks=blocks), idle_timeout=5, heartbeat_period=0.5)
        with farm.load(farm.Config(executors=[ex])):
            futs = [mark(i) for i in range(300)]
            farm.flush()
            if blocks:
                print(sum(f.result(60) for f in futs), ex.stats["submitted"])
            else:
                print(len(ex.spool.ready_names()), ex.spool.ready_tasks())
    """))
    (tmp_path / "runs").mkdir()
    first = run_script(script, tmp_path, "0")  # no pool: all stays queued
    assert first.returncode == 0, first.stderr
    entries, queued = map(int, first.stdout.split())
    assert queued == 300 and entries < 300  # (in bundles)
    named = [n for s in os.listdir(tmp_path / "s" / "tasks")
             for n in os.listdir(tmp_path / "s" / "tasks" / s)]
    assert len(named) < entries  # (a call the writer found alone is written on its own)
    again = run_script(script, tmp_path, "1")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [str(sum(range(300))), "0"]  # nothing submitted again
    assert len(os.listdir(tmp_path / "runs")) == 300  # each ran once


def test_a_driver_killed_before_entering_a_bundle_without_links_leaves_garbage(tmp_path,
                                                                              monkeypatch):
    spool = Spool.create(tmp_path / "s")
    keys = [uuid.uuid4().hex for _ in range(3)]
    _killed_before_entering(monkeypatch, spool, _items(keys), links=False)
    again = Spool(spool.path)
    assert again.recover_bundles() == 0  # no key is anywhere: the next run submits them
    assert not os.listdir(again.p("tmp")) and not again.queued_keys()
    assert not any(again.is_orphan(k) for k in keys)



def _known_keys_with_a_move(monkeypatch, path, keys, move, at):
    """Spool.known_keys of a fresh spool holding keys in a bundle without links, a pool
    making its move right after the driver's listing number `at`."""
    real = fs.listdir
    spool = Spool.create(path)
    os.makedirs(spool.worker_dir("p0", 0))
    spool.put_tasks(_items(keys), links=False)
    (bundle,) = spool.ready_names()
    claim = spool.claim(bundle, spool.worker_dir("p0", 0)) if move == "give_back" else None
    n = 0

    def moving(d):
        nonlocal n
        names = real(d)
        n += 1
        if n != at:
            return names
        if claim is not None:
            spool.give_back(claim)
            return names
        wdir = spool.worker_dir("p1" if move == "claim_on_a_new_pool" else "p0", 0)
        os.makedirs(wdir, exist_ok=True)
        got = spool.claim(bundle, wdir)
        if move == "run":
            spool.publish_results([(k, {"status": OK}, b"") for k in keys])
            spool.retire_bundle(got)
        return names

    monkeypatch.setattr(fs, "listdir", moving)
    try:
        return Spool(spool.path).known_keys()
    finally:
        monkeypatch.setattr(fs, "listdir", real)


@pytest.mark.parametrize("move", ["run", "claim_on_a_new_pool", "give_back"])
def test_a_resumed_driver_knows_a_task_that_moves_on_while_it_lists_the_spool(
        tmp_path, monkeypatch, move):
    """known_keys lists the spool with a pool at work: whichever listing the pool's move
    comes after, each task of a bundle without links is in one of the two sets (else the
    driver would submit it again, and it would run twice: seen once in CI)."""
    keys = [uuid.uuid4().hex for _ in range(3)]
    calls = []
    real = fs.listdir
    monkeypatch.setattr(fs, "listdir", lambda d: calls.append(d) or real(d))
    probe = Spool.create(tmp_path / "probe")
    probe.put_tasks(_items(keys), links=False)
    probe.known_keys()
    monkeypatch.setattr(fs, "listdir", real)
    # The pool moves before the first listing, after each listing of entries, and after
    # the first and the last of the results' shards.
    results = [i + 1 for i, c in enumerate(calls) if "results" in c]
    moments = {0, results[0], results[-1]} | {
        i + 1 for i, c in enumerate(calls) if "results" not in c}
    for at in sorted(moments):
        done, queued = _known_keys_with_a_move(monkeypatch, tmp_path / f"s{at}", keys, move, at)
        assert not done & queued
        assert done | queued == set(keys), f"moved after listing {at}: {done}, {queued}"
