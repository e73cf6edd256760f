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
from farm.spool import sign

FORMAT = 1
KINDS = ("APP", "TASK", "RESULT")


def encode(kind: str, header: dict[str, Any], body: bytes = b"",
           key: bytes | None = None) -> bytes:
    """With key, the first line also carries an HMAC of everything after it."""
    rest = json.dumps(header, separators=(",", ":"), default=str).encode() + b"\n" + body
    sig = b" " + sign.sign(key, rest).encode() if key else b""
    return b"FARM-%s %d%s\n" % (kind.encode(), FORMAT, sig) + rest


def decode(kind: str, data: bytes, path: str,
           key: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    """Split a record into (header, body); CorruptFile names the file if it is not one.
    With key, the record must carry a valid signature (check it before unpickling)."""
    first, sep, rest = data.partition(b"\n")
    parts = first.split(b" ")
    if not sep or len(parts) not in (2, 3) or parts[0] != b"FARM-" + kind.encode():
        raise CorruptFile(path, f"not a farm {kind.lower()} record (bad first line {first[:40]!r})")
    if key is not None:
        if len(parts) != 3:
            raise CorruptFile(path, "unsigned record in a signed spool: not written by farm "
                                    "with your key; it will not be run")
        if not sign.verify(key, rest, parts[2]):
            raise CorruptFile(path, "signature does not match: the record was altered or "
                                    "forged (or signed with another key); it will not be run")
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
