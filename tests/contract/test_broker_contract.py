"""Contract suite for the `Broker` protocol, run against every implementation.

Each backend parameter of the `nodes` fixture yields a factory of "node" brokers that
share one bus: `MemoryBroker`s on one `MemoryHub`, or `RedisBroker`s on the local Redis
with a random channel prefix per test. Redis must be running: its tests fail (never
skip) when it is not.

To prove that something was *not* delivered without sleeping, the tests publish a
marker after it on another channel and wait for the marker (`settle`). That relies on
both implementations delivering one publisher's envelopes to one node in publish
order across channels too (Redis fans a PUBLISH out before replying; the memory hub
fans out synchronously; each node has one delivery queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.broker.base import Broker, Envelope, conv_channel, tenant_channel
from gateway.broker.factory import make_broker
from gateway.broker.memory import MemoryBroker, MemoryHub
from gateway.broker.redis import RedisBroker
from tests.support.waits import until

REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT = 5.0  # generous upper bound for anything to arrive; tests normally take ms

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")

Hook = Callable[[str, Envelope], Awaitable[None]]


class Node:
    """A broker plus a recording handler."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.broker = broker
        self.name = name
        self.received: list[tuple[str, Envelope]] = []
        self.hook: Hook | None = None  # runs after recording; may raise
        self._changed = asyncio.Event()
        self._barrier: str | None = None

    async def handle(self, channel: str, envelope: Envelope) -> None:
        self.received.append((channel, envelope))
        self._changed.set()
        if self.hook is not None:
            await self.hook(channel, envelope)

    def on(self, channel: str) -> list[Envelope]:
        return [env for ch, env in self.received if ch == channel]

    async def wait_until(self, predicate: Callable[[], bool], limit: float = WAIT) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(self, channel: str, count: int, limit: float = WAIT) -> list[Envelope]:
        await self.wait_until(lambda: len(self.on(channel)) >= count, limit)
        return self.on(channel)

    async def settle(self, publisher: Node) -> None:
        """Return once everything `publisher` published so far has reached this node."""
        if self._barrier is None:
            self._barrier = f"barrier:{uuid.uuid4().hex}"
            await self.broker.subscribe(self._barrier)
        marker = envelope("barrier", token=uuid.uuid4().hex)
        await publisher.broker.publish(self._barrier, marker)
        await self.wait_until(lambda: any(env == marker for _, env in self.received))
        self.received = [(ch, env) for ch, env in self.received if ch != self._barrier]


NodeFactory = Callable[..., Awaitable[Node]]


def envelope(kind: str = "message", **data: Any) -> Envelope:
    return Envelope(kind=kind, tenant_id="t1", data=dict(data), origin="test")


