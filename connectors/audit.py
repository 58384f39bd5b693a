"""The audit trail of the tenants' inboxes (`connector_audit`, migration 0017): one entry per
`channel add|update|rotate|disable|enable|remove|test` (connectors/manage.py), besides the
`connectors.audit` log line. `AuditRepository` is the contract
(tests/contract/test_audit_repository.py on SQLite and PostgreSQL)."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, replace
from typing import Protocol

from gateway.store.db import Database
from gateway.store.rows import Row, new_message_id

MAX_LIST = 500


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """`fields`: the keys changed (``settings.<key>``, ``credentials.<key>``, ``name``,
    ``enabled``; never a value) or, for a test, ``<check>:ok|failed``."""

    tenant_id: str
    channel_id: str
    kind: str
    action: str
    actor: str
    fields: tuple[str, ...]
    at: float
    id: str = ""


class AuditRepository(Protocol):
    async def record(self, entry: AuditEntry) -> AuditEntry:
        """Store `entry` (a fresh id when it has none); the entry as stored."""
        ...

    async def list(self, tenant_id: str, channel_id: str | None = None, limit: int = 100) -> builtins.list[AuditEntry]:
        """The tenant's entries (of `channel_id` when given, a removed inbox's too), newest
        `at` first, at most `limit` (capped at 500)."""
        ...


def _entry(r: Row) -> AuditEntry:
    return AuditEntry(tenant_id=str(r["tenant_id"]), channel_id=str(r["channel_id"]), kind=str(r["kind"]),
                      action=str(r["action"]), actor=str(r["actor"]), fields=tuple(json.loads(r["fields"])),
                      at=float(r["at"]), id=str(r["id"]))


class SqlAuditRepository:
    """`AuditRepository` on the `connector_audit` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entry: AuditEntry) -> AuditEntry:
        eid = entry.id or new_message_id()  # time-ordered: equal `at`s list the later first
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO connector_audit (id, tenant_id, channel_id, kind, action, actor, fields, at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                eid, entry.tenant_id, entry.channel_id, entry.kind, entry.action, entry.actor,
                json.dumps(list(entry.fields)), entry.at)
        return replace(entry, id=eid)

    async def list(self, tenant_id: str, channel_id: str | None = None, limit: int = 100) -> builtins.list[AuditEntry]:
        n = max(0, min(limit, MAX_LIST))
        async with self._db.reader() as conn:
            if channel_id is None:
                rows = await conn.fetch("SELECT * FROM connector_audit WHERE tenant_id = $1"
                                        " ORDER BY at DESC, id DESC LIMIT $2", tenant_id, n)
            else:
                rows = await conn.fetch("SELECT * FROM connector_audit WHERE tenant_id = $1 AND channel_id = $2"
                                        " ORDER BY at DESC, id DESC LIMIT $3", tenant_id, channel_id, n)
        return [_entry(r) for r in rows]
