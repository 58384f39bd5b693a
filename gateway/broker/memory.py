"""In-process broker: several `MemoryBroker` "nodes" sharing one `MemoryHub`.

The default single-process gateway runs one hub with one broker; the contract suite
runs several brokers on one hub to stand in for several gateway nodes.

By default the hub hands the published `Envelope` itself to every subscribed broker:
envelopes are immutable records and their handlers only read `data` (see `Broker`), so there is
nothing to copy, and no msgpack packing or unpacking per envelope, which a single process
does not need. `MemoryHub(wire_check=True)`
takes the Redis path instead: `publish()` packs the envelope once and every subscribed
broker unpacks its own copy (a payload that does not survive the round trip is logged and
dropped, as the Redis reader does); the broker contract suite runs on both.
Each broker delivers to its handler from one consumer task draining a queue (a deque and
a future the consumer sleeps on while it is empty: cheaper than `asyncio.Queue`), so
handlers never run inside `publish()` and envelopes arrive in publish order per channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence

from gateway.aio.tasks import stop_task
from gateway.broker.base import Envelope, EnvelopeHandler

logger = logging.getLogger(__name__)


class MemoryHub:
    """An in-process bus: maps a channel to the brokers subscribed to it."""

    def __init__(self, *, wire_check: bool = False) -> None:
        self._wire_check = wire_check
        # channel -> subscribed brokers (a dict keeps subscription order, so the
        # fan-out order is deterministic).
        self._subscribers: dict[str, dict[MemoryBroker, None]] = {}

    def add_subscriber(self, channel: str, broker: MemoryBroker) -> None:
        self._subscribers.setdefault(channel, {})[broker] = None

    def remove_subscriber(self, channel: str, broker: MemoryBroker) -> None:
        brokers = self._subscribers.get(channel)
        if brokers is None:
            return
        brokers.pop(broker, None)
        if not brokers:
            del self._subscribers[channel]

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    def publish(self, channel: str, envelope: Envelope) -> int:
        """Hand `envelope` to every broker subscribed to `channel`; return how many got it."""
        brokers = self._subscribers.get(channel)
        if not brokers:
            return 0
        if not self._wire_check:
            for broker in list(brokers):
                broker.enqueue(channel, envelope)
            return len(brokers)
        return self._publish_packed(channel, envelope.pack())

    def _publish_packed(self, channel: str, raw: bytes) -> int:
        """Hand packed `raw` to every broker subscribed to `channel`, each unpacking its own
        copy; return how many got it."""
        brokers = list(self._subscribers.get(channel, ()))
        delivered = 0
        for broker in brokers:
            try:
                envelope = Envelope.unpack(raw)
            except ValueError as exc:
                logger.warning(
                    "dropping malformed envelope on %r for node %s (%d bytes): %s",
                    channel,
                    broker.node_id,
                    len(raw),
                    exc,
                )
                continue
            broker.enqueue(channel, envelope)
            delivered += 1
        return delivered


class MemoryBroker:
    """A `Broker` on an in-process `MemoryHub`: the hub never fails, so `reconnects` and the
    publish counters are always 0."""

    def __init__(self, hub: MemoryHub, node_id: str) -> None:
        self._hub = hub
        self._node_id = node_id
        self._channels: set[str] = set()
        self._queue: deque[tuple[str, Envelope]] = deque()
        self._wake: asyncio.Future[None] | None = None  # the consumer sleeps on it while the queue is empty
        self._consumer: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryBroker(node_id={self._node_id!r})"

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def hub(self) -> MemoryHub:
        return self._hub

    @property
    def reconnects(self) -> int:
        return 0

    async def reconnected(self, seen: int) -> int:
        if seen == 0:
            await asyncio.Event().wait()  # never set: the hub never fails, so until cancelled
        return 0

    @property
    def publish_failures(self) -> int:
        return 0

    @property
    def publish_dropped(self) -> int:
        return 0

    @property
    def publish_backlog(self) -> int:
        return 0

    async def start(self, handler: EnvelopeHandler) -> None:
        self._check_open()
        if self._consumer is not None:
            raise RuntimeError(f"{self!r} already started")
        self._consumer = asyncio.create_task(self._consume(handler), name=f"memory-broker-consumer:{self._node_id}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for channel in self._channels:
            self._hub.remove_subscriber(channel, self)
        self._channels.clear()
        consumer, self._consumer = self._consumer, None
        # (when close() runs inside the handler, the consumer sees _closed and ends)
        if consumer is not None and consumer is not asyncio.current_task():
            # a handler may swallow one cancellation: stop_task cancels until it ends
            await stop_task(consumer, logger, f"consumer of node {self._node_id}")
        self._queue.clear()

    async def ping(self) -> None:
        self._check_open()

    async def publish(self, channel: str, envelope: Envelope) -> None:
        self._check_open()
        self._hub.publish(channel, envelope)

    async def publish_many(self, items: Sequence[tuple[str, Envelope]]) -> None:
        self._check_open()
        for channel, envelope in items:
            self._hub.publish(channel, envelope)

    async def subscribe(self, channel: str) -> None:
        self._check_started()
        self._channels.add(channel)
        self._hub.add_subscriber(channel, self)

    async def unsubscribe(self, channel: str) -> None:
        self._check_started()
        self._channels.discard(channel)
        self._hub.remove_subscriber(channel, self)

    def enqueue(self, channel: str, envelope: Envelope) -> None:
        """Called by the hub: queue `envelope` for the consumer task."""
        if not self._closed:
            self._queue.append((channel, envelope))
            wake = self._wake
            if wake is not None:
                self._wake = None
                if not wake.done():
                    wake.set_result(None)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def _check_started(self) -> None:
        self._check_open()
        if self._consumer is None:
            raise RuntimeError(f"{self!r} not started: call start() first")

    async def _consume(self, handler: EnvelopeHandler) -> None:
        q = self._queue
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not q:
                self._wake = loop.create_future()
                await self._wake
                continue
            channel, envelope = q.popleft()
            if channel not in self._channels:  # unsubscribed since it was queued
                continue
            try:
                await handler(channel, envelope)
            except Exception:
                logger.exception(
                    "envelope handler failed on %r (node %s, kind %r)",
                    channel,
                    self._node_id,
                    envelope.kind,
                )