async def require_redis() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable ({exc}); these tests need it running")
    finally:
        await client.aclose()


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("memory-wire", id="memory-wire"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    hub = MemoryHub(wire_check=request.param == "memory-wire")
    prefix = f"izh-test:{uuid.uuid4().hex[:12]}:"
    url: str | None = None
    if request.param == "redis":
        await require_redis()
        url = REDIS_URL
    created: list[Node] = []

    async def make(*, start: bool = True) -> Node:
        name = f"node{len(created)}-{uuid.uuid4().hex[:8]}"
        node = Node(make_broker(url, name, hub=hub, prefix=prefix), name)
        created.append(node)
        if start:
            await node.broker.start(node.handle)
        return node

    yield make
    for node in created:
        await node.broker.close()


# -- envelopes ---------------------------------------------------------------------------

NESTED: dict[str, Any] = {
    "text": "Привет, мир! こんにちは 👋🏽 שלום \u200f ñ \x00 end",
    "émoji-key 🔑": ["a", 1, -2, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.0, True, False, None],
    "nested": {"deeper": {"list": [{"x": []}, {"y": {}}], "bytes": b"\x00\xff raw"}},
    "empty": "",
}


def test_envelope_round_trip_all_fields() -> None:
    env = Envelope(
        kind="message",
        tenant_id="tenant-ü",
        data=NESTED,
        conversation_id="conv-会話",
        seq=42,
        epoch="epoch-1",
        origin="node-a",
        sid="sid-xyz",
        extra={"trace": {"id": "abc", "hops": [1, 2, 3]}},
    )
    back = Envelope.unpack(env.pack())
    assert back == env
    assert back.data["nested"]["deeper"]["bytes"] == b"\x00\xff raw"


def test_envelope_round_trip_defaults() -> None:
    env = Envelope(kind="typing", tenant_id="t", data={})
    back = Envelope.unpack(env.pack())
    assert back == env
    assert back.conversation_id is None and back.seq is None and back.sid is None
    assert back.origin == "" and back.extra == {}


msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)
data_dicts = st.dictionaries(st.text(max_size=8), msgpack_values, max_size=5)
opt_text = st.none() | st.text(max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.text(max_size=12),
    tenant=st.text(max_size=12),
    data=data_dicts,
    conv=opt_text,
    seq=st.none() | st.integers(min_value=-(2**63), max_value=2**64 - 1),
    epoch=opt_text,
    origin=st.text(max_size=12),
    sid=opt_text,
    extra=data_dicts,
)
def test_envelope_round_trip_property(
    kind: str,
    tenant: str,
    data: dict[str, Any],
    conv: str | None,
    seq: int | None,
    epoch: str | None,
    origin: str,
    sid: str | None,
    extra: dict[str, Any],
) -> None:
    env = Envelope(kind, tenant, data, conv, seq, epoch, origin, sid, extra)
    assert Envelope.unpack(env.pack()) == env


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=256))
def test_unpack_random_bytes_raises_only_value_error(raw: bytes) -> None:
    with contextlib.suppress(ValueError):
        Envelope.unpack(raw)


@settings(max_examples=200, deadline=None)
@given(obj=msgpack_values | st.dictionaries(st.sampled_from("ktdcseoix"), msgpack_values))
def test_unpack_wrong_shape_raises_only_value_error(obj: Any) -> None:
    try:
        env = Envelope.unpack(msgpack.packb(obj, use_bin_type=True))
    except ValueError:
        return
    assert isinstance(env, Envelope)


GOOD = {"k": "message", "t": "t1", "d": {"a": 1}}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(b"not msgpack at all", id="text"),
        pytest.param(envelope(x=1).pack()[:-3], id="truncated"),
        pytest.param(envelope(x=1).pack() + b"\x00", id="trailing-bytes"),
        pytest.param(msgpack.packb([1, 2, 3]), id="array"),
        pytest.param(msgpack.packb("message"), id="string"),
        pytest.param(msgpack.packb({}), id="empty-map"),
        pytest.param(msgpack.packb({**GOOD, "k": 1}), id="kind-not-str"),
        pytest.param(msgpack.packb({**GOOD, "t": None}), id="tenant-missing"),
        pytest.param(msgpack.packb({**GOOD, "d": [1]}), id="data-not-map"),
        pytest.param(msgpack.packb({**GOOD, "s": "7"}), id="seq-not-int"),
        pytest.param(msgpack.packb({**GOOD, "x": [1]}), id="extra-not-map"),
        pytest.param(msgpack.packb({**GOOD, "c": 5}), id="conversation-not-str"),
        pytest.param(msgpack.packb({**GOOD, "d": {1: "int key"}}), id="int-map-key"),
        pytest.param(msgpack.packb({**GOOD, "k": b"message"}, use_bin_type=True), id="kind-bytes"),
    ],
)
def test_unpack_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Envelope.unpack(raw)


def test_channel_names() -> None:
    assert conv_channel("t1", "c1") == "conv:t1:c1"
    assert tenant_channel("t1") == "tenant:t1"


