"""The spool: farm's on-disk protocol, and the only code that knows spool paths.

Layout and state machine are documented in docs/spool-format.md; the short version:

    tasks/XX/KEY            payload, written once (XX = first two hex digits of KEY)
    waiting/KEY             hard link of the payload: some dependency has no result yet
    ready/KEY[@N]           hard link of the payload: runnable (N = attempt, when > 0)
    claimed/POOL.W/KEY[@N]  moved here by the worker W of POOL that runs it
    results/XX/KEY          the outcome, written once (os.link: the first writer wins)
    notices/KEY             hard link of a new result, for the driver to consume
    deps/XX/KEY/DEPENDENT   empty file: DEPENDENT waits for KEY

A state change is one rename or link.  Who wins a race is decided by that call alone; a
stat or listdir made before it is only a hint (on NFS it may be seconds out of date).  That
a file is missing is decided only by fs (a lookup confirmed by a fresh listing) or by a
rename, link or O_EXCL outcome; ``peek_status`` and ``fs.peek`` are hints, used only where a
later look is certain (each use says why).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import random
import re
import socket
import time
from collections.abc import Iterable
from typing import Any

import yaml

from farm.errors import CorruptFile, SpoolError, WorkerLost, pack_exception
from farm.spool import fs, records, sign

log = logging.getLogger("farm.spool")

DIRS = ("tmp", "apps", "tasks", "waiting", "ready", "claimed", "results", "notices", "deps",
        "attempts", "pools", "blocks", "out", "logs", "quarantine", "control")
# Made with the spool: a shard directory made on first use is one that other nodes may have
# looked up and cached as missing (NFS), and would not see for seconds.
SHARDED = ("tasks", "results", "deps")
SHARDS = [f"{i:02x}" for i in range(256)]

OK, FAILED, DEP_FAILED = "ok", "failed", "dep_failed"
FIRST = "*"  # release_bundle: charge the first unfinished task (which one ran is unknown)


def shard(key: str) -> str:
    return key[:2]


_ENTRY = re.compile(r"([0-9a-f]{32}|B[0-9a-f]{20}-[0-9]+)(@[0-9]+)?")


def is_entry(name: str) -> bool:
    """Is name a task entry (KEY, KEY@N, or a bundle BID-N)?  Anything else in a state
    directory (an NFS .nfsXXXX file, a stray copy) is ignored."""
    return _ENTRY.fullmatch(name) is not None


def is_bundle(name: str) -> bool:
    """Is this entry (or notice) a bundle of several tasks (or results)?"""
    return name.startswith("B")


def entry_tasks(name: str) -> int:
    """How many tasks an entry stands for (a bundle's name ends with its size)."""
    if not is_bundle(name):
        return 1
    n = name.partition("@")[0].rpartition("-")[2]
    return int(n) if n.isdigit() else 1


def new_bundle_id(n: int) -> str:
    return f"B{random.getrandbits(80):020x}-{n}"


def split_name(name: str) -> tuple[str, int]:
    """A ready/claimed entry name -> (key, attempt)."""
    key, _, attempt = name.partition("@")
    return key, int(attempt) if attempt.isdigit() else 0


def entry_name(key: str, attempt: int) -> str:
    return f"{key}@{attempt}" if attempt else key


class Spool:
    """One spool directory.  ``Spool(path)`` opens an existing spool; ``Spool.create`` makes one.

    Every method is safe to call from many processes on many nodes at once; where a method
    can race, its docstring says which call decides.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.path.abspath(os.fspath(path))
        meta = os.path.join(self.path, "spool.yaml")
        if not os.path.isdir(self.path):
            raise SpoolError(
                f"no spool at {self.path}: the directory does not exist. Check the path, or "
                "start the driver (farm.load) first: it creates the spool"
            )
        try:
            with open(meta) as f:
                info = yaml.safe_load(f)
        except FileNotFoundError:
            raise SpoolError(
                f"{self.path} is not a farm spool (no spool.yaml); point farm at the spool "
                "directory itself, or at a new path to create one"
            ) from None
        except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: not UTF-8
            raise SpoolError(f"{meta}: cannot read spool metadata: {e}") from None
        if not isinstance(info, dict) or not isinstance(info.get("format"), int):
            raise SpoolError(f"{meta}: damaged spool metadata (no integer 'format' field)")
        if info["format"] > records.FORMAT:
            raise SpoolError(
                f"{self.path} was written by a newer farm (spool format {info['format']}, "
                f"this farm {_version()} reads format {records.FORMAT}); upgrade farm, or use "
                "a new spool"
            )
        self.info = info
        # Records are signed and checked with the user's key when there is one.  Without
        # one, only the directory's permissions protect the spool (see `private`).
        self.key = sign.load_key()
        st = os.stat(self.path)
        self.private = st.st_uid == os.getuid() and not st.st_mode & 0o022
        self._tmp_prefix = ""
        self._tmp_count = itertools.count()
        self._status: dict[str, str] = {}  # key -> OK: a success is never reset
        self._queued: tuple[float, set[str]] = (-1e9, set())
        self._edge_dirs: set[str] = set()  # deps/XX/ENTRY directories known to exist
        self._prefetched: tuple[str, bytes] | None = None  # (claim path, its payload)

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Spool:
        """Open the spool at path, creating it (mode 0700) if the directory is new or empty."""
        path = os.path.abspath(os.fspath(path))
        meta = os.path.join(path, "spool.yaml")
        sign.load_key(create=True)  # a driver always signs what it writes
        if os.path.exists(meta):
            return cls(path)
        os.makedirs(path, 0o700, exist_ok=True)
        stray = [n for n in os.listdir(path) if n not in DIRS]
        if stray:
            raise SpoolError(
                f"{path} exists and holds other files ({', '.join(sorted(stray)[:3])}...); "
                "farm creates spools only in new or empty directories"
            )
        os.chmod(path, 0o700)
        for d in DIRS:
            fs.mkdir(os.path.join(path, d))
        for d in SHARDED:
            for s in SHARDS:
                fs.mkdir(os.path.join(path, d, s))
        info = {
            "format": records.FORMAT,
            "farm": _version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "owner_uid": os.getuid(),
            "host": socket.gethostname(),
        }
        tmp = os.path.join(path, "tmp", f"spool.yaml.{os.getpid()}")
        fs.create(tmp, yaml.safe_dump(info, sort_keys=False).encode())
        # spool.yaml is the commit point: a crash before this rename leaves an empty-ish
        # directory that the next create() finishes.
        fs.rename(tmp, meta)
        return cls(path)

    def ensure_shards(self) -> None:
        """Make the shard directories a spool made by an older farm lacks (they used to be
        made on first use): one listing per sharded directory."""
        for d in SHARDED:
            have = set(fs.listdir(self.p(d)))
            for s in SHARDS:
                if s not in have:
                    fs.mkdir(self.p(d, s))

    # -- paths -----------------------------------------------------------------------------

    def p(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def task_path(self, key: str) -> str:
        return self.p("tasks", shard(key), key)

    def result_path(self, key: str) -> str:
        return self.p("results", shard(key), key)

    def worker_dir(self, pool: str, worker: int) -> str:
        return self.p("claimed", f"{pool}.{worker}")

    def out_path(self, key: str, name: str, stream: str) -> str:
        return self.p("out", shard(key), f"{name}-{key}.{stream}")

    def tmp(self, tag: str = "") -> str:
        pid = os.getpid()
        if not self._tmp_prefix.endswith(f".{pid}"):
            self._tmp_prefix = f"{socket.gethostname()}.{random.getrandbits(24):06x}.{pid}"
        return self.p("tmp", f"{self._tmp_prefix}.{next(self._tmp_count)}{tag}")

    # -- atomic publish ----------------------------------------------------------------------

    def _publish(self, final: str, data: bytes, keep_tmp: bool = False) -> str | None:
        """Write data to tmp/, then os.link it to final.  Returns the tmp path if this call
        published (the link decides: on EEXIST somebody else already did, and we return
        None).  The tmp file is removed unless keep_tmp (the caller renames it onward)."""
        tmp = self.tmp()
        try:
            fs.create(tmp, data)
            _link_into(tmp, final)
        except FileExistsError:
            fs.unlink(tmp)
            return None
        except BaseException:
            fs.unlink(tmp)
            raise
        if not keep_tmp:
            fs.unlink(tmp)
        return tmp

    def replace(self, final: str, data: bytes) -> None:
        """Atomically set the content of a mutable file (heartbeats, block records)."""
        tmp = self.tmp()
        try:
            fs.create(tmp, data)
            fs.rename(tmp, final)
        except OSError:
            fs.unlink(tmp)
            raise

    # -- apps and tasks ---------------------------------------------------------------------

    def put_app(self, app_id: str, header: dict[str, Any], body: bytes) -> None:
        path = self.p("apps", app_id)
        # (a hint: if the app is there but not visible here, the link below says so)
        if fs.peek(path, 0) is None:
            self._publish(path, records.encode("APP", header, body, self.key))

    def read_app(self, app_id: str) -> tuple[dict[str, Any], bytes]:
        path = self.p("apps", app_id)
        data = fs.read(path)
        if data is None:  # perhaps only not visible here yet: the caller decides
            raise FileNotFoundError(errno.ENOENT, "app payload not found", path)
        return records.decode("APP", data, path, self.key)

    def put_task(self, key: str, header: dict[str, Any], body: bytes, state: str) -> bool:
        """Publish a task payload and enter it in state ("ready" or "waiting") in three
        calls: create tmp/KEY.new, link it to tasks/XX/KEY (the commit point: EEXIST means
        the task exists already, and we return False), rename it into state/.

        kill -9 between the link and the rename leaves tmp/KEY.new linked to the payload;
        the next driver's create finds it (EEXIST), removes it and starts again, its link
        then fails, and is_orphan() (link count 1, no result) tells it to enqueue.
        """
        tmp = self.p("tmp", f"{key}.new")
        data = records.encode("TASK", header, body, self.key)
        try:
            try:
                fs.create(tmp, data, exclusive=True)
            except FileExistsError:
                fs.unlink(tmp)  # left by a driver that died here
                fs.create(tmp, data, exclusive=True)
            _link_into(tmp, self.task_path(key))
        except FileExistsError:
            fs.unlink(tmp)
            return False
        except OSError:
            fs.unlink(tmp)  # (a partial file must not stay behind: ENOSPC, EROFS...)
            raise
        fs.rename(tmp, self.p(state, key))
        return True

    def put_bundle(self, items: list[tuple[str, dict[str, Any], bytes]]) -> list[str]:
        """Publish ready tasks as one bundle: one file holding all their records, linked
        to tasks/XX/KEY for each key (the per-key commit, as in put_task), then renamed
        into ready/ as one entry.  1 + 2/K operations per task instead of 3.  Returns the
        keys that existed already (not published; the caller attaches to them).

        If any key existed, the bundle is not entered whole (it holds a task that is not
        ours to run): each new key gets its own ready/KEY link to the bundle file instead.
        kill -9 before the rename leaves tmp/BID.bundle; the next driver's
        recover_bundles() enters the keys that were linked to it, one by one.
        """
        bid = new_bundle_id(len(items))
        recs = []
        for key, header, body in items:
            header["bundle"] = bid  # the dependents of these tasks are indexed by bundle
            recs.append((key, records.encode("TASK", header, body, self.key)))
        tmp = self.p("tmp", f"{bid}.bundle")
        fs.create(tmp, records.encode_bundle(bid, "TASK", recs))
        linked, existed = [], []
        try:
            for key, _, _ in items:
                try:
                    _link_into(tmp, self.task_path(key))
                    linked.append(key)
                except FileExistsError:
                    existed.append(key)
            if existed:
                self._enter_each(tmp, linked)
            else:
                fs.rename(tmp, self.p("ready", bid))
        except OSError:
            if not linked:
                fs.unlink(tmp)
            raise  # (linked keys wait in tmp/ for the next driver's recover_bundles)
        return existed

    def _enter_each(self, src: str, keys: list[str], attempt: int = 0) -> None:
        """Give each key of the bundle file src its own ready/ entry, then drop src."""
        for key in keys:
            try:
                fs.link(src, self.p("ready", entry_name(key, attempt)))
            except FileExistsError:
                pass
        fs.unlink(src)

    def recover_bundles(self) -> int:
        """At a driver's start (it holds the driver lock, so no other driver writes
        bundles): finish the bundles a killed driver left in tmp/.  Keys linked to one get
        ready/ entries; a bundle no key was linked to is garbage.  Returns keys entered."""
        n = 0
        for name in fs.listdir(self.p("tmp")):
            if not name.endswith(".bundle"):
                continue
            path = self.p("tmp", name)
            st, data = fs.stat(path), fs.read(path)
            if st is None or data is None:
                continue
            keys = []
            if st.st_nlink > 1:
                try:
                    keys = [k for k, _ in records.bundle_records(data, path)[1]]
                except CorruptFile:
                    keys = []  # cut short while written: no key was linked to it yet
                keys = [k for k in keys
                        if getattr(fs.stat(self.task_path(k)), "st_ino", None) == st.st_ino
                        and self.result_status(k) is None]
            self._enter_each(path, keys)
            n += len(keys)
        return n

    def read_task(self, path: str, key: str | None = None) -> tuple[dict[str, Any], bytes]:
        """The task at path (a state entry or payload; key: which one, if path may be a
        bundle file under another name)."""
        got, self._prefetched = self._prefetched, None
        data = got[1] if got is not None and got[0] == path else fs.read(path)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "task vanished", path)
        key = key or split_name(os.path.basename(path))[0]
        header, body = records.pick("TASK", data, path, key, self.key)
        return _check_task(header, path), body

    def decode_task(self, rec: bytes, path: str, key: str) -> tuple[dict[str, Any], bytes]:
        """A task record from a bundle (path: the bundle's file, for messages), checked."""
        header, body = records.decode("TASK", rec, path, self.key)
        if header.get("key") != key:
            raise CorruptFile(path, f"bundle index says {key[:8]} but the record is of "
                                    f"{str(header.get('key'))[:8]}")
        return _check_task(header, path), body

    def read_bundle(self, path: str) -> tuple[dict[str, Any], list[tuple[str, bytes]]] | None:
        """A bundle entry's index and (key, record) pairs; None if it is gone."""
        data = fs.read(path)
        return None if data is None else records.bundle_records(data, path)

    def task_header(self, key: str) -> dict[str, Any] | None:
        """A task's header, without reading (or checking) its pickled arguments."""
        path = self.task_path(key)
        data = _read_head(path)
        if data is None:
            return None
        return _check_task(records.pick("TASK", data, path, key)[0], path)

    def label(self, key: str) -> str:
        """NAME-KEY8, as messages name a task (the name from its header, if readable)."""
        try:
            header = self.task_header(key) or {}
        except CorruptFile:
            header = {}
        return f"{header.get('name', 'task')}-{key[:8]}"

    def enqueue(self, key: str, ready: bool) -> None:
        """Link a published payload into ready/ or waiting/ (EEXIST: it is already there)."""
        try:
            fs.link(self.task_path(key), self.p("ready" if ready else "waiting", key))
        except FileExistsError:
            pass

    def is_orphan(self, key: str) -> bool:
        """True if the payload exists but no state entry links to it and it has no result:
        a driver died between publishing the payload and enqueueing it.

        The answer can be stale on NFS (cached link counts); a wrong True makes the caller
        enqueue again, and enqueue's link fails harmlessly if the entry is in ready/ or
        waiting/.
        """
        st = fs.stat(self.task_path(key))
        if st is None or fs.stat(self.result_path(key)) is not None:
            return False
        if st.st_nlink == 1:
            return True
        # A bundle's file has a link per task: look for an entry of the key or its bundle.
        try:
            bid = (self.task_header(key) or {}).get("bundle")
        except CorruptFile:
            # A damaged bundle (its entry was quarantined): entered again, the task fails
            # with an error naming the file, and the next run submits it afresh.
            return True
        return bool(bid) and not {key, bid} & self._queued_names()

    def _queued_names(self) -> set[str]:
        """Keys and bundles in waiting/, ready/ and claimed/ (a snapshot, kept 10 s: an
        entry only appears later for a key or bundle that was already in one)."""
        if time.monotonic() - self._queued[0] > 10:
            dirs = [self.p("waiting"), self.p("ready")]
            dirs += [self.p("claimed", w) for w in fs.listdir(self.p("claimed"))]
            self._queued = (time.monotonic(),
                            {split_name(n)[0] for d in dirs for n in fs.listdir(d)})
        return self._queued[1]

    def entry_of(self, key: str) -> str:
        """Where key's dependents are indexed: under its bundle, if it was submitted in one
        (so that a pool lists one directory per bundle, not one per task), else under key."""
        try:
            header = self.task_header(key) or {}
        except CorruptFile:
            header = {}
        return str(header.get("bundle") or key)

    def dependents(self, key: str, entry: str | None = None) -> list[str]:
        """The tasks indexed as waiting for key (entry: key's bundle, if known)."""
        entry = entry or key
        names = self._edges(entry)
        if entry == key:
            return names
        return [n[33:] for n in names if n.startswith(key) and n[32:33] == "."]

    def _edges(self, entry: str) -> list[str]:
        """The names in deps/XX/ENTRY, or [] if this node cannot see it.  A hint: [] may be
        stale if this node looked the name up before a driver made it, which a driver
        makes up for: it promotes a dependent itself once it has seen all its
        dependencies succeed (SpoolExecutor._backstop); and sweeps promote what waits.  A
        confirmed [] would cost a listing of the whole shard for every task that has no
        dependents, which is most tasks."""
        return fs.peek_names(self.p("deps", shard(entry), entry))

    def add_dependent(self, dep: str, key: str, entry: str | None = None) -> None:
        """Index key as waiting for dep: deps/XX/DEP/KEY, or deps/XX/BID/DEP.KEY when dep
        was submitted in bundle BID (entry)."""
        entry = entry or dep
        d = self.p("deps", shard(entry), entry)
        name = key if entry == dep else f"{dep}.{key}"
        # Index directories are never removed: one this process made (or found) stays, and
        # a dep's first edge costs a mkdir and a create, the next ones a create.
        if d not in self._edge_dirs:
            try:
                fs.mkdir(d)
            except FileNotFoundError:
                fs.mkdir(os.path.dirname(d))  # the first index directory of its shard
                fs.mkdir(d)
            if len(self._edge_dirs) > 100_000:
                self._edge_dirs.clear()
            self._edge_dirs.add(d)
        try:
            fs.create(os.path.join(d, name), b"", exclusive=True)
        except FileExistsError:
            pass

    # -- claims -----------------------------------------------------------------------------

    def ready_names(self) -> list[str]:
        return [n for n in fs.listdir(self.p("ready")) if is_entry(n)]

    def ready_tasks(self, names: list[str] | None = None) -> int:
        """Tasks in ready/ (a bundle counts as its size)."""
        return sum(entry_tasks(n) for n in (self.ready_names() if names is None else names))

    def claim(self, name: str, worker_dir: str) -> str | None:
        """Move ready/NAME into worker_dir.  The rename decides: ENOENT means another
        worker won, and we return None."""
        dst = os.path.join(worker_dir, name)
        try:
            fs.rename(self.p("ready", name), dst)
        except FileNotFoundError:
            return None
        return dst

    def release(self, claim_path: str, attempt: int) -> bool:
        """Put a claimed task back in ready/ (as attempt N).  False if it was not there.
        A bundle goes back as one entry per task that has no result yet."""
        key = split_name(os.path.basename(claim_path))[0]
        if is_bundle(key):
            return self.release_bundle(claim_path, attempt) is not None
        try:
            fs.rename(claim_path, self.p("ready", entry_name(key, attempt)))
            return True
        except FileNotFoundError:
            return False

    def give_back(self, path: str, key: str, attempt: int) -> bool:
        """Put one task of the claim at path back in ready/ as attempt N: the claim itself
        (a rename), or, for a task of a claimed bundle, a new link to the bundle file (the
        bundle's runner skips it).  False if the claim is gone (an observer took it)."""
        if not is_bundle(os.path.basename(path)):
            return self.release(path, attempt)
        try:
            fs.link(path, self.p("ready", entry_name(key, attempt)))
        except FileExistsError:
            pass
        except FileNotFoundError:
            return False
        return True

    def release_bundle(self, path: str, attempt: int, lost: str | None = None,
                       why: str = "", skip: Iterable[str] = ()) -> int | None:
        """Give a claimed bundle's tasks back, one ready/ entry each, except those with a
        result and those in skip (already given back).  lost: the key that was running
        when its worker or pool died, which is charged an attempt (see requeue_one); the
        others were not started and keep theirs.  Then the claim goes.  Returns how many
        tasks were lost mid-run (0 or 1), None if the claim was gone.

        kill -9 part way: the claim stays and the next requeue does it again (links that
        exist fail harmlessly; one already claimed from ready/ can run twice, and its
        results are still published once)."""
        try:
            got = self.read_bundle(path)
        except CorruptFile as e:
            self.quarantine(path, str(e))
            return 0
        if got is None:
            return None
        skip = set(skip)
        n = 0
        for key, _ in got[1]:
            if key in skip or self.result_status(key) is not None:
                continue
            if key == lost or lost == FIRST:
                lost = None
                n += self.requeue_one(path, key, attempt, why)
            else:
                self.give_back(path, key, attempt)
        fs.unlink(path)
        return n

    # -- results ----------------------------------------------------------------------------

    def publish_result(self, key: str, header: dict[str, Any], body: bytes = b"") -> bool:
        """Publish the outcome of key.  os.link decides: False if a result already existed
        (a racing pool won, and this outcome is dropped).  The winner also leaves a notice
        for the driver: the tmp file renamed into notices/ (the same inode as the result)."""
        header = {"key": key, **header}
        tmp = self._publish(self.result_path(key),
                            records.encode("RESULT", header, body, self.key), True)
        if tmp is None:
            return False
        if header["status"] == OK:
            self._status[key] = OK
        # A crash here leaves no notice; the driver's periodic check of pending keys finds
        # the result anyway (and tmp/ garbage is swept).
        fs.rename(tmp, self.p("notices", key))
        return True

    def publish_results(self, batch: list[tuple[str, dict[str, Any], bytes]]) -> list[str]:
        """Publish several outcomes with one file: the results written as one bundle, linked
        to results/XX/KEY per key (each link decides for its key, as in publish_result),
        then renamed into notices/ as one notice.  1 + 2/R operations per result instead
        of 3, and the driver reads R results with one open.  Returns the keys published.

        If some key already had a result, the bundle holds an outcome that lost: it is not
        a notice then; each winner gets notices/KEY (a link to the bundle) instead.  A
        kill -9 after some links leaves results without a notice (the driver's periodic
        check of pending keys finds them) and tasks without a result (their bundle claim
        is still held, and is requeued)."""
        if len(batch) == 1:
            key, header, body = batch[0]
            return [key] if self.publish_result(key, header, body) else []
        bid = new_bundle_id(len(batch))
        recs = [(k, records.encode("RESULT", {"key": k, **h}, b, self.key)) for k, h, b in batch]
        tmp = self.p("tmp", f"{bid}.results")
        fs.create(tmp, records.encode_bundle(bid, "RESULT", recs))
        won = []
        try:
            for key, header, _ in batch:
                try:
                    _link_into(tmp, self.result_path(key))
                except FileExistsError:
                    continue
                won.append(key)
                if header.get("status") == OK:
                    self._status[key] = OK
        except OSError:
            if not won:
                fs.unlink(tmp)
            raise
        if len(won) == len(batch):
            fs.rename(tmp, self.p("notices", bid))
        else:
            self._enter_notices(tmp, won)
        return won

    def _enter_notices(self, src: str, keys: list[str]) -> None:
        for key in keys:
            try:
                fs.link(src, self.p("notices", key))
            except FileExistsError:
                pass
        fs.unlink(src)

    def read_result(self, key: str, path: str | None = None) -> tuple[dict[str, Any], bytes] | None:
        path = path or self.result_path(key)
        data = fs.read(path)
        return None if data is None else records.pick("RESULT", data, path, key, self.key)

    def decode_result(self, rec: bytes, path: str, key: str) -> tuple[dict[str, Any], bytes]:
        """A result record from a bundle (path: the file, for messages), checked."""
        header, body = records.decode("RESULT", rec, path, self.key)
        if header.get("key") != key:
            raise CorruptFile(path, f"bundle index says {key[:8]} but the record is of "
                                    f"{str(header.get('key'))[:8]}")
        return header, body

    def read_notice(self, name: str) -> list[tuple[str, bytes]] | None:
        """The (key, result record) pairs of a notice: one, or a bundle's; None if the notice
        is gone.  Check each with records.decode before use."""
        path = self.p("notices", name)
        data = fs.read(path)
        if data is None:
            return None
        if not records.is_bundle(data):
            return [(name, data)]
        recs = records.bundle_records(data, path)[1]
        # notices/KEY may be a link to a bundle of results: only KEY's is its notice.
        return recs if is_bundle(name) else [(k, r) for k, r in recs if k == name]

    def result_status(self, key: str) -> str | None:
        """ok / failed / dep_failed, or None while key has no result (confirmed by a fresh
        listing of its shard).  Successes are cached (never reset); failures are not
        (rerun() may move them away)."""
        return self._result_status(key, fs.read)

    def peek_status(self, key: str) -> str | None:
        """result_status, where None is a hint: the result may exist but not be visible
        here yet.  For checks that are repeated until they see it (promotions, which the
        driver and sweeps redo; the driver's periodic look at its pending keys) and for
        first guesses that a link or rename then decides."""
        return self._result_status(key, fs.peek)

    def _result_status(self, key: str, read) -> str | None:
        status = self._status.get(key)
        if status is None:
            path = self.result_path(key)
            data = _read_head(path, read)
            if data is None:
                return None
            try:
                status = str(records.pick("RESULT", data, path, key)[0].get("status"))
            except CorruptFile:
                return FAILED  # a damaged result: its dependents cannot run
            if status == OK:
                if len(self._status) > 500_000:
                    self._status.clear()
                self._status[key] = status
            elif fs.absent(path):
                # A failure may have been moved away by a rerun, and this node may still
                # see the old file (NFS): trust a failure only if a listing shows it.
                return None
        return status

    def notices(self) -> list[str]:
        return fs.listdir(self.p("notices"))

    def drop_notice(self, key: str) -> None:
        fs.unlink(self.p("notices", key))

    def record_attempt(self, key: str, attempt: int, header: dict[str, Any], body: bytes) -> None:
        """Keep the outcome of a failed attempt that is being retried (for reports)."""
        self._publish(self.p("attempts", f"{key}.{attempt}"),
                      records.encode("RESULT", {"key": key, **header}, body, self.key))

    def rerun(self, key: str) -> list[str]:
        """Run a failed task again, and with it the dependents that failed because of it.
        (A task whose payload is gone only loses its result: the script submits it again.)

        Each failed result is renamed into attempts/ (the rename decides: a result that is
        already gone was reset by someone else, and nothing happens), any unread notice of
        it is dropped first, and the payload goes back to ready/ or, while a dependency has
        no successful result, to waiting/.  Returns the keys requeued.  kill -9 part way
        leaves payloads in no state and without a result: orphans, which a driver enqueues
        when the script submits them again (or rerun again: it skips what has no result).
        """
        requeued = []
        work = [key]
        while work:
            k = work.pop()
            try:
                header = self.task_header(k)
            except CorruptFile:
                header = None
            fs.unlink(self.p("notices", k))
            try:
                fs.rename(self.result_path(k),
                          self.p("attempts", f"{k}.rerun-{time.time_ns()}"))
            except FileNotFoundError:
                continue
            if header is None:
                # The payload was quarantined (damaged): with its result gone too, the next
                # run of the script submits the task afresh.
                continue
            pending = [d for d in header.get("deps", []) if self.result_status(d) != OK]
            for d in pending:
                self.add_dependent(d, k, self.entry_of(d))
            self.enqueue(k, ready=not pending)
            if pending:
                self.try_promote(k)  # entry, edges, then one look (a driver's backstop too)
            requeued.append(k)
            work += [t for t in self.dependents(k, header.get("bundle"))
                     if self.result_status(t) == DEP_FAILED]
        return requeued

    def failed_keys(self) -> list[str]:
        """Keys whose result is a failure of the task itself (not of a dependency)."""
        return [k for k, h in self.iter_results() if h.get("status") == FAILED]

    # -- the graph --------------------------------------------------------------------------

    def settle_dependents(self, key: str, claim_into: str | None = None,
                          entry: str | None = None) -> str | None:
        """Called after key's result is published: promote each waiting dependent whose deps
        all succeeded, and fail (with a dependency error) those with a failed dep.
        entry: where key's dependents are indexed (entry_of; looked up if not given).

        With claim_into, the first promoted dependent is moved straight into that worker
        directory instead of ready/, and its claim path is returned: the worker that made a
        task runnable runs it next, without a round trip through ready/.
        """
        return self._settle([(key, d) for d in self.dependents(key, entry or self.entry_of(key))],
                            claim_into)

    def settle_bundle(self, bid: str) -> None:
        """settle_dependents for every task of bundle bid that has a result: one listing
        of the bundle's index of dependents, whatever its size."""
        edges = []
        for name in self._edges(bid):
            dep, _, dependent = name.partition(".")
            if dependent and self.peek_status(dep) is not None:
                edges.append((dep, dependent))
        self._settle(edges, None)

    def _settle(self, edges: list[tuple[str, str]], claim_into: str | None) -> str | None:
        claimed = None
        work = [dependent for _, dependent in edges]
        while work:
            dependent = work.pop()
            outcome = self.try_promote(dependent, claim_into if claimed is None else None)
            if outcome == DEP_FAILED:
                # (a waiting task is never in a bundle: its own dependents are under its key)
                work += self.dependents(dependent)
            elif outcome and outcome != "ready":
                claimed = outcome
        return claimed

    def try_promote(self, key: str, claim_into: str | None = None) -> str | None:
        """Move waiting/KEY on if its deps are settled.  Returns "ready", a claim path,
        DEP_FAILED, or None (still waiting, or another process moved it first).

        The rename out of waiting/ decides who acts: a loser gets ENOENT and does nothing.
        A dependency's result that is not visible here yet counts as not there (a hint:
        peek_status): the task then waits for the next promoter, which the driver and the
        sweeps guarantee.
        """
        path = self.task_path(key)
        try:
            data = _read_head(path)
            if data is None:
                return None
            header = _check_task(records.pick("TASK", data, path, key)[0], path)
        except CorruptFile as e:
            self.fail_damaged(key, e, self.p("waiting", key))
            return DEP_FAILED  # (its dependents are settled as after any failure)
        failed = []
        for dep in header.get("deps", []):
            status = self.peek_status(dep)
            if status is None:
                return None
            if status != OK:
                failed.append(dep)
        got = self.advance(key, failed, header.get("name"), claim_into)
        if claim_into and got and got != DEP_FAILED and len(data) < HEAD:
            # The whole payload was read (write once: it is what the claim holds), so
            # read_task does not open it again.
            self._prefetched = (got, data)
        return got

    def advance(self, key: str, failed: list[str], name: str | None = None,
                claim_into: str | None = None) -> str | None:
        """Move waiting/KEY on, its dependencies all settled (failed: those that did not
        succeed).  The driver calls this directly when it has seen every dependency's
        outcome; try_promote after reading them from the spool."""
        src = self.p("waiting", key)
        if failed:
            # The result first (the link decides between racing completers), then the
            # waiting/ entry goes: a kill -9 in between leaves an entry with a result,
            # which the sweep clears.
            names = [self.label(d) for d in failed]
            self.publish_result(key, {
                "status": DEP_FAILED, "name": name, "failed_deps": failed,
                "error": f"DependencyError: dependencies failed: {', '.join(names)}",
                "t_end": time.time(),
            })
            fs.unlink(src)
            return DEP_FAILED
        dst = os.path.join(claim_into, key) if claim_into else self.p("ready", key)
        try:
            fs.rename(src, dst)
        except FileNotFoundError:
            return None
        return dst if claim_into else "ready"

    def sweep(self) -> dict[str, int]:
        """Repair lost wakeups; safe to run anywhere, any time, by several processes at once.

        - a waiting task whose deps are all settled is promoted (or failed);
        - claims still held under a pool declared dead are requeued (or failed);
        - a ready or claimed entry whose task already has a result is removed (its pool died
          between publishing the result and dropping the claim);
        - stale tmp/ files (over an hour old: nobody is still writing them) are removed.

        Results are looked up with peek_status: a result not visible yet leaves its entry
        for the next sweep; an entry is only ever removed for a result that was seen.
        """
        counts = {"promoted": 0, "cleared": 0, "tmp": 0, "requeued": 0}
        for key in fs.listdir(self.p("waiting")):
            if not is_entry(key):
                continue
            if self.peek_status(key) is not None:  # e.g. a dep failure half recorded
                fs.unlink(self.p("waiting", key))
                counts["cleared"] += 1
            elif self.try_promote(key):
                counts["promoted"] += 1
        dead = {n[:-5] for n in fs.listdir(self.p("pools")) if n.endswith(".dead")}
        workers = fs.listdir(self.p("claimed"))
        for w in workers:
            # The observer that declared the pool dead may itself have died half way.
            if w.rpartition(".")[0] in dead:
                counts["requeued"] += self.requeue_claims(
                    self.p("claimed", w), f"pool {w.rpartition('.')[0]} was declared dead")
        for d in [self.p("ready")] + [self.p("claimed", w) for w in workers]:
            for name in fs.listdir(d):
                key = split_name(name)[0]
                if not is_entry(name):
                    continue
                if is_bundle(key):
                    if d != self.p("ready") and self._bundle_done(os.path.join(d, name)) \
                            and fs.unlink(os.path.join(d, name)):
                        counts["cleared"] += 1
                        self.settle_bundle(key)
                elif self.peek_status(key) is not None and fs.unlink(os.path.join(d, name)):
                    counts["cleared"] += 1
                    self.settle_dependents(key)
        now = time.time()
        for name in fs.listdir(self.p("tmp")):
            st = fs.stat(self.p("tmp", name))
            if st and now - st.st_mtime > 3600 and fs.unlink(self.p("tmp", name)):
                counts["tmp"] += 1
        return counts

    def _bundle_done(self, path: str) -> bool:
        """Has every task of the bundle at path a result?  (Its pool died before it dropped
        the claim.)"""
        try:
            got = self.read_bundle(path)
        except CorruptFile:
            return False
        return got is not None and all(self.peek_status(k) is not None for k, _ in got[1])

    # -- dead workers and pools ----------------------------------------------------------------

    def requeue_claims(self, wdir: str, why: str, running: str | None = None) -> int:
        """Deal with the claims a dead worker or pool left in wdir.  A task that already has
        a result just loses the claim (and its dependents are settled); the others go back
        to ready/ as attempt + 1, or fail with WorkerLost once their retries are spent.  Of
        a bundle, only the task that was running (`running`, when the pool knows it, else
        the first without a result) is charged; the rest go back unchanged.
        Returns how many tasks were lost mid-run."""
        lost = 0
        for name in fs.listdir(wdir):
            key, attempt = split_name(name)
            path = os.path.join(wdir, name)
            if is_bundle(key):
                lost += self.release_bundle(path, attempt, running or FIRST, why) or 0
            elif self.result_status(key) is None:
                lost += self.requeue_one(path, key, attempt, why)
            else:
                fs.unlink(path)
                self.settle_dependents(key)
        return lost

    def requeue_one(self, path: str, key: str, attempt: int, why: str) -> int:
        """A task lost mid-run (the claim at path, or a task of the bundle at path): back
        to ready/ as attempt + 1, or failed with WorkerLost when its retries are spent."""
        try:
            header = self.task_header(key) or {}
        except CorruptFile:
            header = {}
        if attempt + 1 <= (header.get("retries") or 0):
            self.give_back(path, key, attempt + 1)
            return 1
        exc = WorkerLost(f"task {header.get('name')}-{key[:8]}: {why}")
        self.publish_result(key, {
            "status": FAILED, "name": header.get("name"), "attempt": attempt,
            "error": f"WorkerLost: {exc}", "t_end": time.time()}, pack_exception(exc))
        if not is_bundle(os.path.basename(path)):
            fs.unlink(path)
        self.settle_dependents(key, entry=header.get("bundle"))
        return 1

    def fail_damaged(self, key: str, err: CorruptFile, entry: str | None = None) -> None:
        """A task whose payload is damaged or forged: move it out of the protocol (its
        state entry to quarantine/, and tasks/XX/KEY too, so that a re-run of the script
        submits it afresh) and give it a failed result naming the file."""
        if entry:
            self.quarantine(entry, str(err))
        fs.unlink(self.task_path(key))
        exc = SpoolError(f"task {key[:8]}: payload {err.path} is damaged or forged "
                         f"({err.why}); it was quarantined and not run. Re-run the script to "
                         "submit the task again")
        self.publish_result(key, {"status": FAILED, "error": f"SpoolError: {exc}",
                                  "t_end": time.time()}, pack_exception(exc))

    def declare_dead(self, pool: str, why: str) -> int | None:
        """Take over a silent pool's claims.  Renaming its heartbeat to pools/POOL.dead
        decides: exactly one observer wins; the others, and a pool that exited meanwhile,
        get ENOENT and None.  The pool, if it was only slow, sees the .dead file at its next
        heartbeat and stops; a result it still publishes for a requeued task either wins
        the link race or is dropped: one result either way."""
        try:
            fs.rename(self.p("pools", f"{pool}.yaml"), self.p("pools", f"{pool}.dead"))
        except FileNotFoundError:
            return None
        lost = 0
        for w in fs.listdir(self.p("claimed")):
            if w.rpartition(".")[0] == pool:
                lost += self.requeue_claims(self.p("claimed", w), why)
        log.warning("pool %s declared dead (%s): %d running task(s) requeued or failed",
                    pool, why, lost)
        return lost

    # -- one driver at a time -------------------------------------------------------------------

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
            if self._publish(lock, data) is not None:
                return
            raw = fs.read(lock)
            owner = _yaml(raw) if raw is not None else None
            if raw is None:
                continue  # released meanwhile
            if isinstance(owner, dict) and _driver_alive(self, owner, lease):
                hb = _yaml(fs.read(self.p("control", f"driver-{owner.get('id')}.yaml")))
                beat = time.time() - float((hb or {}).get("time", 0) or 0)
                raise SpoolError(
                    f"spool {self.path} is in use by another driver: pid {owner.get('pid')} "
                    f"on {owner.get('host')} (last heartbeat {beat:.0f} s ago). One driver "
                    "at a time: wait for it to end, stop it, or use another spool")
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
                        owner)
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

    # -- quarantine, pools, control ------------------------------------------------------------

    def quarantine(self, path: str, why: str) -> str:
        """Move a bad file out of the protocol's way, with a note saying why."""
        dst = self.p("quarantine", f"{os.path.basename(path)}.{int(time.time())}")
        try:
            fs.rename(path, dst)
        except FileNotFoundError:
            return dst
        fs.create(dst + ".why", (why + "\n").encode())
        log.error("quarantined %s -> %s: %s", path, dst, why)
        return dst

    def write_heartbeat(self, pool: str, info: dict[str, Any]) -> None:
        self.replace(self.p("pools", f"{pool}.yaml"), yaml.safe_dump(info).encode())

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

    def pool_ids(self) -> tuple[list[str], set[str]]:
        """The pools with a heartbeat (sorted) and those declared dead: one listdir."""
        names = fs.listdir(self.p("pools"))
        return (sorted(n[:-5] for n in names if n.endswith(".yaml")),
                {n[:-5] for n in names if n.endswith(".dead")})

    def read_heartbeats(self, pools: Iterable[str]) -> list[dict[str, Any]]:
        """The heartbeat records of the given pools (those still readable)."""
        out = []
        for pool in pools:
            info = _yaml(fs.read(self.p("pools", f"{pool}.yaml")))
            if isinstance(info, dict) and "pool" in info:
                out.append(info)
        return out

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
        return fs.read(self.p("control", "shutdown"))

    def request_shutdown(self, on: bool = True) -> None:
        path = self.p("control", "shutdown")
        if on:
            self.replace(path, os.urandom(8).hex().encode())
        else:
            fs.unlink(path)

    # -- counting ------------------------------------------------------------------------------

    def counts(self, results: int | None = None) -> dict[str, int]:
        """Tasks by state, by listing directories (one listdir per state and shard).
        results: the number of results, if the caller has just counted them."""
        c = {"waiting": len(fs.listdir(self.p("waiting"))),
             "ready": self.ready_tasks(),
             "running": sum(entry_tasks(n) for w in fs.listdir(self.p("claimed"))
                            for n in fs.listdir(self.p("claimed", w)))}
        c["tasks"] = _count_sharded(self, "tasks")
        c["results"] = _count_sharded(self, "results") if results is None else results
        return c

    def result_keys(self) -> set[str]:
        """The keys that have a result now: one fresh listing per shard."""
        return {k for s in SHARDS for k in fs.listdir(self.p("results", s)) if is_entry(k)}

    def iter_results(self, keys: Iterable[str] | None = None):
        """(key, header) of every result (or of the given keys that have one)."""
        if keys is None:
            keys = (k for s in SHARDS for k in fs.listdir(self.p("results", s)))
        for key in keys:
            data = _read_head(self.result_path(key))
            if data is None:
                continue
            try:
                yield key, records.pick("RESULT", data, self.result_path(key), key)[0]
            except CorruptFile:
                yield key, {"status": "corrupt"}


