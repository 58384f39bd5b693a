"""SQLite backend: statements and commits run inline on the event loop, checkpoints on a thread.

Lifecycle::

    store = SqliteStore("data/gateway.sqlite3")  # or ":memory:" / a "file:" URI; no I/O here
    await store.open()      # connect + pragmas (WAL, foreign_keys); idempotent
    await store.migrate()
    ...
    await store.close()

Only the standard `sqlite3` module touches the database. Why inline: in WAL mode with
``synchronous = NORMAL`` a commit does not fsync, so the statements of a chat operation
and their COMMIT (writing the transaction's WAL frames) take tens of microseconds, less
than a hand-off to a worker thread and back. A Python thread would also have to take the
GIL back from the loop after every statement step, which a busy loop gives up only at
its switch interval: the writes would stall exactly when the node is loaded. What could
block for longer is kept off the loop:

* **Checkpoints** (the only fsyncs): automatic checkpoints are off on the loop's
  connection; a second connection runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a worker
  thread every `checkpoint_interval` seconds (and a final TRUNCATE at close).
* **Statistics for the query planner**: `analyze` runs ``ANALYZE`` bounded by
  ``PRAGMA analysis_limit`` (`ANALYSIS_LIMIT` rows per index) on a second connection on a
  worker thread, after `migrate` and every `analyze_interval` seconds, then has the loop's
  connection reload them (``ANALYZE sqlite_schema``, a read of the small stat table).
  ``PRAGMA optimize`` is not used: it analyzes only the tables whose statistics the
  connection running it found missing while planning its own queries, so on a fresh
  connection off the loop it does nothing, and on the loop's it would run the ANALYZE
  there. The statements on the request paths are written to get the right plan without
  statistics too (``conversations`` by contact: `SqlStore.list_conversations`).
* **Waiting for another process's write lock** (an admin CLI command on the same file):
  ``busy_timeout`` is 0 on the loop's connection; ``BEGIN IMMEDIATE`` is retried with
  ``asyncio.sleep`` backoff for up to `BUSY_TIMEOUT_S`, so the loop keeps serving.

Group commit: the batch append (the message path's one write; `ChatService` batches
concurrent sends, `gateway/chat/appender.py`) is one transaction, and its COMMIT has
returned before any message of the batch is answered (`_append_batch`).

One connection per store. Every operation holds the store's asyncio.Lock, so a reader
never sees another task's uncommitted transaction on the shared connection; writes run
in ``BEGIN IMMEDIATE ... COMMIT``, which also excludes other processes using the same
file. That makes read-then-write sequences such as seq assignment atomic. SQL comes from
`SqlStore` with ``$n`` placeholders, rewritten to SQLite's numbered ``?n`` form.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway.core.domain import Conversation
from gateway.store.base import AppendRequest, AppendResult
from gateway.store.outage import Outage, StoreUnavailable
from gateway.store.rows import Row, conversation_from_row
from gateway.store.sql import (
    MESSAGE_COLUMNS,
    BatchPlan,
    Conflict,
    Conn,
    SqlStore,
    StoreClosed,
    conversation_tenants,
    new_message_values,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's lock before failing
# Rows ANALYZE samples per index (`analyze`): its work is bounded whatever the database's
# size, and the estimates are good enough to tell a tenant from a contact.
ANALYSIS_LIMIT = 1000
ANALYZE_INTERVAL_S = 3600.0  # how often a file database's statistics are refreshed
# Checkpoint passes run beside the writes before one runs with them held (`checkpoint`).
UNLOCKED_PASSES = 3
# Prepared statements kept per connection (sqlite3's default is 128). A batch append's lock
# and duplicate lookup differ in text with the batch's size and spread (their IN lists), and
# re-preparing them would cost more than running them.
STATEMENT_CACHE = 2048
# The loop's connection's page cache (``PRAGMA cache_size``), bytes. Reads of the database
# file are served from the mapping (``mmap_size``) without a copy; what the cache holds is
# the pages written (and those whose newest version is in the WAL), so with a large bound
# it grows with the pages the writes have touched, up to that bound. What it must hold is
# the hot set: the b-trees' upper pages and the newest leaves.
CACHE_BYTES = 8 * 1024 * 1024
_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 0",  # waits happen in BEGIN's async retry, not on the loop
    "PRAGMA wal_autocheckpoint = 0",  # checkpoints run on a thread (checkpoint_file)
    # reads: the file mapped (256 MiB), instead of a pread() system call per page missing
    # from the page cache (its size: `CACHE_BYTES`, set in `_connect`)
    # statement journals and sort B-trees in memory: on disk, each is a file created and
    # unlinked in /var/tmp
    "PRAGMA temp_store = MEMORY",
    "PRAGMA mmap_size = 268435456",
    # what a restarted WAL is cut back to (it otherwise keeps the size of its largest burst)
    "PRAGMA journal_size_limit = 134217728",
    # deleted content is overwritten, not left in free pages and cells (erasure, retention):
    # set here rather than left to how the SQLite library was built
    "PRAGMA secure_delete = ON",
)
_INSERT_MESSAGE = (f"INSERT INTO messages ({MESSAGE_COLUMNS}, delivery_error)"
                   f" VALUES ({', '.join(f'${i}' for i in range(1, 13))}, NULL)")
_ADVANCE_SEQ = "UPDATE conversations SET last_seq = last_seq + $1, updated_at = $2 WHERE id = $3"
# The batch append as one run of statements (`SqliteStore._append_batch`): the statements
# take the seqs from the conversation's row themselves, in the run's own transaction.
_CONVERSATION_COLUMNS = ("id", "tenant_id", "channel", "contact_id", "status", "assignee_id", "epoch", "last_seq",
                         "external_thread_id", "created_at", "updated_at", "subject")
_READ_CONVERSATION = f"SELECT {', '.join(_CONVERSATION_COLUMNS)} FROM conversations WHERE id = ?1"
# ?4 is the message's place among its conversation's new messages of the batch (1, 2, ...)
_INSERT_NEXT_MESSAGE = (f"INSERT INTO messages ({MESSAGE_COLUMNS}, delivery_error)"
                        " SELECT ?1, ?2, ?3, last_seq + ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL"
                        " FROM conversations WHERE id = ?3 AND tenant_id = ?2")
_ADVANCE_OWN_SEQ = "UPDATE conversations SET last_seq = last_seq + ?1, updated_at = ?2 WHERE id = ?3 AND tenant_id = ?4"
# (sql, rows, collect): rows None runs the statement once without parameters, else once per
# row of parameters; collect keeps the rows it returns (`run_steps`).
Step = tuple[str, list[tuple[Any, ...]] | None, bool]
_PLACEHOLDER = re.compile(r"\$(\d+)")
_UNIQUE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_BUSY_ERRORS = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
# primary result codes (the extended name's first two words) meaning "cannot serve now"
_UNAVAILABLE_ERRORS = {
    "SQLITE_FULL": "full",  # disk full, or the file at its max_page_count
    "SQLITE_READONLY": "read_only",
    "SQLITE_IOERR": "io_error",
    "SQLITE_CANTOPEN": "io_error",
    "SQLITE_BUSY": "locked",  # another process held the write lock past BUSY_TIMEOUT_S
    "SQLITE_LOCKED": "locked",
    "SQLITE_PROTOCOL": "locked",
    "SQLITE_NOMEM": "no_memory",
}
MIN_FREE_BYTES = 64 * 1024 * 1024  # free space on the file's filesystem below which `ping` fails
MIN_FREE_PAGES = 64  # pages the file may still add (max_page_count) below which `ping` fails


@functools.lru_cache(maxsize=1024)
def to_sqlite_placeholders(sql: str) -> str:
    """``$n`` → ``?n`` (cached: the same few hundred statements come back all the time)."""
    return _PLACEHOLDER.sub(r"?\1", sql)


def is_unique_violation(exc: sqlite3.IntegrityError) -> bool:
    return getattr(exc, "sqlite_errorname", "") in _UNIQUE_ERRORS


def is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorname", "") in _BUSY_ERRORS or "database is locked" in str(exc)


def unavailable_reason(exc: sqlite3.Error) -> str | None:
    """The outage reason of a driver error that says the database cannot serve now (full,
    read-only, I/O error, locked past the busy timeout), None for any other error."""
    name = getattr(exc, "sqlite_errorname", "")
    return _UNAVAILABLE_ERRORS.get("_".join(name.split("_", 2)[:2]))


class _LoopConn:
    """`Conn` over the sqlite3 connection; each call runs to completion without suspending."""

    __slots__ = ("_raw",)

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        rows: Sequence[Row] = self._raw.execute(to_sqlite_placeholders(sql), args).fetchall()
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        self._raw.execute(to_sqlite_placeholders(sql), args).close()

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run `sql` once per row of parameters (one prepared statement)."""
        if rows:
            self._raw.executemany(to_sqlite_placeholders(sql), rows).close()


