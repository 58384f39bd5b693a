"""GroupAppender: concurrent sends share transactions, keep arrival order, and one bad
request does not fail the others of its batch (real SQLite store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.chat.appender import GroupAppender
from gateway.core.domain import AuthorType, Channel, Conversation, NewMessage
from gateway.core.errors import GatewayError
from gateway.store.sqlite import SqliteStore


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Conversation, Conversation]]:
    store = SqliteStore(str(tmp_path / "a.sqlite3"))
    await store.open()
    await store.migrate()
    t = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
    c = await store.create_contact(tenant_id=t.id, name=None, email=None, now=1.0)
    convs = [await store.create_conversation(tenant_id=t.id, channel=Channel.WIDGET, contact_id=c.id, now=1.0)
             for _ in range(2)]
    yield store, convs[0], convs[1]
    await store.close()


def msg(text: str, cid: str) -> NewMessage:
    return NewMessage(author_type=AuthorType.CONTACT, author_id=None, text=text, client_id=cid)


async def test_concurrent_sends_share_transactions_in_arrival_order(
        world: tuple[SqliteStore, Conversation, Conversation]) -> None:
    store, a, b = world
    app = GroupAppender(store, lambda: 2.0)
    res = await asyncio.gather(*(app.append(a.tenant_id, (a, b)[i % 2].id, msg(str(i), f"k{i}")) for i in range(40)))
    assert [r.message.seq for r in res[0::2]] == list(range(1, 21))  # conversation a, in call order
    assert [r.message.seq for r in res[1::2]] == list(range(1, 21))  # conversation b
    assert app.appended == 40 and app.batches < 40  # grouped
    again = await app.append(a.tenant_id, a.id, msg("retry", "k0"))
    assert not again.created and again.message.text == "0"
    with pytest.raises(GatewayError) as err:
        await app.append("other-tenant", a.id, msg("x", "k99"))
    assert err.value.code.value == "not_found"


async def test_each_batch_written_is_reported_with_its_size_and_time(
        world: tuple[SqliteStore, Conversation, Conversation]) -> None:
    store, a, b = world
    seen: list[tuple[int, float]] = []
    app = GroupAppender(store, lambda: 2.0, on_batch=lambda n, seconds: seen.append((n, seconds)))
    await app.append(a.tenant_id, a.id, msg("alone", "k"))
    await asyncio.gather(*(app.append(a.tenant_id, (a, b)[i % 2].id, msg(str(i), f"k{i}")) for i in range(30)))
    assert [n for n, _ in seen] == [1, 30] and app.batches == 2  # the 30 queued together: one batch
    assert all(0 < seconds < 10 for _, seconds in seen)


async def test_one_bad_request_does_not_fail_its_batch(world: tuple[SqliteStore, Conversation, Conversation]) -> None:
    store, a, _ = world
    app = GroupAppender(store, lambda: 2.0)
    first = asyncio.ensure_future(app.append(a.tenant_id, a.id, msg("first", "k1")))  # written at once …
    rest = [asyncio.ensure_future(app.append(a.tenant_id, a.id, m)) for m in (
        msg("ok 1", "k2"), msg("bad \ud800", "k3"), msg("ok 2", "k4"))]  # … these wait: one batch
    await first
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert isinstance(results[1], UnicodeEncodeError)
    assert [r.message.text for r in (results[0], results[2])] == ["ok 1", "ok 2"]  # type: ignore[union-attr]
    stored = await store.get_messages(a.tenant_id, a.id)
    assert [m.text for m in stored] == ["first", "ok 1", "ok 2"]
