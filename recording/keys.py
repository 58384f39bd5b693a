"""Per-tenant age X25519 keys.

A tenant's identity is generated on first use. The public recipient is stored in clear (a
node needs only it to record); the private identity is stored sealed under the master key
(AES-256-GCM, associated data = tenant id + key id). Shredding deletes the sealed identity:
every recording made under that key becomes unrecoverable (crypto-shredding); the next
recording generates a new key.

`RecordingKeys` is the contract; `KeyRing` its implementation on the SQL `Database`
(table `recording_keys`; contract suite: tests/contract/test_recordings_repository.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pyrage import x25519

from gateway.security.sealed import SealedColumn
from gateway.store.db import Database
from gateway.store.rows import new_id
from gateway.store.sql import Conflict
from recording.masterkey import MasterKeyError, Sealer


class KeyShredded(Exception):
    """The tenant's identity for this key was deleted: its recordings cannot be decrypted."""


@dataclass(frozen=True, slots=True)
class TenantKey:
    key_id: str
    tenant_id: str
    recipient: str


def identity_aad(tenant_id: str, key_id: str) -> bytes:
    return f"izihelp-recording-identity:{tenant_id}:{key_id}".encode()


# tenants' recording identities sealed under the master key (shredded ones are NULL)
SEALED_IDENTITIES = SealedColumn("recording_identities", "recording key {id}", "recording_keys", "identity_sealed",
                                 identity_aad, encoding="hex", only="identity_sealed IS NOT NULL")


class RecordingKeys(Protocol):
    """Per-tenant recording keys. Every operation is scoped to the tenant; one that needs
    the private identity (creating or opening a key) raises `MasterKeyError` when no
    master key is configured."""

    async def current(self, tenant_id: str) -> TenantKey:
        """The tenant's live (unshredded) key, the newest one; generated and stored on first
        use. Concurrent first calls agree on one key."""

    async def identity(self, tenant_id: str, key_id: str) -> x25519.Identity:
        """The private identity of the tenant's key; `KeyShredded` when it was shredded, is
        unknown, or belongs to another tenant; `MasterKeyError` when it does not open under
        this master key."""

    async def identities_text(self, tenant_id: str) -> list[tuple[str, str]]:
        """(key id, AGE-SECRET-KEY-…) of every unshredded key of the tenant, oldest first."""

    async def shred(self, tenant_id: str) -> int:
        """Delete every private identity of the tenant (its recordings can no longer be
        opened; the next `current` generates a new key). Returns how many were shredded:
        0 the second time."""


class KeyRing:
    """`RecordingKeys` on the SQL `Database`, identities sealed by `sealer`."""

    def __init__(self, db: Database, sealer: Sealer | None, clock: Callable[[], float]) -> None:
        self.db = db
        self._sealer = sealer  # None: no master key configured; every key operation fails clearly
        self.clock = clock

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            raise MasterKeyError("MASTER_KEY is not set: recordings cannot be made or opened")
        return self._sealer

    _aad = staticmethod(identity_aad)

    async def current(self, tenant_id: str) -> TenantKey:
        """The tenant's live key, generating one on first use."""
        async with self.db.reader() as c:
            row = await c.fetchrow(
                "SELECT id, recipient FROM recording_keys WHERE tenant_id = $1 AND shredded_at IS NULL "
                "ORDER BY created_at DESC LIMIT 1", tenant_id)
        if row is not None:
            return TenantKey(row["id"], tenant_id, row["recipient"])
        identity = x25519.Identity.generate()
        key_id = new_id()
        sealed = self.sealer.seal(str(identity).encode(), self._aad(tenant_id, key_id)).hex()
        recipient = str(identity.to_public())
        try:
            async with self.db.transaction() as c:
                # the tenant row locked: concurrent first uses on other connections wait here,
                # then find the key the first one stored
                await c.fetchrow(f"SELECT id FROM tenants WHERE id = $1{self.db.row_lock}", tenant_id)
                again = await c.fetchrow(
                    "SELECT id, recipient FROM recording_keys WHERE tenant_id = $1 AND shredded_at IS NULL "
                    "ORDER BY created_at DESC LIMIT 1", tenant_id)
                if again is not None:
                    return TenantKey(again["id"], tenant_id, again["recipient"])
                await c.execute(
                    "INSERT INTO recording_keys (id, tenant_id, recipient, identity_sealed, created_at) "
                    "VALUES ($1, $2, $3, $4, $5)", key_id, tenant_id, recipient, sealed, self.clock())
        except Conflict:
            return await self.current(tenant_id)
        return TenantKey(key_id, tenant_id, recipient)

    async def identity(self, tenant_id: str, key_id: str) -> x25519.Identity:
        async with self.db.reader() as c:
            row = await c.fetchrow(
                "SELECT identity_sealed FROM recording_keys WHERE tenant_id = $1 AND id = $2", tenant_id, key_id)
        if row is None or row["identity_sealed"] is None:
            raise KeyShredded(f"recording key {key_id} of tenant {tenant_id} is shredded or unknown")
        secret = self.sealer.open(bytes.fromhex(row["identity_sealed"]), self._aad(tenant_id, key_id))
        return x25519.Identity.from_str(secret.decode())

    async def identities_text(self, tenant_id: str) -> list[tuple[str, str]]:
        """(key id, AGE-SECRET-KEY-…) of every unshredded key of the tenant, oldest first."""
        async with self.db.reader() as c:
            rows = await c.fetch(
                "SELECT id FROM recording_keys WHERE tenant_id = $1 AND identity_sealed IS NOT NULL "
                "ORDER BY created_at", tenant_id)
        return [(r["id"], str(await self.identity(tenant_id, r["id"]))) for r in rows]

    async def shred(self, tenant_id: str) -> int:
        """Delete every private identity of the tenant. Returns how many keys were shredded."""
        async with self.db.transaction() as c:
            rows = await c.fetch(
                "SELECT id FROM recording_keys WHERE tenant_id = $1 AND identity_sealed IS NOT NULL", tenant_id)
            await c.execute(
                "UPDATE recording_keys SET identity_sealed = NULL, shredded_at = $2 "
                "WHERE tenant_id = $1 AND identity_sealed IS NOT NULL", tenant_id, self.clock())
        return len(rows)
