"""Tenant channel inboxes (`connector_channels`): credentials sealed at rest.

A `ChannelConfig` is one inbox of a tenant on one channel kind. `settings` is public
JSON (inbox address, `api_base` override, SMTP host, ...); `credentials` is JSON sealed
with the master key (`SecretBox`, associated data = tenant id + channel id), decrypted
only on demand through `ChannelRepository.credentials`.

`ChannelRepository` is the contract (tests/contract/test_channel_repository.py runs it on
SQLite and PostgreSQL); `ChannelStore` implements it over `gateway.store.db.Database`.
"""

from __future__ import annotations

import base64
import builtins
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.core.domain import Channel
from gateway.security.crypto import SecretBox
from gateway.security.sealed import SealedColumn
from gateway.store.db import Database
from gateway.store.rows import Row, new_id
from gateway.store.sql import Conflict

MAX_SETTINGS_BYTES = 16 * 1024
MAX_CREDENTIALS_BYTES = 16 * 1024


class ChannelError(ValueError):
    """Invalid channel definition (unknown kind, bad JSON, duplicate address, ...)."""


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    id: str
    tenant_id: str
    kind: Channel
    name: str
    address: str | None
    enabled: bool
    created_at: float
    settings: dict[str, Any] = field(default_factory=dict)


def normalize_address(kind: Channel, address: str | None) -> str | None:
    if address is None or not str(address).strip():
        return None
    a = str(address).strip()
    return a.lower() if kind == Channel.EMAIL else a


def _from_row(row: Row) -> ChannelConfig:
    return ChannelConfig(
        id=str(row["id"]),
        tenant_id=str(row["tenant_id"]),
        kind=Channel(row["kind"]),
        name=str(row["name"]),
        address=row["address"],
        enabled=bool(row["enabled"]),
        created_at=float(row["created_at"]),
        settings=json.loads(row["settings"]),
    )


def credentials_aad(tenant_id: str, channel_id: str) -> bytes:
    return f"channel:{tenant_id}:{channel_id}".encode()


# channel credentials, sealed under the master key (checked at start, re-sealed by `master-key rotate`)
SEALED_CREDENTIALS = SealedColumn("channel_credentials", "channel {id}'s credentials", "connector_channels",
                                  "credentials", credentials_aad)


class ChannelRepository(Protocol):
    """The tenants' channel inboxes. Every read and write names its tenant and sees only that
    tenant's inboxes, except the two lookups across tenants that inbound routing and pollers
    need (`find_by_address`, `list_enabled`). Credentials are stored sealed and only
    `credentials` opens them."""

    async def add(self, *, tenant_id: str, kind: Channel, name: str, credentials: dict[str, Any],
                  settings: dict[str, Any], enabled: bool = True) -> ChannelConfig:
        """A new inbox with a fresh id. `settings["address"]`, if given, is its inbound
        routing key, normalised (`normalize_address`) and unique per kind across all tenants.
        `ChannelError` for a kind that is not a connector channel (widget, call), a name not
        1..200 characters, settings or credentials over 16 KiB as JSON, or an address another
        inbox of the kind already uses (nothing is stored then)."""
        ...

    async def get(self, tenant_id: str, channel_id: str) -> ChannelConfig | None:
        """The tenant's inbox, or None (unknown id, or another tenant's inbox)."""
        ...

    async def list(self, tenant_id: str, kind: Channel | None = None) -> list[ChannelConfig]:
        """The tenant's inboxes (of `kind` when given), enabled or not, oldest first."""
        ...

    async def list_enabled(self, kind: Channel) -> builtins.list[ChannelConfig]:
        """Every tenant's enabled inboxes of `kind`, oldest first (for polling connectors)."""
        ...

    async def find_by_address(self, kind: Channel, address: str) -> ChannelConfig | None:
        """The enabled inbox of `kind` whose routing key is `address` once normalised, of any
        tenant; None when there is none or it is disabled."""
        ...

    async def for_tenant(self, tenant_id: str, kind: Channel, channel_id: str | None = None) -> ChannelConfig | None:
        """`channel_id`'s inbox when it is the tenant's, enabled and of `kind`; without
        `channel_id`, the tenant's oldest enabled inbox of `kind`; else None."""
        ...

    async def set_enabled(self, tenant_id: str, channel_id: str, enabled: bool) -> None:
        """Enable or disable the tenant's inbox; nothing happens for another tenant's or an unknown id."""
        ...

    async def update_credentials(self, tenant_id: str, channel_id: str, changes: dict[str, Any]) -> None:
        """Merge `changes` into the inbox's sealed credentials (a rotated token) atomically:
        two concurrent updates both land. `LookupError` when the tenant has no such inbox."""
        ...

    async def credentials(self, ch: ChannelConfig) -> dict[str, Any]:
        """The inbox's credentials, opened; {} when the inbox is gone. `MasterKeyError` when
        they were sealed under another key."""
        ...

    async def redefine(self, tenant_id: str, channel_id: str, *, name: str,
                       settings: dict[str, Any]) -> ChannelConfig | None:
        """Replace the inbox's name and settings (its address follows `settings["address"]`);
        None when the tenant has no such inbox; `ChannelError` for a name not 1..200
        characters, settings over 16 KiB, or an address another inbox of the kind uses
        (nothing changes then)."""
        ...

    async def remove(self, tenant_id: str, channel_id: str) -> bool:
        """Delete the tenant's inbox and what refers to it; False when there is none (or it
        is another tenant's). Its conversations stay."""
        ...


