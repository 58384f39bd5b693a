"""Query plans at scale: every statement of the handshake and request paths does work bounded
by what it returns, not by the tenant's size.

One tenant holds 100k conversations (of 50k contacts) and 1M messages, made with set-based
SQL (a recursive CTE on SQLite, generate_series on PostgreSQL). The paths run through the
store's public API while a wrapper of its connections records each statement with its
arguments; each recorded statement is then planned (SQLite: EXPLAIN QUERY PLAN, without
statistics and after `SqliteStore.analyze`; PostgreSQL: EXPLAIN after ANALYZE, as autovacuum
leaves it) and the plan must reach the big tables only by an index lookup on more than the
tenant, except the listings in `ORDERED_WALKS`, which walk an index in their ORDER BY's order
and stop at their LIMIT.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.core.domain import AuthorType, Channel, ConversationFilter, NewMessage
from gateway.store.base import AppendRequest
from gateway.store.postgres import PostgresStore
from gateway.store.sql import Conn, SqlStore
from gateway.store.sqlite import (
    _ADVANCE_OWN_SEQ,
    _INSERT_NEXT_MESSAGE,
    _READ_CONVERSATION,
    SqliteStore,
    to_sqlite_placeholders,
)
from tests.contract.test_store_contract import PG_DSN, drop_schema
from tests.support.stores import open_sqlite

T = "tplans"
CONVERSATIONS = 100_000
CONTACTS = 50_000
MESSAGES_PER_CONVERSATION = 10
BIG_TABLES = ("conversations", "messages", "contacts", "contact_identities", "read_positions")
# The listings that walk an index over the tenant in their ORDER BY's order, with no
# further filter, so the walk stops at their LIMIT (and OFFSET).
ORDERED_WALKS = (
    re.compile(r"^SELECT \* FROM conversations WHERE tenant_id = \$1 ORDER BY updated_at DESC, id DESC LIMIT \$2$"),
    re.compile(r"^SELECT \* FROM contacts WHERE tenant_id = \$1 ORDER BY created_at, id LIMIT \$2 OFFSET \$3$"),
)

_SQLITE_DATA = f"""
INSERT INTO tenants VALUES ('{T}', 'big', 'wk-{T}', 'secret', 0, 'active', 0, NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
INSERT INTO agents SELECT 'a' || i, '{T}', 'agent', 'agent', 'online', 5, 'hash' || i, 0, NULL, i, 0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {CONTACTS})
INSERT INTO contacts SELECT printf('k%08d', i), '{T}', NULL, NULL, NULL, '{{}}', i FROM n;
INSERT INTO contact_identities SELECT '{T}', 'visitor', 'v' || id, id FROM contacts;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {CONVERSATIONS})
INSERT INTO conversations SELECT printf('c%08d', i), '{T}', 'widget', printf('k%08d', 1 + i % {CONTACTS}),
  CASE WHEN i % 100 = 0 THEN 'open' ELSE 'resolved' END, CASE WHEN i % 3 = 0 THEN 'a' || (1 + i % 20) END,
  'ep', {MESSAGES_PER_CONVERSATION}, NULL, i, i, NULL FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n
  WHERE i < {CONVERSATIONS * MESSAGES_PER_CONVERSATION - 1})
INSERT INTO messages SELECT printf('m%08d', i), '{T}', printf('c%08d', 1 + i / {MESSAGES_PER_CONVERSATION}),
  1 + i % {MESSAGES_PER_CONVERSATION}, 'cl' || i, NULL, 'contact', NULL, 'hello', '[]', i, 'sent', NULL FROM n;
