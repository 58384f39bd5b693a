"""The SQLite store's writer thread (`gateway/store/_sqlwriter.c`, `sqlwriter.py`) on real files."""

from __future__ import annotations

import _sqlite3
import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.domain import AuthorType, Channel, NewMessage
from gateway.store import sqlwriter
from gateway.store._sqlwriter import Writer, same_library
from gateway.store.sql import Conflict
from gateway.store.sqlite import _connect
from gateway.store.sqlwriter import SqlWriter, Step, open_writer
from tests.support.stores import open_sqlite
from tests.support.threads import task_ids, wait_for_policy


def _db(path: Path) -> sqlite3.Connection:
    db = _connect(str(path), uri=False)
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, f REAL, n TEXT)")
    return db


Table = tuple[sqlite3.Connection, SqlWriter]


@pytest.fixture
async def table(tmp_path: Path) -> AsyncIterator[Table]:
    """A connection with table t, and a writer on it."""
    db = _db(tmp_path / "w.sqlite3")
    writer = SqlWriter(db, asyncio.get_running_loop())
    try:
        yield db, writer
    finally:
        writer.close()
        db.close()


def test_the_extension_uses_the_sqlite3_modules_library() -> None:
    assert same_library(_sqlite3.__file__)
    assert not same_library("/nonexistent/_sqlite3.so")


def test_a_closed_connection_or_another_object_is_refused(tmp_path: Path) -> None:
    db = _db(tmp_path / "w.sqlite3")
    db.close()
    with pytest.raises(ValueError):
        Writer(db, 0)
    with pytest.raises(TypeError):
        Writer(object(), 0)  # type: ignore[arg-type]


def test_the_thread_runs_as_sched_batch(tmp_path: Path) -> None:
    """A submit's wakeup must not preempt the event loop's thread, which holds the GIL, on
    its core (measured: docs/performance.md, ninth session)."""
    db = _db(tmp_path / "w.sqlite3")
    efd = os.eventfd(0)
    before = task_ids()
    writer = Writer(db, efd)
    try:
        (tid,) = task_ids() - before
        wait_for_policy(tid, os.SCHED_BATCH)
    finally:
        writer.close()
        db.close()
        os.close(efd)


async def test_steps_run_in_order_in_the_callers_transaction(table: Table, tmp_path: Path) -> None:
    db, writer = table
    assert writer.filename() == str(tmp_path / "w.sqlite3")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t (k, v) VALUES (1, 'read before')")
    await writer.run([
        ("INSERT INTO t (k, v, f, n) VALUES (?1, ?2, ?3, ?4)",
         [(2, "два", 2.5, None), (3, "x" * 100_000, -1.0, "y")]),
        ("UPDATE t SET v = v || ?1 WHERE k = ?2", [("!", 1), ("?", 2)]),
        ("COMMIT", None),
    ])
    assert not db.in_transaction
    rows = db.execute("SELECT k, v, f, n FROM t ORDER BY k").fetchall()
    assert [tuple(r) for r in rows] == [(1, "read before!", None, None), (2, "два?", 2.5, None),
                                        (3, "x" * 100_000, -1.0, "y")]
    assert writer.jobs == 1


async def test_collecting_steps_return_their_rows_in_order_with_their_types(table: Table) -> None:
    """A step marked to collect keeps what its statement returns (int, float, text, blob,
    NULL, as the sqlite3 module gives them); the other steps' rows are not kept; a read
    after a write of the same job sees it (one transaction)."""
    db, writer = table
    db.execute("INSERT INTO t (k, v, f, n) VALUES (1, 'один', 1.5, NULL), (2, 'two', NULL, 'x')")
    got = await writer.run([
        ("BEGIN IMMEDIATE", None),
        ("SELECT k, v, f, n, x'00ff', 2 * k FROM t WHERE k = ?1", [(2,), (9,), (1,)], True),
        ("SELECT * FROM t", None),  # not collected
        ("INSERT INTO t (k, v) VALUES (?1, ?2)", [(3, "z" * 70_000)]),
        ("SELECT k, length(v) FROM t WHERE k >= ?1 ORDER BY k", [(2,)], True),
        ("COMMIT", None),
    ])
    assert got == [(2, "two", None, "x", b"\x00\xff", 4), (1, "один", 1.5, None, b"\x00\xff", 2),
                   (2, 3), (3, 70_000)]
    expected = [tuple(r) for r in db.execute("SELECT k, v, f, n, x'00ff', 2 * k FROM t WHERE k IN (2, 1)"
                                             " ORDER BY k DESC")]
    assert got[:2] == expected  # as the sqlite3 module reads them
    assert await writer.run([("SELECT 1 WHERE 0", None, True)]) == []  # nothing returned
    assert await writer.run([("UPDATE t SET f = 0", None)]) == []  # nothing collected


