"""The signing key: unpickling is running code, so records carry an HMAC that pools and
drivers check before they unpickle anything.

The key is 32 random bytes in ~/.farm/key (or $FARM_KEY_FILE), mode 0600, made by the first
driver that needs one.  On a cluster the home directory is shared, so pools find it there;
a user who cannot read it cannot make records this user's pools will run.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from farm.errors import SpoolError

KEY_ENV = "FARM_KEY_FILE"


def key_path() -> str:
    return os.environ.get(KEY_ENV) or os.path.join(os.path.expanduser("~"), ".farm", "key")


def load_key(create: bool = False) -> bytes | None:
    """The user's key, or None if there is none (and create is False)."""
    path = key_path()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if not create:
            return None
        return _make_key(path)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise SpoolError(
                f"signing key {path} must belong to you and be readable by you alone "
                f"(it is mode {st.st_mode & 0o777:o}, uid {st.st_uid}): chmod 600 {path}")
        key = f.read().strip()
    if len(key) < 32:
        raise SpoolError(f"signing key {path} is too short ({len(key)} bytes); delete it and "
                         "let farm make a new one")
    return key


def _make_key(path: str) -> bytes:
    """Write a new key to a file of our own, then link it into place: the link makes the
    key appear whole or not at all (a racing load_key never reads a half-written key), and
    EEXIST says another process made one first, which is then everybody's key."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = secrets.token_hex(32).encode()
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            mine = None
        else:
            mine = key
    finally:
        os.unlink(tmp)
    if mine is not None:
        return mine
    theirs = load_key()
    if theirs is None:  # made and removed meanwhile: try again
        return _make_key(path)
    return theirs


def sign(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def verify(key: bytes, data: bytes, signature: bytes) -> bool:
    # bytes, not str: compare_digest refuses non-ASCII strings, and a damaged signature
    # may hold any byte
    return hmac.compare_digest(sign(key, data).encode(), signature)
