"""SQL for privacy: discovery of tenant-owned tables (so features' tables are covered
without being listed here), policies and the audit trail. The `PrivacyRepository`
protocol and its implementation `PrivacyStore` in portable SQL on `Database` (contract
suite: tests/contract/test_privacy_repository.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.db import Database
from gateway.store.rows import new_id
from gateway.store.sql import Conn

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ERASE_MODES = ("anonymise", "delete")
# Rows per transaction of a tenant purge or a message expiry: a few ms each on SQLite,
# where the statement runs on the event loop.
PURGE_CHUNK = 500


def quote_ident(name: str) -> str:
    """`name` as a quoted SQL identifier; ValueError unless it is a plain one."""
    if not _IDENT.match(name):
        raise ValueError(f"unexpected table name {name!r}")
    return f'"{name}"'


@dataclass(frozen=True, slots=True)
class Policy:
    message_retention_days: int | None = None
    erase_mode: str = "anonymise"  # what erasing a contact does to its messages


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    tenant_ref: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    created_at: float


class PrivacyRepository(Protocol):
    """Tenant-wide privacy data: the tenant-owned tables, policies, the audit trail, the
    end of tenants. The audit trail outlives a tenant's purge (`tenant_ref` is not a
    foreign key)."""

    @property
    def db(self) -> Database:
        """The database whose tables this repository discovers (a data-subject request runs
        its own statements on it, in one transaction with `tenant_tables`)."""

    async def tenant_tables(self, conn: Conn, with_column: str = "tenant_id") -> list[str]:
        """Every table with a `tenant_id` column (and `with_column`), `tenants` excluded,
        each before the tables it references (so deleting in this order honours foreign
        keys). Features' tables are found without being named."""

    async def count_tenant_rows(self, tenant_id: str) -> dict[str, int]:
        """Rows of the tenant per tenant-owned table, and "tenants": 1 (0 when unknown)."""

    async def delete_tenant_rows(self, tenant_id: str) -> dict[str, int]:
        """Delete every row of the tenant in every tenant-owned table, then the tenant row;
        rows deleted per table. Other tenants' rows are untouched. Runs in several
        transactions: an interrupted purge is finished by the next one."""

    async def ended_tenants(self, before: float) -> list[tuple[str, float]]:
        """(tenant id, ended_at) of the tenants that ended at or before `before`, earliest first."""

    async def end_tenant(self, tenant_id: str, at: float) -> bool:
        """Mark the tenant ended at `at` (status `ended`); False when there is no such tenant."""

    async def policy(self, tenant_id: str) -> Policy:
        """The tenant's policy; the default `Policy()` until one is set."""

    async def set_policy(self, tenant_id: str, policy: Policy) -> None:
        """Replace the tenant's policy (an upsert: the last set wins)."""

    async def policies_with_retention(self) -> list[tuple[str, int]]:
        """(tenant id, days) of every policy with a message retention."""

    async def expire_messages(self, tenant_id: str, before: float, *, dry_run: bool) -> int:
        """Blank the text and attachments of the tenant's messages created before `before`
        (the rows stay: seq has no holes). Returns how many messages had content to blank;
        `dry_run` counts them and changes nothing. A second run finds none."""

    async def audit(self, tenant_ref: str, actor: str, action: str, subject: str,
                    details: dict[str, Any]) -> None:
        """Append an entry to the tenant's audit trail."""

    async def audit_log(self, tenant_ref: str, limit: int = 100) -> list[AuditEntry]:
        """The tenant's latest `limit` audit entries, newest first."""


