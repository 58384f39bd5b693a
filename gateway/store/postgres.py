"""PostgreSQL backend (asyncpg).

Lifecycle::

    store = PostgresStore("postgresql://user@host/db", schema="tenant_a")  # no I/O yet
    await store.open()      # pool (search_path = schema) + CREATE SCHEMA IF NOT EXISTS; idempotent
    await store.migrate()   # under pg_advisory_xact_lock: safe when several nodes start at once
    ...
    await store.close()

Transactions run at READ COMMITTED. `SqlStore` takes ``SELECT ... FOR NO KEY UPDATE`` row
locks where it needs serialisation: the conversation row for `append_message` (so seqs are
contiguous and never visible out of order) and the tenant row for `assign_next_agent`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from gateway.core.domain import Conversation, Message
from gateway.store.base import AppendRequest, AppendResult
from gateway.store.outage import Outage
from gateway.store.rows import conversation_from_row
from gateway.store.sql import (
    MESSAGE_COLUMNS,
    BatchPlan,
    Conflict,
    Conn,
    SqlStore,
    StoreClosed,
    _lookup,
    conversation_tenants,
    new_message_values,
)

log = logging.getLogger(__name__)

DEADLOCK_TRIES = 3  # runs of the locking transaction after an append statement lost a deadlock
DEADLOCK_PAUSE = 0.02  # seconds before the first of them (jittered, longer before each next)

# The append pool's session settings: one generic plan per statement, made at its first
# execution on a connection and kept (no planning per batch), and a plan that can only be
# per-key index lookups in nested loops, whatever the statistics say — so a plan made
# while a table is empty or small stays right as it grows. The statements on this pool
# (`_APPEND`, the duplicate lookup, the conversations by id) and the foreign-key checks
# they fire are all lookups by an indexed key, so no batch pays for planning, and no
# generic plan can hash or scan a whole table per batch (the comparison with custom
# plans: docs/performance.md, History of decisions).
# PostgreSQL re-plans a cached plan when its tables' statistics change (autovacuum's
# ANALYZE), and asyncpg replaces a connection after 50,000 queries. One plan here is not
# ours to shape: the foreign-key check of each inserted message; made before a fresh table
# was first analyzed, it may take an index led by tenant_id (a scan of that tenant's
# conversations per message) until autovacuum analyzes the table, about a minute after
# its first 50 changes.
APPEND_POOL_SETTINGS = {
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
}

STATEMENT_TIMEOUT = 5.0  # seconds a statement may run on the server (statement_timeout)
ACQUIRE_TIMEOUT = 5.0  # seconds an operation may wait for a pool connection (including connecting)
# The client gives the server this much longer than STATEMENT_TIMEOUT to answer before it
# gives up on a statement itself (a hung server or network never answers at all).
CLIENT_TIMEOUT_MARGIN = 1.0

# SQLSTATEs (whole classes by their first two characters) meaning "cannot serve now"
_UNAVAILABLE_CLASSES = {
    "08": "unreachable",  # connection exception
    "53": "full",  # insufficient resources: disk full, out of memory, too many connections
    "58": "io_error",  # system error (I/O)
}
_UNAVAILABLE_STATES = {
    "57014": "timeout",  # query_canceled: statement_timeout
    "57P01": "unreachable",  # admin_shutdown
    "57P02": "unreachable",  # crash_shutdown
    "57P03": "unreachable",  # cannot_connect_now (starting up, shutting down)
    "25006": "read_only",  # read_only_sql_transaction (a standby, default_transaction_read_only)
}


def unavailable_reason(exc: BaseException) -> str | None:
    """The outage reason of an error from asyncpg or the pool that says the database cannot
    serve now (unreachable, hung past a timeout, read-only, out of space), None otherwise."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(exc.sqlstate or "")
        return _UNAVAILABLE_STATES.get(state) or _UNAVAILABLE_CLASSES.get(state[:2])
    if isinstance(exc, TimeoutError):  # a command, a connection or a pool acquisition timed out
        return "timeout"
    if isinstance(exc, (OSError, asyncpg.InterfaceError)):  # refused, reset, "connection is closed"
        return "unreachable"
    return None


_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SCHEMA_LOCK_KEY = "izihelp:create-schema"


def quote_schema(schema: str) -> str:
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use letters, digits and underscores")
    return f'"{schema}"'


async def _keep_session(conn: Any) -> None:
    """The pool's reset on release: nothing, no round trip. asyncpg's default sends
    ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, one round trip
    per release. The gateway keeps no session state to undo: no LISTEN, no cursors outside
    transactions, no session-level advisory locks or SETs (search_path is a connection
    setting). asyncpg still rolls back a transaction left open before calling this."""