INSERT INTO read_positions SELECT '{T}', id, 'agent:a1', 5 FROM conversations WHERE rowid % 2 = 0;
"""

_PG_DATA = [
    f"INSERT INTO tenants VALUES ('{T}', 'big', 'wk-{T}', 'secret', false, 'active', 0, NULL)",
    f"INSERT INTO agents SELECT 'a' || i, '{T}', 'agent', 'agent', 'online', 5, 'hash' || i, 0, NULL, i, FALSE"
    " FROM generate_series(1, 20) AS i",
    f"INSERT INTO contacts SELECT 'k' || lpad(i::text, 8, '0'), '{T}', NULL, NULL, NULL, '{{}}', i"
    f" FROM generate_series(1, {CONTACTS}) AS i",
    f"INSERT INTO contact_identities SELECT '{T}', 'visitor', 'v' || id, id FROM contacts",
    f"INSERT INTO conversations SELECT 'c' || lpad(i::text, 8, '0'), '{T}', 'widget',"
    f" 'k' || lpad((1 + i % {CONTACTS})::text, 8, '0'), CASE WHEN i % 100 = 0 THEN 'open' ELSE 'resolved' END,"
    f" CASE WHEN i % 3 = 0 THEN 'a' || (1 + i % 20) END, 'ep', {MESSAGES_PER_CONVERSATION}, NULL, i, i, NULL"
    f" FROM generate_series(1, {CONVERSATIONS}) AS i",
    f"INSERT INTO messages SELECT 'm' || lpad(i::text, 8, '0'), '{T}',"
    f" 'c' || lpad((1 + i / {MESSAGES_PER_CONVERSATION})::text, 8, '0'), 1 + i % {MESSAGES_PER_CONVERSATION},"
    f" 'cl' || i, NULL, 'contact', NULL, 'hello', '[]', i, 'sent', NULL"
    f" FROM generate_series(0, {CONVERSATIONS * MESSAGES_PER_CONVERSATION - 1}) AS i",
    f"INSERT INTO read_positions SELECT '{T}', id, 'agent:a1', 5 FROM conversations"
    " WHERE right(id, 1) IN ('0', '2', '4', '6', '8')",
    "ANALYZE",
]

Recorded = list[tuple[str, tuple[Any, ...]]]


class _Recording:
    """A `Conn` that records each statement and its arguments before running it."""

    def __init__(self, conn: Conn, seen: Recorded) -> None:
        self._conn = conn
        self._seen = seen

    async def fetch(self, sql: str, *args: Any) -> Sequence[Any]:
        self._seen.append((sql, args))
        return await self._conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self._seen.append((sql, args))
        return await self._conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> object:
        self._seen.append((sql, args))
        return await self._conn.execute(sql, *args)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._seen.extend((sql, r) for r in rows)
        self._conn.executemany(sql, rows)  # type: ignore[attr-defined]


def _record(store: SqlStore, seen: Recorded) -> None:
    """Route the store's reads and transactions through `_Recording`."""
    def wrap(make: Callable[[], AbstractAsyncContextManager[Conn]]) -> Callable[[], AbstractAsyncContextManager[Conn]]:
        @asynccontextmanager
        async def recorded() -> AsyncIterator[Conn]:
            async with make() as conn:
                yield _Recording(conn, seen)
        return recorded
    store._read = wrap(store._read)  # type: ignore[method-assign]
    store._write = wrap(store._write)  # type: ignore[method-assign]


