"""Values that travel inside task arguments: File, AUTO_LOGNAME and dependency placeholders.

A leaf module (no farm imports), so the pool can unpickle arguments without the dataflow
layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

# The URL schemes the driver can stage in (download before the task is ready): compute
# nodes have no network, so a task never fetches anything itself.
STAGED_SCHEMES = ("http", "https", "ftp")


class File(os.PathLike):
    """A file an app reads (``inputs=[...]``) or writes (``outputs=[...]``).

    Path-like: ``open(f)``, ``os.path.exists(f)`` and ``str(f)`` all use its filepath: its
    local_path if set, else its path (a local file).  Made from a path or a URL, parsed as
    Parsl does into scheme (file if none), netloc, path and filename.  Local files (and
    ``file://`` URLs) must be on a filesystem the compute nodes share; an http, https or
    ftp input is downloaded by the driver into the spool before its task is ready, and
    the app sees it there (its local_path).  Other schemes are an error at call time.
    """

    def __init__(self, url: str | os.PathLike[str]):
        url = os.fspath(url)
        if not isinstance(url, str) or not url:
            raise ValueError(f"File needs a non-empty path, got {url!r}")
        parsed = urlparse(url)
        self.url = url
        self.scheme = parsed.scheme if parsed.scheme and len(parsed.scheme) > 1 else "file"
        # (a plain path is kept as it is: urlparse would cut it at a '#' or a ';')
        self.path = parsed.path if parsed.scheme and self.scheme == parsed.scheme else url
        self.netloc = parsed.netloc
        self.filename = os.path.basename(self.path)
        self.local_path: str | None = None

    @property
    def filepath(self) -> str:
        """Where the file is on this side: local_path if set, the path of a local file;
        a ValueError for a URL not staged yet."""
        if self.local_path is not None:
            return self.local_path
        if self.scheme == "file":
            return self.path
        raise ValueError(f"no local_path set for {self!r}: it is staged in only when passed "
                         "to an app in inputs=[...]")

    def cleancopy(self) -> File:
        """The File as made from its URL, without a local_path."""
        return File(self.url)

    def __fspath__(self) -> str:
        return self.filepath

    def __str__(self) -> str:
        return self.filepath

    def __repr__(self) -> str:
        text = (f"{self.__class__} at 0x{id(self):x} url={self.url} scheme={self.scheme} "
                f"netloc={self.netloc} path={self.path} filename={self.filename}")
        if self.local_path is not None:
            text += f" local_path={self.local_path}"
        return f"<{text}>"

    def _ident(self) -> str:
        return self.path if self.scheme == "file" else self.url

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other._ident() == self._ident()

    def __hash__(self) -> int:
        return hash(("File", self._ident()))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # (Files pickled by an older farm lack the newer attributes)
        self.__dict__.update(state)
        self.__dict__.setdefault("filename", os.path.basename(self.__dict__.get("path", "")))
        self.__dict__.setdefault("local_path", None)


def fetch_url(url: str, path: str, timeout: float = 60.0) -> None:
    """Download url to path: into a file of its own beside path, renamed into place when
    whole (so path, if it exists, is a complete download)."""
    import shutil
    import urllib.request
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.part.{os.getpid()}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _AutoLogname:
    """Sentinel: ``stdout=AUTO_LOGNAME`` puts the stream in a file farm names (under the
    spool's out/ directory), readable afterwards through ``future.stdout``."""

    _instance: _AutoLogname | None = None

    def __new__(cls) -> _AutoLogname:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_AutoLogname, ())

    def __repr__(self) -> str:
        return "AUTO_LOGNAME"


AUTO_LOGNAME = _AutoLogname()


class DepRef:
    """Stands in a task's pickled arguments for the result of the task `key`."""

    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (DepRef, (self.key,))

    def __repr__(self) -> str:
        return f"DepRef({self.key[:8]})"


def substitute(args: tuple, kwargs: dict,
               value_of: Callable[[str], Any]) -> tuple[tuple, dict]:
    """Replace DepRef placeholders (top-level args, kwarg values, items of inputs=[...])
    with value_of(key)."""
    def sub(v: Any) -> Any:
        return value_of(v.key) if isinstance(v, DepRef) else v

    args = tuple(sub(a) for a in args)
    kwargs = {k: sub(v) for k, v in kwargs.items()}
    if isinstance(kwargs.get("inputs"), (list, tuple)):
        kwargs["inputs"] = [sub(v) for v in kwargs["inputs"]]
    return args, kwargs