# -- factory -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [None, ""])
async def test_factory_memory(url: str | None) -> None:
    hub = MemoryHub()
    broker = make_broker(url, "n1", hub=hub)
    assert isinstance(broker, MemoryBroker) and broker.hub is hub and broker.node_id == "n1"
    other = make_broker(url, "n2")
    assert isinstance(other, MemoryBroker) and other.hub is not hub


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://user:pw@example.invalid:6380/1", "unix:///tmp/redis.sock?db=2"],
)
async def test_factory_redis(url: str) -> None:
    broker = make_broker(url, "n1", prefix="p:")
    try:
        assert isinstance(broker, RedisBroker)
        assert broker.prefix == "p:" and broker.node_id == "n1"
    finally:
        await broker.close()


@pytest.mark.parametrize("url", ["http://x", "postgres://u:secret@h/db", "127.0.0.1:6379", "redis"])
def test_factory_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError) as info:
        make_broker(url, "n1")
    assert "secret" not in str(info.value)


async def two_memory_brokers_on(hub: MemoryHub) -> tuple[MemoryBroker, MemoryBroker, list[Envelope]]:
    """Brokers "a" and "b" on `hub`, started and subscribed to "ch", recording into one list."""
    a, b = MemoryBroker(hub, "a"), MemoryBroker(hub, "b")
    got: list[Envelope] = []

    async def record(channel: str, env: Envelope) -> None:
        got.append(env)

    for broker in (a, b):
        await broker.start(record)
        await broker.subscribe("ch")
    return a, b, got


async def test_memory_hub_is_shared_and_detaches_closed_brokers() -> None:
    hub = MemoryHub()
    a, b, _ = await two_memory_brokers_on(hub)
    assert hub.subscriber_count("ch") == 2
    await b.unsubscribe("ch")
    assert hub.subscriber_count("ch") == 1
    await b.subscribe("ch")
    await b.close()
    assert hub.subscriber_count("ch") == 1
    await a.close()
    assert hub.subscriber_count("ch") == 0
    assert a.reconnects == 0


# -- broker contract ---------------------------------------------------------------------


async def test_ping(nodes: NodeFactory) -> None:
    a = await nodes()
    await a.broker.ping()
    assert a.broker.reconnects == 0


async def test_reconnected_waits_while_the_connection_holds(nodes: NodeFactory) -> None:
    a = await nodes()
    waiting = asyncio.create_task(a.broker.reconnected(a.broker.reconnects))
    await a.broker.ping()  # a round trip on the bus (the loop turns meanwhile): no reconnection comes of it
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await a.broker.reconnected(a.broker.reconnects + 1) == a.broker.reconnects  # at once


async def test_publish_reaches_subscribers_only(nodes: NodeFactory) -> None:
    a, b, c = await nodes(), await nodes(), await nodes()
    channel = conv_channel("t1", "c1")
    await b.broker.subscribe(channel)
    sent = Envelope(
        kind="message",
        tenant_id="t1",
        data=NESTED,
        conversation_id="c1",
        seq=1,
        epoch="e1",
        origin=a.name,
        sid="s1",
        extra={"k": "v"},
    )
    await a.broker.publish(channel, sent)
    assert await b.wait_for(channel, 1) == [sent]
    await c.settle(a)
    await a.settle(a)
    assert c.received == [] and a.received == []
    await b.settle(a)
    assert b.received == [(channel, sent)]


async def test_publisher_receives_own_envelope(nodes: NodeFactory) -> None:
    a, b = await nodes(), await nodes()
    channel = tenant_channel("t1")
    await a.broker.subscribe(channel)
    await b.broker.subscribe(channel)
    sent = envelope("typing", who="a")
    await a.broker.publish(channel, sent)
    assert await a.wait_for(channel, 1) == [sent]
    assert await b.wait_for(channel, 1) == [sent]