class PrivacyStore:
    """`PrivacyRepository` on the SQL `Database`; `sqlite` says which dialect it speaks
    (table discovery and chunked deletes differ)."""

    def __init__(self, db: Database, *, sqlite: bool, clock: Callable[[], float] = time.time,
                 chunk: int = PURGE_CHUNK) -> None:
        self.db = db
        self.sqlite = sqlite
        self.clock = clock
        self.chunk = chunk  # rows per transaction of a purge or an expiry

    # --- schema discovery -----------------------------------------------------------
    async def schema(self, conn: Conn) -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
        """Columns of every table and the (child, parent) foreign-key edges."""
        cols: dict[str, set[str]] = {}
        edges: set[tuple[str, str]] = set()
        if self.sqlite:
            names = [str(r["name"]) for r in await conn.fetch(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for name in names:
                cols[name] = {str(r["name"]) for r in await conn.fetch(f"PRAGMA table_info({quote_ident(name)})")}
                for fk in await conn.fetch(f"PRAGMA foreign_key_list({quote_ident(name)})"):
                    edges.add((name, str(fk["table"])))
        else:
            for r in await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                                      "WHERE table_schema = current_schema()"):
                cols.setdefault(str(r["table_name"]), set()).add(str(r["column_name"]))
            edges = {(str(r["child"]), str(r["parent"])) for r in await conn.fetch(
                "SELECT tc.table_name AS child, ccu.table_name AS parent "
                "FROM information_schema.table_constraints tc "
                "JOIN information_schema.constraint_column_usage ccu "
                "ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema "
                "WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()")}
        return cols, edges

    async def tenant_tables(self, conn: Conn, with_column: str = "tenant_id") -> list[str]:
        """Tables with a tenant_id (and `with_column`) column, children before parents, `tenants` excluded."""
        cols, edges = await self.schema(conn)
        tables = {t for t, c in cols.items() if "tenant_id" in c and with_column in c}
        tables.discard("tenants")
        return _children_first(tables, edges)

    async def count_tenant_rows(self, tenant_id: str) -> dict[str, int]:
        async with self.db.reader() as conn:
            out: dict[str, int] = {}
            for t in await self.tenant_tables(conn):
                row = await conn.fetchrow(f"SELECT COUNT(*) AS n FROM {quote_ident(t)} WHERE tenant_id = $1", tenant_id)
                out[t] = int(row["n"]) if row else 0
            row = await conn.fetchrow("SELECT COUNT(*) AS n FROM tenants WHERE id = $1", tenant_id)
            out["tenants"] = int(row["n"]) if row else 0
            return out

    async def delete_tenant_rows(self, tenant_id: str) -> dict[str, int]:
        """Delete every row of the tenant: each table (children first) `chunk` rows per
        transaction, then the tenant row. Between chunks the event loop and other writers
        run (on SQLite a statement runs on the loop: one transaction for a large tenant
        would stall every connection of the node). An interrupted purge leaves an ended
        tenant with fewer rows, and the next run finishes it."""
        async with self.db.reader() as conn:
            tables = await self.tenant_tables(conn)
        out: dict[str, int] = {}
        for t in tables:
            locate = "rowid IN (SELECT rowid" if self.sqlite else "ctid = ANY(ARRAY(SELECT ctid"
            close = ")" if self.sqlite else "))"
            table = quote_ident(t)
            sql = f"DELETE FROM {table} WHERE {locate} FROM {table} WHERE tenant_id = $1 LIMIT $2{close} RETURNING 1"
            out[t] = await self._in_chunks(sql, tenant_id)
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
        out["tenants"] = 1
        return out

    async def _in_chunks(self, sql: str, *args: Any) -> int:
        """Runs `sql` (… LIMIT ${len(args) + 1} … RETURNING) in transactions of its own until
        it touches fewer than `chunk` rows; the rows touched in all."""
        total = 0
        while True:
            async with self.db.transaction() as conn:
                n = len(await conn.fetch(sql, *args, self.chunk))
            total += n
            if n < self.chunk:
                return total
            await asyncio.sleep(0)

    # --- tenants ----------------------------------------------------------------------
    async def ended_tenants(self, before: float) -> list[tuple[str, float]]:
        async with self.db.reader() as conn:
            rows = await conn.fetch("SELECT id, ended_at FROM tenants WHERE ended_at IS NOT NULL AND ended_at <= $1 "
                                    "ORDER BY ended_at", before)
            return [(str(r["id"]), float(r["ended_at"])) for r in rows]

    async def end_tenant(self, tenant_id: str, at: float) -> bool:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow("UPDATE tenants SET ended_at = $2, status = 'ended' WHERE id = $1 RETURNING id",
                                      tenant_id, at)
            return row is not None

    # --- policies ---------------------------------------------------------------------
    async def policy(self, tenant_id: str) -> Policy:
        async with self.db.reader() as conn:
            row = await conn.fetchrow("SELECT message_retention_days, erase_mode FROM privacy_policies "
                                      "WHERE tenant_id = $1", tenant_id)
        if row is None:
            return Policy()
        days = row["message_retention_days"]
        return Policy(None if days is None else int(days), str(row["erase_mode"]))

    async def set_policy(self, tenant_id: str, policy: Policy) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO privacy_policies (tenant_id, message_retention_days, erase_mode, updated_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET "
                "message_retention_days = EXCLUDED.message_retention_days, erase_mode = EXCLUDED.erase_mode, "
                "updated_at = EXCLUDED.updated_at",
                tenant_id, policy.message_retention_days, policy.erase_mode, self.clock())

    async def policies_with_retention(self) -> list[tuple[str, int]]:
        async with self.db.reader() as conn:
            rows = await conn.fetch("SELECT tenant_id, message_retention_days FROM privacy_policies "
                                    "WHERE message_retention_days IS NOT NULL")
            return [(str(r["tenant_id"]), int(r["message_retention_days"])) for r in rows]

    async def expire_messages(self, tenant_id: str, before: float, *, dry_run: bool) -> int:
        """Blank text and attachments of messages created before `before` (rows stay: seq has
        no holes), `chunk` messages per transaction."""
        where = "tenant_id = $1 AND created_at < $2 AND (text <> '' OR attachments <> '[]')"
        if dry_run:
            async with self.db.reader() as conn:
                row = await conn.fetchrow(f"SELECT COUNT(*) AS n FROM messages WHERE {where}", tenant_id, before)
                return int(row["n"]) if row else 0
        return await self._in_chunks(f"UPDATE messages SET text = '', attachments = '[]' WHERE id IN "
                                     f"(SELECT id FROM messages WHERE {where} LIMIT $3) RETURNING id",
                                     tenant_id, before)

    # --- audit ------------------------------------------------------------------------
    async def audit(self, tenant_ref: str, actor: str, action: str, subject: str,
                    details: dict[str, Any]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO privacy_audit (id, tenant_ref, actor, action, subject, details, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                new_id(), tenant_ref, actor, action, subject, json.dumps(details, sort_keys=True), self.clock())

    async def audit_log(self, tenant_ref: str, limit: int = 100) -> list[AuditEntry]:
        async with self.db.reader() as conn:
            rows = await conn.fetch(
                "SELECT id, tenant_ref, actor, action, subject, details, created_at FROM privacy_audit "
                "WHERE tenant_ref = $1 ORDER BY created_at DESC LIMIT $2", tenant_ref, limit)
        return [AuditEntry(str(r["id"]), str(r["tenant_ref"]), str(r["actor"]), str(r["action"]),
                           str(r["subject"]), json.loads(str(r["details"])), float(r["created_at"]))
                for r in rows]


def _children_first(tables: set[str], edges: set[tuple[str, str]]) -> list[str]:
    """Order `tables` so that a table comes before every table it references."""
    refs = {t: {p for c, p in edges if c == t and p in tables and p != t} for t in tables}
    out: list[str] = []
    remaining = set(tables)
    while remaining:
        # a table nobody remaining references can go now
        ready = sorted(t for t in remaining if not any(t in refs[o] for o in remaining if o != t))
        if not ready:  # a cycle: fall back to name order for the rest
            ready = sorted(remaining)
        out.extend(ready)
        remaining.difference_update(ready)
    return out


def rows_total(counts: Sequence[int]) -> int:
    return sum(counts)


def privacy_store(db: Database, *, sqlite: bool) -> PrivacyStore:
    """The privacy repository on `db`; `sqlite`: the database is SQLite (`Config.embedded`)."""
    return PrivacyStore(db, sqlite=sqlite)
