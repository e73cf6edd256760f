"""Counted filesystem calls, and the one rule for deciding that a file is missing.

Every metadata operation the spool makes goes through this module, so each process can say
how many creates, renames, links, unlinks, stats, listdirs and opens it cost (shared
filesystems charge per operation; see docs/spool-format.md and the benchmarks).

**Network filesystems lie about absence.**  A Linux NFS client that looked a name up and
found nothing keeps that answer ("negative dentry") for up to ~30 s, also after another
node created the file; a stat or an open then says ENOENT though the file is there.  A
listing of the directory goes to the server (opendir revalidates it) and drops those stale
answers.  So in this module a lookup that says ENOENT is never the answer: ``read``,
``stat`` and ``listdir`` confirm it with a fresh listing of the parent directory (and of
its parent, when the directory itself looked missing), and look again if the name is there.
"Missing" is otherwise decided only by the outcome of a rename, link or O_EXCL create.

``peek`` is the one exception, for polling: its None may be stale, so it is used only where
a negative answer means "not yet" and something later is bound to look again (see its
docstring).  A confirmation costs one listing, and only when a lookup failed.
"""

from __future__ import annotations

import errno
import os
import resource
import time
from collections import Counter

OPS: Counter[str] = Counter()

# Fault injection, for tests: FARM_FAULTS="negcache=S" makes this process behave like an NFS
# client with a negative lookup cache of S seconds: a stat or open that found nothing keeps
# saying ENOENT for S seconds (also for paths under it, and for link/rename/create through
# it), until this process lists the parent directory or itself creates the name.
_NEG_TTL = 0.0
if os.environ.get("FARM_FAULTS", "").startswith("negcache="):
    _NEG_TTL = float(os.environ["FARM_FAULTS"][len("negcache="):] or 30)
_NEG: dict[str, float] = {}  # path -> when its negative lookup expires


def _stale(path: str) -> bool:
    """Does a cached negative lookup (of path or a directory above it) answer for path?"""
    now = time.monotonic()
    p = path
    while True:
        until = _NEG.get(p)
        if until is not None:
            if until > now:
                OPS["stale"] += 1
                return True
            del _NEG[p]
        parent = os.path.dirname(p)
        if parent == p:
            return False
        p = parent


def _remember_missing(path: str) -> None:
    # The kernel caches the first component of the path that does not exist.
    p = path
    while not os.path.exists(os.path.dirname(p)) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    _NEG[p] = time.monotonic() + _NEG_TTL


def _forget(path: str) -> None:
    _NEG.pop(path, None)


