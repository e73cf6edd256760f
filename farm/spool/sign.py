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
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key()  # another process made it first
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def sign(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def verify(key: bytes, data: bytes, signature: bytes) -> bool:
    # bytes, not str: compare_digest refuses non-ASCII strings, and a damaged signature
    # may hold any byte
    return hmac.compare_digest(sign(key, data).encode(), signature)
