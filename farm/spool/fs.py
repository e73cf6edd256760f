"""Counted filesystem calls.

Every metadata operation the spool makes goes through this module, so each process can say
how many creates, renames, links, unlinks, stats, listdirs and opens it cost (shared
filesystems charge per operation; see docs/spool-format.md and the benchmarks).
"""

from __future__ import annotations

import errno
import os
import random
import time
from collections import Counter

OPS: Counter[str] = Counter()

# Fault injection, for tests of visibility delays: FARM_FAULTS="hide=P:S" makes a file that
# another process wrote less than S seconds ago invisible to read/stat/listdir with
# probability P (as NFS clients' caches do).  Files this process wrote or moved itself stay
# visible to it, as on NFS.
_HIDE_P, _HIDE_AGE = 0.0, 0.0
if os.environ.get("FARM_FAULTS", "").startswith("hide="):
    _p, _, _s = os.environ["FARM_FAULTS"][5:].partition(":")
    _HIDE_P, _HIDE_AGE = float(_p), float(_s or 1.0)
_OWN: set[str] = set()


def _mine(path: str) -> None:
    if _HIDE_P:
        if len(_OWN) > 200_000:
            _OWN.clear()
        _OWN.add(path)


def _hidden(path: str) -> bool:
    if not _HIDE_P or path in _OWN or random.random() >= _HIDE_P:
        return False
    try:
        hide = time.time() - os.stat(path).st_mtime < _HIDE_AGE
    except OSError:
        return False
    OPS["hidden"] += hide
    return hide


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
        os.rename(src, dst)
    except OSError as e:
        _check_xdev(e, src, dst)
        raise
    _mine(dst)


def link(src: str, dst: str) -> None:
    OPS["link"] += 1
    try:
        os.link(src, dst)
    except OSError as e:
        _check_xdev(e, src, dst)
        if e.errno in (errno.EPERM, errno.EOPNOTSUPP):
            # Fail closed: without hard links there is no publish-once.
            raise OSError(e.errno, "the spool's filesystem does not support hard links, which "
                          "farm needs to publish each result exactly once; put the spool on "
                          "Lustre, GPFS, NFS, ext4, xfs...", dst) from e
        raise
    _mine(dst)


def unlink(path: str) -> bool:
    """Remove path; False if it was already gone."""
    OPS["unlink"] += 1
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def stat(path: str) -> os.stat_result | None:
    OPS["stat"] += 1
    try:
        return None if _hidden(path) else os.stat(path)
    except FileNotFoundError:
        return None


def listdir(path: str) -> list[str]:
    OPS["listdir"] += 1
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    if _HIDE_P:
        names = [n for n in names if not _hidden(os.path.join(path, n))]
    return names


def mkdir(path: str) -> None:
    OPS["mkdir"] += 1
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def read(path: str, limit: int = -1) -> bytes | None:
    """Whole content (or the first `limit` bytes) of path, or None if it does not exist."""
    OPS["open"] += 1
    if _hidden(path):
        return None
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        return None


def create(path: str, data: bytes, exclusive: bool = False) -> None:
    """Write a new file in one go (used for files in tmp/ and for empty marker files)."""
    OPS["create"] += 1
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_EXCL if exclusive else 0)
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    _mine(path)


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
    return f"{where}: {_HINTS.get(err.errno, err.strerror or str(err))}"


def snapshot() -> dict[str, int]:
    return dict(OPS)
