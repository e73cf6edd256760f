"""Task keys: content hashes that name a task the same way in every run of a script.

key = sha256(app identity, canonical arguments with futures replaced by their keys, ordinal
among identical calls).  Re-running a script re-derives the same keys, which is what lets it
find its earlier tasks in the spool (resume).

An app's identity covers its module and name, its source, and what it reads that is defined
beside it: the values of the globals it names (SCALE = 10), the source of the functions and
classes of its own module that it calls (and, in turn, what those read), its closures and
its defaults.  Editing any of them gives the app's calls new keys, so a resumed run
recomputes them.  Code imported from other modules (libraries, the user's packages) is
covered by name only: a new version of numpy does not re-run a campaign.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import struct
import textwrap
import threading
import types
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import cloudpickle

from farm.data import File, _AutoLogname
from farm.dataflow import memoization
from farm.dataflow.futures import DataFuture

KEY_LEN = 32


def app_identity(func: Callable[..., Any], src: bytes | None = None) -> str:
    """module.qualname plus a hash of the source (or bytecode, where there is no source)
    and of what the function reads beside it (see the module's docstring).  (An app that
    reads nothing of its module keeps the identity of farm versions before globals were
    covered: a hash of its source alone.)  src: the function's source, if the caller read it
    already (an App reads it when it is made: the script may be gone by its first call)."""
    h = hashlib.sha256(source(func) if src is None else src)
    reads = _reads(func)
    if reads:
        h.update(b"\0reads\0" + reads)
    return f"{func.__module__}.{func.__qualname__}:{h.hexdigest()[:16]}"


def source(obj: Any) -> bytes:
    """What an app's identity hashes of obj's code: its source, else its bytecode."""
    try:
        # (Only from a file that is there: inspect would drop a vanished file's lines from
        # linecache, and the app's pickle ships them for remote tracebacks: serialize.py.)
        path = inspect.getsourcefile(obj)
        if path is None or not os.path.exists(path):
            raise OSError(f"no source file for {obj!r}")
        return inspect.getsource(obj).encode()
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return code.co_code + repr(code.co_consts).encode() if code else \
            f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', obj)}".encode()


def _reads(func: Callable[..., Any]) -> bytes:
    """What func reads beside its own source, encoded: the empty string if nothing."""
    out: list[bytes] = []
    _function(func, getattr(func, "__module__", None), out, set())
    return b"".join(out)


def _names(code: types.CodeType) -> set[str]:
    """The global (and attribute) names code and its nested functions use."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names(c)
    return names


def _function(func: Any, module: str | None, out: list[bytes], seen: set[int]) -> None:
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType):
        return
    glob = getattr(func, "__globals__", None) or {}
    # (attribute names that are no global are skipped; the names in default values are
    # read when the def runs, so they are not in the code: see _default_names)
    for name in sorted(_names(code) | _default_names(func)):
        if name in glob:
            _value(name, glob[name], module, out, seen)
    cells = getattr(func, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells, strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # (a cell not filled yet)
            continue
        _value(f"<closure {name}>", value, module, out, seen)


def _default_names(func: Any) -> set[str]:
    """The names in the expressions of func's default values (def f(x, n=N): {"N"});
    the literals there are covered by the source."""
    if not (getattr(func, "__defaults__", None) or getattr(func, "__kwdefaults__", None)):
        return set()
    try:
        tree = ast.parse(textwrap.dedent(source(func).decode()))
    except (UnicodeDecodeError, SyntaxError):
        return set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            exprs = [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            return {n.id for e in exprs for n in ast.walk(e) if isinstance(n, ast.Name)}
    return set()


def _value(name: str, value: Any, module: str | None, out: list[bytes],
           seen: set[int]) -> None:
    """One name a function reads: a value by its content, a function or class of the
    app's module by its source (and a function, by what it reads in turn), anything from
    another module not at all (a module, an imported function or class)."""
    if isinstance(value, types.ModuleType):
        return
    if hasattr(type(value), "identity") and callable(getattr(value, "func", None)):
        # Another app, called from this one (a join app): its function.  (type(value): an
        # App works its identity out lazily, and two apps may call each other.)
        value = value.func
    if callable(value):  # (a function, a class, a builtin, a callable object)
        if getattr(value, "__module__", None) != module:
            return  # imported code: covered by name only (not at all)
        if id(value) in seen:
            out.append(name.encode() + b"@")
            return
        seen.add(id(value))
        out.append(name.encode() + b"=code:" + hashlib.sha256(source(value)).digest())
        if isinstance(value, types.FunctionType):
            _function(value, module, out, seen)
        return
    out.append(name.encode() + b"=" + hashlib.sha256(canonical(value)).digest())


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
        # (a local file by its path; a URL by all of it: two hosts may serve one path)
        out.append(b"F" + (obj.path if obj.scheme == "file" else obj.url).encode() + b";")
    elif isinstance(obj, _AutoLogname):
        out.append(b"A")
    elif isinstance(obj, Future) and (hasattr(t, "tid") or "tid" in vars(obj)):
        # (on the type or the instance: hasattr(obj) is true of any name an AppFuture lifts)
        out.append(b"K" + str(obj.tid).encode() + b";")  # type: ignore[attr-defined]
        if isinstance(obj, DataFuture):
            out.append(b"F" + obj.file_obj.path.encode() + b";")
    elif memoization.registered(t):
        # A user type registered with id_for_memo (Parsl's way): keyed by what it returns.
        out.append(b"M" + hashlib.sha256(canonical(memoization.id_for_memo(obj))).digest())
    else:
        # Anything else: its pickle.  Stable for plain data and most value types; an object
        # whose pickle varies from run to run gets a new key each run (it is re-run).
        try:
            out.append(b"P" + hashlib.sha256(cloudpickle.dumps(obj)).digest())
        except Exception:
            if _strict.on:  # (a cache=True call: its key must stand for its arguments)
                raise ValueError(
                    f"cannot memoize an argument of type {t.__module__}.{t.__qualname__}: "
                    "it cannot be pickled; register it with farm.dataflow.memoization."
                    "id_for_memo, or leave it out of the key (ignore_for_cache)") from None
            # Unpicklable: an in-process executor can still run it; a spool executor
            # reports it when it pickles the task.
            out.append(b"U" + f"{t.__module__}.{t.__qualname__}".encode() + b";")


class _Strict(threading.local):
    on = False


_strict = _Strict()


def canonical(obj: Any) -> bytes:
    out: list[bytes] = []
    _enc(obj, out)
    return b"".join(out)


def call_digest(identity: str, args: tuple, kwargs: dict, strict: bool = False) -> bytes:
    """What identical calls share; the key adds the ordinal among them.  strict (a cached
    call): an argument that can be neither encoded nor pickled is a ValueError."""
    h = hashlib.sha256(identity.encode())
    if strict:
        _strict.on = True
        try:
            h.update(canonical((args, kwargs)))
        finally:
            _strict.on = False
    else:
        h.update(canonical((args, kwargs)))
    return h.digest()


def task_key(digest: bytes, ordinal: int) -> str:
    return hashlib.sha256(digest + b"#%d" % ordinal).hexdigest()[:KEY_LEN]