async def test_own_envelopes_reach_the_publisher_once_and_in_order(nodes: NodeFactory) -> None:
    """What a node publishes as its own (origin: its node id) reaches its own handler
    without the bus (Redis: directly, its echo dropped): exactly once, in publish order."""
    a, b = await nodes(), await nodes()
    channel = conv_channel("t1", "c1")
    await a.broker.subscribe(channel)
    await b.broker.subscribe(channel)
    sent = [Envelope("message", "t1", {"i": i}, "c1", seq=i, origin=a.name) for i in range(1, 51)]
    for env in sent[:10]:
        await a.broker.publish(channel, env)
    await a.broker.publish_many([(channel, env) for env in sent[10:]])
    assert await b.wait_for(channel, 50) == sent
    await a.settle(a)  # the echoes, if any, came back before the marker
    assert a.on(channel) == sent


async def test_a_burst_of_concurrent_publishes_all_arrive_in_call_order(nodes: NodeFactory) -> None:
    """A group-committed batch publishes hundreds of envelopes at once: none may fail for
    want of a connection, and each channel keeps the order of the publish calls."""
    a, b = await nodes(), await nodes()
    channels = [conv_channel("t1", f"c{i}") for i in range(20)]
    for ch in channels:
        await b.broker.subscribe(ch)
    n = 1500
    await asyncio.gather(*(a.broker.publish(channels[i % 20], envelope(i=i)) for i in range(n)))
    await b.wait_until(lambda: len(b.received) >= n, 30)
    for k, ch in enumerate(channels):
        assert [env.data["i"] for env in b.on(ch)] == list(range(k, n, 20))


async def test_publish_many_arrives_in_order_interleaved_with_publish(nodes: NodeFactory) -> None:
    """A batch of sends publishes its envelopes with one `publish_many` (several channels,
    more than one pipeline's worth on Redis); each channel keeps the call order, also
    across single publishes before and after."""
    a, b = await nodes(), await nodes()
    channels = [conv_channel("t1", "c1"), tenant_channel("t1")]
    for ch in channels:
        await b.broker.subscribe(ch)
    await a.broker.publish(channels[0], envelope(i=-1))
    n = 1200
    await a.broker.publish_many([(channels[k % 2], envelope(i=k)) for k in range(n)])
    await a.broker.publish(channels[1], envelope(i=n))
    await a.broker.publish_many([])
    await b.wait_until(lambda: len(b.received) >= n + 2, 30)
    assert [env.data["i"] for env in b.on(channels[0])] == [-1, *range(0, n, 2)]
    assert [env.data["i"] for env in b.on(channels[1])] == [*range(1, n, 2), n]


async def test_publish_many_on_a_closed_broker_raises(nodes: NodeFactory) -> None:
    a = await nodes()
    await a.broker.close()
    with pytest.raises(RuntimeError):
        await a.broker.publish_many([("ch", envelope(i=1))])


async def test_unsubscribe_stops_delivery(nodes: NodeFactory) -> None:
    a, b = await nodes(), await nodes()
    await b.broker.subscribe("ch")
    await a.broker.publish("ch", envelope(n=1))
    await b.wait_for("ch", 1)
    await b.broker.unsubscribe("ch")
    await a.broker.publish("ch", envelope(n=2))
    await b.settle(a)
    assert [env.data["n"] for env in b.on("ch")] == [1]


async def test_unsubscribe_drops_envelopes_not_yet_handled(nodes: NodeFactory) -> None:
    a, b = await nodes(), await nodes()
    release = asyncio.Event()

    async def slow(channel: str, env: Envelope) -> None:
        if channel == "ch":
            await release.wait()

    b.hook = slow
    await b.broker.subscribe("ch")
    for n in range(20):
        await a.broker.publish("ch", envelope(n=n))
    await b.wait_for("ch", 1)  # the handler is now stuck in the first one
    await b.broker.unsubscribe("ch")
    release.set()
    await b.settle(a)
    assert [env.data["n"] for env in b.on("ch")] == [0]