class PostgresStore(SqlStore):
    dialect = "postgres"
    _row_lock = " FOR NO KEY UPDATE"  # self-exclusive, yet lets FK checks (KEY SHARE) through

    def __init__(self, dsn: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 10,
                 append_pool_size: int = 4, statement_timeout: float = STATEMENT_TIMEOUT,
                 acquire_timeout: float = ACQUIRE_TIMEOUT, outage: Outage | None = None) -> None:
        self._dsn = dsn
        self._statement_timeout = statement_timeout
        self._acquire_timeout = acquire_timeout
        self.outage = outage or Outage("postgresql", logger=log)
        self._schema = schema
        self._quoted_schema = None if schema is None else quote_schema(schema)
        self._min_size = min_size
        self._max_size = max_size
        self._append_pool_size = append_pool_size
        self._pool: Any = None
        self._append_pool: Any = None  # the batch append's connections (APPEND_POOL_SETTINGS)
        self.deadlocks = 0  # append statements that lost a deadlock (and were retried with ordered locks)
        self.optimistic_retries = 0  # append statements that met a stored duplicate (run again after reading them)

    @property
    def schema(self) -> str | None:
        return self._schema

    async def open(self) -> None:
        if self._pool is not None:
            return
        # Custom plans for every prepared statement: asyncpg keeps its statements prepared for
        # the connection's life, and a generic plan made while a table was small (a fresh
        # schema, before autovacuum's first ANALYZE) is kept until something invalidates it,
        # and grows slower with the table; a short statement is cheap to plan each time.
        pool = await self._create_pool({"plan_cache_mode": "force_custom_plan"}, self._min_size, self._max_size)
        try:
            if self._quoted_schema is not None:
                await self._create_schema(pool, self._quoted_schema)
            append_pool = await self._create_pool(APPEND_POOL_SETTINGS, 1, self._append_pool_size)
        except BaseException:
            await pool.close()
            raise
        self._pool, self._append_pool = pool, append_pool

    async def _create_pool(self, settings: dict[str, str], min_size: int, max_size: int) -> Any:
        """A pool whose sessions have `settings`, in this store's schema, without asyncpg's
        reset query."""
        settings = {**settings, "statement_timeout": str(max(1, round(self._statement_timeout * 1000)))}
        if self._quoted_schema is not None:
            settings = {**settings, "search_path": self._quoted_schema}
        return await asyncpg.create_pool(self._dsn, min_size=min_size, max_size=max_size, server_settings=settings,
                                         reset=_keep_session, timeout=self._acquire_timeout,
                                         command_timeout=self._statement_timeout + CLIENT_TIMEOUT_MARGIN)

    @staticmethod
    async def _create_schema(pool: Any, quoted: str) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _SCHEMA_LOCK_KEY)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")

    async def close(self) -> None:
        pools = (self._append_pool, self._pool)
        self._pool = self._append_pool = None
        for pool in pools:
            if pool is not None:
                await pool.close()

    async def ping(self) -> None:
        """Readiness: raises unless a small write commits (`write_probe`: an unreachable,
        hung, read-only or full database fails it within the timeouts)."""
        await self.write_probe()

    def _acquire(self) -> Any:
        if self._pool is None:
            raise StoreClosed("PostgresStore is not open")
        return self._pool.acquire(timeout=self._acquire_timeout)

    def _acquire_for_append(self) -> Any:
        if self._append_pool is None:
            raise StoreClosed("PostgresStore is not open")
        return self._append_pool.acquire(timeout=self._acquire_timeout)

    def _raise_unavailable(self, exc: BaseException) -> None:
        """Raise `StoreUnavailable` (from `exc`) when `exc` says the database cannot serve now."""
        reason = unavailable_reason(exc)
        if reason is not None:
            raise self.outage.failed(reason, exc) from exc

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Conn]:
        try:
            async with self._acquire() as conn:
                yield conn
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            self._raise_unavailable(exc)
            raise

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Conn]:
        try:
            async with self._acquire() as conn:
                try:
                    async with conn.transaction():
                        yield conn
                except asyncpg.UniqueViolationError as exc:
                    raise Conflict(str(exc)) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            self._raise_unavailable(exc)
            raise
        self.outage.succeeded()

    # --- batch append: one round trip, no explicit transaction ---------------------------
    async def _append_batch(self, requests: Sequence[AppendRequest], now: float) -> list[AppendResult | None]:
        """Advance the seqs and insert the new rows in ONE statement (`_APPEND`): its UPDATE
        row-locks each conversation and reads the newest `last_seq` (READ COMMITTED re-reads
        a row it waited for), and the INSERT takes each message's seq from what the UPDATE
        returned, so seqs stay contiguous under concurrent writers without a BEGIN, a
        locking SELECT and a COMMIT of their own.

        Stored duplicates (a client's retry of a message it already sent) are rare, so the
        statement runs first as if there were none: a duplicate fails it on its unique
        index, which undoes the whole statement (no seq is taken), and the batch runs again
        with the stored duplicates read first (`_find_duplicates`) — one round trip for a
        batch without retries, three for one with (two before, whatever the batch). A
        duplicate committed by another node between that read and the write fails the
        statement again (`Conflict`: the caller retries each request, and finds it). Rare
        cases take the locking transaction of `SqlStore`: a deadlock between two such
        statements (their UPDATEs lock in array order, sorted by id, but the planner does
        not promise it) and one conversation id claimed by two tenants in one batch."""
        tenant_of = conversation_tenants(requests)
        if tenant_of is None:
            return await super()._append_batch(requests, now)
        try:
            results = await self._append_optimistic(requests, tenant_of, now)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            self._raise_unavailable(exc)
            raise
        self.outage.succeeded()
        return results

    async def _append_optimistic(self, requests: Sequence[AppendRequest], tenant_of: dict[str, str],
                                 now: float) -> list[AppendResult | None]:
        async with self._acquire_for_append() as conn:
            try:
                return await self._append_with(conn, requests, tenant_of, {}, now)
            except asyncpg.UniqueViolationError:
                self.optimistic_retries += 1
            stored = await self._find_duplicates(conn, requests)
            try:
                return await self._append_with(conn, requests, tenant_of, stored, now)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(str(exc)) from exc

    async def _append_locking(self, requests: Sequence[AppendRequest], now: float) -> list[AppendResult | None]:
        """The locking transaction of `SqlStore`, after a short pause, again (up to
        `DEADLOCK_TRIES` in all) if it too loses a deadlock. Its row locks come in id order,
        but the transaction the statement lost to may take its own in another: the rows the
        lost statement released wake that winner, and a retry that locks at once can take one
        of them first and meet the winner again. The pause, longer at each try and jittered,
        lets the winner have them."""
        for attempt in range(1, DEADLOCK_TRIES + 1):
            await asyncio.sleep(random.uniform(0.5, 1.5) * DEADLOCK_PAUSE * attempt)
            try:
                return await super()._append_batch(requests, now)
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_TRIES:
                    raise
                self.deadlocks += 1
                log.warning("append transaction lost a deadlock (try %d of %d); retrying", attempt, DEADLOCK_TRIES)
        raise AssertionError("unreachable")

    async def _append_with(self, conn: Any, requests: Sequence[AppendRequest], tenant_of: dict[str, str],
                           stored: dict[tuple[str, str, str], Message], now: float) -> list[AppendResult | None]:
        """`_APPEND` of the requests that `stored` (the stored duplicates known) leaves new."""
        # a stored message of another tenant under this id: not the requester's conversation
        mine = [None if (d := _lookup(stored, rq)) is not None and d.tenant_id != rq.tenant_id else rq
                for rq in requests]
        bp = BatchPlan.make(mine, stored)
        convs: dict[str, Conversation] = {}
        inserted: list[Message | None] = []
        if bp.fresh:
            made = [new_message_values(rq, n, now) for rq, n in bp.fresh]  # seq column: n for now
            ids = sorted(bp.counts)
            cols = list(zip(*made, strict=True))
            try:
                updated = await conn.fetch(_APPEND, ids, [tenant_of[c] for c in ids],
                                           [bp.counts[c] for c in ids], now, *(list(c) for c in cols))
            except asyncpg.DeadlockDetectedError:
                self.deadlocks += 1
                log.warning("append statement lost a deadlock; retrying the batch with ordered row locks")
                return await self._append_locking(requests, now)
            first: dict[str, int] = {}  # the seq before this batch's messages, per conversation
            for row in updated:
                convs[row["id"]] = conversation_from_row(row)
                first[row["id"]] = int(row["last_seq"]) - int(row["added"])
            inserted = bp.stored(made, first)
        missing = sorted({rq.conversation_id for rq, d in zip(mine, bp.plan, strict=True)
                          if rq is not None and isinstance(d, Message) and rq.conversation_id not in convs})
        if missing:  # conversations of stored duplicates only (retries)
            for row in await conn.fetch("SELECT * FROM conversations WHERE id = ANY($1::text[])", missing):
                if row["tenant_id"] == tenant_of[row["id"]]:
                    convs[row["id"]] = conversation_from_row(row)
        return bp.results(mine, inserted, convs)

    # --- the locking path's statements, with array parameters: one fixed statement each ---
    def _sql_lock_conversations(self, conv_ids: list[str]) -> tuple[Any, ...]:
        return ("SELECT * FROM conversations WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE", conv_ids)

    def _sql_duplicates(self, client_keys: list[tuple[str, str]],
                        external_keys: list[tuple[str, str]]) -> tuple[Any, ...]:
        # One unique-index lookup per (conversation, key) pair, as a LATERAL subquery so that
        # even a generic plan on a table without statistics cannot turn it into a scan of
        # `messages`: each batch costs one index probe per pair, whatever the table's size.
        return ("SELECT m.* FROM unnest($1::text[], $2::text[]) AS k(conv, cid), LATERAL"
                " (SELECT * FROM messages WHERE conversation_id = k.conv AND client_id = k.cid) AS m"
                " UNION ALL"
                " SELECT m.* FROM unnest($3::text[], $4::text[]) AS k(conv, eid), LATERAL"
                " (SELECT * FROM messages WHERE conversation_id = k.conv AND external_id = k.eid) AS m"
                " ORDER BY seq",
                [c for c, _ in client_keys], [k for _, k in client_keys],
                [c for c, _ in external_keys], [k for _, k in external_keys])

    async def _advance_seqs(self, conn: Conn, counts: dict[str, int], now: float) -> None:
        await conn.execute("UPDATE conversations AS c SET last_seq = c.last_seq + v.k, updated_at = $3"
                           " FROM unnest($1::text[], $2::int[]) AS v(id, k) WHERE c.id = v.id",
                           list(counts), list(counts.values()), now)

    async def _insert_messages(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        columns = list(zip(*rows, strict=True))
        await conn.execute(f"INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[],"
                           " $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
                           " $10::text[], $11::float8[], $12::text[])", *(list(c) for c in columns))

    @asynccontextmanager
    async def _migration_transaction(self) -> AsyncIterator[Conn]:
        """A transaction without the statement timeouts: a migration may build an index over
        a large table."""
        async with self._write() as conn:
            await conn.execute("SET LOCAL statement_timeout = 0")
            yield _Unbounded(conn)

    async def _lock_migrations(self, conn: Conn) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('izihelp:migrate:' || current_schema()))")