async def _run_paths(store: SqlStore) -> None:
    """The store calls of the visitor handshake and session, conversation:start, message:send,
    history, resume/watch, read, and the agent's handshake, lists and REST listings."""
    contact = "k00000007"
    conv = "c00000500"
    # visitor handshake: widget key, then the token's contact or an identity
    await store.get_tenant_by_widget_key(f"wk-{T}")
    await store.get_contact(T, contact)
    await store.get_or_create_contact_by_identity(T, "visitor", f"v{contact}", name=None, email=None, now=5.0)
    await store.get_or_create_contact_by_identity(T, "visitor", uuid.uuid4().hex, name=None, email=None, now=5.0)
    await store.update_contact(T, contact, {"name": "x"})
    # session and conversation:start: the visitor's conversations
    await store.list_conversations(T, ConversationFilter(contact_id=contact, limit=4))
    await store.list_conversations(T, ConversationFilter(contact_id=contact, limit=100))
    new = await store.create_conversation(tenant_id=T, channel=Channel.WIDGET, contact_id=contact, now=9e9)
    await store.assign_next_agent(T, new.id, now=9e9, fresh_after=0.0)
    await store.list_unassigned(T, 100)
    await store.queue_position(T, new.id)
    # watch / resume / history / read
    await store.get_conversation(T, conv)
    await store.get_messages(T, conv, newest=True, limit=50)
    await store.get_messages(T, conv, after_seq=3, limit=100)
    await store.get_messages(T, conv, before_seq=5, newest=True, limit=3)
    await store.set_read(T, conv, "agent:a1", 5)
    await store.get_reads(T, conv)
    # message:send (new, then its retry: the duplicate lookup)
    msg = NewMessage(author_type=AuthorType.CONTACT, author_id=contact, text="x", client_id="plan-1")
    await store.append_batch([AppendRequest(T, conv, msg)], now=9e9)
    await store.append_batch([AppendRequest(T, conv, msg)], now=9e9)
    # agent: handshake, session, inbox (newest first), agent list, presence, REST listings
    await store.get_agent_by_token_hash("hash1")
    await store.get_tenant(T)
    await store.get_agent(T, "a1")
    await store.list_conversations(T, ConversationFilter(limit=50))
    page = [f"c{i:08d}" for i in range(1, 51)]
    await store.get_last_messages(T, page)  # the list's previews and contacts, one query each
    await store.get_contacts(T, [f"k{i:08d}" for i in range(1, 51)])
    await store.get_read_positions(T, "agent:a1", [f"c{i:08d}" for i in range(1, 51)])
    await store.list_agents(T)
    await store.touch_presence("node-1", {"a1": 1, "a2": 0}, 9e9)
    await store.connected_agents(T, 9e9 - 30)
    await store.expire_presence(9e9 - 30)
    await store.list_contacts(T, limit=50, offset=0)


def _walks_ok(sql: str) -> bool:
    return any(p.match(sql) for p in ORDERED_WALKS)


