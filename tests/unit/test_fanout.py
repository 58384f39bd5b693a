"""Fan-out ordering and gap repair, on the real SQLite store and in-process broker,
with an emitter that records what each connection would receive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from gateway.broker import Envelope, conv_channel, tenant_channel
from gateway.broker.memory import MemoryBroker, MemoryHub
from gateway.chat.principals import AgentPrincipal
from gateway.chat.wire import message_dict
from gateway.core.domain import AgentRole, AuthorType, Channel, NewMessage
from gateway.realtime.context import Conn
from gateway.realtime.fanout import Fanout, ResetRequired
from gateway.store.sqlite import SqliteStore
from tests.support.clock import ManualClock


class RecordingEmitter:
    def __init__(self) -> None:
        self.got: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._changed = asyncio.Event()

    async def emit(self, conn: Conn, event: str, data: dict[str, Any]) -> None:
        self.got.setdefault(conn.sid, []).append((event, data))
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait for `predicate()` to hold, re-checked after each emit (TimeoutError after
        `timeout` seconds: a generous bound, not a measurement)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def emit_many(self, conns: Sequence[Conn], event: str, data: dict[str, Any]) -> None:
        for c in conns:
            await self.emit(c, event, data)

    async def disconnect(self, conn: Conn) -> None:
        pass

    def seqs(self, sid: str) -> list[int]:
        return [d["seq"] for e, d in self.got.get(sid, []) if e == "message:new"]


@pytest.fixture
async def hub_env(tmp_path) -> AsyncIterator[tuple[SqliteStore, MemoryHub, MemoryBroker, RecordingEmitter, Any]]:
    store = SqliteStore(str(tmp_path / "db.sqlite3"))
    await store.open()
    await store.migrate()
    t = await store.create_tenant(name="t", widget_key="wk", identity_secret="s", now=0)
    contact = await store.create_contact(tenant_id=t.id, name=None, email=None, now=0)
    conv = await store.create_conversation(tenant_id=t.id, channel=Channel.WIDGET, contact_id=contact.id, now=0)
    hub = MemoryHub()
    broker = MemoryBroker(hub, "n1")
    yield store, hub, broker, RecordingEmitter(), conv
    await broker.close()
    await store.close()


@pytest.fixture
async def env(hub_env) -> AsyncIterator[tuple[SqliteStore, MemoryBroker, RecordingEmitter, Fanout, Any]]:
    store, _, broker, emitter, conv = hub_env

    async def fetch(tenant_id: str, conv_id: str, after: int, limit: int):
        return await store.get_messages(tenant_id, conv_id, after_seq=after, limit=limit)

    fanout = Fanout(broker, emitter, fetch, store.get_conversation, max_gap=100)
    await broker.start(fanout.on_envelope)
    yield store, broker, emitter, fanout, conv


def conn(sid: str, tenant_id: str) -> Conn:
    return Conn(sid, sid, "/agent", tenant_id, AgentPrincipal(tenant_id, "a" * 32, AgentRole.AGENT, "A"), "127.0.0.1")


async def append(store: SqliteStore, conv: Any, text: str):
    res = await store.append_message(conv.tenant_id, conv.id, NewMessage(AuthorType.SYSTEM, None, text), now=1)
    return res.message


async def test_gap_is_repaired_from_the_store_and_duplicates_dropped(env) -> None:
    store, broker, emitter, fanout, conv = env
    c = conn("s1", conv.tenant_id)
    await fanout.watch(c, conv.id, 0, None)
    m1, m2, m3 = [await append(store, conv, f"m{i}") for i in (1, 2, 3)]
    ch = conv_channel(conv.tenant_id, conv.id)
    # only m3's envelope arrives (m1, m2 were lost), then m1 late, then m3 again
    for m in (m3, m1, m3):
        await fanout.on_envelope(ch, Envelope(kind="message", tenant_id=conv.tenant_id, conversation_id=conv.id,
                                              seq=m.seq, epoch=conv.epoch, data=message_dict(m, conv.epoch)))
    assert emitter.seqs("s1") == [1, 2, 3]
    assert fanout.gaps_repaired >= 1


async def test_watch_replays_then_live_in_order_each_once(env) -> None:
    store, broker, emitter, fanout, conv = env
    for i in range(5):
        await append(store, conv, f"m{i}")
    c = conn("s1", conv.tenant_id)
    assert await fanout.watch(c, conv.id, 2, conv.epoch) == 3
    m6 = await append(store, conv, "m6")
    await fanout.on_envelope(conv_channel(conv.tenant_id, conv.id),
                             Envelope(kind="message", tenant_id=conv.tenant_id, conversation_id=conv.id,
                                      seq=m6.seq, epoch=conv.epoch, data=message_dict(m6, conv.epoch)))
    assert emitter.seqs("s1") == [3, 4, 5, 6]
    with pytest.raises(ResetRequired):
        await fanout.watch(conn("s2", conv.tenant_id), conv.id, 1, "another-epoch")
    with pytest.raises(ResetRequired):
        await fanout.watch(conn("s3", conv.tenant_id), conv.id, 99, conv.epoch)


async def test_concurrent_watchers_and_broker_traffic_keep_order(env) -> None:
    store, broker, emitter, fanout, conv = env
    ch = conv_channel(conv.tenant_id, conv.id)

    async def writer() -> None:
        for i in range(40):
            m = await append(store, conv, f"m{i}")
            await broker.publish(ch, Envelope(kind="message", tenant_id=conv.tenant_id, conversation_id=conv.id,
                                              seq=m.seq, epoch=conv.epoch, data=message_dict(m, conv.epoch)))
            await asyncio.sleep(0)

    async def watcher(i: int) -> None:
        for _ in range(i):  # the watchers join at different points of the writer's run
            await asyncio.sleep(0)
        await fanout.watch(conn(f"w{i}", conv.tenant_id), conv.id, 0, conv.epoch)

    await asyncio.gather(writer(), *(watcher(i) for i in range(10)))
    await emitter.until(lambda: all(len(emitter.seqs(f"w{i}")) >= 40 for i in range(10)))
    for i in range(10):
        assert emitter.seqs(f"w{i}") == list(range(1, 41)), i


def summary_fanout(env: Any, interval: float) -> tuple[Fanout, ManualClock]:
    """A fan-out on `env`'s broker and emitter whose summary windows run on a hand-moved clock."""
    store, broker, emitter, _, _ = env
    clock = ManualClock()

    async def fetch(tenant_id: str, conv_id: str, after: int, limit: int):
        return await store.get_messages(tenant_id, conv_id, after_seq=after, limit=limit)

    return Fanout(broker, emitter, fetch, store.get_conversation, max_gap=100, summary_interval=interval,
                  timers=clock), clock


