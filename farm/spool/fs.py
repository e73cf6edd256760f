"""Counted filesystem calls.

Every metadata operation the spool makes goes through this module, so each process can say
how many creates, renames, links, unlinks, stats, listdirs and opens it cost (shared
filesystems charge per operation; see docs/spool-format.md and the benchmarks).
"""

from __future__ import annotations

import errno
import os
from collections import Counter

OPS: Counter[str] = Counter()


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


def link(src: str, dst: str) -> None:
    OPS["link"] += 1
    try:
        os.link(src, dst)
    except OSError as e:
        _check_xdev(e, src, dst)
        raise


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
        return os.stat(path)
    except FileNotFoundError:
        return None


def listdir(path: str) -> list[str]:
    OPS["listdir"] += 1
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def mkdir(path: str) -> None:
    OPS["mkdir"] += 1
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def read(path: str, limit: int = -1) -> bytes | None:
    """Whole content (or the first `limit` bytes) of path, or None if it does not exist."""
    OPS["open"] += 1
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
