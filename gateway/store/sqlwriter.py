"""A write transaction's last statements and its COMMIT on a C thread (`_sqlwriter.c`).

py-spy on the small-rooms bench (3,000 msg/s) had the event loop's thread inside SQLite,
with the GIL released, for ~17 % of its time: the COMMIT (writing the transaction's WAL
frames) alone ~9 %, the batch's seq UPDATEs and message INSERTs most of the rest. A Python
thread cannot take that work over (it takes the GIL back after every statement step, from
a loop that is busy: measured slower than inline, docs/performance.md, sixth session);
`SqlWriter` hands a whole job — `[(sql, rows | None), ...]`, run in order, then nothing
else — to a thread that never takes the GIL, and resolves a future from an eventfd when it
is done.

The job runs on the store's own connection (the same transaction: the loop began it and
did its reads), so the caller must keep every other use of the connection out from
`run` until it returns — the store's lock does. `run` returns only once the thread is done,
even when its caller is cancelled (the cancellation is raised after), so the lock is never
released while the thread still uses the connection.

`open_writer` returns None where the writer cannot be trusted to find the connection: the
extension not built, a CPython whose `sqlite3.Connection` layout is not the known one, or
an extension linked to another SQLite library than the `sqlite3` module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
from typing import Any

log = logging.getLogger(__name__)

# CPython versions whose sqlite3.Connection starts with its `sqlite3 *` (the C side reads it)
_KNOWN_LAYOUTS = frozenset({(3, 11), (3, 12), (3, 13)})

# (sql, rows | None) or (sql, rows | None, collect): `rows` runs the statement once per
# row of parameters, None once without any; with collect=True the rows it returns are kept
# (`SqlWriter.run` returns them).
Step = tuple[str, list[tuple[Any, ...]] | None] | tuple[str, list[tuple[Any, ...]] | None, bool]
Outcome = tuple[tuple[int, int, str, int] | None, list[tuple[Any, ...]]]

# Extended result codes the store tells apart (is_unique_violation, is_busy); others keep
# their primary code's name.
_ERROR_NAMES = {
    1: "SQLITE_ERROR", 5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 7: "SQLITE_NOMEM", 8: "SQLITE_READONLY",
    10: "SQLITE_IOERR", 11: "SQLITE_CORRUPT", 13: "SQLITE_FULL", 19: "SQLITE_CONSTRAINT", 21: "SQLITE_MISUSE",
    25: "SQLITE_RANGE", 275: "SQLITE_CONSTRAINT_CHECK", 787: "SQLITE_CONSTRAINT_FOREIGNKEY",
    1299: "SQLITE_CONSTRAINT_NOTNULL", 1555: "SQLITE_CONSTRAINT_PRIMARYKEY", 2067: "SQLITE_CONSTRAINT_UNIQUE",
}
_CONSTRAINT = 19


def writer_error(rc: int, xrc: int, message: str) -> sqlite3.Error:
    """The exception the `sqlite3` module would have raised for this outcome, with its
    `sqlite_errorcode` and `sqlite_errorname`."""
    exc: sqlite3.Error
    exc = sqlite3.IntegrityError(message) if rc & 0xFF == _CONSTRAINT else sqlite3.OperationalError(message)
    exc.sqlite_errorcode = xrc
    exc.sqlite_errorname = _ERROR_NAMES.get(xrc) or _ERROR_NAMES.get(xrc & 0xFF, f"SQLITE_{xrc}")
    return exc


def _same_library() -> bool:
    """Whether the extension and the `sqlite3` module use one SQLite library (one copy: a
    connection handle of one is then the other's)."""
    import _sqlite3

    from gateway.store import _sqlwriter

    module_file = getattr(_sqlite3, "__file__", None)
    if module_file is None:  # built into the interpreter: its own copy of the library
        return False
    return bool(_sqlwriter.same_library(module_file))


def _usable(feature: str) -> bool:
    """Whether the extension is built and shares the `sqlite3` module's SQLite library,
    which `feature` (the writer thread, the WAL VFS) needs; logged when the libraries differ."""
    try:
        if _same_library():
            return True
    except ImportError:
        return False
    log.warning("%s off: the extension's SQLite library is not the sqlite3 module's", feature)
    return False


def wal_gathering_vfs() -> str | None:
    """The name of the VFS that writes each commit's WAL frames with one `write()`
    (`_walvfs.c`), registered with the `sqlite3` module's SQLite library; None where it
    cannot be used (the extension not built, or linked to another SQLite library)."""
    if not _usable("sqlite WAL write gathering"):
        return None
    from gateway.store import _sqlwriter

    try:
        return _sqlwriter.register_wal_vfs()
    except OSError as exc:
        log.warning("sqlite WAL write gathering off: %s", exc)
        return None


def open_writer(db: sqlite3.Connection, file: str | None, loop: asyncio.AbstractEventLoop) -> SqlWriter | None:
    """A writer on `db` (the store's connection, to the database file `file`; None for an
    in-memory database), or None where none can be used."""
    if sys.version_info[:2] not in _KNOWN_LAYOUTS or not _usable("sqlite writer thread"):
        return None
    writer = SqlWriter(db, loop)
    if file is not None and os.path.realpath(writer.filename()) != os.path.realpath(file):
        writer.close()
        log.warning("sqlite writer thread off: the connection handle does not name %s", file)
        return None
    return writer


class SqlWriter:
    def __init__(self, db: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        from gateway.store._sqlwriter import Writer

        self._loop = loop
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            self._writer = Writer(db, self._efd)
        except BaseException:
            os.close(self._efd)
            raise
        self._pending: asyncio.Future[Outcome] | None = None
        self._closed = False
        self.jobs = 0
        loop.add_reader(self._efd, self._on_done)

    def filename(self) -> str:
        return str(self._writer.filename())

    async def run(self, steps: list[Step]) -> list[tuple[Any, ...]]:
        """Run `steps` on the thread, in order, stopping at the first error, which is raised
        here as the `sqlite3` module's exception (the transaction is left to the caller to
        roll back). Returns the rows of the collecting steps, in order (tuples of int,
        float, str, bytes or None)."""
        if self._closed:
            raise sqlite3.ProgrammingError("the writer is closed")
        fut: asyncio.Future[Outcome] = self._loop.create_future()
        self._writer.submit(steps)
        self._pending = fut
        self.jobs += 1
        cancelled = False
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                cancelled = True  # the thread still uses the connection: wait for it
        outcome, rows = fut.result()
        if cancelled:
            raise asyncio.CancelledError
        if outcome is not None:
            rc, xrc, message, _step = outcome
            raise writer_error(rc, xrc, message)
        return rows

    def _on_done(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._efd)
        fut, self._pending = self._pending, None
        if fut is None:
            return
        rows = self._writer.rows()
        outcome = self._writer.result()
        if not fut.done():
            fut.set_result((outcome, rows))

    def close(self) -> None:
        """Stop the thread (after a job in flight) and finalize its statements; before the
        connection closes."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._efd)
        self._writer.close()
        if self._pending is not None:  # done now; settle its waiter
            self._on_done()
        os.close(self._efd)