def run_steps(db: sqlite3.Connection, steps: Sequence[Step]) -> list[Row]:
    """Run `steps` on `db` in order, stopping at the first error (raised; the transaction
    is left to the caller to roll back). Returns the rows of the collecting steps, in order."""
    found: list[Row] = []
    for sql, rows, collect in steps:
        if rows is None:
            db.execute(sql).close()
        elif collect:
            for params in rows:
                found.extend(db.execute(sql, params).fetchall())
        elif rows:
            db.executemany(sql, rows).close()
    return found


def _has_room(db: sqlite3.Connection) -> bool:
    """Whether the file may still add `MIN_FREE_PAGES` pages (free pages included) under its
    ``max_page_count``."""
    pages, most, free = db.execute("SELECT p.page_count, m.max_page_count, f.freelist_count FROM pragma_page_count()"
                                   " AS p, pragma_max_page_count() AS m, pragma_freelist_count() AS f").fetchone()
    return int(most) - int(pages) + int(free) >= MIN_FREE_PAGES


def _is_file_path(path: str) -> bool:
    return path != ":memory:" and not path.startswith("file:")


def _connect(path: str, *, uri: bool, cache_bytes: int) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, uri=uri, check_same_thread=True,
                         cached_statements=STATEMENT_CACHE)
    try:
        db.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            db.execute(pragma).close()
        # negative: a size in KiB rather than in pages (at least 1 KiB: 0 would mean SQLite's minimum)
        db.execute(f"PRAGMA cache_size = -{max(1, int(cache_bytes) // 1024)}").close()
    except BaseException:
        db.close()
        raise
    return db


