"""Redis-only behaviour of `RedisBroker`: garbage on a channel, a killed pub/sub
connection, an outage (simulated with a TCP proxy: the real Redis server is never
stopped) and an unreachable server. Redis must be running: these tests fail, never
skip, without it."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import msgpack
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.broker.base import Envelope
from gateway.broker.redis import RedisBroker
from tests.contract.test_broker_contract import REDIS_URL, Node, envelope, require_redis

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"),
]

NodeMaker = Callable[..., Awaitable[Node]]


@pytest.fixture
async def admin() -> AsyncIterator[aioredis.Redis]:
    """A plain client to poke Redis directly."""
    await require_redis()
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"izh-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def nodes(admin: aioredis.Redis, prefix: str) -> AsyncIterator[NodeMaker]:
    created: list[Node] = []

    async def make(url: str = REDIS_URL, *, start: bool = True) -> Node:
        name = f"node{len(created)}-{uuid.uuid4().hex[:8]}"
        node = Node(RedisBroker(url, name, prefix=prefix), name)
        created.append(node)
        if start:
            await node.broker.start(node.handle)
        return node

    yield make
    for node in created:
        await node.broker.close()


async def eventually(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll `predicate` (e.g. a counter that has no event to wait on) for `limit` seconds."""
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    assert predicate(), f"condition not met within {limit}s"


async def pubsub_client_id(admin: aioredis.Redis, broker: RedisBroker) -> int:
    """The CLIENT ID of `broker`'s pub/sub connection (found by its client name)."""
    for client in await admin.client_list(_type="pubsub"):
        if client.get("name") == broker.client_name:
            return int(client["id"])
    raise AssertionError(f"no pub/sub connection named {broker.client_name!r}")


async def kill_pubsub(admin: aioredis.Redis, broker: RedisBroker) -> None:
    """CLIENT KILL TYPE pubsub, narrowed to this broker's connection so that other
    pub/sub clients of the shared Redis (other test runs) are left alone."""
    client_id = await pubsub_client_id(admin, broker)
    killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "ID", client_id)
    assert killed == 1


def broker_of(node: Node) -> RedisBroker:
    assert isinstance(node.broker, RedisBroker)
    return node.broker


async def test_garbage_payloads_are_dropped(
    nodes: NodeMaker, admin: aioredis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await nodes(), await nodes()
    await b.broker.subscribe("ch")
    garbage = [
        b"",
        b"\xc1\xc1 definitely not msgpack",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"k": "message", "t": "t1", "d": "not a map"}),
        envelope(n=0).pack()[:-2],
        "ünïcode text".encode(),
    ]
    for raw in garbage:
        assert await admin.publish(prefix + "ch", raw) == 1
    await a.broker.publish("ch", envelope(n=1))
    await admin.publish(prefix + "ch", b"\x00more garbage")
    await a.broker.publish("ch", envelope(n=2))
    got = await b.wait_for("ch", 2)
    await b.settle(a)
    assert [env.data for env in b.on("ch")] == [{"n": 1}, {"n": 2}] == [env.data for env in got]
    dropped = [r for r in caplog.records if "malformed envelope" in r.getMessage()]
    assert len(dropped) == len(garbage) + 1
    assert all(r.levelno == logging.WARNING for r in dropped)
    assert b.broker.reconnects == 0  # the reader survived, it was not restarted


