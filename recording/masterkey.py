"""The master key (config `MASTER_KEY`, base64 of 32 bytes) and the sealer for tenants'
recording identities.

Key loading (DATA_DIR/master.key, 0600, in embedded mode) and `SecretBox` (AES-256-GCM,
`v1 || nonce || ciphertext+tag`, associated data binds a sealed value to its row) live in
`gateway/security/crypto.py`, shared with the connectors' channel credentials: one key, one
format.
"""

from __future__ import annotations

from gateway.security.crypto import MasterKeyError, SecretBox
from gateway.security.crypto import load_master_key as _load_master_key

Sealer = SecretBox

__all__ = ["MasterKeyError", "Sealer", "load_master_key"]


def load_master_key(value: str | None, data_dir: str, *, embedded: bool) -> bytes:
    return _load_master_key(value, data_dir=data_dir, embedded=embedded)