def _sqlite_problems(db: sqlite3.Connection, recorded: Recorded) -> list[str]:
    problems = []
    for sql, args in recorded:
        text = to_sqlite_placeholders(sql)
        if text.split()[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            continue
        plan = [str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN {text}", args).fetchall()]
        for step in plan:
            m = re.match(r"(SCAN|SEARCH) (\w+)(?: AS \w+)?(?: USING (?:COVERING )?INDEX (\w+) \((.*)\))?", step)
            aliased = m is not None and m.group(2) in ("c", "m", "i") and m.group(1) == "SEARCH"
            if m is None or (m.group(2) not in BIG_TABLES and not aliased):
                continue
            if m.group(1) == "SCAN":
                problems.append(f"{sql}\n    {step}")
            elif m.group(4) == "tenant_id=?" and not _walks_ok(sql):
                problems.append(f"{sql}\n    {step}  (the whole tenant)")
    return problems


async def _sqlite_world(tmp_path: Path) -> tuple[SqliteStore, Path]:
    path = tmp_path / "plans.sqlite3"
    store = await open_sqlite(path)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(f"BEGIN; {_SQLITE_DATA} COMMIT;")
    finally:
        db.close()
    return store, path


def _sqlite_plans(path: Path, recorded: Recorded, *, statistics: bool) -> list[str]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        if not statistics:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
                db.execute("DELETE FROM sqlite_stat1")
            db.close()
            db = sqlite3.connect(path, isolation_level=None)  # loads the (now empty) statistics
        else:
            assert db.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'conversations'").fetchone()[0] > 0
        return _sqlite_problems(db, recorded)
    finally:
        db.close()


# The statements of the SQLite batch append's one run (`SqliteStore._append_batch`), which
# go to the connection directly: planned with a conversation of the tenant's.
def _sqlite_append_run() -> Recorded:
    conv = "c00000500"
    row = ("m-new", T, conv, 1, "plan-2", None, "contact", "k1", "x", "[]", 9e9, "sent")
    return [(_READ_CONVERSATION, (conv,)), (_INSERT_NEXT_MESSAGE, row), (_ADVANCE_OWN_SEQ, (1, 9e9, conv, T))]


async def test_sqlite_request_paths_are_index_lookups_without_statistics(tmp_path: Path) -> None:
    store, path = await _sqlite_world(tmp_path)
    recorded: Recorded = []
    try:
        _record(store, recorded)
        await _run_paths(store)
    finally:
        await store.close()
    assert len(recorded) > 30
    problems = _sqlite_plans(path, recorded + _sqlite_append_run(), statistics=False)
    assert not problems, "\n".join(problems)


async def test_sqlite_request_paths_are_index_lookups_after_analyze(tmp_path: Path) -> None:
    """`SqliteStore.analyze` (run by the store after `migrate` and periodically) leaves
    statistics that keep every plan an index lookup, and the store's own connection plans
    with them (the visitor's conversations by contact)."""
    store, path = await _sqlite_world(tmp_path)
    recorded: Recorded = []
    try:
        before = store.analyses
        await store.analyze()
        assert store.analyses == before + 1
        async with store.reader() as conn:
            plan = await conn.fetch(
                "EXPLAIN QUERY PLAN SELECT * FROM conversations WHERE tenant_id = $1 AND contact_id = $2"
                " ORDER BY updated_at DESC, id DESC LIMIT 4", T, "k00000007")
        details = [str(r["detail"]) for r in plan]
        assert any("conversations_tenant_contact_idx" in d for d in details), details
        _record(store, recorded)
        await _run_paths(store)
    finally:
        await store.close()
    problems = _sqlite_plans(path, recorded + _sqlite_append_run(), statistics=True)
    assert not problems, "\n".join(problems)


async def test_sqlite_statistics_are_made_by_migrate(tmp_path: Path) -> None:
    """Opening and migrating a store analyzes it: a database fresh from its migrations is
    not planned without statistics until the first periodic round."""
    store = await open_sqlite(tmp_path / "fresh.sqlite3")
    try:
        assert store.analyses == 1
    finally:
        await store.close()


def _pg_problems(plans: list[tuple[str, str]]) -> list[str]:
    problems = []
    for sql, plan in plans:
        for table in BIG_TABLES:
            if re.search(rf"Seq Scan on {table}\b", plan):
                problems.append(f"{sql}\n{plan}")
        for m in re.finditer(r"Index (?:Only )?Scan(?: Backward)? using (\w+) on (\w+)[^\n]*\n\s+Index Cond: \((.*)\)",
                             plan):
            if m.group(2) in BIG_TABLES and re.fullmatch(r"\(?\w*\.?tenant_id = \S+\)?", m.group(3)) \
                    and not _walks_ok(sql):
                problems.append(f"{sql}\n{plan}  (the whole tenant)")
    return problems


@pytest.mark.postgres
async def test_postgres_request_paths_are_index_lookups() -> None:
    schema = f"plans_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(PG_DSN, schema=schema)
    try:
        await store.open()
        await store.migrate()
        c = await asyncpg.connect(PG_DSN, server_settings={"search_path": f'"{schema}"',
                                                           "plan_cache_mode": "force_custom_plan"})
        try:
            async with c.transaction():
                await c.execute("SET LOCAL session_replication_role = replica")  # no FK triggers for the bulk rows
                for statement in _PG_DATA[:-1]:
                    await c.execute(statement)
            await c.execute(_PG_DATA[-1])
            recorded: Recorded = []
            _record(store, recorded)
            await _run_paths(store)
            assert len(recorded) > 30
            plans = []
            for sql, args in recorded:
                if sql.split()[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
                    continue
                rows = await c.fetch(f"EXPLAIN (COSTS OFF) {sql}", *args)
                plans.append((sql, "\n".join(r[0] for r in rows)))
        finally:
            await c.close()
        problems = _pg_problems(plans)
        assert not problems, "\n\n".join(problems)
    finally:
        await store.close()
        await drop_schema(schema)
