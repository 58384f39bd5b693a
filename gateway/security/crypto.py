"""`SecretBox`: AES-256-GCM sealing of small secrets under a master key, and key loading.

Generic on purpose (channel credentials, call recording keys, ...): `seal(plaintext, aad)`
returns ``version || nonce || ciphertext+tag``; `open` needs the same associated data, so
a sealed blob copied to another row (other tenant, other channel) does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE = 12
KEY_FILE = "master.key"


class MasterKeyError(Exception):
    """The master key is missing, malformed, or a sealed blob does not open."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise MasterKeyError("the master key must be 32 bytes")
        self._key = key
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
            raise MasterKeyError("not a sealed blob")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
        except InvalidTag:
            raise MasterKeyError("sealed blob does not open (wrong key or associated data)") from None

    def derive(self, label: str) -> bytes:
        """A 32-byte sub-key for `label` (e.g. HMAC keys), independent of the sealing key."""
        return hmac.new(self._key, b"izihelp-derive:" + label.encode(), hashlib.sha256).digest()


def parse_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError("MASTER_KEY must be base64 of 32 bytes") from None
    if len(key) != 32:
        raise MasterKeyError(f"MASTER_KEY must be base64 of 32 bytes, got {len(key)} bytes")
    return key


def load_master_key(env_value: str | None, *, data_dir: str, embedded: bool) -> bytes:
    """MASTER_KEY if set; else, in embedded mode (SQLite), DATA_DIR/master.key, created with
    0600 permissions on first use; else (shared database) a clear `MasterKeyError`."""
    if env_value:
        return parse_key(env_value)
    if not embedded:
        raise MasterKeyError(
            "MASTER_KEY is not set: with DATABASE_URL every node must share one master key "
            "(base64 of 32 bytes, e.g. the output of `openssl rand -base64 32`)"
        )
    path = Path(data_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_key(path.read_text(encoding="ascii"))
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return parse_key(path.read_text(encoding="ascii"))