async def test_a_failed_job_returns_no_rows_and_the_next_starts_empty(table: Table) -> None:
    db, writer = table
    db.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError):
        await writer.run([("SELECT 1", None, True), ("INSERT INTO t (k) VALUES (?1)", [(1,), (1,)])])
    db.execute("ROLLBACK")
    assert await writer.run([("SELECT 2", None, True)]) == [(2,)]


async def test_an_error_stops_the_job_names_its_code_and_changes_nothing_after_rollback(table: Table) -> None:
    db, writer = table
    db.execute("INSERT INTO t (k, v) VALUES (1, 'kept')")
    db.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError) as err:
        await writer.run([
            ("INSERT INTO t (k, v) VALUES (?1, ?2)", [(2, "new"), (1, "duplicate"), (3, "never")]),
            ("COMMIT", None),
        ])
    assert err.value.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY"
    assert db.in_transaction  # the COMMIT step never ran
    db.execute("ROLLBACK")
    assert [tuple(r) for r in db.execute("SELECT k, v FROM t")] == [(1, "kept")]

    cases: list[tuple[list[Step], str]] = [
        ([("INSERT INTO t (k) VALUES (?1)", [(5, 6)])], "SQLITE_RANGE"),  # more values than parameters
        ([("SELECT 1; SELECT 2", None)], "SQLITE_MISUSE"),  # one statement per step
        ([("INSERT INTO nowhere VALUES (1)", None)], "SQLITE_ERROR"),
    ]
    for steps, name in cases:
        with pytest.raises(sqlite3.OperationalError) as op:
            await writer.run(steps)
        assert op.value.sqlite_errorname == name
    assert [tuple(r) for r in db.execute("SELECT k, v FROM t")] == [(1, "kept")]


async def test_bad_parameters_are_refused_before_anything_runs(table: Table) -> None:
    db, writer = table
    with pytest.raises(TypeError):
        await writer.run([("INSERT INTO t (k, v) VALUES (?1, ?2)", [(1, "a"), (2, b"bytes")])])
    with pytest.raises(ValueError):
        await writer.run([("INSERT INTO t (k, v) VALUES (?1, ?2)", [(1, "a"), (2,)])])
    with pytest.raises(OverflowError):
        await writer.run([("INSERT INTO t (k) VALUES (?1)", [(2**70,)])])
    with pytest.raises(TypeError):
        await writer.run([("SELECT 1", None, True, "a fourth")])  # type: ignore[list-item]
    assert writer.jobs == 0
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    await writer.run([("INSERT INTO t (k) VALUES (?1)", [(7,)])])  # still usable
    assert db.execute("SELECT k FROM t").fetchone()[0] == 7


async def test_the_loop_keeps_running_while_the_thread_writes(tmp_path: Path) -> None:
    """The point of the thread: a long job leaves the loop free (it never takes the GIL)."""
    db = _db(tmp_path / "w.sqlite3")
    writer = SqlWriter(db, asyncio.get_running_loop())
    rows = [(k, "v" * 200, float(k), None) for k in range(300_000)]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    try:
        db.execute("BEGIN IMMEDIATE")
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        started = time.monotonic()
        await writer.run([("INSERT INTO t (k, v, f, n) VALUES (?1, ?2, ?3, ?4)", rows), ("COMMIT", None)])
        took = time.monotonic() - started
        done.set()
        await tick
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == len(rows)
        # the conversion of the rows (on the loop) is the only long turn; the inserts ran beside it
        assert took > 0.2, "the job was too short to show anything"
        assert sum(1 for g in gaps if g < 0.01) > 20, f"the loop stalled while the thread wrote ({took:.2f}s)"
    finally:
        writer.close()
        db.close()