async def test_message_summaries_are_coalesced_per_conversation(env) -> None:
    store, broker, emitter, _, conv = env
    fanout, clock = summary_fanout(env, 0.05)
    ch = tenant_channel(conv.tenant_id)
    await fanout.join_group(conn("a1", conv.tenant_id), ch)

    def summary(seq: int, conv_id: str | None = None) -> Envelope:
        cid = conv_id or conv.id
        return Envelope(kind="conversation", tenant_id=conv.tenant_id, conversation_id=cid,
                        data={"id": cid, "last_seq": seq, "status": "open"}, extra={"summary": True})

    def updates(conv_id: str | None = None) -> list[tuple[int, str]]:
        return [(d["last_seq"], d["status"]) for e, d in emitter.got.get("a1", [])
                if e == "conversation:updated" and d["id"] == (conv_id or conv.id)]

    # the first goes at once, the rest of the window collapses into the newest one
    for seq in (1, 2, 4, 3):
        await fanout.on_envelope(ch, summary(seq))
    await fanout.on_envelope(ch, summary(7, "other"))  # another conversation: its own window
    assert updates() == [(1, "open")]
    assert updates("other") == [(7, "open")]
    clock.advance(0.049)  # the window is still open: nothing held is sent
    assert updates() == [(1, "open")]
    clock.advance(0.001)  # it ends: the held newest goes out, a new window opens
    await emitter.until(lambda: len(updates()) == 2)
    assert updates() == [(1, "open"), (4, "open")]
    # a status change is not held back and is never overtaken by an older held summary
    await fanout.on_envelope(ch, summary(5))
    status = Envelope(kind="conversation", tenant_id=conv.tenant_id, conversation_id=conv.id,
                      data={"id": conv.id, "last_seq": 5, "status": "resolved"})
    await fanout.on_envelope(ch, status)
    assert updates()[-2:] == [(5, "open"), (5, "resolved")]
    clock.advance(0.05)  # the window ends holding nothing: the next one ends idle too
    clock.advance(0.05)
    assert updates()[-1] == (5, "resolved")
    assert clock.pending() == 0 and fanout.stats()["summary_windows"] == 0
    await fanout.on_envelope(ch, summary(6))  # no window open: it goes at once
    assert updates()[-1] == (6, "open")
    fanout.close()