def _lookup_failed(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def _through_cache(path: str) -> None:
    """With negcache: raise ENOENT as a client with a stale negative entry would."""
    if _NEG_TTL and _stale(path):
        raise _lookup_failed(path)


class CrossDevice(OSError):
    """rename/link across filesystems or quota domains (EXDEV): a misconfigured spool."""


def _check_xdev(err: OSError, src: str, dst: str) -> None:
    if err.errno == errno.EXDEV:
        raise CrossDevice(
            errno.EXDEV,
            f"cannot move {src} to {dst}: they are on different filesystems or project "
            "quotas (EXDEV); keep the whole spool in one directory tree",
        ) from err


def rename(src: str, dst: str) -> None:
    OPS["rename"] += 1
    try:
        _through_cache(src)
        _through_cache(os.path.dirname(dst))
        os.rename(src, dst)
    except OSError as e:
        _check_xdev(e, src, dst)
        raise
    _forget(dst)


# Directories that names are linked into (result shards, above all), held open: a link
# made relative to an open directory is looked up from there, so the server is not asked
# again about the directories above it each time their cached entries expire.
_DIR_FDS: dict[str, int] = {}


def _held_cap() -> int:
    """How many directories a process holds open at most: the spool's shard directories
    (256 of a kind) and state directories, within a quarter of its file limit."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        soft = 1024
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    return min(320, soft // 4)


_HELD_CAP = _held_cap()


def _dir_fd(path: str) -> int | None:
    """path held open (O_PATH), or None.  Directories named by a key (deps/XX/KEY/: one
    per task that has dependents) are not held: there are as many as tasks, each used a
    few times."""
    fd = _DIR_FDS.get(path)
    if fd is None and len(_DIR_FDS) < _HELD_CAP and len(os.path.basename(path)) < 32:
        try:
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        if _DIR_FDS.setdefault(path, fd) != fd:  # (another thread was first)
            os.close(fd)
            fd = _DIR_FDS[path]
    return fd


def _held_gone(parent: str, fd: int) -> bool:
    """After a call relative to the held directory fd failed: is that directory gone (a
    spool removed, perhaps made again at its path)?  Then it is forgotten (not closed:
    another thread may be using it), and the caller tries again by path."""
    try:
        gone = os.fstat(fd).st_nlink == 0
    except OSError:
        gone = True  # (ESTALE, on NFS)
    if gone:
        _DIR_FDS.pop(parent, None)
    return gone


def _link(src: str, dst: str) -> None:
    parent, name = os.path.split(dst)
    fd = _dir_fd(parent)
    if fd is not None:
        try:
            os.link(src, name, dst_dir_fd=fd)
            return
        except FileNotFoundError:
            _held_gone(parent, fd)  # (src is gone, or the directory: the path decides)
    os.link(src, dst)


def link(src: str, dst: str) -> None:
    OPS["link"] += 1
    try:
        _through_cache(src)
        _through_cache(os.path.dirname(dst))
        _link(src, dst)
    except OSError as e:
        _check_xdev(e, src, dst)
        if e.errno in (errno.EPERM, errno.EOPNOTSUPP):
            # Fail closed: without hard links there is no publish-once.
            raise OSError(e.errno, "the spool's filesystem does not support hard links, which "
                          "farm needs to publish each result exactly once; put the spool on "
                          "Lustre, GPFS, NFS, ext4, xfs...", dst) from e
        raise
    _forget(dst)


def unlink(path: str) -> bool:
    """Remove path; False if it was already gone (the server's answer: unlink decides)."""
    OPS["unlink"] += 1
    try:
        _through_cache(path)
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def mkdir(path: str) -> None:
    OPS["mkdir"] += 1
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    _forget(path)


def create(path: str, data: bytes, exclusive: bool = False) -> None:
    """Write a new file in one go (used for files in tmp/ and for empty marker files)."""
    OPS["create"] += 1
    _through_cache(os.path.dirname(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_EXCL if exclusive else 0)
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    _forget(path)


# -- lookups: None or [] only when a fresh listing agrees ------------------------------------

def peek(path: str, limit: int = -1) -> bytes | None:
    """Content of path (or its first `limit` bytes), or None if this client cannot see it.

    None may be stale (see the module docstring): use it only where "not there" means
    "not yet" and a later look is certain (a dependency's result while its completer, the
    driver or a sweep will promote; a payload about to be published by a link that
    decides).  Never to conclude that something is lost, done or absent."""
    for attempt in range(STALE_TRIES):
        OPS["open"] += 1
        try:
            _through_cache(path)
            return _read_fd(os.open(path, os.O_RDONLY), limit)
        except FileNotFoundError:
            if _NEG_TTL:
                _remember_missing(path)
            return None
        except OSError as e:
            _retry_stale(e, attempt)
    raise AssertionError("unreachable")


def _read_fd(fd: int, limit: int) -> bytes:
    try:
        # os.read, not open(): Python's file objects fstat the file (to size a buffer, to
        # refuse a directory), and each fstat is a call to the metadata server.
        chunk = limit if limit >= 0 else READ_CHUNK
        parts = []
        while True:
            data = os.read(fd, chunk)
            parts.append(data)
            if len(data) < chunk or limit >= 0:  # (a short read of a file: its end)
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        os.close(fd)


# A file replaced by a rename (a heartbeat, a block record) can make an NFS client's open or
# read fail with ESTALE: it held the old file's handle.  A new lookup finds the new file.
STALE_TRIES = 3


def _retry_stale(err: OSError, attempt: int) -> None:
    """Return (to look again) if err is ESTALE and tries are left; else raise it."""
    if err.errno != errno.ESTALE or attempt == STALE_TRIES - 1:
        raise err
    OPS["estale"] += 1


READ_CHUNK = 1 << 20


def read(path: str, limit: int = -1) -> bytes | None:
    """Whole content (or the first `limit` bytes) of path, or None if it does not exist
    (confirmed by a fresh listing of its directory)."""
    for _ in range(3):
        data = peek(path, limit)
        if data is not None or absent(path):
            return data
    raise _still_invisible(path)


def stat(path: str) -> os.stat_result | None:
    """os.stat(path), or None if it does not exist (confirmed by a fresh listing)."""
    for attempt in range(3):
        OPS["stat"] += 1
        try:
            _through_cache(path)
            return os.stat(path)
        except FileNotFoundError:
            if _NEG_TTL:
                _remember_missing(path)
            if absent(path):
                return None
        except OSError as e:
            _retry_stale(e, attempt)
    raise _still_invisible(path)


def listdir(path: str) -> list[str]:
    """The names in directory path; [] if the directory does not exist (confirmed by a
    fresh listing of its parent).  A listing is itself fresh: opendir revalidates."""
    for _ in range(3):
        try:
            return _list(path)
        except FileNotFoundError:
            if absent(path):
                return []
    raise _still_invisible(path)


def scan(path: str) -> dict[str, int]:
    """name -> inode number of the entries of directory path (one listing: the inode
    numbers come with the names), or {} if this client cannot see the directory: a hint,
    as peek_names.  A file replaced under the same name shows a new inode number."""
    OPS["listdir"] += 1
    _through_cache(path)
    for attempt in range(STALE_TRIES):
        try:
            with os.scandir(path) as it:
                return {e.name: e.inode() for e in it}
        except FileNotFoundError:
            return {}
        except OSError as e:
            _retry_stale(e, attempt)
    return {}


def peek_names(path: str) -> list[str]:
    """The names in directory path, or [] if this client cannot see the directory: a hint,
    as peek's None (the listing itself is fresh; a missing directory is not confirmed)."""
    try:
        return _list(path)
    except FileNotFoundError:
        if _NEG_TTL:
            _remember_missing(path)
        return []


def absent(path: str) -> bool:
    """After a lookup of path said ENOENT: True if a fresh listing of its directory agrees,
    False if the name is there after all (the listing has refreshed this client's view, so
    a new lookup finds it).  Where the directory itself looks missing, its parent is listed
    first, and so on up."""
    parent, name = os.path.split(path)
    for _ in range(2):
        try:
            return name not in _list(parent)
        except FileNotFoundError:
            if parent == os.path.dirname(parent) or absent(parent):
                return True
    return True  # the directory came and went between two listings: it is not there


# What a listing costs here (seconds, a moving average): pollers wait at least POLL_SHARE
# listings' time between two listings of an idle directory, so that polling costs a bounded
# share of a slow metadata server's time, and nothing measurable on a local disk.
_LIST_COST = [0.0]
POLL_SHARE = 4


def min_poll(seconds: float) -> float:
    """The shortest wait between listings of a directory that had nothing new."""
    return max(seconds, POLL_SHARE * _LIST_COST[0])


def _list(path: str) -> list[str]:
    OPS["listdir"] += 1
    _through_cache(path)
    t0 = time.perf_counter()
    for attempt in range(STALE_TRIES):
        try:
            names = os.listdir(path)
            break
        except FileNotFoundError:
            raise
        except OSError as e:
            _retry_stale(e, attempt)
    _LIST_COST[0] += 0.2 * (time.perf_counter() - t0 - _LIST_COST[0])
    if _NEG_TTL:  # the listing revalidated the directory: its children's entries go
        prefix = path.rstrip("/") + "/"
        for p in [p for p in _NEG if p.startswith(prefix) and "/" not in p[len(prefix):]]:
            del _NEG[p]
    return names


def _still_invisible(path: str) -> OSError:
    # Listed in its directory three times, yet every lookup failed: neither present nor
    # absent can be decided now.  An I/O error: callers keep their state and retry later.
    return OSError(errno.EAGAIN, "listed in its directory but not readable (network "
                                 "filesystem cache?); will retry", path)


_HINTS = {
    errno.ENOSPC: "the filesystem is full",
    errno.EDQUOT: "your disk quota is exceeded",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "I/O error (a failing disk, or a network filesystem in trouble)",
    errno.ESTALE: "stale file handle (the network filesystem lost track of the file)",
}


def explain(err: OSError) -> str:
    """One line saying which file and what went wrong, in words a user can act on."""
    where = err.filename or "the spool"
    hint = _HINTS.get(err.errno) if err.errno is not None else None
    return f"{where}: {hint or err.strerror or str(err)}"

