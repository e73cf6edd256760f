"""Values that travel inside task arguments: File, AUTO_LOGNAME and dependency placeholders.

A leaf module (no farm imports), so the pool can unpickle arguments without the dataflow
layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse


class File(os.PathLike):
    """A file an app reads (``inputs=[...]``) or writes (``outputs=[...]``).

    Path-like: ``open(f)``, ``os.path.exists(f)`` and ``str(f)`` all use its local path.
    Only local paths (and ``file://`` URLs) are supported: on a cluster they must be on a
    filesystem the compute nodes share.
    """

    def __init__(self, url: str | os.PathLike[str]):
        url = os.fspath(url)
        if not isinstance(url, str) or not url:
            raise ValueError(f"File needs a non-empty path, got {url!r}")
        parsed = urlparse(url)
        self.url = url
        self.scheme = parsed.scheme if parsed.scheme and len(parsed.scheme) > 1 else "file"
        if self.scheme != "file":
            raise ValueError(f"File({url!r}): only local files are supported (scheme file)")
        self.path = parsed.path if parsed.scheme == "file" else url
        self.netloc = parsed.netloc

    @property
    def filepath(self) -> str:
        return self.path

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"File({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.path == self.path

    def __hash__(self) -> int:
        return hash(("File", self.path))


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