def checkpoint_file(path: str, mode: str = "PASSIVE") -> tuple[int, int, int]:
    """A checkpoint of the database file at `path` from a connection of its own (blocking:
    run it on a thread). Returns SQLite's (busy, WAL frames, frames checkpointed)."""
    db = sqlite3.connect(path, isolation_level=None, uri=path.startswith("file:"), timeout=BUSY_TIMEOUT_S)
    try:
        row = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        db.close()


def analyze_file(path: str, limit: int = ANALYSIS_LIMIT) -> None:
    """``ANALYZE`` of the database file at `path`, sampling at most `limit` rows per index,
    from a connection of its own (blocking: run it on a thread)."""
    db = sqlite3.connect(path, isolation_level=None, uri=path.startswith("file:"), timeout=BUSY_TIMEOUT_S)
    try:
        db.execute(f"PRAGMA analysis_limit = {int(limit)}").close()
        db.execute("ANALYZE").close()
    finally:
        db.close()


class _ReadScope:
    """`SqliteStore._read`: the store's lock held around reads on its connection (no
    transaction of this store's is open meanwhile); a `sqlite3.Error` that says the database
    cannot serve leaves as `StoreUnavailable`.

    A class rather than an `asynccontextmanager`: a visitor's connect makes four reads, and
    the generator version cost each a generator, the loop's async-generator bookkeeping and
    the lock's own context manager (about 14 Python calls against 6 here)."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def __aenter__(self) -> Conn:
        store = self._store
        await store._lock.acquire()
        try:
            return _LoopConn(store._connection())
        except BaseException:
            store._lock.release()
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        store = self._store
        store._lock.release()
        if isinstance(exc, sqlite3.Error):
            store._raise_unavailable(exc)


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, path: str, *, checkpoint_interval: float = 1.0, min_free_bytes: int = MIN_FREE_BYTES,
                 outage: Outage | None = None, analyze_interval: float = ANALYZE_INTERVAL_S,
                 cache_bytes: int = CACHE_BYTES) -> None:
        self._path = path
        self._cache_bytes = cache_bytes
        self._min_free_bytes = min_free_bytes
        self.outage = outage or Outage("sqlite", logger=log)
        self.outage.on_recover.append(self._after_outage)
        self._recovery: asyncio.Task[None] | None = None  # the TRUNCATE checkpoint after an outage
        self._checkpoint_failing = False
        self._uri = path.startswith("file:")
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._checkpoint_interval = checkpoint_interval
        self._checkpointer: asyncio.Task[None] | None = None
        self._analyze_interval = analyze_interval
        self._analyzer: asyncio.Task[None] | None = None
        self.analyses = 0  # statistics refreshes (`analyze`)
        self.busy_retries = 0  # BEGINs that found another process holding the write lock
        self.one_job_appends = 0  # batch appends written as one run of statements (`_append_batch`)
        self.optimistic_retries = 0  # ... that failed (a stored duplicate, a busy file) and ran again the locking way
        self.checkpoints = 0
        self.commits = 0  # write transactions committed on this store's connection
        self.checkpointed_commits = -1  # `commits` when the last complete checkpoint began
        self.checkpoints_skipped = 0  # passes of the checkpoint loop with nothing committed since
        self.wal_restarts = 0  # checkpoints that copied the whole WAL (the next write starts it over)
        self._copied_until = 0  # the WAL's size at the last complete checkpoint
        self.writes_held_seconds = 0.0  # time the checkpoints' second passes held this store's writes
        self.writes_held_max = 0.0  # the longest such hold

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        async with self._lock:
            if self._db is not None:
                return
            on_disk = _is_file_path(self._path)
            if on_disk:
                await asyncio.to_thread(Path(self._path).parent.mkdir, parents=True, exist_ok=True)
            self._db = _connect(self._path, uri=self._uri, cache_bytes=self._cache_bytes)
            if on_disk:
                self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoint")
                self._analyzer = asyncio.create_task(self._analyze_loop(), name="sqlite-analyze")

    async def close(self) -> None:
        async with self._lock:
            for task in (self._checkpointer, self._recovery, self._analyzer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._checkpointer = self._recovery = self._analyzer = None
            db, self._db = self._db, None
            if db is None:
                return
            if _is_file_path(self._path):  # the fsync off the loop; closing then has little left to copy
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.to_thread(checkpoint_file, self._path, "TRUNCATE")
            self._rollback(db)
            db.close()

    async def forget_history(self) -> None:
        """Merge every FTS5 index into one segment (``'optimize'``: the segments that still
        held the terms of deleted documents are rewritten without them, their pages
        overwritten by `secure_delete`), then copy the WAL into the database and truncate
        it: after an erasure, the pages that held the erased rows before (still in the
        WAL's earlier frames) are gone from disk (the database's own pages were
        overwritten by `secure_delete`)."""
        async with self._write() as conn:
            for row in await conn.fetch("SELECT name FROM sqlite_master WHERE type = 'table'"
                                        " AND sql LIKE 'CREATE VIRTUAL TABLE % USING fts5%'"):
                name = row["name"]
                await conn.execute(f'INSERT INTO "{name}" ("{name}") VALUES (\'optimize\')')
        if _is_file_path(self._path):
            await asyncio.to_thread(checkpoint_file, self._path, "TRUNCATE")

    async def ping(self) -> None:
        """Readiness: raises `StoreUnavailable` unless the store can write. A committed write
        (`write_probe`: a read-only file, an I/O error or a full disk under the WAL fail it),
        room for `MIN_FREE_PAGES` more pages under the file's ``max_page_count``, and at
        least `min_free_bytes` free on the file's filesystem (so a node whose disk is nearly
        full is taken out of rotation before its writes fail, and is put back only once
        there is room for the retries of the outage)."""
        async with self._lock:
            room = _has_room(self._connection())
        if not room:
            raise StoreUnavailable("full", self.outage.retry_after())
        await self.write_probe()
        if _is_file_path(self._path):
            free = (await asyncio.to_thread(shutil.disk_usage, Path(self._path).parent)).free
            if free < self._min_free_bytes:
                raise StoreUnavailable("low_disk", self.outage.retry_after())

    async def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database off the loop (the fsyncs happen here). A
        failing checkpoint is logged once when it starts failing and once when it works again.
        A store that has committed nothing since its last complete checkpoint skips the pass
        (an idle node opens no connection and reads no WAL once a second)."""
        while True:
            await asyncio.sleep(self._checkpoint_interval)
            commits = self.commits
            if commits == self.checkpointed_commits:
                self.checkpoints_skipped += 1
                continue
            try:
                if await self.checkpoint():
                    self.checkpointed_commits = commits
            except sqlite3.Error as exc:
                if not self._checkpoint_failing:
                    log.warning("sqlite checkpoint failed (retrying every %.1fs): %s", self._checkpoint_interval, exc)
                self._checkpoint_failing = True
            else:
                if self._checkpoint_failing:
                    log.warning("sqlite checkpoint works again")
                self._checkpoint_failing = False

    def _after_outage(self) -> None:
        """When writes work again after an outage, a TRUNCATE checkpoint on a thread: the
        WAL written before and during the outage goes into the database and the file is cut
        to nothing, so the retries of the outage start on an empty WAL."""
        if not _is_file_path(self._path) or self._db is None:
            return
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._truncate_wal(), name="sqlite-recovery")

    async def _truncate_wal(self) -> None:
        try:
            busy, frames, copied = await asyncio.to_thread(checkpoint_file, self._path, "TRUNCATE")
        except sqlite3.Error as exc:
            log.warning("sqlite checkpoint after the outage failed: %s", exc)
            return
        log.info("sqlite checkpoint after the outage: %d of %d WAL frames copied%s", copied, frames,
                 " (busy)" if busy else "")

    async def migrate(self) -> None:
        """`SqlStore.migrate`, then fresh statistics (`analyze`): a migration may have created
        the tables or indexes, or rebuilt them."""
        await super().migrate()
        try:
            await self.analyze()
        except sqlite3.Error as exc:  # the plans do not depend on it; the next round retries
            log.warning("sqlite analyze after migrating failed: %s", exc)

    async def _analyze_loop(self) -> None:
        while True:
            await asyncio.sleep(self._analyze_interval)
            try:
                await self.analyze()
            except sqlite3.Error as exc:
                log.warning("sqlite analyze failed (retrying in %.0fs): %s", self._analyze_interval, exc)

    async def analyze(self) -> None:
        """Refresh the query planner's statistics: ``ANALYZE`` (at most `ANALYSIS_LIMIT` rows
        per index) on a worker thread, then the loop's connection reloads them. An in-memory
        database, which no second connection can open, is analyzed on the loop."""
        if _is_file_path(self._path):
            await asyncio.to_thread(analyze_file, self._path)
            reload: tuple[str, ...] = ("ANALYZE sqlite_schema",)
        else:
            reload = (f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}", "ANALYZE")
        async with self._lock:
            db = self._connection()
            for statement in reload:
                db.execute(statement).close()
        self.analyses += 1

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database file on a worker thread, so that the next write
        starts the WAL over from its beginning; True when it did.

        SQLite starts the WAL over only when a write transaction begins after a checkpoint
        copied every frame, and a PASSIVE checkpoint running beside a busy writer never
        gets there: what it copies is the WAL as of its start, and the writes meanwhile
        add frames. The WAL then grows for as long as the writes go on, and every append to
        it lands on new file blocks, which the kernel zeroes first. So: up to
        `UNLOCKED_PASSES` PASSIVE passes beside the writes, each copying what was written
        during the one before (the first a second of writes, the next the few ms the first
        took, ...), then, if this store still wrote meanwhile, a last pass over just that
        remainder with this store's writes held back (its lock). The hold is then the last
        pass's two fsyncs and a small copy, not the copy and fsync of everything written
        during the first pass."""
        busy = frames = copied = 0
        for _ in range(UNLOCKED_PASSES):
            commits = self.commits
            busy, frames, copied = await asyncio.to_thread(checkpoint_file, self._path)
            if not frames or (not busy and copied == frames and self.commits == commits):
                break
        else:
            async with self._lock:
                if self._db is None:
                    return False
                held = time.monotonic()
                try:
                    busy, frames, copied = await asyncio.to_thread(checkpoint_file, self._path)
                finally:
                    held = time.monotonic() - held
                    self.writes_held_seconds += held
                    self.writes_held_max = max(self.writes_held_max, held)
        self.checkpoints += 1
        done = not busy and copied == frames
        if done and frames and frames != self._copied_until:  # not the same WAL again (no write since)
            self.wal_restarts += 1
        self._copied_until = frames if done else 0
        return done

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreClosed("SqliteStore is not open")
        return self._db

    def _succeeded(self, db: sqlite3.Connection) -> None:
        """After a committed write: ends an open outage, unless it is a full file that still
        has no room (a small write fits in a page's free space while messages do not: the
        outage goes on, without a line per write that fits)."""
        if self.outage.down and (self.outage.reason != "full" or _has_room(db)):
            self.outage.succeeded()

    def _raise_unavailable(self, exc: sqlite3.Error) -> None:
        """Raise `StoreUnavailable` (from `exc`) when `exc` says the database cannot serve now."""
        reason = unavailable_reason(exc)
        if reason is not None:
            raise self.outage.failed(reason, exc) from exc

    def _read(self) -> _ReadScope:
        return _ReadScope(self)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Conn]:
        async with self._lock:
            db = self._connection()
            try:
                await self._begin(db)
                try:
                    conn = _LoopConn(db)
                    yield conn
                    db.execute("COMMIT")
                    self.commits += 1
                except sqlite3.IntegrityError as exc:
                    self._rollback(db)
                    if is_unique_violation(exc):
                        raise Conflict(str(exc)) from exc
                    raise
                except BaseException:
                    self._rollback(db)
                    raise
            except sqlite3.Error as exc:
                self._raise_unavailable(exc)
                raise
            self._succeeded(db)

    async def _append_batch(self, requests: Sequence[AppendRequest], now: float) -> list[AppendResult | None]:
        """The whole transaction — BEGIN, the conversations' reads, the message INSERTs, the
        seq UPDATEs, COMMIT — as one run of statements, planned on the loop.

        The locking path (`SqlStore._append_batch`) locks the conversations and looks up
        stored duplicates before it writes. Here each INSERT takes its seq from the
        conversation's row (`last_seq` + the message's place among its conversation's new
        messages of the batch) and only where the row is the requester's tenant's; the
        UPDATEs run after the INSERTs; the conversations' rows, read first in the same
        transaction, give the seqs and conversations of the answer.

        Stored duplicates (a client's retry of a message it already sent) are rare, so the
        run goes as if there were none: a duplicate fails its INSERT on the unique index,
        the transaction is rolled back (no seq taken) and the batch runs again the locking
        way, which finds and answers it (`optimistic_retries`); so does a batch whose BEGIN
        finds another process holding the file's write lock (the locking path waits for it
        without blocking the loop) and one conversation id claimed by two tenants in one
        batch. Nothing is answered before the COMMIT has returned."""
        tenant_of = conversation_tenants(requests)
        if tenant_of is None:
            return await super()._append_batch(requests, now)
        bp = BatchPlan.make(requests, {})
        made = [new_message_values(rq, n, now) for rq, n in bp.fresh]  # seq column: n (the place)
        steps: list[Step] = [
            ("BEGIN IMMEDIATE", None, False),
            (_READ_CONVERSATION, [(cid,) for cid in tenant_of], True),
            (_INSERT_NEXT_MESSAGE, made, False),
            (_ADVANCE_OWN_SEQ, [(n, now, cid, tenant_of[cid]) for cid, n in bp.counts.items()], False),
            ("COMMIT", None, False),
        ]
        async with self._lock:
            db = self._connection()
            try:
                found: list[Row] | None = run_steps(db, steps)
            except sqlite3.Error:
                self._rollback(db)
                self.optimistic_retries += 1
                found = None
            except BaseException:
                self._rollback(db)
                raise
            else:
                self.commits += 1
                self.one_job_appends += 1
                self._succeeded(db)
        if found is None:
            return await super()._append_batch(requests, now)
        convs: dict[str, Conversation] = {}
        first: dict[str, int] = {}  # the seq before this batch's messages, per owned conversation
        for row in found:
            cid = row["id"]
            if row["tenant_id"] == tenant_of.get(cid):
                first[cid] = int(row["last_seq"])
                convs[cid] = conversation_from_row(row, advanced_by=bp.counts.get(cid, 0), now=now)
        mine = [rq if rq.conversation_id in first else None for rq in requests]
        return bp.results(mine, bp.stored(made, first), convs)

    async def _begin(self, db: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE; while another process holds the write lock, wait without
        blocking the loop (backoff 1 ms → 50 ms) for up to BUSY_TIMEOUT_S."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.001
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            self.busy_retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _insert_messages(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """One single-row INSERT run for every row: one cached statement whatever the batch
        size, no multi-row text to build and parse."""
        assert isinstance(conn, _LoopConn)
        conn.executemany(_INSERT_MESSAGE, rows)

    async def _advance_seqs(self, conn: Conn, counts: dict[str, int], now: float) -> None:
        """One single-row UPDATE run for every conversation, as `_insert_messages`."""
        assert isinstance(conn, _LoopConn)
        conn.executemany(_ADVANCE_SEQ, [(n, now, cid) for cid, n in counts.items()])

    async def _lock_migrations(self, conn: Conn) -> None:
        """Nothing to add: BEGIN IMMEDIATE already excludes every other writer of the file."""

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.OperationalError:  # e.g. SQLITE_FULL / IOERR rolled it back already
                if db.in_transaction:
                    raise