async def test_subscribe_and_unsubscribe_are_idempotent(nodes: NodeFactory) -> None:
    a, b = await nodes(), await nodes()
    await b.broker.unsubscribe("never-subscribed")
    await b.broker.subscribe("ch")
    await b.broker.subscribe("ch")
    await asyncio.gather(b.broker.subscribe("ch"), b.broker.subscribe("ch"))
    await a.broker.publish("ch", envelope(n=1))
    await b.settle(a)
    assert len(b.on("ch")) == 1  # one subscription, not four
    await b.broker.unsubscribe("ch")
    await b.broker.unsubscribe("ch")
    await a.broker.publish("ch", envelope(n=2))
    await b.settle(a)
    assert len(b.on("ch")) == 1
    await b.broker.subscribe("ch")  # and back again
    await a.broker.publish("ch", envelope(n=3))
    assert [env.data["n"] for env in await b.wait_for("ch", 2)] == [1, 3]


async def test_order_preserved_for_1000_envelopes(nodes: NodeFactory) -> None:
    a, b = await nodes(), await nodes()
    channel = conv_channel("t1", "busy")
    await b.broker.subscribe(channel)
    for seq in range(1, 1001):
        await a.broker.publish(channel, Envelope("message", "t1", {"i": seq}, "busy", seq=seq))
    got = await b.wait_for(channel, 1000)
    assert [env.seq for env in got] == list(range(1, 1001))
    assert [env.data["i"] for env in got] == list(range(1, 1001))


async def test_order_per_publisher_with_concurrent_publishers(nodes: NodeFactory) -> None:
    a, b, c = await nodes(), await nodes(), await nodes()
    await c.broker.subscribe("ch")

    async def run(publisher: Node) -> None:
        for seq in range(200):
            await publisher.broker.publish("ch", Envelope("message", "t1", {}, origin=publisher.name, seq=seq))

    await asyncio.gather(run(a), run(b))
    got = await c.wait_for("ch", 400)
    for publisher in (a, b):
        assert [env.seq for env in got if env.origin == publisher.name] == list(range(200))


async def test_many_channels(nodes: NodeFactory) -> None:
    a, b, c = await nodes(), await nodes(), await nodes()
    channels = [conv_channel("t1", f"c{i}") for i in range(50)] + [tenant_channel("t-ü-🎈")]
    await asyncio.gather(*(b.broker.subscribe(ch) for ch in channels))
    for ch in channels[::2]:
        await c.broker.subscribe(ch)
    for i, ch in enumerate(channels):
        await a.broker.publish(ch, envelope(ch=ch, i=i))
    await b.settle(a)
    await c.settle(a)
    assert sorted((ch, env.data["ch"]) for ch, env in b.received) == sorted((ch, ch) for ch in channels)
    assert sorted((ch, env.data["ch"]) for ch, env in c.received) == sorted((ch, ch) for ch in channels[::2])


async def test_handler_exception_does_not_stop_delivery(nodes: NodeFactory, caplog: pytest.LogCaptureFixture) -> None:
    a, b = await nodes(), await nodes()

    async def explode(channel: str, env: Envelope) -> None:
        if env.kind == "boom":
            raise RuntimeError("handler exploded")

    b.hook = explode
    await b.broker.subscribe("ch")
    await a.broker.publish("ch", envelope("boom"))
    await a.broker.publish("ch", envelope("message", n=1))
    await a.broker.publish("ch", envelope("boom"))
    await a.broker.publish("ch", envelope("message", n=2))
    got = await b.wait_for("ch", 4)
    assert [env.kind for env in got] == ["boom", "message", "boom", "message"]
    failures = [r for r in caplog.records if r.exc_info and "handler exploded" in str(r.exc_info[1])]
    assert len(failures) == 2 and all(r.levelno == logging.ERROR for r in failures)