async def test_a_cancelled_caller_waits_for_the_thread_before_the_store_is_used_again(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path / "s.sqlite3")
    try:
        assert store.write_thread
        rows = [(f"k{i}", "v" * 100) for i in range(200_000)]

        async def big_write() -> None:
            async with store.transaction() as conn:
                conn.defer("INSERT INTO settings (key, value) VALUES ($1, $2)", rows)  # type: ignore[attr-defined]

        task = asyncio.create_task(big_write())
        for _ in range(1000):  # until the job is on the thread
            await asyncio.sleep(0.001)
            if store._writer is not None and store._writer._pending is not None:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the job had its COMMIT: it finished before the cancellation was raised
        assert await store.get_or_create_setting("k199999", "fresh") == "v" * 100
        assert await store.get_or_create_setting("after", "fresh") == "fresh"
    finally:
        await store.close()


async def test_a_duplicate_in_a_deferred_write_is_a_conflict_and_rolls_back(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path / "s.sqlite3")
    try:
        assert store.write_thread
        with pytest.raises(Conflict):
            async with store.transaction() as conn:
                await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "a", "1")
                conn.defer("INSERT INTO settings (key, value) VALUES ($1, $2)", [("b", "2"), ("a", "3")])  # type: ignore[attr-defined]
        assert await store.get_or_create_setting("a", "fresh") == "fresh"
        assert await store.get_or_create_setting("b", "fresh") == "fresh"
        with pytest.raises(RuntimeError):  # nothing reads past a deferred write
            async with store.transaction() as conn:
                conn.defer("INSERT INTO settings (key, value) VALUES ($1, $2)", [("c", "1")])  # type: ignore[attr-defined]
                await conn.fetch("SELECT * FROM settings")
        assert await store.get_or_create_setting("c", "fresh") == "fresh"
    finally:
        await store.close()


async def test_appends_go_through_the_writer_and_inline_gives_the_same_rows(tmp_path: Path) -> None:
    results = []
    for write_thread in (True, False):
        store = await open_sqlite(tmp_path / f"s{write_thread}.sqlite3", write_thread=write_thread)
        try:
            assert store.write_thread is write_thread
            tenant = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
            contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
            conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET,
                                                   contact_id=contact.id, now=1.0)
            jobs = store.writer_commits
            msgs = [NewMessage(AuthorType.CONTACT, contact.id, f"m{i}", client_id=f"c{i % 3}") for i in range(5)]
            res = await store.append_messages(tenant.id, conv.id, msgs, now=1.0)
            assert store.writer_commits == jobs + (1 if write_thread else 0)
            results.append([(r.message.seq, r.message.text, r.created) for r in res])
        finally:
            await store.close()
    assert results[0] == results[1] == [(1, "m0", True), (2, "m1", True), (3, "m2", True),
                                        (1, "m0", False), (2, "m1", False)]


async def test_no_writer_where_it_cannot_be_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = _db(tmp_path / "w.sqlite3")
    loop = asyncio.get_running_loop()
    try:
        monkeypatch.setattr(sqlwriter, "_same_library", lambda: False)
        assert open_writer(db, str(tmp_path / "w.sqlite3"), loop) is None
        monkeypatch.undo()
        assert open_writer(db, str(tmp_path / "elsewhere.sqlite3"), loop) is None  # names another file
        writer = open_writer(db, str(tmp_path / "w.sqlite3"), loop)
        assert writer is not None
        writer.close()
    finally:
        db.close()


async def test_a_job_in_flight_at_close_is_finished_and_settled(tmp_path: Path) -> None:
    db = _db(tmp_path / "w.sqlite3")
    writer = SqlWriter(db, asyncio.get_running_loop())
    try:
        db.execute("BEGIN IMMEDIATE")
        run = asyncio.create_task(writer.run([
            ("INSERT INTO t (k, v) VALUES (?1, ?2)", [(k, "v") for k in range(50_000)]), ("COMMIT", None)]))
        await asyncio.sleep(0)  # submitted; close before the loop hears it is done
        writer.close()
        await run
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 50_000
        with pytest.raises(sqlite3.ProgrammingError):
            await writer.run([("COMMIT", None)])
    finally:
        db.close()
