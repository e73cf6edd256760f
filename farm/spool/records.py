"""The three kinds of record file in a spool: app, task and result.

Each is one file, written once: a magic line naming the kind and format version, one line
of JSON (the header: everything a tool needs without unpickling), then an opaque pickled
body.  Reading a header never runs user code; only the body is unpickled, and only by a
process that is about to run the task or resolve its future.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from farm.errors import CorruptFile
from farm.spool import sign

FORMAT = 1


def encode(kind: str, header: dict[str, Any], body: bytes = b"",
           key: bytes | None = None) -> bytes:
    """The first line also carries an HMAC of everything after it (with key), or else a
    CRC-32 of it: damage on disk is then an error naming the file, never a call with
    altered arguments."""
    rest = json.dumps(header, separators=(",", ":"), default=str).encode() + b"\n" + body
    sig = b" " + (sign.sign(key, rest).encode() if key else _crc(rest))
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
        if len(parts) != 3 or len(parts[2]) == 9:
            raise CorruptFile(path, "unsigned record in a signed spool: not written by farm "
                                    "with your key; it will not be run")
        if not sign.verify(key, rest, parts[2]):
            raise CorruptFile(path, "signature does not match: the record was altered or "
                                    "forged (or signed with another key); it will not be run")
    elif len(parts) == 3 and len(parts[2]) == 9 and parts[2] != _crc(rest):
        # (a signed record read by a process without the key is read unchecked: headers)
        raise CorruptFile(path, "checksum does not match: the record was damaged after it "
                                "was written; it will not be used")
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


def _crc(data: bytes) -> bytes:
    return b"c%08x" % zlib.crc32(data)


# -- bundles: several records of one kind in one file --------------------------------------------
#
# FARM-BUNDLE 1\n
# {"id": ..., "kind": "TASK" | "RESULT", "keys": [KEY...], "sizes": [bytes...]}\n
# <record of keys[0]><record of keys[1]>...
#
# Each record inside is a complete record (its own magic line and signature), so a bundle is
# only a way to write many records with one create: the index is a hint for finding a key's
# record, and the record's own header must name that key (an altered index finds nothing).

BUNDLE_MAGIC = b"FARM-BUNDLE 1\n"


def encode_bundle(bundle_id: str, kind: str, recs: list[tuple[str, bytes]]) -> bytes:
    index = {"id": bundle_id, "kind": kind, "keys": [k for k, _ in recs],
             "sizes": [len(r) for _, r in recs]}
    return (BUNDLE_MAGIC + json.dumps(index, separators=(",", ":")).encode() + b"\n"
            + b"".join(r for _, r in recs))


def is_bundle(data: bytes) -> bool:
    return data.startswith(BUNDLE_MAGIC)


def bundle_records(data: bytes, path: str) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """A bundle's index and its (key, record bytes), in order."""
    if not data.startswith(BUNDLE_MAGIC):
        raise CorruptFile(path, "not a bundle (its magic line is damaged)")
    line, sep, rest = data[len(BUNDLE_MAGIC):].partition(b"\n")
    try:
        index = json.loads(line) if sep else {}
        keys, sizes = index["keys"], index["sizes"]
        if len(keys) != len(sizes) or sum(sizes) != len(rest):
            raise ValueError("sizes do not add up")
    except (ValueError, TypeError, KeyError):
        raise CorruptFile(path, "truncated or damaged bundle index") from None
    out, at = [], 0
    for key, size in zip(keys, sizes, strict=True):
        out.append((str(key), rest[at:at + size]))
        at += size
    return index, out


def pick(kind: str, data: bytes, path: str, want: str,
         key: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    """decode() the record of key `want` in data, a plain record or a bundle."""
    if not is_bundle(data):
        return decode(kind, data, path, key)
    for k, rec in bundle_records(data, path)[1]:
        if k == want:
            return decode_in_bundle(kind, rec, path, want, key)
    raise CorruptFile(path, f"bundle has no record of {want[:8]}")


def decode_in_bundle(kind: str, rec: bytes, path: str, want: str,
                     key: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    """decode() a record that a bundle's index (path: the bundle's file) files under key
    `want`; the record's own header must name that key."""
    header, body = decode(kind, rec, path, key)
    if header.get("key") != want:
        raise CorruptFile(path, f"bundle index says {want[:8]} but the record is of "
                                f"{str(header.get('key'))[:8]}")
    return header, body
