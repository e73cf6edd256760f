"""The spool's layout: where every file of the protocol lives, and how one is written.

``Layout`` is the only code that builds spool paths (the other modules, and farm's
providers, executors and commands, ask it), opens or creates a spool, and writes files the
protocol's way: to tmp/ first, then one link or rename into place.  Names of state entries
(task keys, attempts, bundle ids) are parsed here too.  docs/spool-format.md is the contract.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import yaml

from farm.errors import SpoolError
from farm.spool import fs, records, sign

log = logging.getLogger("farm.spool")

DIRS = ("tmp", "apps", "tasks", "waiting", "ready", "claimed", "results", "notices", "deps",
        "attempts", "pools", "blocks", "out", "logs", "quarantine", "control", "runs",
        "nodes")
# Made with the spool: a shard directory made on first use is one that other nodes may have
# looked up and cached as missing (NFS), and would not see for seconds.
SHARDED = ("tasks", "results", "deps")
SHARDS = [f"{i:02x}" for i in range(256)]
OK, FAILED, DEP_FAILED = "ok", "failed", "dep_failed"
HEAD = 65536  # bytes read to decode a record's header (see _read_head)


def shard(key: str) -> str:
    return key[:2]


_ENTRY = re.compile(r"([0-9a-f]{32}|B[0-9a-f]{20}-[0-9]+)(@[0-9]+)?(~[0-9]+)?")


DOORBELL = "shutdown"  # a name in ready/ that is no entry: see Paths.doorbell_path


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
    """A ready/claimed entry name (KEY[@ATTEMPT][~PRIORITY]) -> (key, attempt)."""
    key, _, attempt = name.partition("~")[0].partition("@")
    return key, int(attempt) if attempt.isdigit() else 0


def entry_name(key: str, attempt: int, priority: int = 0) -> str:
    """A task's name in ready/ and claimed/: its key, the attempt after the first, and
    its priority when it has one (so that a worker can order what it lists)."""
    name = f"{key}@{attempt}" if attempt else key
    return f"{name}~{priority}" if priority else name


def entry_priority(name: str) -> int:
    _, tilde, p = name.rpartition("~")
    return int(p) if tilde and p.isdigit() else 0


def priority_of(header: dict[str, Any]) -> int:
    """A task's priority, from its header's request (0: none)."""
    req = header.get("resources")
    try:
        return max(0, int(req.get("priority") or 0)) if isinstance(req, dict) else 0
    except (TypeError, ValueError):
        return 0


class Paths:
    """Where each file of the spool at path lives: the only code that builds spool paths.
    Opens nothing (a tool that must not touch farm's state, e.g. the benchmarks, can ask
    for paths without opening the spool)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.path.abspath(os.fspath(path))

    def p(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def task_path(self, key: str) -> str:
        return self.p("tasks", shard(key), key)

    def result_path(self, key: str) -> str:
        return self.p("results", shard(key), key)

    def bundle_path(self, bid: str) -> str:
        """Where a task bundle's file is kept once its tasks are run or given back (the
        payload of its tasks that have no tasks/XX/KEY link of their own)."""
        return self.p("tasks", bid[1:3], bid)

    def worker_dir(self, pool: str, worker: int) -> str:
        return self.p("claimed", f"{pool}.{worker}")

    def out_path(self, key: str, name: str, stream: str) -> str:
        return self.p("out", shard(key), f"{name}-{key}.{stream}")

    def notice_path(self, name: str) -> str:
        return self.p("notices", name)

    def attempt_path(self, key: str, attempt: int) -> str:
        """Where the outcome of a failed attempt that was retried is kept."""
        return self.p("attempts", f"{key}.{attempt}")

    def is_app(self, path: str) -> bool:
        """Is path an app payload (apps/APP)?"""
        return os.path.dirname(path) == self.p("apps")

    def block_file(self, block: str, ext: str) -> str:
        """A block's script (ext "sh") or record ("yaml")."""
        return self.p("blocks", f"{block}.{ext}")

    def block_log(self, block: str) -> str:
        return self.p("logs", f"{block}.log")

    def heartbeat_path(self, pool: str) -> str:
        return self.p("pools", f"{pool}.yaml")

    def heartbeats_glob(self) -> str:
        """A glob pattern of the pools' heartbeat files."""
        return self.p("pools", "*.yaml")

    def block_records_glob(self) -> str:
        return self.p("blocks", "*.yaml")

    def run_manifest(self, name: str) -> str:
        """The record of a farm run (its lines and their keys)."""
        return self.p("runs", f"{name}.yaml")

    def shutdown_path(self) -> str:
        return self.p("control", "shutdown")

    def doorbell_path(self) -> str:
        """ready/shutdown: rung with a shutdown request, so that a cold pool, which lists
        ready/ more often than control/, hears of it (no task entry has that name)."""
        return self.p("ready", DOORBELL)


_L = TypeVar("_L", bound="Layout")


class Layout(Paths):
    """One spool directory: ``Layout(path)`` opens an existing spool (``Spool`` adds the
    protocol); ``Spool.create`` makes one."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(path)
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
    def create(cls: type[_L], path: str | os.PathLike[str]) -> _L:
        """Open the spool at path, creating it (mode 0700) if the directory is new or empty."""
        path = os.path.abspath(os.fspath(path))
        meta = os.path.join(path, "spool.yaml")
        sign.load_key(create=True)  # a driver always signs what it writes
        if os.path.exists(meta):
            return cls(path)
        try:
            return cls._make(path, meta)
        except SpoolError:
            raise
        except OSError as e:
            raise SpoolError(f"cannot make the spool {path}: {_why_not(e, path)}") from None

    @classmethod
    def _make(cls: type[_L], path: str, meta: str) -> _L:
        if os.path.exists(path) and not os.path.isdir(path):
            raise SpoolError(f"cannot make the spool {path}: it is a file, not a directory; "
                             "give a new path (farm makes the directory)")
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

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Is there a spool at path (a spool.yaml: the last step of its creation)?"""
        return os.path.exists(os.path.join(os.fspath(path), "spool.yaml"))

    def ensure_shards(self) -> None:
        """Make the shard directories a spool made by an older farm lacks (they used to be
        made on first use): one listing per sharded directory."""
        for d in SHARDED:
            have = set(fs.listdir(self.p(d)))
            for s in SHARDS:
                if s not in have:
                    fs.mkdir(self.p(d, s))

    def tmp(self, tag: str = "") -> str:
        pid = os.getpid()
        if not self._tmp_prefix.endswith(f".{pid}"):
            self._tmp_prefix = f"{socket.gethostname()}.{random.getrandbits(24):06x}.{pid}"
        return self.p("tmp", f"{self._tmp_prefix}.{next(self._tmp_count)}{tag}")

    # -- writing -----------------------------------------------------------------------------

    def _publish(self, final: str, data: bytes) -> bool:
        """Write data to tmp/, then os.link it to final.  The link decides: False if final
        existed already (somebody else published first)."""
        tmp = self.tmp()
        try:
            fs.create(tmp, data)
            _link_into(tmp, final)
        except FileExistsError:
            return False
        finally:
            fs.unlink(tmp)  # (also a partial one: ENOSPC, EROFS...)
        return True

    def replace(self, final: str, data: bytes) -> None:
        """Atomically set the content of a mutable file (heartbeats, block records)."""
        tmp = self.tmp()
        try:
            fs.create(tmp, data)
            fs.rename(tmp, final)
        except OSError:
            fs.unlink(tmp)
            raise

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


def _why_not(err: OSError, path: str) -> str:
    """Why a directory could not be made, in words a user can act on."""
    if isinstance(err, NotADirectoryError) or (isinstance(err, FileExistsError)):
        return (f"a part of the path is a file, not a directory ({err.filename or path}); "
                "give another path")
    if isinstance(err, PermissionError):
        return (f"permission denied ({err.filename or path}); choose a directory you can "
                "write to")
    return fs.explain(err)


def _read_head(path: str, read: Callable[..., bytes | None] = fs.read) -> bytes | None:
    """Enough of a record to decode its header (magic line and header line), read in one
    go in the common case: headers are small, bodies may be large.  A bundle is read whole
    (the record wanted may be anywhere in it; bundles hold only small records).  read:
    fs.read, or fs.peek for a hint."""
    data = read(path, HEAD)
    if data is not None and len(data) == HEAD and (
            records.is_bundle(data) or data.count(b"\n", 0, HEAD) < 2):
        data = read(path)
    return data


def _link_into(src: str, dst: str) -> None:
    """os.link, making dst's (shard) directory on first use."""
    try:
        fs.link(src, dst)
    except FileNotFoundError:
        fs.mkdir(os.path.dirname(dst))
        fs.link(src, dst)


LINKERS = 8  # links of one batch in flight at once (_link_each)
_linkers: tuple[int, ThreadPoolExecutor] | None = None


def _link_each(pairs: list[tuple[str, str]]) -> list[OSError | None]:
    """_link_into(src, dst) for each pair, up to LINKERS at a time: on a network
    filesystem each link is a round trip to the metadata server, which serves several at
    once (links from one file wait for each other: the kernel holds the file's inode lock
    over the round trip).  Returns each link's error (FileExistsError: the name existed),
    or None."""
    global _linkers
    if _linkers is None or _linkers[0] != os.getpid():  # (a pool's worker: after its fork)
        _linkers = (os.getpid(), ThreadPoolExecutor(LINKERS, thread_name_prefix="farm-link"))

    def one(pair: tuple[str, str]) -> OSError | None:
        try:
            _link_into(*pair)
        except OSError as e:
            return e
        return None

    return list(_linkers[1].map(one, pairs))


def _yaml(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None


def _version() -> str:
    from farm.version import __version__
    return __version__