class PoolWatch:
    """Liveness by counters, not clocks: a pool whose heartbeat counter has not moved for
    its lease, timed on this observer's own monotonic clock, is declared dead.  Any number
    of observers (the driver, idle pools) may watch; Spool.declare_dead lets one win."""

    def __init__(self, spool: Spool, me: str | None = None):
        self.spool = spool
        self.me = me
        self.seen: dict[str, tuple[Any, float]] = {}

    def check(self, records: list[dict[str, Any]] | None = None) -> dict[str, int]:
        """Look once; returns {pool: tasks lost} for each pool this observer declared dead.
        records: the heartbeats, if the caller has just read them."""
        now = time.monotonic()
        dead = {}
        for hb in self.spool.heartbeats() if records is None else records:
            pool = hb["pool"]
            if pool == self.me or hb.get("state") != "running":
                continue
            counter = hb.get("counter")
            prev = self.seen.get(pool)
            if prev is None or prev[0] != counter:
                self.seen[pool] = (counter, now)
                continue
            try:
                lease = float(hb.get("lease") or 30)
            except (TypeError, ValueError):
                lease = 30.0  # a damaged heartbeat: assume the default lease
            if now - prev[1] > lease:
                lost = self.spool.declare_dead(
                    pool, f"pool {pool} on {hb.get('host')} stopped its heartbeat "
                          f"(silent for over {lease:g} s) while running it")
                if lost is not None:
                    dead[pool] = lost
                self.seen.pop(pool, None)
        return dead


