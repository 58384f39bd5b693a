"""The `Store` implementation shared by the SQL backends.

Every statement is written once, with PostgreSQL-style ``$n`` placeholders (the SQLite
backend rewrites them to ``?n``), in the portable subset both engines understand
(``RETURNING``, ``INSERT ... ON CONFLICT``). A backend supplies only:

* `_read()`  - a connection for one or more reads;
* `_write()` - a connection inside a transaction that commits on success, rolls back on
  error and turns unique-constraint violations into `Conflict`;
* `_row_lock` - the suffix that row-locks a ``SELECT`` inside `_write()` (``FOR NO KEY UPDATE``
  on PostgreSQL; empty on SQLite, whose write transactions are already exclusive);
* `_lock_migrations()` - cross-process exclusion for `migrate()` beyond `_write()`;
* `ping()` and `close()`.

Serialisation points: `append_message` locks the conversation row, `assign_next_agent`
the tenant row, so sequence numbers and round-robin tickets are assigned without races.
"""

from __future__ import annotations

import abc
import asyncio
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from gateway.core.domain import (
    Agent,
    AgentRole,
    AgentStatus,
    Channel,
    Contact,
    Conversation,
    ConversationFilter,
    ConversationStatus,
    DeliveryState,
    Message,
    NewMessage,
    Tenant,
    TenantStatus,
)
from gateway.store.base import AppendRequest, AppendResult, NotFound, StoreError
from gateway.store.migrations import Migration, for_dialect, load_migrations
from gateway.store.rows import (
    Params,
    Row,
    agent_from_row,
    contact_from_row,
    conversation_from_row,
    dump_json,
    member,
    message_from_row,
    new_id,
    new_message_id,
    tenant_from_row,
)

# Largest IN (...) list sent in one statement (SQLite caps bound variables).
IN_CHUNK = 500
MESSAGE_COLUMNS = ("id, tenant_id, conversation_id, seq, client_id, external_id, author_type, author_id, text,"
                   " attachments, created_at, delivery_state")
# Agents per presence transaction (three bind values a row).
PRESENCE_CHUNK = 200
# Most messages `append_messages` takes at once (12 bind values a row, two IN lists).
MAX_APPEND_BATCH = 200

_CONTACT_FIELDS = frozenset({"name", "email", "phone", "attributes"})

_CREATE_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)


class Conflict(StoreError):
    """A unique constraint was violated (e.g. a widget key or token hash already in use)."""


class StoreClosed(StoreError):
    """The store was used before `open()` or after `close()`."""


class Conn(Protocol):
    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> object: ...


