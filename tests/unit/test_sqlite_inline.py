"""SqliteStore runs statements inline on the loop; lock waits and checkpoints stay off it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.core.domain import AuthorType, Channel, NewMessage
from gateway.store import sqlite as sqlite_store
from gateway.store.sql import Conflict
from gateway.store.sqlite import SqliteStore
from tests.support.stores import open_sqlite
from tests.support.waits import until


async def test_unique_violations_become_conflict_and_roll_back(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path / "t.sqlite3")
    try:
        with pytest.raises(Conflict):
            async with store.transaction() as conn:
                await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "a", "1")
                await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "a", "2")
        assert await store.get_or_create_setting("a", "fresh") == "fresh"
    finally:
        await store.close()


async def test_a_cancelled_transaction_is_rolled_back(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path / "t.sqlite3")
    entered = asyncio.Event()
    try:
        async def slow() -> None:
            async with store.transaction() as conn:
                await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "k", "v")
                entered.set()
                await asyncio.sleep(10)  # a transaction body awaiting something else

        task = asyncio.create_task(slow())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.get_or_create_setting("k", "fresh") == "fresh"
    finally:
        await store.close()


async def test_another_process_holding_the_lock_is_waited_for_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    store = await open_sqlite(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        tenant = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
        contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
        conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET, contact_id=contact.id,
                                               now=1.0)
        other.execute("BEGIN IMMEDIATE")  # e.g. an admin command writing to the same file
        append = asyncio.create_task(store.append_message(
            tenant.id, conv.id, NewMessage(author_type=AuthorType.CONTACT, author_id=None, text="hi"), now=2.0))
        # the loop keeps running while the append waits: this task's polls run between its retries
        await until(lambda: store.busy_retries >= 3)
        assert not append.done()
        other.execute("COMMIT")
        res = await asyncio.wait_for(append, 2)
        assert res.created and res.message.seq == 1
    finally:
        other.close()
        await store.close()


async def test_checkpoints_run_off_the_loop_and_bound_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    store = await open_sqlite(path, checkpoint_interval=0.05)
    try:
        tenant = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
        contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
        conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET, contact_id=contact.id,
                                               now=1.0)
        for i in range(20):
            await store.append_messages(tenant.id, conv.id, [
                NewMessage(author_type=AuthorType.CONTACT, author_id=None, text="x" * 500, client_id=f"{i}.{j}")
                for j in range(100)], now=2.0)
        await until(lambda: store.checkpointed_commits == store.commits)  # one began after the last write
        # idle: the loop goes on without opening a connection for a checkpoint
        done = store.checkpoints
        skipped = store.checkpoints_skipped
        await until(lambda: store.checkpoints_skipped >= skipped + 3)
        assert store.checkpoints == done
    finally:
        await store.close()
    assert not (tmp_path / "t.sqlite3-wal").exists() or (tmp_path / "t.sqlite3-wal").stat().st_size == 0
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT count(*) FROM messages").fetchone()[0] == 2000
    finally:
        check.close()



async def _checkpoint_behind_the_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, behind: Callable[[int, bool], bool],
) -> tuple[SqliteStore, list[tuple[int, int, int, bool]], int]:
    """A store with 200 messages, then one `store.checkpoint()` whose pass i (locked: run
    with the store's writes held) is made to fall behind the writes where `behind(i,
    locked)`: a transaction is open across it and frames are written past it, as the
    loop's own connection does under load. Returns the store (still open), the passes as
    (busy, frames, copied, locked) and the WAL frames a single later write leaves."""
    path = tmp_path / "t.sqlite3"
    store = await open_sqlite(path, checkpoint_interval=3600)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
    passes: list[tuple[int, int, int, bool]] = []
    checkpoint_file = sqlite_store.checkpoint_file

    def one_pass(p: str, mode: str = "PASSIVE") -> tuple[int, int, int]:
        locked = store._lock.locked()
        fall_behind = behind(len(passes), locked)
        if fall_behind:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM messages").fetchone()
            writer.execute("UPDATE tenants SET name = name || '.'")
            store.commits += 1  # as if the store had written meanwhile
        result = checkpoint_file(p, mode)
        if fall_behind:
            reader.execute("ROLLBACK")
        passes.append((*result, locked))
        return result

    try:
        tenant = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
        contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
        conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET, contact_id=contact.id,
                                               now=1.0)

        async def append(n: int, tag: str) -> None:
            await store.append_messages(tenant.id, conv.id, [
                NewMessage(author_type=AuthorType.CONTACT, author_id=None, text="x" * 500, client_id=f"{tag}{j}")
                for j in range(n)], now=2.0)

        await append(200, "a")
        monkeypatch.setattr(sqlite_store, "checkpoint_file", one_pass)
        assert await store.checkpoint()
        monkeypatch.undo()
        await append(1, "b")  # the next write starts the WAL over (or not)
        _, frames, _ = checkpoint_file(str(path))
    except BaseException:
        await store.close()
        raise
    finally:
        reader.close()
        writer.close()
    return store, passes, frames


async def test_a_checkpoint_that_falls_behind_the_writes_finishes_with_them_held(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite starts the WAL over only when a write begins after a checkpoint copied every
    frame, and a PASSIVE pass copies no further than the oldest open transaction: beside a
    writer that is never idle (the loop's own connection under load) it never finishes,
    and the WAL grows for as long as the writes go on. Every pass beside the writes here
    falls behind that way; the last one, with the store's writes held, must finish it."""
    store, passes, frames_after = await _checkpoint_behind_the_writes(
        tmp_path, monkeypatch, behind=lambda i, locked: not locked)
    try:
        *unlocked, last = passes
        assert len(unlocked) == sqlite_store.UNLOCKED_PASSES
        assert all(copied < frames and not locked for _, frames, copied, locked in unlocked)
        assert last[3] and last[0] == 0 and last[1] == last[2]  # held, and it copied every frame
        assert frames_after < last[1] // 4, (frames_after, last)  # a few frames, not all of them again
        assert store.wal_restarts == 1
        assert 0 < store.writes_held_max <= store.writes_held_seconds
    finally:
        await store.close()


async def test_a_checkpoint_catches_up_beside_the_writes_without_holding_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a later pass beside the writes copies what the first fell behind on (the
    writes paused, or a pass was short enough), the checkpoint finishes without holding
    the store's writes at all."""
    store, passes, frames_after = await _checkpoint_behind_the_writes(
        tmp_path, monkeypatch, behind=lambda i, locked: i == 0)
    try:
        first, second = passes
        assert first[2] < first[1] and not first[3]
        assert second[0] == 0 and second[1] == second[2] and not second[3]
        assert frames_after < second[1] // 4, (frames_after, second)
        assert store.wal_restarts == 1
        assert store.writes_held_max == 0 and store.writes_held_seconds == 0
    finally:
        await store.close()

