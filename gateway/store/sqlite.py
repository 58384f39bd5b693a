"""SQLite backend (aiosqlite).

Lifecycle::

    store = SqliteStore("data/gateway.sqlite3")  # or ":memory:" / a "file:" URI; no I/O here
    await store.open()      # connect + pragmas (WAL, foreign_keys, busy_timeout); idempotent
    await store.migrate()
    ...
    await store.close()

One connection per store. Every operation holds the store's asyncio.Lock, so a reader
never sees another task's uncommitted transaction on the shared connection; writes run
in ``BEGIN IMMEDIATE ... COMMIT``, which also excludes other processes using the same
file (they wait up to ``busy_timeout``). That makes read-then-write sequences such as
seq assignment atomic. SQL comes from `SqlStore` with ``$n`` placeholders, rewritten to
SQLite's numbered ``?n`` form.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.store.rows import Row
from gateway.store.sql import Conflict, Conn, SqlStore, StoreClosed

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
)
_PLACEHOLDER = re.compile(r"\$(\d+)")
_UNIQUE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def to_sqlite_placeholders(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


def is_unique_violation(exc: sqlite3.IntegrityError) -> bool:
    return getattr(exc, "sqlite_errorname", "") in _UNIQUE_ERRORS


class _ThreadConn:
    """`Conn` over the raw sqlite3 connection, for code running on aiosqlite's thread:
    its coroutines never suspend, so `_run_to_end` completes them in one step."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return self._raw.execute(to_sqlite_placeholders(sql), args).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows: Sequence[Row] = self._raw.execute(to_sqlite_placeholders(sql), args).fetchall()
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        self._raw.execute(to_sqlite_placeholders(sql), args).close()


def _run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """Complete a coroutine that awaits nothing but a `_ThreadConn` (so never suspends)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a store function run on the SQLite thread awaited something else than its connection")


def _write_on_thread(raw: sqlite3.Connection, fn: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
    raw.execute("BEGIN IMMEDIATE")
    try:
        result = _run_to_end(fn(_ThreadConn(raw)))
        raw.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        if is_unique_violation(exc):
            raise Conflict(str(exc)) from exc
        raise
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return result


def _read_on_thread(raw: sqlite3.Connection, fn: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
    return _run_to_end(fn(_ThreadConn(raw)))


async def _on_thread(
    db: aiosqlite.Connection,
    run: Callable[[sqlite3.Connection, Callable[[Conn], Coroutine[Any, Any, T]]], T],
    fn: Callable[[Conn], Coroutine[Any, Any, T]],
) -> T:
    """`run(raw_connection, fn)` on aiosqlite's thread (its `_execute`, pinned in pyproject)."""
    result: T = await db._execute(run, db._conn, fn)  # type: ignore[no-untyped-call]
    return result


class _SqliteConn:
    """`Conn` over an aiosqlite connection; every call consumes and closes its cursor."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return list(await self._db.execute_fetchall(to_sqlite_placeholders(sql), args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        await self._db.execute_fetchall(to_sqlite_placeholders(sql), args)


async def _to_the_end(aw: Awaitable[T]) -> T:
    """Await `aw` to completion even if the caller is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _is_file_path(path: str) -> bool:
    return path != ":memory:" and not path.startswith("file:")


class SqliteStore(SqlStore):
    def __init__(self, path: str) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        async with self._lock:
            if self._db is None:
                self._db = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        if _is_file_path(self._path):
            await asyncio.to_thread(Path(self._path).parent.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(self._path, isolation_level=None, uri=self._path.startswith("file:"))
        try:
            db.row_factory = sqlite3.Row
            for pragma in _PRAGMAS:
                await db.execute_fetchall(pragma)
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                await db.close()

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.fetchrow("SELECT 1")

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreClosed("SqliteStore is not open")
        return self._db

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Conn]:
        async with self._lock:
            yield _SqliteConn(self._connection())

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Conn]:
        # aiosqlite runs each statement on its own thread even when the awaiting task is
        # cancelled, so BEGIN, COMMIT and ROLLBACK are waited for to the end: a cancelled
        # writer never leaves the shared connection inside a transaction.
        async with self._lock:
            db = self._connection()
            conn = _SqliteConn(db)
            try:
                await _to_the_end(conn.execute("BEGIN IMMEDIATE"))
            except BaseException:
                await _to_the_end(self._rollback(db))
                raise
            try:
                yield conn
                await _to_the_end(conn.execute("COMMIT"))
            except sqlite3.IntegrityError as exc:
                await _to_the_end(self._rollback(db))
                if is_unique_violation(exc):
                    raise Conflict(str(exc)) from exc
                raise
            except BaseException:
                await _to_the_end(self._rollback(db))
                raise

    async def _in_write(self, fn: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        # The whole transaction in one trip to aiosqlite's thread (instead of one per
        # statement): what makes group-committed appends cheap. Waited for to the end
        # even if the caller is cancelled, like `_write()`.
        async with self._lock:
            db = self._connection()
            return await _to_the_end(_on_thread(db, _write_on_thread, fn))

    async def _in_read(self, fn: Callable[[Conn], Coroutine[Any, Any, T]]) -> T:
        async with self._lock:
            db = self._connection()
            return await _to_the_end(_on_thread(db, _read_on_thread, fn))

    async def _lock_migrations(self, conn: Conn) -> None:
        """Nothing to add: BEGIN IMMEDIATE already excludes every other writer of the file."""

    @staticmethod
    async def _rollback(db: aiosqlite.Connection) -> None:
        if db.in_transaction:
            await db.execute_fetchall("ROLLBACK")
