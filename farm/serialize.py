"""Pickling functions for another process: cloudpickle, plus where their code came from.

cloudpickle pickles a function defined in a script (or a notebook) by value.  From 3.1.3 on,
it writes every such code object with ``co_filename = "<dynamic-code>"``, so a traceback
raised in a pool would name no file and show no source line.  ``dumps`` wraps each code
object in a call to ``_located`` that carries its real file name and, when the file is small,
its source lines; ``_located`` puts both back on load, and installs the lines in
``linecache`` so that a node without the script (or with another version of it) still shows
the line that raised.  This uses only cloudpickle's public ``Pickler`` and the standard
``reducer_override`` hook, so it works the same whatever cloudpickle does with file names.
"""

from __future__ import annotations

import io
import linecache
import os
import pickle
import types
from typing import Any

import cloudpickle

# The source of a file larger than this is not carried (a node without the file shows the
# frame's file and line number, without the line).
MAX_SOURCE = 1 << 20


def dumps(obj: Any) -> bytes:
    """cloudpickle.dumps(obj), with the file name and source of code pickled by value."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.DEFAULT_PROTOCOL).dump(obj)
    return buf.getvalue()


loads = cloudpickle.loads


class _Pickler(cloudpickle.Pickler):
    def __init__(self, file: io.BytesIO, protocol: int | None = None):
        super().__init__(file, protocol=protocol)
        # Copies made here must outlive the dump: the memo is keyed by id().
        self._copies: dict[int, types.CodeType] = {}
        self._sources: dict[str, tuple[str, ...] | None] = {}

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.CodeType:
            if id(obj) in self._copies:
                return NotImplemented  # the copy: cloudpickle's own reduction
            # The call's argument is a copy, not obj itself: pickle would otherwise find obj
            # in its memo after saving the argument, and drop this call in its favour.
            copy = obj.replace()
            if copy is obj:  # not expected, but then there is nothing to wrap safely
                return NotImplemented
            self._copies[id(copy)] = copy
            filename = _real_name(obj.co_filename)
            return _located, (copy, filename, self._source(filename))
        return super().reducer_override(obj)

    def _source(self, filename: str) -> tuple[str, ...] | None:
        if filename not in self._sources:
            # linecache also knows notebook cells and other sources without a file.
            lines = linecache.getlines(filename)
            ok = lines and sum(map(len, lines)) <= MAX_SOURCE
            # One tuple per file: pickle's memo writes it once however many code objects
            # share it.
            self._sources[filename] = tuple(lines) if ok else None
        return self._sources[filename]


def _real_name(filename: str) -> str:
    if filename.startswith("<") or os.path.isabs(filename):
        return filename
    return os.path.abspath(filename)


def _located(code: types.CodeType, filename: str,
             lines: tuple[str, ...] | None) -> types.CodeType:
    """Called by pickle in the loading process: the code object under its own file name."""
    if lines is not None:
        entry = linecache.cache.get(filename)
        if entry is None or len(entry) == 1 or entry[2] != list(lines):
            # mtime None: linecache.checkcache keeps the entry instead of re-reading the
            # file (which may be absent here, or another version of the script).
            linecache.cache[filename] = (sum(map(len, lines)), None, list(lines), filename)
    if code.co_filename == filename:
        return code
    return code.replace(co_filename=filename)