async def test_handler_may_subscribe_and_publish(nodes: NodeFactory) -> None:
    """A handler that (un)subscribes must not deadlock the broker."""
    a, b = await nodes(), await nodes()

    async def join(channel: str, env: Envelope) -> None:
        if env.kind == "join":
            await b.broker.subscribe(env.data["channel"])
            await b.broker.publish("joined", envelope("joined", channel=env.data["channel"]))

    b.hook = join
    await b.broker.subscribe("control")
    await a.broker.subscribe("joined")
    await a.broker.publish("control", envelope("join", channel="room"))
    await a.wait_for("joined", 1)
    await a.broker.publish("room", envelope(n=1))
    assert [env.data["n"] for env in await b.wait_for("room", 1)] == [1]


async def test_undecodable_envelope_is_dropped(nodes: NodeFactory, request: pytest.FixtureRequest) -> None:
    """Over the wire, an envelope that packs but does not unpack (int map key) is dropped
    at the receiver, like any malformed payload; later envelopes still arrive. The
    in-process hub without its wire check hands the envelope over as it is."""
    a, b = await nodes(), await nodes()
    await b.broker.subscribe("ch")
    int_keys: dict[Any, Any] = {1: "int keys do not round-trip"}
    await a.broker.publish("ch", Envelope("message", "t1", int_keys))
    await a.broker.publish("ch", envelope(n=1))
    over_the_wire = request.node.callspec.params["nodes"] != "memory"
    got = await b.wait_for("ch", 1 if over_the_wire else 2)
    await b.settle(a)
    assert [env.data for env in got] == ([{"n": 1}] if over_the_wire else [int_keys, {"n": 1}])


async def test_the_in_process_hub_hands_over_the_envelope_itself() -> None:
    hub = MemoryHub()
    a, b, got = await two_memory_brokers_on(hub)
    sent = envelope(n=7)
    assert hub.publish("ch", sent) == 2
    assert hub.publish("nobody", sent) == 0
    await until(lambda: len(got) == 2)
    assert got == [sent, sent] and all(env is sent for env in got)
    await a.close()
    await b.close()


async def test_start_and_subscribe_preconditions(nodes: NodeFactory) -> None:
    a = await nodes(start=False)
    with pytest.raises(RuntimeError):
        await a.broker.subscribe("ch")
    await a.broker.start(a.handle)
    with pytest.raises(RuntimeError):
        await a.broker.start(a.handle)


async def test_close_is_clean(nodes: NodeFactory, caplog: pytest.LogCaptureFixture) -> None:
    before = asyncio.all_tasks()
    a, b = await nodes(), await nodes()
    await b.broker.subscribe("ch")
    await a.broker.publish("ch", envelope(n=1))
    await b.wait_for("ch", 1)
    await a.broker.publish("ch", envelope(n=2))  # possibly still in flight on close
    await b.broker.close()
    await a.broker.close()
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
    gc.collect()
    assert not [r for r in caplog.records if "destroyed" in r.getMessage()]

    await b.broker.close()  # idempotent
    with pytest.raises(RuntimeError):
        await b.broker.publish("ch", envelope(n=3))
    with pytest.raises(RuntimeError):
        await b.broker.subscribe("ch")
    with pytest.raises(RuntimeError):
        await b.broker.ping()


async def test_close_before_start_and_from_handler(nodes: NodeFactory) -> None:
    idle = await nodes(start=False)
    await idle.broker.close()
    a, b = await nodes(), await nodes()

    async def close_self(channel: str, env: Envelope) -> None:
        await b.broker.close()

    b.hook = close_self
    await b.broker.subscribe("ch")
    await a.broker.publish("ch", envelope(n=1))
    await a.broker.publish("ch", envelope(n=2))
    await b.wait_for("ch", 1)
    # a negative check: the second envelope must never come; the pause gives a broker that
    # delivers after closing the chance to show it (a correct one passes whatever its length)
    await asyncio.sleep(0.05)
    assert len(b.on("ch")) == 1
    with pytest.raises(RuntimeError):
        await b.broker.ping()
