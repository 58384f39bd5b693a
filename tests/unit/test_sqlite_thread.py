"""SqliteStore runs whole transactions on aiosqlite's thread (`_in_write` / `_in_read`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.domain import AuthorType, Channel, NewMessage
from gateway.store.sql import Conflict, Conn
from gateway.store.sqlite import SqliteStore


async def open_store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(str(tmp_path / "t.sqlite3"))
    await store.open()
    await store.migrate()
    return store


async def test_a_function_that_suspends_is_refused_and_rolled_back(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        async def bad(conn: Conn) -> None:
            await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "k", "v")
            await asyncio.sleep(0)  # not the connection: cannot run on the SQLite thread

        with pytest.raises(RuntimeError, match="awaited something else"):
            await store._in_write(bad)
        assert await store.get_or_create_setting("k", "fresh") == "fresh"  # the insert was rolled back
    finally:
        await store.close()


async def test_unique_violations_become_conflict_and_roll_back(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        async def twice(conn: Conn) -> None:
            await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "a", "1")
            await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "a", "2")

        with pytest.raises(Conflict):
            await store._in_write(twice)
        assert await store.get_or_create_setting("a", "fresh") == "fresh"
    finally:
        await store.close()


async def test_a_cancelled_caller_leaves_no_open_transaction(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        tenant = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
        contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
        conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET, contact_id=contact.id,
                                               now=1.0)
        msgs = [NewMessage(author_type=AuthorType.CONTACT, author_id=None, text=str(i), client_id=str(i))
                for i in range(100)]
        task = asyncio.create_task(store.append_messages(tenant.id, conv.id, msgs, now=2.0))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the transaction ran to its end on the thread: the batch is stored whole or not at all
        stored = await store.get_messages(tenant.id, conv.id, limit=200)
        assert len(stored) in (0, 100)
        more = await store.append_message(tenant.id, conv.id, msgs[0], now=3.0)
        assert more.created == (not stored)
    finally:
        await store.close()