def chunked(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _keys(m: Message | NewMessage) -> list[tuple[str, str]]:
    """The idempotency keys of a message: its client_id and its external_id."""
    keys = []
    if m.client_id is not None:
        keys.append(("c", m.client_id))
    if m.external_id is not None:
        keys.append(("e", m.external_id))
    return keys


def _lookup(found: dict[tuple[str, str, str], Message], rq: AppendRequest) -> Message | None:
    """The stored duplicate of a request's message, if any (the earliest seq)."""
    hits = [found[k] for k in ((rq.conversation_id, *key) for key in _keys(rq.message)) if k in found]
    return min(hits, key=lambda x: x.seq) if hits else None


def require_row(row: Row | None, what: str) -> Row:
    if row is None:
        raise NotFound(what)
    return row


def new_message_row(rq: AppendRequest, seq: int, now: float) -> tuple[Message, tuple[Any, ...]]:
    """The stored form of a new message with its seq: the Message (as a read returns it)
    and its row in MESSAGE_COLUMNS order."""
    values = new_message_values(rq, seq, now)
    return stored_message(rq, values, seq), values


def new_message_values(rq: AppendRequest, seq: int, now: float) -> tuple[Any, ...]:
    """A new message's row in MESSAGE_COLUMNS order (a new id; `seq` in the seq column:
    where the statement numbers the messages itself, the message's place in the batch)."""
    m = rq.message
    return (new_message_id(), rq.tenant_id, rq.conversation_id, seq, m.client_id, m.external_id,
            m.author_type.value, m.author_id, m.text, dump_json(list(m.attachments)) if m.attachments else "[]",
            now, member(DeliveryState, m.delivery_state).value)


def stored_message(rq: AppendRequest, values: tuple[Any, ...], seq: int) -> Message:
    """The Message, as a read returns it, of the row `values` (`new_message_values`) stored
    with `seq`."""
    m = rq.message
    return Message(
        id=values[0], tenant_id=rq.tenant_id, conversation_id=rq.conversation_id, seq=seq,
        client_id=m.client_id, external_id=m.external_id, author_type=m.author_type,
        author_id=m.author_id, text=m.text,
        # as a read returns them (JSON round trip), without decoding the common empty list
        attachments=tuple(json.loads(values[9])) if m.attachments else (),
        created_at=values[10], delivery_state=member(DeliveryState, m.delivery_state))


def conversation_tenants(requests: Sequence[AppendRequest]) -> dict[str, str] | None:
    """Each conversation of a batch with the tenant that asks for it; None when one
    conversation id is claimed by two tenants (the locking path's reads then decide)."""
    tenant_of: dict[str, str] = {}
    for rq in requests:
        if tenant_of.setdefault(rq.conversation_id, rq.tenant_id) != rq.tenant_id:
            return None
    return tenant_of


@dataclass(slots=True)
class BatchPlan:
    """What a batch append does with each request, decided before anything is written.

    `plan[i]`: None (no such conversation for the request's tenant), a stored duplicate
    (`Message`), or `(j, created)`: the request's message is `fresh[j]` (created=False
    when an earlier request of the batch has the same key). `fresh[j] = (request, n)`: the
    n-th new message of its conversation in this batch (seq = last_seq before + n).
    `counts`: new messages per conversation."""

    plan: list[Message | tuple[int, bool] | None]
    fresh: list[tuple[AppendRequest, int]]
    counts: dict[str, int]

    @classmethod
    def make(cls, mine: Sequence[AppendRequest | None],
             stored: dict[tuple[str, str, str], Message]) -> BatchPlan:
        plan: list[Message | tuple[int, bool] | None] = []
        fresh: list[tuple[AppendRequest, int]] = []
        seen: dict[tuple[str, str, str], int] = {}
        counts: dict[str, int] = {}
        for rq in mine:
            if rq is None:
                plan.append(None)
                continue
            dup = _lookup(stored, rq)
            if dup is not None:
                plan.append(dup)
                continue
            keys = [(rq.conversation_id, *k) for k in _keys(rq.message)]
            first = next((seen[k] for k in keys if k in seen), None)
            if first is not None:
                plan.append((first, False))
                continue
            n = counts[rq.conversation_id] = counts.get(rq.conversation_id, 0) + 1
            for k in keys:
                seen[k] = len(fresh)
            plan.append((len(fresh), True))
            fresh.append((rq, n))
        return cls(plan, fresh, counts)

    def stored(self, made: Sequence[tuple[Any, ...]], first: dict[str, int]) -> list[Message | None]:
        """`fresh[j]` as stored from its row `made[j]` (`new_message_values`), its seq the
        conversation's seq before the batch (`first`) + its place; None where the
        conversation took nothing (not there, or not the requester's)."""
        out: list[Message | None] = []
        for (rq, n), values in zip(self.fresh, made, strict=True):
            base = first.get(rq.conversation_id)
            out.append(stored_message(rq, values, base + n) if base is not None else None)
        return out

    def results(self, mine: Sequence[AppendRequest | None], inserted: Sequence[Message | None],
                convs: dict[str, Conversation]) -> list[AppendResult | None]:
        """`inserted[j]`: the stored `fresh[j]` (None if its conversation vanished)."""
        out: list[AppendResult | None] = []
        for rq, d in zip(mine, self.plan, strict=True):
            conv = convs.get(rq.conversation_id) if rq is not None else None
            if rq is None or d is None or conv is None:
                out.append(None)
            elif isinstance(d, Message):
                out.append(AppendResult(d, conv, created=False))
            else:
                x = inserted[d[0]]
                out.append(AppendResult(x, conv, created=d[1]) if x is not None else None)
        return out


class SqlStore(abc.ABC):
    _row_lock: ClassVar[str] = ""
    dialect: ClassVar[str]  # which dialect files of the migrations it runs ("sqlite", "postgres")

    # --- backend hooks ---------------------------------------------------
    @abc.abstractmethod
    def _read(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    async def _lock_migrations(self, conn: Conn) -> None:
        """Called first inside the migration transaction: exclude concurrent migrators."""

    @abc.abstractmethod
    async def _advance_seqs(self, conn: Conn, counts: dict[str, int], now: float) -> None:
        """Inside `_append_batch`'s transaction: add `counts[id]` to each conversation's
        last_seq and set its updated_at to `now`."""

    @abc.abstractmethod
    async def _insert_messages(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """Inside `_append_batch`'s transaction: insert `rows`, each (id, tenant_id,
        conversation_id, seq, client_id, external_id, author_type, author_id, text,
        attachments, created_at, delivery_state); delivery_error is NULL."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Readiness: raises when the store cannot serve (see each backend)."""

    async def write_probe(self) -> None:
        """A small committed write (the `settings` row ``readiness_probe``): fails when the
        database cannot take writes (read-only, out of space, unreachable)."""
        async with self._write() as conn:
            await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)"
                               " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               "readiness_probe", repr(time.time()))

    @abc.abstractmethod
    async def close(self) -> None: ...

    # --- raw access for feature stores (gateway.store.db.Database) --------
    def reader(self) -> AbstractAsyncContextManager[Conn]:
        return self._read()

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        return self._write()

    @property
    def row_lock(self) -> str:
        return self._row_lock

    # --- lifecycle -------------------------------------------------------
    def _migration_transaction(self) -> AbstractAsyncContextManager[Conn]:
        """The transaction `migrate` runs in (a backend may lift its statement timeouts)."""
        return self._write()

    async def migrate(self) -> None:
        migrations = for_dialect(await asyncio.to_thread(load_migrations), self.dialect)
        async with self._migration_transaction() as conn:
            await self._lock_migrations(conn)
            await conn.execute(_CREATE_SCHEMA_MIGRATIONS)
            applied = {int(r["version"]) for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in migrations:
                if migration.version not in applied:
                    await self._apply(conn, migration)

    @staticmethod
    async def _apply(conn: Conn, migration: Migration) -> None:
        for statement in migration.statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            migration.version,
            time.time(),
        )

    # --- settings --------------------------------------------------------
    async def get_or_create_setting(self, key: str, value: str) -> str:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value
            )
            row = require_row(await conn.fetchrow("SELECT value FROM settings WHERE key = $1", key), key)
        return str(row["value"])

    # --- tenants ---------------------------------------------------------
    async def create_tenant(self, *, name: str, widget_key: str, identity_secret: str, now: float) -> Tenant:
        async with self._write() as conn:
            row = await conn.fetchrow(
                "INSERT INTO tenants (id, name, widget_key, identity_secret, require_identity, status,"
                " created_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) RETURNING *",
                new_id(),
                name,
                widget_key,
                identity_secret,
                False,
                TenantStatus.ACTIVE.value,
                now,
            )
        return tenant_from_row(require_row(row, "tenant"))

    async def get_tenant(self, tenant_id: str) -> Tenant:
        async with self._read() as conn:
            row = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        return tenant_from_row(require_row(row, "tenant"))

    async def get_tenant_by_widget_key(self, widget_key: str) -> Tenant:
        async with self._read() as conn:
            row = await conn.fetchrow("SELECT * FROM tenants WHERE widget_key = $1", widget_key)
        return tenant_from_row(require_row(row, "tenant"))

    async def update_tenant(
        self,
        tenant_id: str,
        *,
        require_identity: bool | None = None,
        status: str | None = None,
        ended_at: float | None = None,
    ) -> Tenant:
        p = Params(tenant_id)
        sets: list[str] = []
        if require_identity is not None:
            sets.append(f"require_identity = {p.add(require_identity)}")
        if status is not None:
            sets.append(f"status = {p.add(TenantStatus(status).value)}")
        if ended_at is not None:
            sets.append(f"ended_at = {p.add(ended_at)}")
        if not sets:
            return await self.get_tenant(tenant_id)
        async with self._write() as conn:
            row = await conn.fetchrow(f"UPDATE tenants SET {', '.join(sets)} WHERE id = $1 RETURNING *", *p.values)
        return tenant_from_row(require_row(row, "tenant"))

    async def list_tenants(self) -> list[Tenant]:
        async with self._read() as conn:
            rows = await conn.fetch("SELECT * FROM tenants ORDER BY created_at, id")
        return [tenant_from_row(r) for r in rows]

    # --- agents ----------------------------------------------------------
    async def create_agent(
        self,
        *,
        tenant_id: str,
        name: str,
        role: AgentRole,
        token_hash: str,
        capacity: int,
        now: float,
    ) -> Agent:
        async with self._write() as conn:
            await self._require_tenant(conn, tenant_id)
            row = await conn.fetchrow(
                "INSERT INTO agents (id, tenant_id, name, role, status, capacity, token_hash, created_at,"
                " last_assigned_at, assign_order) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0)"
                " RETURNING *",
                new_id(),
                tenant_id,
                name,
                AgentRole(role).value,
                AgentStatus.OFFLINE.value,
                capacity,
                token_hash,
                now,
            )
        return agent_from_row(require_row(row, "agent"))

    async def get_agent(self, tenant_id: str, agent_id: str) -> Agent:
        async with self._read() as conn:
            row = await conn.fetchrow("SELECT * FROM agents WHERE id = $1 AND tenant_id = $2", agent_id, tenant_id)
        return agent_from_row(require_row(row, "agent"))

    async def get_agent_by_token_hash(self, token_hash: str) -> Agent:
        async with self._read() as conn:
            row = await conn.fetchrow("SELECT * FROM agents WHERE token_hash = $1", token_hash)
        return agent_from_row(require_row(row, "agent"))

    async def list_agents(self, tenant_id: str) -> list[Agent]:
        async with self._read() as conn:
            rows = await conn.fetch("SELECT * FROM agents WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id)
        return [agent_from_row(r) for r in rows]

    async def set_agent_status(self, tenant_id: str, agent_id: str, status: AgentStatus) -> Agent:
        async with self._write() as conn:
            row = await conn.fetchrow(
                "UPDATE agents SET status = $3 WHERE id = $1 AND tenant_id = $2 RETURNING *",
                agent_id,
                tenant_id,
                AgentStatus(status).value,
            )
        return agent_from_row(require_row(row, "agent"))

    async def touch_presence(self, node_id: str, agent_ids: dict[str, int], now: float) -> list[Agent]:
        # A heartbeat carries every agent connected to the node (thousands): written in
        # chunks of PRESENCE_CHUNK, one short transaction and three statements each, with a
        # yield to the loop after each, so message writes interleave instead of waiting
        # behind one long transaction. (SQLite's statements never suspend: without the
        # yield, the whole heartbeat would be one stall of the loop, growing with the agents.)
        made_present: list[Agent] = []
        for ids in chunked(sorted(agent_ids), PRESENCE_CHUNK):
            async with self._write() as conn:
                p = Params()
                rows = await conn.fetch(
                    f"SELECT id, tenant_id FROM agents WHERE id IN ({p.add_all(ids)}) ORDER BY id", *p.values
                )
                if not rows:
                    continue
                p = Params(node_id, now)
                values = ", ".join(
                    f"({p.add(row['tenant_id'])}, {p.add(row['id'])}, $1, {p.add(max(0, agent_ids[row['id']]))}, $2)"
                    for row in rows)
                await conn.execute(
                    "INSERT INTO agent_presence (tenant_id, agent_id, node_id, sockets, updated_at)"
                    f" VALUES {values} ON CONFLICT (agent_id, node_id)"
                    " DO UPDATE SET sockets = excluded.sockets, updated_at = excluded.updated_at",
                    *p.values,
                )
                live = [row["id"] for row in rows if agent_ids[row["id"]] > 0]
                if live:
                    p = Params(True, False)
                    flipped = await conn.fetch(
                        f"UPDATE agents SET present = $1 WHERE present = $2 AND id IN ({p.add_all(live)})"
                        " RETURNING *", *p.values)
                    made_present.extend(agent_from_row(r) for r in flipped)
            await asyncio.sleep(0)
        return made_present

    async def expire_presence(self, fresh_after: float) -> list[Agent]:
        async with self._write() as conn:
            rows = await conn.fetch(
                "UPDATE agents SET present = $1 WHERE present = $2 AND NOT EXISTS (SELECT 1 FROM agent_presence p"
                " WHERE p.tenant_id = agents.tenant_id AND p.agent_id = agents.id AND p.updated_at > $3) RETURNING *",
                False, True, fresh_after)
            await conn.execute("DELETE FROM agent_presence WHERE updated_at <= $1", fresh_after)
        return sorted((agent_from_row(r) for r in rows), key=lambda a: (a.tenant_id, a.id))

    async def connected_agents(self, tenant_id: str, fresh_after: float) -> set[str]:
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT agent_id FROM agent_presence WHERE tenant_id = $1 AND sockets > 0"
                " AND updated_at > $2", tenant_id, fresh_after)
        return {str(r["agent_id"]) for r in rows}

    async def queue_position(self, tenant_id: str, conversation_id: str) -> int | None:
        async with self._read() as conn:
            conv = conversation_from_row(await self._conversation_row(conn, tenant_id, conversation_id))
            if conv.assignee_id is not None or conv.status != ConversationStatus.OPEN:
                return None
            row = await conn.fetchrow(
                "SELECT COUNT(*) AS n FROM conversations WHERE tenant_id = $1 AND status = $2"
                " AND assignee_id IS NULL AND (created_at < $3 OR (created_at = $3 AND id <= $4))",
                tenant_id, ConversationStatus.OPEN.value, conv.created_at, conv.id)
        return int(require_row(row, "conversation")["n"])

    async def assign_next_agent(
        self, tenant_id: str, conversation_id: str, *, now: float, fresh_after: float
    ) -> Conversation | None:
        # First without any lock: when the conversation is taken or no agent has room (a
        # saturated desk, where every new conversation waits in the queue), answer None
        # without queueing behind the tenant's lock. Whoever frees room later (an agent
        # coming online, a resolve) assigns the queue (`list_unassigned`), and sees this
        # conversation, committed before it asked.
        async with self._read() as conn:
            conv = conversation_from_row(await self._conversation_row(conn, tenant_id, conversation_id))
            if not _assignable(conv) or await self._next_agent(conn, tenant_id, fresh_after) is None:
                return None
        async with self._write() as conn:
            await self._require_tenant(conn, tenant_id, lock=True)
            conv = conversation_from_row(await self._conversation_row(conn, tenant_id, conversation_id, lock=True))
            if not _assignable(conv):
                return None
            agent_id = await self._next_agent(conn, tenant_id, fresh_after)
            if agent_id is None:
                return None
            await conn.execute(
                "UPDATE agents SET last_assigned_at = $3, assign_order ="
                " (SELECT COALESCE(MAX(assign_order), 0) + 1 FROM agents WHERE tenant_id = $2)"
                " WHERE id = $1 AND tenant_id = $2",
                agent_id,
                tenant_id,
                now,
            )
            row = await conn.fetchrow(
                "UPDATE conversations SET assignee_id = $3, updated_at = $4"
                " WHERE id = $1 AND tenant_id = $2 RETURNING *",
                conversation_id,
                tenant_id,
                agent_id,
                now,
            )
        return conversation_from_row(require_row(row, "conversation"))

    @staticmethod
    async def _next_agent(conn: Conn, tenant_id: str, fresh_after: float) -> str | None:
        row = await conn.fetchrow(
            "SELECT a.id FROM agents a WHERE a.tenant_id = $1 AND a.status = $2"
            " AND EXISTS (SELECT 1 FROM agent_presence p WHERE p.tenant_id = a.tenant_id"
            " AND p.agent_id = a.id AND p.sockets > 0 AND p.updated_at > $3)"
            " AND (SELECT COUNT(*) FROM conversations c WHERE c.tenant_id = a.tenant_id"
            " AND c.assignee_id = a.id AND c.status = $4) < a.capacity"
            " ORDER BY a.assign_order, a.created_at, a.id LIMIT 1",
            tenant_id,
            AgentStatus.ONLINE.value,
            fresh_after,
            ConversationStatus.OPEN.value,
        )
        return None if row is None else str(row["id"])

    async def list_unassigned(self, tenant_id: str, limit: int) -> list[Conversation]:
        if limit <= 0:
            return []
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT * FROM conversations WHERE tenant_id = $1 AND status = $2 AND assignee_id IS NULL"
                " ORDER BY created_at, id LIMIT $3",
                tenant_id,
                ConversationStatus.OPEN.value,
                limit,
            )
        return [conversation_from_row(r) for r in rows]

    # --- contacts --------------------------------------------------------
    async def create_contact(
        self,
        *,
        tenant_id: str,
        name: str | None,
        email: str | None,
        phone: str | None = None,
        now: float,
    ) -> Contact:
        async with self._write() as conn:
            await self._require_tenant(conn, tenant_id)
            return await self._insert_contact(conn, tenant_id, name, email, phone, now)

    @staticmethod
    async def _insert_contact(
        conn: Conn, tenant_id: str, name: str | None, email: str | None, phone: str | None, now: float
    ) -> Contact:
        row = await conn.fetchrow(
            "INSERT INTO contacts (id, tenant_id, name, email, phone, attributes, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            new_id(),
            tenant_id,
            name,
            email,
            phone,
            dump_json({}),
            now,
        )
        return contact_from_row(require_row(row, "contact"))

    async def get_contact(self, tenant_id: str, contact_id: str) -> Contact:
        async with self._read() as conn:
            row = await conn.fetchrow("SELECT * FROM contacts WHERE id = $1 AND tenant_id = $2", contact_id, tenant_id)
        return contact_from_row(require_row(row, "contact"))

    async def get_contacts(self, tenant_id: str, contact_ids: Sequence[str]) -> dict[str, Contact]:
        found: dict[str, Contact] = {}
        async with self._read() as conn:
            for ids in chunked(sorted(set(contact_ids))):
                p = Params(tenant_id)
                rows = await conn.fetch(
                    f"SELECT * FROM contacts WHERE tenant_id = $1 AND id IN ({p.add_all(ids)})", *p.values)
                found.update({str(r["id"]): contact_from_row(r) for r in rows})
        return found

    async def find_contact_by_identity(self, tenant_id: str, kind: str, value: str) -> Contact | None:
        async with self._read() as conn:
            return await self._contact_by_identity(conn, tenant_id, kind, value)

    @staticmethod
    async def _contact_by_identity(conn: Conn, tenant_id: str, kind: str, value: str) -> Contact | None:
        row = await conn.fetchrow(
            "SELECT c.* FROM contact_identities i JOIN contacts c"
            " ON c.tenant_id = i.tenant_id AND c.id = i.contact_id"
            " WHERE i.tenant_id = $1 AND i.kind = $2 AND i.value = $3",
            tenant_id,
            kind,
            value,
        )
        return None if row is None else contact_from_row(row)

    async def get_or_create_contact_by_identity(
        self, tenant_id: str, kind: str, value: str, *, name: str | None, email: str | None, now: float
    ) -> Contact:
        async with self._write() as conn:
            found = await self._contact_by_identity(conn, tenant_id, kind, value)
            if found is not None:
                return found
            await self._require_tenant(conn, tenant_id)
            contact = await self._insert_contact(conn, tenant_id, name, email, None, now)
            won = await conn.fetchrow(
                "INSERT INTO contact_identities (tenant_id, kind, value, contact_id) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, kind, value) DO NOTHING RETURNING contact_id",
                tenant_id,
                kind,
                value,
                contact.id,
            )
            if won is not None:
                return contact
            # A concurrent caller committed the identity first: drop ours, return theirs.
            await conn.execute("DELETE FROM contacts WHERE id = $1 AND tenant_id = $2", contact.id, tenant_id)
            winner = await self._contact_by_identity(conn, tenant_id, kind, value)
        if winner is None:
            raise StoreError(f"identity {kind}:{value} vanished while being created")
        return winner

    async def update_contact(self, tenant_id: str, contact_id: str, fields: dict[str, Any]) -> Contact:
        unknown = set(fields) - _CONTACT_FIELDS
        if unknown:
            raise ValueError(f"unknown contact fields: {sorted(unknown)}")
        if not fields:
            return await self.get_contact(tenant_id, contact_id)
        p = Params(contact_id, tenant_id)
        sets = [
            f"{key} = {p.add(dump_json(val) if key == 'attributes' else val)}" for key, val in sorted(fields.items())
        ]
        async with self._write() as conn:
            row = await conn.fetchrow(
                f"UPDATE contacts SET {', '.join(sets)} WHERE id = $1 AND tenant_id = $2 RETURNING *",
                *p.values,
            )
        return contact_from_row(require_row(row, "contact"))

    async def list_contacts(self, tenant_id: str, *, limit: int, offset: int) -> list[Contact]:
        if limit <= 0:
            return []
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT * FROM contacts WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3",
                tenant_id,
                limit,
                max(0, offset),
            )
        return [contact_from_row(r) for r in rows]

    # --- conversations ---------------------------------------------------
    async def create_conversation(
        self,
        *,
        tenant_id: str,
        channel: Channel,
        contact_id: str,
        now: float,
        external_thread_id: str | None = None,
        subject: str | None = None,
    ) -> Conversation:
        channel_value = Channel(channel).value
        async with self._write() as conn:
            await self._require_owned(conn, "contacts", tenant_id, contact_id)
            row = await conn.fetchrow(
                "INSERT INTO conversations (id, tenant_id, channel, contact_id, status, assignee_id, epoch,"
                " last_seq, external_thread_id, created_at, updated_at, subject)"
                " VALUES ($1, $2, $3, $4, $5, NULL, $6, 0, $7, $8, $8, $9)"
                " ON CONFLICT (tenant_id, channel, external_thread_id) DO NOTHING RETURNING *",
                new_id(),
                tenant_id,
                channel_value,
                contact_id,
                ConversationStatus.OPEN.value,
                secrets.token_hex(8),
                external_thread_id,
                now,
                subject,
            )
            if row is None:  # only possible with an external_thread_id
                row = await conn.fetchrow(
                    "SELECT * FROM conversations WHERE tenant_id = $1 AND channel = $2 AND external_thread_id = $3",
                    tenant_id,
                    channel_value,
                    external_thread_id,
                )
        return conversation_from_row(require_row(row, "conversation"))

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation:
        async with self._read() as conn:
            return conversation_from_row(await self._conversation_row(conn, tenant_id, conversation_id))

    async def list_conversations(self, tenant_id: str, flt: ConversationFilter) -> list[Conversation]:
        if flt.limit <= 0:
            return []
        p = Params(tenant_id)
        where = ["tenant_id = $1"]
        if flt.status is not None:
            where.append(f"status = {p.add(ConversationStatus(flt.status).value)}")
        if flt.unassigned:
            where.append("assignee_id IS NULL")
        elif flt.assignee_id is not None:
            where.append(f"assignee_id = {p.add(flt.assignee_id)}")
        if flt.contact_id is not None:
            where.append(f"contact_id = {p.add(flt.contact_id)}")
        if flt.channel is not None:
            where.append(f"channel = {p.add(Channel(flt.channel).value)}")
        if flt.updated_before is not None:
            where.append(f"updated_at < {p.add(flt.updated_before)}")
        # A contact's conversations are found by the (tenant_id, contact_id) index and then
        # sorted (a contact has few). ``+updated_at`` is an expression no index orders by, so
        # no planner can prefer walking the tenant's (tenant_id, updated_at) index for its
        # order instead: without statistics SQLite did, which grew with the tenant's size.
        order = "+updated_at" if flt.contact_id is not None else "updated_at"
        sql = (
            f"SELECT * FROM conversations WHERE {' AND '.join(where)}"
            f" ORDER BY {order} DESC, id DESC LIMIT {p.add(flt.limit)}"
        )
        async with self._read() as conn:
            rows = await conn.fetch(sql, *p.values)
        return [conversation_from_row(r) for r in rows]

    async def update_conversation(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        now: float,
        status: ConversationStatus | None = None,
        assignee_id: str | None = None,
        unassign: bool = False,
    ) -> Conversation:
        if unassign and assignee_id is not None:
            raise ValueError("pass either assignee_id or unassign, not both")
        p = Params(conversation_id, tenant_id)
        sets = [f"updated_at = {p.add(now)}"]
        if status is not None:
            sets.append(f"status = {p.add(ConversationStatus(status).value)}")
        if unassign:
            sets.append("assignee_id = NULL")
        elif assignee_id is not None:
            sets.append(f"assignee_id = {p.add(assignee_id)}")
        async with self._write() as conn:
            if assignee_id is not None:
                await self._require_owned(conn, "agents", tenant_id, assignee_id)
            row = await conn.fetchrow(
                f"UPDATE conversations SET {', '.join(sets)} WHERE id = $1 AND tenant_id = $2 RETURNING *",
                *p.values,
            )
        return conversation_from_row(require_row(row, "conversation"))

    async def _conversation_row(self, conn: Conn, tenant_id: str, conversation_id: str, *, lock: bool = False) -> Row:
        suffix = self._row_lock if lock else ""
        row = await conn.fetchrow(
            f"SELECT * FROM conversations WHERE id = $1 AND tenant_id = $2{suffix}",
            conversation_id,
            tenant_id,
        )
        return require_row(row, "conversation")

    # --- messages --------------------------------------------------------
    async def append_message(
        self, tenant_id: str, conversation_id: str, msg: NewMessage, *, now: float
    ) -> AppendResult:
        return (await self.append_messages(tenant_id, conversation_id, [msg], now=now))[0]

    async def append_messages(
        self, tenant_id: str, conversation_id: str, msgs: Sequence[NewMessage], *, now: float
    ) -> list[AppendResult]:
        res = await self.append_batch([AppendRequest(tenant_id, conversation_id, m) for m in msgs], now=now)
        out = [r for r in res if r is not None]
        if len(out) != len(res):
            raise NotFound("conversation")
        return out

    async def append_batch(self, requests: Sequence[AppendRequest], *, now: float) -> list[AppendResult | None]:
        if not requests:
            return []
        if len(requests) > MAX_APPEND_BATCH:
            raise ValueError(f"at most {MAX_APPEND_BATCH} messages per append batch")
        try:
            return await self._append_batch(requests, now)
        except Conflict:
            # Only reachable if a duplicate slipped past the row locks; the first writer wins.
            if len(requests) > 1:
                return [(await self.append_batch([rq], now=now))[0] for rq in requests]
            rq = requests[0]
            async with self._read() as conn:
                existing = await self._find_duplicates(conn, requests)
                found = _lookup(existing, rq)
                if found is None:
                    raise
                conv = conversation_from_row(await self._conversation_row(conn, rq.tenant_id, rq.conversation_id))
            return [AppendResult(found, conv, created=False)]

    async def _append_batch(self, requests: Sequence[AppendRequest], now: float) -> list[AppendResult | None]:
        """One transaction, four statements whatever the batch spans: lock the conversations
        (in id order, so concurrent batches cannot deadlock), find stored duplicates, advance
        each conversation's last_seq by its count of new messages, insert the new rows."""
        async with self._write() as conn:
            conv_ids = sorted({rq.conversation_id for rq in requests})
            locked = {r["id"]: r for r in await conn.fetch(*self._sql_lock_conversations(conv_ids))}
            mine = [rq if (row := locked.get(rq.conversation_id)) is not None and row["tenant_id"] == rq.tenant_id
                    else None for rq in requests]
            bp = BatchPlan.make(mine, await self._find_duplicates(conn, [rq for rq in mine if rq is not None]))
            counts = bp.counts
            convs = {cid: conversation_from_row(row, advanced_by=counts.get(cid, 0), now=now)
                     for cid, row in locked.items()}
            inserted: list[Message] = []  # inserted[i] is bp.fresh[i]
            if bp.fresh:
                await self._advance_seqs(conn, counts, now)
                rows: list[tuple[Any, ...]] = []
                for rq, n in bp.fresh:
                    x, values = new_message_row(rq, int(locked[rq.conversation_id]["last_seq"]) + n, now)
                    inserted.append(x)
                    rows.append(values)
                await self._insert_messages(conn, rows)
        return bp.results(mine, inserted, convs)

    async def _find_duplicates(
        self, conn: Conn, requests: Sequence[AppendRequest]
    ) -> dict[tuple[str, str, str], Message]:
        """Stored messages sharing a (conversation, client_id) or (conversation, external_id)
        with a request, keyed (conversation_id, "c"|"e", key); the earliest seq wins."""
        client_keys = list(dict.fromkeys(
            (rq.conversation_id, rq.message.client_id) for rq in requests if rq.message.client_id is not None))
        external_keys = list(dict.fromkeys(
            (rq.conversation_id, rq.message.external_id) for rq in requests if rq.message.external_id is not None))
        if not client_keys and not external_keys:
            return {}
        found: dict[tuple[str, str, str], Message] = {}
        for r in await conn.fetch(*self._sql_duplicates(client_keys, external_keys)):
            m = message_from_row(r)
            for k in _keys(m):
                found.setdefault((m.conversation_id, *k), m)
        return found

    # The four statements of a batch append. The lock builds an IN (...) list and the
    # duplicate lookup a VALUES list of the (conversation, key) pairs, which both engines
    # run; PostgresStore overrides them with array parameters, so each is one fixed, cached
    # prepared statement whatever the batch size. The seq advance and the insert are backend
    # hooks (`_advance_seqs`, `_insert_messages`): arrays on PostgreSQL, one single-row
    # statement through `executemany` on SQLite.
    def _sql_lock_conversations(self, conv_ids: list[str]) -> tuple[Any, ...]:
        p = Params()
        return (f"SELECT * FROM conversations WHERE id IN ({p.add_all(conv_ids)}) ORDER BY id{self._row_lock}",
                *p.values)

    def _sql_duplicates(self, client_keys: list[tuple[str, str]],
                        external_keys: list[tuple[str, str]]) -> tuple[Any, ...]:
        """Messages matching a (conversation_id, client_id) or (conversation_id, external_id)
        key: one probe of the key's partial unique index per pair (the CROSS JOIN keeps the
        pairs as the outer loop): n probes for n pairs. (Two IN lists, `conversation_id IN (…)
        AND client_id IN (…)`, would probe every combination, n².)"""
        p = Params()
        ctes: list[str] = []
        parts: list[str] = []
        for name, column, keys in (("c", "client_id", client_keys), ("e", "external_id", external_keys)):
            if keys:
                pairs = ", ".join(f"({p.add(conv)}, {p.add(key)})" for conv, key in keys)
                ctes.append(f"{name}(conv, key) AS (VALUES {pairs})")
                parts.append(f"SELECT m.* FROM {name} CROSS JOIN messages AS m"
                             f" ON m.conversation_id = {name}.conv AND m.{column} = {name}.key")
        return (f"WITH {', '.join(ctes)} " + " UNION ALL ".join(parts) + " ORDER BY seq", *p.values)

    async def get_messages(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        after_seq: int = 0,
        before_seq: int | None = None,
        limit: int = 100,
        newest: bool = False,
    ) -> list[Message]:
        p = Params(tenant_id, conversation_id, after_seq)
        where = "tenant_id = $1 AND conversation_id = $2 AND seq > $3"
        if before_seq is not None:
            where += f" AND seq < {p.add(before_seq)}"
        order = "DESC" if newest else "ASC"
        sql = f"SELECT * FROM messages WHERE {where} ORDER BY seq {order} LIMIT {p.add(max(0, limit))}"
        async with self._read() as conn:
            await self._conversation_row(conn, tenant_id, conversation_id)
            rows = await conn.fetch(sql, *p.values)
        messages = [message_from_row(r) for r in rows]
        if newest:
            messages.reverse()
        return messages

    async def set_delivery_state(
        self,
        tenant_id: str,
        message_id: str,
        state: DeliveryState,
        error: str | None = None,
    ) -> Message:
        async with self._write() as conn:
            row = await conn.fetchrow(
                "UPDATE messages SET delivery_state = $3, delivery_error = $4"
                " WHERE id = $1 AND tenant_id = $2 RETURNING *",
                message_id,
                tenant_id,
                DeliveryState(state).value,
                error,
            )
        return message_from_row(require_row(row, "message"))

    # --- read positions -------------------------------------------------
    async def set_read(self, tenant_id: str, conversation_id: str, participant: str, seq: int) -> int:
        async with self._write() as conn:
            conv = await self._conversation_row(conn, tenant_id, conversation_id)
            target = max(0, min(seq, int(conv["last_seq"])))
            row = await conn.fetchrow(
                "INSERT INTO read_positions (tenant_id, conversation_id, participant, seq)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id, participant) DO UPDATE SET seq ="
                " CASE WHEN excluded.seq > read_positions.seq THEN excluded.seq ELSE read_positions.seq END"
                " RETURNING seq",
                tenant_id,
                conversation_id,
                participant,
                target,
            )
        return int(require_row(row, "read position")["seq"])

    async def get_reads(self, tenant_id: str, conversation_id: str) -> dict[str, int]:
        """Positions of the conversation's readers; empty for an unknown (or foreign) conversation."""
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT participant, seq FROM read_positions WHERE tenant_id = $1 AND conversation_id = $2",
                tenant_id,
                conversation_id,
            )
        return {str(r["participant"]): int(r["seq"]) for r in rows}

    async def get_read_positions(self, tenant_id: str, participant: str, conversation_ids: list[str]) -> dict[str, int]:
        """Every requested id is present in the result (0 when never read)."""
        positions = dict.fromkeys(conversation_ids, 0)
        async with self._read() as conn:
            for ids in chunked(sorted(set(conversation_ids))):
                p = Params(tenant_id, participant)
                rows = await conn.fetch(
                    "SELECT conversation_id, seq FROM read_positions WHERE tenant_id = $1"
                    f" AND participant = $2 AND conversation_id IN ({p.add_all(ids)})",
                    *p.values,
                )
                positions.update({str(r["conversation_id"]): int(r["seq"]) for r in rows})
        return positions

    async def get_last_messages(self, tenant_id: str, conversation_ids: Sequence[str]) -> dict[str, Message]:
        found: dict[str, Message] = {}
        async with self._read() as conn:
            for ids in chunked(sorted(set(conversation_ids))):
                p = Params(tenant_id)
                # one (conversation_id, seq) unique-index probe per conversation
                rows = await conn.fetch(
                    "SELECT m.* FROM conversations c JOIN messages m ON m.conversation_id = c.id"
                    " AND m.seq = c.last_seq AND m.tenant_id = c.tenant_id"
                    f" WHERE c.tenant_id = $1 AND c.id IN ({p.add_all(ids)})", *p.values)
                found.update({str(r["conversation_id"]): message_from_row(r) for r in rows})
        return found

    # --- helpers ---------------------------------------------------------
    @staticmethod
    async def _require(conn: Conn, what: str, sql: str, *args: Any) -> None:
        require_row(await conn.fetchrow(sql, *args), what)

    @classmethod
    async def _require_owned(cls, conn: Conn, table: str, tenant_id: str, row_id: str) -> None:
        """NotFound unless `table` (a constant of this module) holds `row_id` for `tenant_id`."""
        sql = f"SELECT 1 FROM {table} WHERE id = $1 AND tenant_id = $2"
        await cls._require(conn, table.rstrip("s"), sql, row_id, tenant_id)

    async def _require_tenant(self, conn: Conn, tenant_id: str, *, lock: bool = False) -> None:
        suffix = self._row_lock if lock else ""
        await self._require(conn, "tenant", f"SELECT id FROM tenants WHERE id = $1{suffix}", tenant_id)


def _assignable(conv: Conversation) -> bool:
    """An open conversation without an assignee."""
    return conv.assignee_id is None and conv.status == ConversationStatus.OPEN