async def test_reconnects_after_pubsub_connection_is_killed(
    nodes: NodeMaker, admin: aioredis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.broker.redis")
    a, b = await nodes(), await nodes()
    broker = broker_of(b)
    for ch in ("ch1", "ch2", "gone"):
        await broker.subscribe(ch)
    await broker.unsubscribe("gone")
    await a.broker.publish("ch1", envelope(n=0))
    await b.wait_for("ch1", 1)

    waiting = asyncio.create_task(broker.reconnected(0))  # what the node's resync waits on
    await kill_pubsub(admin, broker)
    async with asyncio.timeout(30):
        assert await waiting == 1
    assert broker.reconnects == 1
    assert await broker.reconnected(0) == 1  # at once: not 0 any more
    await broker.ping()
    assert await admin.pubsub_numsub(prefix + "ch1", prefix + "ch2", prefix + "gone") == [
        (f"{prefix}ch1".encode(), 1),
        (f"{prefix}ch2".encode(), 1),
        (f"{prefix}gone".encode(), 0),
    ]
    await a.broker.publish("ch1", envelope(n=1))
    await a.broker.publish("ch2", envelope(n=2))
    await a.broker.publish("gone", envelope(n=3))
    await b.settle(a)
    assert [(ch, env.data["n"]) for ch, env in b.received] == [("ch1", 0), ("ch1", 1), ("ch2", 2)]

    # new subscriptions work on the new connection, and it survives a second kill
    await broker.subscribe("ch3")
    await kill_pubsub(admin, broker)
    await eventually(lambda: broker.reconnects == 2)
    await a.broker.publish("ch3", envelope(n=4))
    assert [env.data["n"] for env in await b.wait_for("ch3", 1)] == [4]

    assert any("connection lost" in r.getMessage() for r in caplog.records)
    assert sum("connection restored" in r.getMessage() for r in caplog.records) == 2
    assert a.broker.reconnects == 0


class TcpProxy:
    """A TCP proxy to Redis that the test can take down and bring back on the same
    port: to the broker it looks like a Redis restart."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._sessions: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0
        self.pongs = 0  # PING replies forwarded (`pong`, as Redis answers one in subscribed mode)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening (connects are refused) and cut every proxied connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        if self._sessions:
            await asyncio.wait(self._sessions, timeout=2)

    def pause(self) -> None:
        """Keep connections open but stop forwarding: a frozen peer."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))
            self._sessions.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                self.pongs += data.count(b"pong")
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy(admin: aioredis.Redis) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_survives_an_outage(nodes: NodeMaker, proxy: TcpProxy) -> None:
    a = await nodes()  # direct
    b = await nodes(proxy.url)  # through the proxy
    broker = broker_of(b)
    await broker.subscribe("ch1")
    await a.broker.subscribe("ch1")
    await broker.publish("ch1", envelope(n=0))
    await b.wait_for("ch1", 1)
    await a.wait_for("ch1", 1)

    await proxy.stop()  # "Redis is down"
    async with asyncio.timeout(3):  # fails fast, never hangs
        await broker.publish("ch1", envelope(n=-1))  # handed over: sent when Redis is back
        with pytest.raises(RedisError):
            await broker.ping()
        with pytest.raises(RedisConnectionError):
            await broker.subscribe("ch2")  # stays wanted: subscribed on reconnect
    await broker.wait_connected(False)
    assert broker.reconnects == 0

    await proxy.start()  # "Redis is back"
    await eventually(lambda: broker.reconnects == 1)
    await broker.ping()
    assert [env.data["n"] for env in await a.wait_for("ch1", 2)] == [0, -1]  # the outbox sent it
    await broker.wait_connected(True)
    await a.broker.publish("ch1", envelope(n=1))
    await a.broker.publish("ch2", envelope(n=2))
    await b.settle(a)  # (publishing does not wait for Redis: a's may still be on their way)
    await broker.publish("ch1", envelope(n=3))
    await b.wait_until(lambda: any(env.data["n"] == 3 for env in b.on("ch1")))
    # (-1 reached b only if the outbox sent it after b had subscribed again)
    assert [(ch, env.data["n"]) for ch, env in b.received if env.data["n"] != -1] == [
        ("ch1", 0), ("ch1", 1), ("ch2", 2), ("ch1", 3)]
    assert sum(env.data["n"] == -1 for _, env in b.received) <= 1
    assert broker.publish_failures >= 1 and broker.publish_dropped == 0 and broker.publish_backlog == 0


async def test_the_outbox_is_bounded_and_keeps_the_newest(
        nodes: NodeMaker, proxy: TcpProxy, caplog: pytest.LogCaptureFixture) -> None:
    """While Redis is away a node's publishes wait in its outbox, at most `outbox_envelopes`
    of them: beyond, the oldest are dropped (counted, logged once); the rest are sent in
    order when Redis is back. Its own envelopes reach its own handler at once meanwhile."""
    a = await nodes()  # direct: sees what b sends
    b = await nodes(proxy.url)
    broker = broker_of(b)
    broker.outbox_envelopes = 5
    await a.broker.subscribe("ch")
    await broker.subscribe("ch")
    await proxy.stop()
    for n in range(20):
        await broker.publish("ch", Envelope("message", "t1", {"n": n}, origin=b.name))
    assert [env.data["n"] for env in await b.wait_for("ch", 20)] == list(range(20))  # locally, at once
    assert broker.publish_dropped >= 14 and broker.publish_backlog <= 5
    await proxy.start()
    await broker.wait_connected(True)
    await a.settle(b)
    got = [env.data["n"] for env in a.on("ch")]
    assert got == list(range(20 - len(got), 20)) and len(got) == 20 - broker.publish_dropped
    assert len(b.on("ch")) == 20  # the echoes were dropped
    full = [r for r in caplog.records if "outbox full" in r.getMessage()]
    assert len(full) == 1 and full[0].levelno == logging.WARNING


async def test_health_ping_detects_a_frozen_connection(
    nodes: NodeMaker, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    a = await nodes()
    b = await nodes(proxy.url, start=False)
    broker = broker_of(b)
    # a PING unanswered for one interval breaks the connection: 0.5 s, which no loaded
    # machine's delay to a local Redis reaches
    broker.health_interval = 0.5
    await broker.start(b.handle)
    await broker.subscribe("ch")
    await eventually(lambda: proxy.pongs >= 2, limit=30)  # idle: answered PINGs keep the connection
    assert broker.reconnects == 0
    await a.broker.publish("ch", envelope(n=1))
    await b.wait_for("ch", 1)

    proxy.pause()  # the peer stops answering without closing the connection
    await eventually(lambda: any("no reply to PING" in r.getMessage() for r in caplog.records))
    proxy.resume()
    await eventually(lambda: broker.reconnects == 1)
    await a.broker.publish("ch", envelope(n=2))
    assert [env.data["n"] for env in await b.wait_for("ch", 2)] == [1, 2]


async def test_close_never_hangs(nodes: NodeMaker) -> None:
    """Closing while the reader is busy (here: PINGing non-stop) always completes,
    even when a cancellation gets swallowed inside redis-py (asyncio.wait_for on 3.11)."""
    for i in range(40):
        node = await nodes(start=False)
        broker = broker_of(node)
        await broker.start(node.handle)
        await broker.subscribe("ch")
        # from now on a PONG later than 0.5 ms counts as a lost connection (so this also
        # closes while it reconnects); set before the SUBSCRIBE, a slow machine failed that
        broker.health_interval = 0.0005
        await broker.publish("ch", envelope(n=i))  # the reader's next wait takes it
        await asyncio.sleep(0.0005 * (i % 10))
        async with asyncio.timeout(10):  # generous: a hang never ends, a slow close does
            await broker.close()


async def test_unreachable_redis_fails_fast(nodes: NodeMaker) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = await nodes(f"redis://127.0.0.1:{port}/0", start=False)
    async with asyncio.timeout(5):
        with pytest.raises(RedisConnectionError):
            await node.broker.start(node.handle)
        await node.broker.publish("ch", envelope(n=1))  # never waits for Redis
        with pytest.raises(RedisConnectionError):
            await node.broker.ping()


async def test_a_killed_publishing_connection_is_replaced_without_losing_the_publish(
        nodes: NodeMaker, admin: aioredis.Redis) -> None:
    a, b = await nodes(), await nodes()
    await b.broker.subscribe("ch")
    await a.broker.publish("ch", envelope(n=1))
    await b.wait_for("ch", 1)
    name = "izh-pub:" + broker_of(a).node_id
    ids = [int(c["id"]) for c in await admin.client_list() if c.get("name") == name]
    assert len(ids) == 1  # one publishing connection, named for the node
    assert await admin.execute_command("CLIENT", "KILL", "ID", ids[0]) == 1
    await a.broker.publish("ch", envelope(n=2))  # the stale connection fails; a new one sends it
    await b.wait_for("ch", 2)
    assert [env.data["n"] for env in b.on("ch")] == [1, 2]
    assert len([c for c in await admin.client_list() if c.get("name") == name]) == 1


async def test_publish_replies_are_read_as_integers_and_errors() -> None:
    from gateway.broker.redis import _integer_replies

    reader = asyncio.StreamReader()
    reader.feed_data(b":1\r\n:0\r\n-ERR no such thing\r\n:3\r\n")
    assert await _integer_replies(reader, 4) == ["ERR no such thing"]
    reader = asyncio.StreamReader()
    reader.feed_data(b"+OK\r\n")
    with pytest.raises(Exception, match="unexpected reply"):
        await _integer_replies(reader, 1)
