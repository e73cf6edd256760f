#!/usr/bin/env python3
"""slowfsd.py BACKING MOUNTPOINT CONTROL: the daemon behind scripts/slow-fs.

A pass-through FUSE filesystem: MOUNTPOINT shows BACKING, and every metadata request the
kernel sends (lookup, getattr, create, rename, link, unlink, readdir...) first sleeps
SLOW_FS_DELAY_US microseconds, like a round trip to a busy metadata server.  Every request
the daemon receives is counted by kind; the counts are served on the unix socket CONTROL
(send "stats" or "reset", get one line of JSON back) and written to CONTROL's directory as
stats.json when the daemon exits.

It is written on libfuse 3's low-level API (through ctypes; no compiler, no PyPI package),
because only that API sees the kernel's requests one for one: the high-level API (fusepy,
mfusepy) turns a LOOKUP into a getattr call, indistinguishable from a GETATTR, and makes
getattr calls of its own after each create, mkdir or link.  Here one kernel request is one
count.  The design is libfuse's example passthrough_ll.c: each inode the kernel knows holds
an O_PATH descriptor of the backing file, so renames and hard links need no path
bookkeeping.

Environment (all optional; scripts/slow-fs documents them):
  SLOW_FS_DELAY_US          metadata delay, microseconds (default 500)
  SLOW_FS_DATA_DELAY_US     delay of read, write and fsync (default 0)
  SLOW_FS_ENTRY_TIMEOUT     seconds the kernel may keep a name -> inode lookup (default 1)
  SLOW_FS_ATTR_TIMEOUT      seconds the kernel may keep attributes (default 0)
  SLOW_FS_NEGATIVE_TIMEOUT  seconds the kernel may keep "no such name" (default 0)
  SLOW_FS_DEFAULT_PERMISSIONS  1: the kernel checks mode bits (default 0: it does not, and
                            every caller acts with the daemon's rights)
  SLOW_FS_THREADS           most requests served at once (default 10, libfuse's)

Runs in the foreground until MOUNTPOINT is unmounted or the daemon gets SIGTERM, SIGINT or
SIGHUP.  Needs Linux (x86_64 or aarch64), libfuse3.so.3, /dev/fuse and root.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import json
import os
import platform
import resource
import signal
import socket
import stat
import sys
import threading
import time
import traceback
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_int,
    c_int64,
    c_size_t,
    c_uint,
    c_uint32,
    c_uint64,
    c_void_p,
    sizeof,
)

ROOT_ID = 1  # FUSE_ROOT_ID

# Requests that sleep the metadata delay (the rest are counted, not delayed): what a
# metadata server would answer.  FLUSH, RELEASE and FORGET are the client's own business on
# most shared filesystems, and read/write/fsync go to data servers (SLOW_FS_DATA_DELAY_US).
METADATA = frozenset((
    "lookup", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir",
    "symlink", "rename", "link", "open", "opendir", "readdir", "create", "statfs", "access"))
DATA = frozenset(("read", "write", "fsync"))


def _env_float(name: str, default: str) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        sys.exit(f"slowfsd: {name} must be a number, not {os.environ[name]!r}")


DELAY = _env_float("SLOW_FS_DELAY_US", "500") / 1e6
DATA_DELAY = _env_float("SLOW_FS_DATA_DELAY_US", "0") / 1e6
ENTRY_TIMEOUT = _env_float("SLOW_FS_ENTRY_TIMEOUT", "1")
ATTR_TIMEOUT = _env_float("SLOW_FS_ATTR_TIMEOUT", "0")
NEGATIVE_TIMEOUT = _env_float("SLOW_FS_NEGATIVE_TIMEOUT", "0")
DEFAULT_PERMISSIONS = os.environ.get("SLOW_FS_DEFAULT_PERMISSIONS", "0") == "1"
THREADS = int(_env_float("SLOW_FS_THREADS", "10"))


# -- the C side: structures of libfuse 3 (3.14) and glibc ------------------------------------

class Timespec(Structure):
    _fields_ = [("tv_sec", c_int64), ("tv_nsec", c_int64)]


_TIMES = [("st_atim", Timespec), ("st_mtim", Timespec), ("st_ctim", Timespec)]
if platform.machine() == "x86_64":
    class Stat(Structure):
        _fields_ = [("st_dev", c_uint64), ("st_ino", c_uint64), ("st_nlink", c_uint64),
                    ("st_mode", c_uint32), ("st_uid", c_uint32), ("st_gid", c_uint32),
                    ("pad0", c_int), ("st_rdev", c_uint64), ("st_size", c_int64),
                    ("st_blksize", c_int64), ("st_blocks", c_int64), *_TIMES,
                    ("reserved", c_int64 * 3)]
elif platform.machine() in ("aarch64", "arm64"):
    class Stat(Structure):  # the generic layout of 64-bit architectures
        _fields_ = [("st_dev", c_uint64), ("st_ino", c_uint64), ("st_mode", c_uint32),
                    ("st_nlink", c_uint32), ("st_uid", c_uint32), ("st_gid", c_uint32),
                    ("st_rdev", c_uint64), ("pad1", c_uint64), ("st_size", c_int64),
                    ("st_blksize", c_int), ("pad2", c_int), ("st_blocks", c_int64), *_TIMES,
                    ("unused", c_int * 2)]
else:
    sys.exit(f"slowfsd: struct stat of {platform.machine()} is not known here")
assert sizeof(Stat) == (144 if platform.machine() == "x86_64" else 128)


class Statvfs(Structure):
    _fields_ = [(n, c_uint64) for n in (
        "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
        "f_favail", "f_fsid", "f_flag", "f_namemax")] + [("spare", c_int * 6)]


class FileInfo(Structure):
    # flags; then 8 one-bit flags and 24 bits of padding (writepage, direct_io, keep_cache,
    # flush, nonseekable, flock_release, cache_readdir, noflush), 32 more; fh...
    _fields_ = [("flags", c_int), ("bits", c_uint32), ("padding2", c_uint32),
                ("fh", c_uint64), ("lock_owner", c_uint64), ("poll_events", c_uint32)]


class EntryParam(Structure):
    _fields_ = [("ino", c_uint64), ("generation", c_uint64), ("attr", Stat),
                ("attr_timeout", c_double), ("entry_timeout", c_double)]


class ForgetData(Structure):
    _fields_ = [("ino", c_uint64), ("nlookup", c_uint64)]


class Args(Structure):
    _fields_ = [("argc", c_int), ("argv", POINTER(c_char_p)), ("allocated", c_int)]


REQ, INO, FI = c_void_p, c_uint64, POINTER(FileInfo)
# struct fuse_lowlevel_ops, in order: name -> argument types after the request (None: not
# implemented, libfuse answers ENOSYS itself).  Locks stay unimplemented on purpose: the
# kernel then keeps flock and fcntl locks itself, shared by every process on this machine.
OPS = (
    ("init", (c_void_p,)), ("destroy", None),
    ("lookup", (INO, c_char_p)), ("forget", (INO, c_uint64)),
    ("getattr", (INO, FI)), ("setattr", (INO, POINTER(Stat), c_int, FI)),
    ("readlink", (INO,)), ("mknod", (INO, c_char_p, c_uint, c_uint64)),
    ("mkdir", (INO, c_char_p, c_uint)), ("unlink", (INO, c_char_p)),
    ("rmdir", (INO, c_char_p)), ("symlink", (c_char_p, INO, c_char_p)),
    ("rename", (INO, c_char_p, INO, c_char_p, c_uint)), ("link", (INO, INO, c_char_p)),
    ("open", (INO, FI)), ("read", (INO, c_size_t, c_int64, FI)),
    ("write", (INO, c_void_p, c_size_t, c_int64, FI)), ("flush", (INO, FI)),
    ("release", (INO, FI)), ("fsync", (INO, c_int, FI)), ("opendir", (INO, FI)),
    ("readdir", (INO, c_size_t, c_int64, FI)), ("releasedir", (INO, FI)),
    ("fsyncdir", (INO, c_int, FI)), ("statfs", (INO,)),
    ("setxattr", (INO, c_char_p, c_void_p, c_size_t, c_int)),
    ("getxattr", (INO, c_char_p, c_size_t)), ("listxattr", (INO, c_size_t)),
    ("removexattr", (INO, c_char_p)), ("access", (INO, c_int)),
    ("create", (INO, c_char_p, c_uint, FI)), ("getlk", None), ("setlk", None),
    ("bmap", None), ("ioctl", None), ("poll", None), ("write_buf", None),
    ("retrieve_reply", None), ("forget_multi", (c_size_t, POINTER(ForgetData))),
    ("flock", None), ("fallocate", None), ("readdirplus", None), ("copy_file_range", None),
    ("lseek", None),
)


class LowlevelOps(Structure):
    _fields_ = [(name, c_void_p) for name, _ in OPS]


def _load_libfuse() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libfuse3.so.3", use_errno=True)
    except OSError as e:
        sys.exit(f"slowfsd: cannot load libfuse3.so.3 ({e}): apt-get install fuse3")
    for name, res, args in (
            ("fuse_reply_err", c_int, (REQ, c_int)), ("fuse_reply_none", None, (REQ,)),
            ("fuse_reply_entry", c_int, (REQ, POINTER(EntryParam))),
            ("fuse_reply_create", c_int, (REQ, POINTER(EntryParam), FI)),
            ("fuse_reply_attr", c_int, (REQ, POINTER(Stat), c_double)),
            ("fuse_reply_readlink", c_int, (REQ, c_char_p)),
            ("fuse_reply_open", c_int, (REQ, FI)), ("fuse_reply_write", c_int, (REQ, c_size_t)),
            ("fuse_reply_buf", c_int, (REQ, c_void_p, c_size_t)),
            ("fuse_reply_statfs", c_int, (REQ, POINTER(Statvfs))),
            ("fuse_add_direntry", c_size_t,
             (REQ, c_void_p, c_size_t, c_char_p, POINTER(Stat), c_int64)),
            ("fuse_session_new", c_void_p,
             (POINTER(Args), POINTER(LowlevelOps), c_size_t, c_void_p)),
            ("fuse_session_mount", c_int, (c_void_p, c_char_p)),
            ("fuse_set_signal_handlers", c_int, (c_void_p,)),
            ("fuse_remove_signal_handlers", None, (c_void_p,)),
            ("fuse_session_unmount", None, (c_void_p,)),
            ("fuse_session_destroy", None, (c_void_p,))):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


LIB = _load_libfuse()
_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = (c_int, c_char_p, c_int, c_char_p, c_uint)
_libc.utimensat.argtypes = (c_int, c_char_p, POINTER(Timespec), c_int)
_libc.futimens.argtypes = (c_int, POINTER(Timespec))
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
AT_FDCWD = -100


def _check(rc: int) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _fill_stat(st: os.stat_result, out: Stat) -> None:
    for name in ("st_dev", "st_ino", "st_nlink", "st_mode", "st_uid", "st_gid", "st_rdev",
                 "st_size", "st_blksize", "st_blocks"):
        setattr(out, name, getattr(st, name))
    for name, ns in (("st_atim", st.st_atime_ns), ("st_mtim", st.st_mtime_ns),
                     ("st_ctim", st.st_ctime_ns)):
        t = getattr(out, name)
        t.tv_sec, t.tv_nsec = divmod(ns, 1_000_000_000)


def _proc(fd: int) -> bytes:
    return b"/proc/self/fd/%d" % fd


# -- the counters ------------------------------------------------------------------------------

class Counters:
    """Requests received, by kind.  Counted when a request arrives (before its delay), so
    that a caller whose syscall has returned finds its requests in the counts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = dict.fromkeys((name for name, args in OPS if args), 0)
        self.counts["batch_forget"] = self.counts.pop("forget_multi")

    def add(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def snapshot(self, reset: bool = False) -> dict[str, int]:
        with self.lock:
            out = dict(self.counts)
            if reset:
                self.counts = dict.fromkeys(self.counts, 0)
        delayed = {k for k in out if k in METADATA or (DATA_DELAY and k in DATA)}
        return {**dict(sorted(out.items())), "total": sum(out.values()),
                "delayed": sum(out[k] for k in delayed)}


# -- the filesystem ------------------------------------------------------------------------

class Inode:
    __slots__ = ("fd", "key", "refs")

    def __init__(self, fd: int, key: tuple[int, int], refs: int):
        self.fd, self.key, self.refs = fd, key, refs


class SlowFS:
    """The requests' handlers: each gets the request's arguments (after `req`) and answers
    through one fuse_reply_* call.  Errors raise OSError; the wrapper answers them."""

    def __init__(self, backing: str, counters: Counters):
        fd = os.open(backing, os.O_PATH | os.O_DIRECTORY)
        st = os.stat(fd)
        root = Inode(fd, (st.st_dev, st.st_ino), 1 << 62)
        self.inodes: dict[int, Inode] = {ROOT_ID: root}
        self.by_key: dict[tuple[int, int], int] = {root.key: ROOT_ID}
        self.ids = itertools.count(ROOT_ID + 1)  # node ids are never reused
        self.lock = threading.Lock()
        self.dirs: dict[int, tuple[int, list]] = {}  # opendir handle -> (fd, entries)
        self.dir_ids = itertools.count(1)
        self.counters = counters

    # helpers
    def fd(self, ino: int) -> int:
        node = self.inodes.get(ino)
        if node is None:
            raise OSError(errno.ESTALE, "unknown inode")
        return node.fd

    def _entry(self, parent: int, name: bytes) -> EntryParam:
        """Look name up in parent and count one more kernel reference to its inode (every
        entry the kernel receives is one lookup it will forget)."""
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=self.fd(parent))
        try:
            st = os.stat(fd)
        except OSError:
            os.close(fd)
            raise
        key = (st.st_dev, st.st_ino)
        with self.lock:
            nid = self.by_key.get(key)
            if nid is not None:
                self.inodes[nid].refs += 1
            else:
                nid = next(self.ids)
                self.inodes[nid] = Inode(fd, key, 1)
                self.by_key[key] = nid
                fd = -1
        if fd >= 0:
            os.close(fd)
        e = EntryParam(ino=nid, attr_timeout=ATTR_TIMEOUT, entry_timeout=ENTRY_TIMEOUT)
        _fill_stat(st, e.attr)
        return e

    def _forget(self, ino: int, n: int) -> None:
        with self.lock:
            node = self.inodes.get(ino)
            if node is None or ino == ROOT_ID:
                return
            node.refs -= n
            if node.refs > 0:
                return
            del self.inodes[ino]
            if self.by_key.get(node.key) == ino:
                del self.by_key[node.key]
        os.close(node.fd)

    def _reply_attr(self, req, st: os.stat_result) -> None:
        out = Stat()
        _fill_stat(st, out)
        LIB.fuse_reply_attr(req, ctypes.byref(out), ATTR_TIMEOUT)

    # handlers
    def init(self, userdata, conn):
        pass  # called once, with no request to answer: libfuse answers INIT itself

    def lookup(self, req, parent, name):
        try:
            e = self._entry(parent, name)
        except FileNotFoundError:
            if NEGATIVE_TIMEOUT <= 0:
                raise
            e = EntryParam(ino=0, entry_timeout=NEGATIVE_TIMEOUT)  # a cached "no such name"
        LIB.fuse_reply_entry(req, ctypes.byref(e))

    def forget(self, req, ino, nlookup):
        self._forget(ino, nlookup)
        LIB.fuse_reply_none(req)

    def forget_multi(self, req, count, forgets):
        for i in range(count):
            self._forget(forgets[i].ino, forgets[i].nlookup)
        LIB.fuse_reply_none(req)

    def getattr(self, req, ino, fi):
        self._reply_attr(req, os.stat(self.fd(ino)))

    def setattr(self, req, ino, attr, valid, fi):
        fd, a = self.fd(ino), attr.contents
        fh = fi.contents.fh if fi else None
        if valid & 1:  # mode
            if fh is not None:
                os.chmod(fh, a.st_mode)
            else:
                os.chmod(_proc(fd), a.st_mode)
        if valid & 6:  # uid, gid
            os.chown(_proc(fd), a.st_uid if valid & 2 else -1, a.st_gid if valid & 4 else -1)
        if valid & 8:  # size
            os.truncate(fh if fh is not None else _proc(fd), a.st_size)
        if valid & (16 | 32 | 128 | 256):  # atime, mtime, atime now, mtime now
            ts = (Timespec * 2)()
            for i, (bit, now, t) in enumerate(((16, 128, a.st_atim), (32, 256, a.st_mtim))):
                ts[i].tv_nsec = UTIME_NOW if valid & now else UTIME_OMIT
                if valid & bit and not valid & now:
                    ts[i].tv_sec, ts[i].tv_nsec = t.tv_sec, t.tv_nsec
            if fh is not None:
                _check(_libc.futimens(fh, ts))
            else:
                _check(_libc.utimensat(AT_FDCWD, _proc(fd), ts, 0))
        self._reply_attr(req, os.stat(fd))

    def readlink(self, req, ino):
        LIB.fuse_reply_readlink(req, os.readlink(b"", dir_fd=self.fd(ino)))

    def mknod(self, req, parent, name, mode, rdev):
        os.mknod(name, mode, rdev, dir_fd=self.fd(parent))
        LIB.fuse_reply_entry(req, ctypes.byref(self._entry(parent, name)))

    def mkdir(self, req, parent, name, mode):
        os.mkdir(name, mode, dir_fd=self.fd(parent))
        LIB.fuse_reply_entry(req, ctypes.byref(self._entry(parent, name)))

    def symlink(self, req, target, parent, name):
        os.symlink(target, name, dir_fd=self.fd(parent))
        LIB.fuse_reply_entry(req, ctypes.byref(self._entry(parent, name)))

    def link(self, req, ino, newparent, newname):
        os.link(_proc(self.fd(ino)), newname, dst_dir_fd=self.fd(newparent),
                follow_symlinks=True)
        LIB.fuse_reply_entry(req, ctypes.byref(self._entry(newparent, newname)))

    def unlink(self, req, parent, name):
        os.unlink(name, dir_fd=self.fd(parent))
        LIB.fuse_reply_err(req, 0)

    def rmdir(self, req, parent, name):
        os.rmdir(name, dir_fd=self.fd(parent))
        LIB.fuse_reply_err(req, 0)

    def rename(self, req, parent, name, newparent, newname, flags):
        if flags:  # RENAME_NOREPLACE, RENAME_EXCHANGE: kept, not dropped
            _check(_libc.renameat2(self.fd(parent), name, self.fd(newparent), newname, flags))
        else:
            os.rename(name, newname, src_dir_fd=self.fd(parent), dst_dir_fd=self.fd(newparent))
        LIB.fuse_reply_err(req, 0)

    def access(self, req, ino, mask):
        ok = os.access(_proc(self.fd(ino)), mask)
        LIB.fuse_reply_err(req, 0 if ok else errno.EACCES)

    def statfs(self, req, ino):
        sv, out = os.fstatvfs(self.fd(ino)), Statvfs()
        for name, _ in Statvfs._fields_[:-1]:
            setattr(out, name, getattr(sv, name, 0))
        LIB.fuse_reply_statfs(req, ctypes.byref(out))

    # open files
    def open(self, req, ino, fi):
        f = fi.contents
        f.fh = os.open(_proc(self.fd(ino)), f.flags & ~os.O_NOFOLLOW)
        LIB.fuse_reply_open(req, fi)

    def create(self, req, parent, name, mode, fi):
        f = fi.contents
        fh = os.open(name, (f.flags | os.O_CREAT) & ~os.O_NOFOLLOW, mode,
                     dir_fd=self.fd(parent))
        try:
            e = self._entry(parent, name)
        except OSError:
            os.close(fh)
            raise
        f.fh = fh
        LIB.fuse_reply_create(req, ctypes.byref(e), fi)

    def read(self, req, ino, size, off, fi):
        data = os.pread(fi.contents.fh, size, off)
        LIB.fuse_reply_buf(req, data, len(data))

    def write(self, req, ino, buf, size, off, fi):
        n = os.pwrite(fi.contents.fh, ctypes.string_at(buf, size), off)
        LIB.fuse_reply_write(req, n)

    def flush(self, req, ino, fi):
        LIB.fuse_reply_err(req, 0)

    def release(self, req, ino, fi):
        os.close(fi.contents.fh)
        LIB.fuse_reply_err(req, 0)

    def fsync(self, req, ino, datasync, fi):
        (os.fdatasync if datasync else os.fsync)(fi.contents.fh)
        LIB.fuse_reply_err(req, 0)

    # directories: listed once per pass (at offset 0), then served from that list
    def opendir(self, req, ino, fi):
        dfd = os.open(b".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.fd(ino))
        handle = next(self.dir_ids)
        self.dirs[handle] = (dfd, [])
        fi.contents.fh = handle
        LIB.fuse_reply_open(req, fi)

    def readdir(self, req, ino, size, off, fi):
        dfd, entries = self.dirs[fi.contents.fh]
        if off == 0:
            me = os.stat(dfd)
            up = os.stat(b"..", dir_fd=dfd, follow_symlinks=False)
            entries[:] = [(b".", me.st_ino, stat.S_IFDIR), (b"..", up.st_ino, stat.S_IFDIR)]
            with os.scandir(dfd) as it:
                for d in it:
                    kind = (stat.S_IFDIR if d.is_dir(follow_symlinks=False) else stat.S_IFLNK
                            if d.is_symlink() else stat.S_IFREG
                            if d.is_file(follow_symlinks=False) else 0)
                    entries.append((os.fsencode(d.name), d.inode(), kind))
        buf = ctypes.create_string_buffer(size)
        base, used, st = ctypes.addressof(buf), 0, Stat()
        for i in range(off, len(entries)):
            name, st.st_ino, st.st_mode = entries[i]
            n = LIB.fuse_add_direntry(req, base + used, size - used, name, ctypes.byref(st),
                                      i + 1)
            if n > size - used:
                break
            used += n
        LIB.fuse_reply_buf(req, buf, used)

    def releasedir(self, req, ino, fi):
        dfd, _ = self.dirs.pop(fi.contents.fh, (None, None))
        if dfd is not None:
            os.close(dfd)
        LIB.fuse_reply_err(req, 0)

    def fsyncdir(self, req, ino, datasync, fi):
        os.fsync(self.dirs[fi.contents.fh][0])
        LIB.fuse_reply_err(req, 0)

    # extended attributes: counted, then refused (the kernel stops asking after ENOSYS)
    def setxattr(self, req, *args):
        LIB.fuse_reply_err(req, errno.ENOSYS)

    getxattr = listxattr = removexattr = setxattr


def make_ops(fs: SlowFS) -> tuple[LowlevelOps, list]:
    """The C table of handlers.  Each counts its request, sleeps the delay if it is a
    metadata request, and always answers (a request left unanswered hangs its caller)."""
    table, keep = LowlevelOps(), []
    for name, args in OPS:
        if args is None:
            continue
        kind = "batch_forget" if name == "forget_multi" else name
        delay = DELAY if kind in METADATA else DATA_DELAY if kind in DATA else 0.0
        method = getattr(fs, name)
        no_reply = name in ("init", "forget", "forget_multi")

        def handler(req, *a, method=method, kind=kind, delay=delay, no_reply=no_reply):
            fs.counters.add(kind)
            if delay:
                time.sleep(delay)  # releases the GIL: requests overlap as on a real server
            try:
                method(req, *a)
            except OSError as e:
                if no_reply:
                    return LIB.fuse_reply_none(req) if kind != "init" else None
                LIB.fuse_reply_err(req, e.errno or errno.EIO)
            except BaseException:  # noqa: B036 - a bug here must not hang the caller
                traceback.print_exc()
                if no_reply:
                    return LIB.fuse_reply_none(req) if kind != "init" else None
                LIB.fuse_reply_err(req, errno.EIO)

        cb = CFUNCTYPE(None, REQ, *args)(handler)  # (init's first argument is no request)
        keep.append(cb)
        setattr(table, name, ctypes.cast(cb, c_void_p).value)
    return table, keep


# -- control socket, and the loop ------------------------------------------------------------

def serve_control(path: str, counters: Counters) -> socket.socket:
    """Answer "stats" and "reset" on the unix socket `path` (bound through its directory's
    descriptor, so that a long path fits the 107 bytes of a socket address)."""
    dfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
    addr = f"/proc/self/fd/{dfd}/{os.path.basename(path)}"
    try:
        os.unlink(addr)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(addr)
    os.chmod(addr, 0o600)
    srv.listen(16)

    def loop():
        # Signals must reach the main thread, where libfuse's handlers end the loop.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        while True:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(5)
                try:
                    what = conn.recv(64).strip()
                    if what in (b"stats", b"reset"):
                        got = counters.snapshot(reset=what == b"reset")
                        conn.sendall(json.dumps(got).encode() + b"\n")
                    else:
                        conn.sendall(b'{"error": "send stats or reset"}\n')
                except OSError:
                    pass

    threading.Thread(target=loop, name="control", daemon=True).start()
    return srv


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    backing, mountpoint, control = sys.argv[1:]
    os.umask(0)  # the kernel applied the caller's umask already
    # One descriptor per inode the kernel holds: a spool of 100,000 tasks needs many.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = int(f.read())
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    counters = Counters()
    fs = SlowFS(backing, counters)
    table, _keep = make_ops(fs)
    serve_control(control, counters)

    opts = ["allow_other", f"fsname=slowfs:{os.path.abspath(backing)}", "subtype=slowfs"]
    if DEFAULT_PERMISSIONS:
        opts.append("default_permissions")
    argv = [b"slowfsd", b"-o", ",".join(opts).encode()]
    args = Args(len(argv), (c_char_p * (len(argv) + 1))(*argv, None), 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # libfuse installs its handlers only over
    se = LIB.fuse_session_new(ctypes.byref(args), ctypes.byref(table), sizeof(table), None)
    if not se:
        print("slowfsd: fuse_session_new failed", file=sys.stderr)
        return 1
    rc = 1
    try:
        if LIB.fuse_set_signal_handlers(se) != 0:  # SIGTERM, SIGINT, SIGHUP end the loop
            print("slowfsd: fuse_set_signal_handlers failed", file=sys.stderr)
            return 1
        if LIB.fuse_session_mount(se, os.fsencode(mountpoint)) != 0:
            print(f"slowfsd: mounting {mountpoint} failed", file=sys.stderr)
            return 1
        print(f"slowfsd: {mountpoint} over {backing}, delay {DELAY * 1e6:g} us, timeouts "
              f"entry {ENTRY_TIMEOUT:g} attr {ATTR_TIMEOUT:g} negative {NEGATIVE_TIMEOUT:g} s",
              file=sys.stderr, flush=True)
        rc = run_loop(se)
        LIB.fuse_session_unmount(se)
    finally:
        LIB.fuse_remove_signal_handlers(se)
        LIB.fuse_session_destroy(se)
        final = counters.snapshot()
        tmp = os.path.join(os.path.dirname(control), "stats.json.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "w") as f:
            json.dump(final, f)
        os.replace(tmp, os.path.join(os.path.dirname(control), "stats.json"))
        print(f"slowfsd: exiting after {final['total']} requests", file=sys.stderr)
    return 0 if rc == 0 else 1


def run_loop(se) -> int:
    """libfuse's multithreaded loop, up to THREADS requests at once (the 3.12 interface, or
    the older one on an older libfuse)."""
    try:
        create, loop = LIB.fuse_loop_cfg_create, LIB.fuse_session_loop_mt_312
    except AttributeError:
        loop = LIB.fuse_session_loop_mt_31
        loop.restype, loop.argtypes = c_int, (c_void_p, c_int)
        return loop(se, 0)
    create.restype = c_void_p
    LIB.fuse_loop_cfg_set_max_threads.argtypes = (c_void_p, c_uint)
    LIB.fuse_loop_cfg_destroy.argtypes = (c_void_p,)
    loop.restype, loop.argtypes = c_int, (c_void_p, c_void_p)
    cfg = create()
    LIB.fuse_loop_cfg_set_max_threads(cfg, THREADS)
    try:
        return loop(se, cfg)
    finally:
        LIB.fuse_loop_cfg_destroy(cfg)


if __name__ == "__main__":
    sys.exit(main())
