"""The three kinds of record file in a spool: app, task and result.

Each is one file, written once: a magic line naming the kind and format version, one line
of JSON (the header: everything a tool needs without unpickling), then an opaque pickled
body.  Reading a header never runs user code; only the body is unpickled, and only by a
process that is about to run the task or resolve its future.
"""

from __future__ import annotations

import json
from typing import Any

from farm.errors import CorruptFile

FORMAT = 1
KINDS = ("APP", "TASK", "RESULT")


def encode(kind: str, header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":"), default=str).encode()
    return b"FARM-%s %d\n" % (kind.encode(), FORMAT) + head + b"\n" + body


def decode(kind: str, data: bytes, path: str) -> tuple[dict[str, Any], bytes]:
    """Split a record into (header, body); CorruptFile names the file if it is not one."""
    first, sep, rest = data.partition(b"\n")
    parts = first.split(b" ")
    if not sep or len(parts) != 2 or parts[0] != b"FARM-" + kind.encode():
        raise CorruptFile(path, f"not a farm {kind.lower()} record (bad first line {first[:40]!r})")
    try:
        version = int(parts[1])
    except ValueError:
        raise CorruptFile(path, f"bad format version {parts[1][:20]!r}") from None
    if version > FORMAT:
        raise CorruptFile(
            path,
            f"written by a newer farm (record format {version}, this farm reads {FORMAT}); "
            "upgrade farm on this machine",
        )
    head, sep, body = rest.partition(b"\n")
    try:
        header = json.loads(head) if sep else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise CorruptFile(path, "truncated or damaged header")
    return header, body