async def test_summary_windows_of_many_conversations_end_each_on_time(env) -> None:
    """Windows opened at different times end in order under one timer: each conversation's
    held summary goes out one interval after its window opened (on the clock the fan-out is
    given), and idle windows end."""
    store, broker, emitter, _, conv = env
    interval, step = 0.06, 0.007
    fanout, clock = summary_fanout(env, interval)
    ch = tenant_channel(conv.tenant_id)
    await fanout.join_group(conn("a1", conv.tenant_id), ch)
    got: dict[str, list[tuple[int, float]]] = {}
    emit = emitter.emit_many

    async def timed(conns, event, data):
        got.setdefault(data["id"], []).append((data["last_seq"], clock.time()))
        await emit(conns, event, data)

    emitter.emit_many = timed
    opened: dict[str, float] = {}
    for i in range(30):
        cid = f"c{i}"
        opened[cid] = clock.time()
        for seq in (1, 2, 3):  # the first goes at once, 2 is replaced by 3 in the window
            await fanout.on_envelope(ch, Envelope(kind="conversation", tenant_id=conv.tenant_id,
                                                  conversation_id=cid, data={"id": cid, "last_seq": seq},
                                                  extra={"summary": True}))
        clock.advance(step)
        # the held summaries that came due are sent (by a task each) before the clock moves on
        await emitter.until(lambda: all(len(got[c]) == 2 for c, t0 in opened.items()
                                        if clock.time() >= t0 + interval))
    while any(len(got[c]) < 2 for c in opened):
        clock.advance(step)
        await emitter.until(lambda: all(len(got[c]) == 2 for c, t0 in opened.items()
                                        if clock.time() >= t0 + interval))
    for cid, t0 in opened.items():
        assert [seq for seq, _ in got[cid]] == [1, 3], cid
        assert interval <= got[cid][1][1] - t0 < interval + step, cid  # within one step of the clock
    clock.advance(interval)  # the windows after the held ones end idle
    assert fanout.stats()["summary_windows"] == 0
    assert clock.pending() == 0
    fanout.close()


async def test_last_watcher_leaving_unsubscribes(env) -> None:
    store, broker, emitter, fanout, conv = env
    c = conn("s1", conv.tenant_id)
    await fanout.watch(c, conv.id, None, None)
    assert fanout.stats()["conversations"] == 1
    await fanout.drop(c, [])
    assert fanout.stats()["conversations"] == 0