def driver_identity() -> dict[str, Any]:
    """Who this process is, for the driver lock: unique id, host, pid, process start time."""
    import psutil
    return {"id": f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(32):08x}",
            "host": socket.gethostname(), "pid": os.getpid(),
            "proc_start": psutil.Process().create_time(), "since": time.time()}


def _driver_alive(spool: Spool, owner: dict[str, Any], lease: float) -> bool:
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


def _yaml(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None


def _read_head(path: str, read=fs.read) -> bytes | None:
    """Enough of a record to decode its header (magic line and header line), read in one
    go in the common case: headers are small, bodies may be large.  A bundle is read whole
    (the record wanted may be anywhere in it; bundles hold only small records).  read:
    fs.read, or fs.peek for a hint."""
    data = read(path, HEAD)
    if data is not None and len(data) == HEAD and (
            records.is_bundle(data) or data.count(b"\n", 0, HEAD) < 2):
        data = read(path)
    return data


HEAD = 65536


def _check_task(header: dict[str, Any], path: str) -> dict[str, Any]:
    """A task header has the fields the protocol routes by, of the right types."""
    deps = header.get("deps")
    if (header.get("kind") not in ("python", "bash") or not isinstance(header.get("app"), str)
            or not isinstance(header.get("name"), str) or not isinstance(deps, list)
            or not all(isinstance(d, str) for d in deps)
            or not isinstance(header.get("retries", 0), int)):
        raise CorruptFile(path, "task header lacks kind, app, name or deps, or has them of "
                                "the wrong type")
    return header


def _link_into(src: str, dst: str) -> None:
    """os.link, making dst's (shard) directory on first use."""
    try:
        fs.link(src, dst)
    except FileNotFoundError:
        fs.mkdir(os.path.dirname(dst))
        fs.link(src, dst)


def _count_sharded(spool: Spool, top: str) -> int:
    return sum(len(fs.listdir(spool.p(top, s))) for s in SHARDS)


def _version() -> str:
    from farm import __version__
    return __version__
