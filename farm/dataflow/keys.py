"""Task keys: content hashes that name a task the same way in every run of a script.

key = sha256(app identity (module, name, source), canonical arguments with futures replaced
by their keys, ordinal among identical calls).  Re-running a script re-derives the same keys,
which is what lets it find its earlier tasks in the spool (resume).
"""

from __future__ import annotations

import hashlib
import inspect
import struct
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import cloudpickle

from farm.data import File, _AutoLogname

KEY_LEN = 32


def app_identity(func: Callable[..., Any]) -> str:
    """module.qualname plus a hash of the source (or bytecode, where there is no source):
    editing an app gives its calls new keys, so a resumed run recomputes them."""
    try:
        src = inspect.getsource(func).encode()
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        src = code.co_code + repr(code.co_consts).encode() if code else repr(func).encode()
    digest = hashlib.sha256(src).hexdigest()[:16]
    return f"{func.__module__}.{func.__qualname__}:{digest}"


def _enc(obj: Any, out: list[bytes]) -> None:
    t = type(obj)
    if obj is None or t is bool:
        out.append(b"N" if obj is None else (b"T" if obj else b"F"))
    elif t is int:
        out.append(b"i%d;" % obj)
    elif t is float:
        out.append(b"f" + struct.pack("<d", obj))
    elif t is str:
        b = obj.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(b) + b)
    elif t is bytes:
        out.append(b"b%d:" % len(obj) + obj)
    elif t in (list, tuple):
        out.append(b"l(" if t is list else b"t(")
        for x in obj:
            _enc(x, out)
        out.append(b")")
    elif t is dict:
        items = []
        for k, v in obj.items():
            kb: list[bytes] = []
            vb: list[bytes] = []
            _enc(k, kb)
            _enc(v, vb)
            items.append((b"".join(kb), b"".join(vb)))
        out.append(b"d(" + b"".join(k + v for k, v in sorted(items)) + b")")
    elif t in (set, frozenset):
        parts = []
        for x in obj:
            xb: list[bytes] = []
            _enc(x, xb)
            parts.append(b"".join(xb))
        out.append(b"S(" + b"".join(sorted(parts)) + b")")
    elif isinstance(obj, File):
        out.append(b"F" + obj.path.encode() + b";")
    elif isinstance(obj, _AutoLogname):
        out.append(b"A")
    elif isinstance(obj, Future) and hasattr(obj, "tid"):
        out.append(b"K" + str(obj.tid).encode() + b";")
        if hasattr(obj, "file_obj"):
            out.append(b"F" + obj.file_obj.path.encode() + b";")
    else:
        # Anything else: its pickle.  Stable for plain data and most value types; an object
        # whose pickle varies from run to run gets a new key each run (it is re-run).
        try:
            out.append(b"P" + hashlib.sha256(cloudpickle.dumps(obj)).digest())
        except Exception:
            # Unpicklable: an in-process executor can still run it; a spool executor
            # reports it when it pickles the task.
            out.append(b"U" + f"{t.__module__}.{t.__qualname__}".encode() + b";")


def canonical(obj: Any) -> bytes:
    out: list[bytes] = []
    _enc(obj, out)
    return b"".join(out)


def call_digest(identity: str, args: tuple, kwargs: dict) -> bytes:
    """What identical calls share; the key adds the ordinal among them."""
    h = hashlib.sha256(identity.encode())
    h.update(canonical((args, kwargs)))
    return h.digest()


def task_key(digest: bytes, ordinal: int) -> str:
    return hashlib.sha256(digest + b"#%d" % ordinal).hexdigest()[:KEY_LEN]