async def test_sqlite_writer_cancelled_mid_transaction_leaves_the_store_usable(tmp_path) -> None:
    store = SqliteStore(str(tmp_path / "c.sqlite3"))
    await store.open()
    await store.migrate()
    try:
        t = await store.create_tenant(name="t", widget_key="wk1", identity_secret="s", now=0)
        for _ in range(20):
            task = asyncio.create_task(store.create_contact(tenant_id=t.id, name="x", email=None, now=0))
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # every later write still works
        contact = await store.create_contact(tenant_id=t.id, name="after", email=None, now=0)
        assert (await store.get_contact(t.id, contact.id)).name == "after"
    finally:
        await store.close()


async def test_a_route_starts_from_the_callers_read_and_catches_up_what_came_after(env) -> None:
    """`watch(..., known=conv)`: no second read of the conversation; messages appended
    between the caller's read and the subscription are replayed, in order, once."""
    store, broker, emitter, _, conv = env
    reads = 0

    async def get_conv(tenant_id: str, conv_id: str):
        nonlocal reads
        reads += 1
        return await store.get_conversation(tenant_id, conv_id)

    async def fetch(tenant_id: str, conv_id: str, after: int, limit: int):
        return await store.get_messages(tenant_id, conv_id, after_seq=after, limit=limit)

    fanout = Fanout(broker, emitter, fetch, get_conv, max_gap=100)
    known = await store.get_conversation(conv.tenant_id, conv.id)  # the access check's read
    for i in range(2):
        await append(store, conv, f"m{i}")  # after that read, before the watch
    c = conn("s1", conv.tenant_id)
    assert await fanout.watch(c, conv.id, known.last_seq, known.epoch, known=known) == 2
    assert emitter.seqs("s1") == [1, 2]
    assert reads == 0
    # a conversation of another id is not taken for this one
    other = await store.create_conversation(tenant_id=conv.tenant_id, channel=Channel.WIDGET,
                                            contact_id=conv.contact_id, now=0)
    await fanout.watch(conn("s2", conv.tenant_id), other.id, 0, None, known=known)
    assert reads == 1


async def test_a_route_made_without_a_known_conversation_reads_it_once_and_needs_no_catch_up(hub_env) -> None:
    """`watch_read` on a fresh route: one read of the conversation, after subscribing, and
    no query for messages when the client is up to date; the read is answered. A second
    watcher of the same route reads nothing and is answered None. A conversation that does
    not exist raises NotFound and leaves no subscription behind."""
    store, hub, broker, emitter, conv = hub_env
    reads, fetches = 0, 0

    async def get_conv(tenant_id: str, conv_id: str):
        nonlocal reads
        reads += 1
        return await store.get_conversation(tenant_id, conv_id)

    async def fetch(tenant_id: str, conv_id: str, after: int, limit: int):
        nonlocal fetches
        fetches += 1
        return await store.get_messages(tenant_id, conv_id, after_seq=after, limit=limit)

    fanout = Fanout(broker, emitter, fetch, get_conv, max_gap=100)
    await broker.start(fanout.on_envelope)
    for i in range(3):
        await append(store, conv, f"m{i}")
    replayed, read = await fanout.watch_read(conn("s1", conv.tenant_id), conv.id, 3, conv.epoch)
    assert (replayed, reads, fetches) == (0, 1, 0)
    assert read is not None and read.last_seq == 3
    replayed, read = await fanout.watch_read(conn("s2", conv.tenant_id), conv.id, 1, conv.epoch)
    assert (replayed, read, reads) == (2, None, 1)  # the route was there: its catch-up and replay
    assert emitter.seqs("s2") == [2, 3]
    from gateway.store import NotFound
    with pytest.raises(NotFound):
        await fanout.watch_read(conn("s3", conv.tenant_id), "f" * 32, None, None)
    assert hub.subscriber_count(conv_channel(conv.tenant_id, "f" * 32)) == 0
    assert hub.subscriber_count(conv_channel(conv.tenant_id, conv.id)) == 1