MIGRATION_TIMEOUT = 24 * 3600.0  # the client's limit on one migration statement


class _Unbounded:
    """`Conn` over an asyncpg connection whose statements wait `MIGRATION_TIMEOUT` for an
    answer instead of the pool's command timeout."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> Sequence[Any]:
        rows: Sequence[Any] = await self._conn.fetch(sql, *args, timeout=MIGRATION_TIMEOUT)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchrow(sql, *args, timeout=MIGRATION_TIMEOUT)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args, timeout=MIGRATION_TIMEOUT)


_APPEND = (
    "WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) AS k(id, tenant_id, added)),"
    # by primary key only: the tenant check is a filter (IS NOT DISTINCT FROM, which no index
    # serves), so a generic plan made on an empty table cannot take another index led by
    # tenant_id and scan a tenant's conversations per message
    " upd AS (UPDATE conversations AS c SET last_seq = c.last_seq + k.added, updated_at = $4 FROM k"
    "  WHERE c.id = k.id AND c.tenant_id IS NOT DISTINCT FROM k.tenant_id RETURNING c.*, k.added),"
    # each updated conversation's seq before this batch, as one jsonb object looked up per
    # row (a join of the rows to `upd` would be a nested loop: the append pool has no hash
    # joins, and its cost grows with the square of the batch)
    " base AS (SELECT jsonb_object_agg(id, last_seq - added) AS seqs FROM upd),"
    f" ins AS (INSERT INTO messages ({MESSAGE_COLUMNS})"
    "  SELECT r.id, r.tenant_id, r.conversation_id, (base.seqs ->> r.conversation_id)::bigint + r.n, r.client_id,"
    "   r.external_id, r.author_type, r.author_id, r.text, r.attachments, r.created_at, r.delivery_state"
    "  FROM base, unnest($5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[],"
    "   $12::text[], $13::text[], $14::text[], $15::float8[], $16::text[])"
    "   AS r(id, tenant_id, conversation_id, n, client_id, external_id, author_type, author_id, text, attachments,"
    "   created_at, delivery_state)"
    "  WHERE base.seqs ? r.conversation_id)"
    " SELECT * FROM upd"
)