class ChannelStore:
    """`ChannelRepository` on the `connector_channels` table (migration 0004)."""

    def __init__(self, db: Database, box: SecretBox, clock: Callable[[], float]) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    _aad = staticmethod(credentials_aad)

    async def add(
        self,
        *,
        tenant_id: str,
        kind: Channel,
        name: str,
        credentials: dict[str, Any],
        settings: dict[str, Any],
        enabled: bool = True,
    ) -> ChannelConfig:
        """`settings["address"]`, if given, is the inbound routing key (unique per kind)."""
        kind = Channel(kind)
        if kind in (Channel.WIDGET, Channel.CALL):
            raise ChannelError(f"{kind.value} is not a connector channel")
        if not name.strip() or len(name) > 200:
            raise ChannelError("name must be 1..200 characters")
        settings_json = json.dumps(settings, ensure_ascii=False, sort_keys=True)
        creds_json = json.dumps(credentials, sort_keys=True).encode()
        if len(settings_json) > MAX_SETTINGS_BYTES or len(creds_json) > MAX_CREDENTIALS_BYTES:
            raise ChannelError("settings or credentials too large")
        address = normalize_address(kind, settings.get("address"))
        cid = new_id()
        sealed = base64.b64encode(self._box.seal(creds_json, self._aad(tenant_id, cid))).decode()
        try:
            async with self._db.transaction() as conn:
                row = await conn.fetchrow(
                    "INSERT INTO connector_channels (id, tenant_id, kind, name, address, credentials, settings,"
                    " enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
                    cid, tenant_id, kind.value, name.strip(), address, sealed, settings_json, enabled, self._clock(),
                )
        except Conflict:
            raise ChannelError(f"another {kind.value} channel already uses address {address!r}") from None
        assert row is not None
        return _from_row(row)

    async def get(self, tenant_id: str, channel_id: str) -> ChannelConfig | None:
        async with self._db.reader() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM connector_channels WHERE tenant_id = $1 AND id = $2", tenant_id, channel_id
            )
        return None if row is None else _from_row(row)

    async def list(self, tenant_id: str, kind: Channel | None = None) -> list[ChannelConfig]:
        async with self._db.reader() as conn:
            if kind is None:
                rows = await conn.fetch(
                    "SELECT * FROM connector_channels WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id
                )
            else:
                rows = await conn.fetch(
                    "SELECT * FROM connector_channels WHERE tenant_id = $1 AND kind = $2 ORDER BY created_at, id",
                    tenant_id, Channel(kind).value,
                )
        return [_from_row(r) for r in rows]

    async def list_enabled(self, kind: Channel) -> builtins.list[ChannelConfig]:
        """Every tenant's enabled inboxes of `kind` (for polling connectors)."""
        async with self._db.reader() as conn:
            rows = await conn.fetch(
                "SELECT * FROM connector_channels WHERE kind = $1 AND enabled = $2 ORDER BY created_at, id",
                Channel(kind).value, True,
            )
        return [_from_row(r) for r in rows]

    async def find_by_address(self, kind: Channel, address: str) -> ChannelConfig | None:
        """The enabled inbox whose routing key is `address` (any tenant: inbound routing)."""
        key = normalize_address(Channel(kind), address)
        if key is None:
            return None
        async with self._db.reader() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM connector_channels WHERE kind = $1 AND address = $2 AND enabled = $3",
                Channel(kind).value, key, True,
            )
        return None if row is None else _from_row(row)

    async def for_tenant(self, tenant_id: str, kind: Channel, channel_id: str | None = None) -> ChannelConfig | None:
        """`channel_id`'s inbox, or else the tenant's first enabled inbox of `kind`."""
        if channel_id is not None:
            ch = await self.get(tenant_id, channel_id)
            return ch if ch is not None and ch.enabled and ch.kind == kind else None
        for ch in await self.list(tenant_id, kind):
            if ch.enabled:
                return ch
        return None

    async def set_enabled(self, tenant_id: str, channel_id: str, enabled: bool) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE connector_channels SET enabled = $3 WHERE tenant_id = $1 AND id = $2",
                tenant_id, channel_id, enabled,
            )

    async def update_credentials(self, tenant_id: str, channel_id: str, changes: dict[str, Any]) -> None:
        """Merge `changes` into the inbox's sealed credentials (a rotated token), in one
        row-locked transaction; LookupError when the inbox is gone."""
        aad = self._aad(tenant_id, channel_id)
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT credentials FROM connector_channels WHERE tenant_id = $1 AND id = $2" + self._db.row_lock,
                tenant_id, channel_id,
            )
            if row is None:
                raise LookupError(f"inbox {channel_id} no longer exists")
            creds: dict[str, Any] = json.loads(self._box.open(base64.b64decode(row["credentials"]), aad))
            creds.update(changes)
            sealed = base64.b64encode(self._box.seal(json.dumps(creds, sort_keys=True).encode(), aad)).decode()
            await conn.execute("UPDATE connector_channels SET credentials = $3 WHERE tenant_id = $1 AND id = $2",
                               tenant_id, channel_id, sealed)

    async def credentials(self, ch: ChannelConfig) -> dict[str, Any]:
        """Decrypt the inbox's credentials (raises `MasterKeyError` under a wrong key)."""
        async with self._db.reader() as conn:
            row = await conn.fetchrow(
                "SELECT credentials FROM connector_channels WHERE tenant_id = $1 AND id = $2", ch.tenant_id, ch.id
            )
        if row is None:
            return {}
        plain = self._box.open(base64.b64decode(row["credentials"]), self._aad(ch.tenant_id, ch.id))
        out: dict[str, Any] = json.loads(plain)
        return out

    async def redefine(self, tenant_id: str, channel_id: str, *, name: str,
                       settings: dict[str, Any]) -> ChannelConfig | None:
        """Replace the inbox's name and settings (its address follows `settings["address"]`);
        None when there is no such inbox; ChannelError when another inbox of the kind uses
        the new address."""
        if not name.strip() or len(name) > 200:
            raise ChannelError("name must be 1..200 characters")
        settings_json = json.dumps(settings, ensure_ascii=False, sort_keys=True)
        if len(settings_json) > MAX_SETTINGS_BYTES:
            raise ChannelError("settings too large")
        ch = await self.get(tenant_id, channel_id)
        if ch is None:
            return None
        address = normalize_address(ch.kind, settings.get("address"))
        try:
            async with self._db.transaction() as conn:
                row = await conn.fetchrow(
                    "UPDATE connector_channels SET name = $3, address = $4, settings = $5"
                    " WHERE tenant_id = $1 AND id = $2 RETURNING *",
                    tenant_id, channel_id, name.strip(), address, settings_json,
                )
        except Conflict:
            raise ChannelError(f"another {ch.kind.value} channel already uses address {address!r}") from None
        return None if row is None else _from_row(row)

    async def remove(self, tenant_id: str, channel_id: str) -> bool:
        """Delete the inbox and what refers to it (its IMAP poll and token refresh claims); False when there is
        none. Its conversations stay; their replies fail as 'inbox gone'."""
        async with self._db.transaction() as conn:
            for table in ("email_imap_polls", "connector_token_refreshes"):
                await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1 AND channel_id = $2",
                                   tenant_id, channel_id)
            row = await conn.fetchrow(
                "DELETE FROM connector_channels WHERE tenant_id = $1 AND id = $2 RETURNING id", tenant_id, channel_id
            )
        return row is not None
