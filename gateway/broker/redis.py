"""`Broker` over Redis pub/sub (redis.asyncio).

Connections per broker:

* a regular `redis.asyncio.Redis` client (small pool) for PING, and one connection of
  its own for PUBLISH, written to in batches by one sender task and its integer replies
  read as raw lines;
* one dedicated pub/sub connection, owned by a single reader task, that carries every
  SUBSCRIBE/UNSUBSCRIBE of this node and all incoming messages (its replies parsed by
  `resp.RespReader`, many per socket read).

`subscribe()` writes SUBSCRIBE on the pub/sub connection and waits until the reader
sees Redis confirm it: from then on everything published to the channel reaches this
node. The reader never runs the handler itself: it queues decoded envelopes for one
dispatcher task, so a slow handler or a handler that (un)subscribes cannot stall the
connection (and cannot deadlock on a confirmation only the reader could read).

When the pub/sub connection breaks (Redis restart, `CLIENT KILL`, network) the reader
logs, backs off (0.1 s doubling up to 2 s), reconnects, re-subscribes every channel
currently wanted and, once Redis confirmed all of them, increments `reconnects`.
Envelopes published in between are lost; the consumer repairs that from the store.
An idle pub/sub connection is PINGed so a silently dead peer is noticed too.

`publish()` never waits for Redis: an envelope whose `origin` is this broker's node id is
queued at once for this node's own handler (if it subscribed the channel; its copy coming
back from Redis is dropped), and every envelope goes to a bounded outbox that the sender
task PUBLISHes in order, in batches. A batch that fails (Redis refused, hung or gone) is
sent again, backing off, until Redis takes it; while the outbox is full the oldest
envelopes are dropped (counted), which receivers repair from the store. So a node cut
from Redis keeps acking and delivering to its own clients, and the other nodes get what
it published once Redis is back.

One WARNING when Redis is first found unreachable (by the pub/sub reader or by the
sender), one INFO when both work again: a log line per outage, not per envelope.

Channel names on Redis are `prefix + channel` (UTF-8).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.aio.tasks import stop_task
from gateway.broker.base import Envelope, EnvelopeHandler
from gateway.broker.resp import IDLE, RespReader

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT: Final = 2.0
"""Connect / command timeout (seconds) on every Redis connection."""
PUBLISH_BATCH: Final = 500
"""Most PUBLISH commands sent in one pipeline."""
BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 2.0
HEALTH_INTERVAL: Final = 5.0
"""An idle pub/sub connection is PINGed after this long; no reply within another
interval counts as a broken connection."""
CONFIRM_TIMEOUT: Final = 5.0
"""How long subscribe()/unsubscribe() wait for Redis to confirm."""
OUTBOX_ENVELOPES: Final = 10_000
OUTBOX_BYTES: Final = 32 * 1024 * 1024
"""The most envelopes (the batch in flight included) and PUBLISH bytes waiting for Redis;
beyond either the oldest are dropped."""

_SUBSCRIBE: Final = b"subscribe"
_UNSUBSCRIBE: Final = b"unsubscribe"
_MESSAGE: Final = b"message"
_PONG: Final = b"pong"
_CLIENT_NAME_BAD_CHARS: Final = re.compile(r"[^A-Za-z0-9._:@-]")


class RedisBroker:
    """A `Broker` on Redis pub/sub. See the module docstring."""

    # Timings of the pub/sub connection (seconds); an instance may override them
    # before start(), e.g. in tests.
    backoff_min: float = BACKOFF_MIN
    backoff_max: float = BACKOFF_MAX
    health_interval: float = HEALTH_INTERVAL
    confirm_timeout: float = CONFIRM_TIMEOUT
    outbox_envelopes: int = OUTBOX_ENVELOPES
    outbox_bytes: int = OUTBOX_BYTES

    def __init__(self, url: str, node_id: str, *, prefix: str = "izh:") -> None:
        self._node_id = node_id
        self._prefix = prefix
        self._prefix_b = prefix.encode()
        # PUBLISH / PING: one retry (a pooled connection may be stale after a Redis
        # restart), no backoff, short socket timeouts: a publish while Redis is down
        # fails within seconds instead of hanging. Options in the URL win.
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
        )
        self._sub_options = self._pubsub_connection_options(url)
        self._client_name = "izh-sub:" + _CLIENT_NAME_BAD_CHARS.sub("_", node_id)
        self._pub_client_name = "izh-pub:" + _CLIENT_NAME_BAD_CHARS.sub("_", node_id)
        self._pub_conn: AbstractConnection | None = None  # the PUBLISH connection, when up

        self._wanted: set[str] = set()  # channels the caller subscribed to
        self._active: set[str] = set()  # channels Redis confirmed on the current connection
        # Replies to (UN)SUBSCRIBE come back in command order, one per channel:
        # (reply kind, Redis channel) -> waiters in the order the commands were sent.
        self._waiters: dict[tuple[bytes, bytes], deque[asyncio.Future[None]]] = {}
        self._conn: AbstractConnection | None = None  # the pub/sub connection, when up
        self._queue: asyncio.Queue[tuple[str, Envelope]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._reconnects = 0
        self._reconnected = asyncio.Event()  # set (and replaced) at each reconnection
        self._closed = False
        # PUBLISH commands (RESP) waiting for the sender task, oldest first
        self._outbox: deque[bytes] = deque()
        self._outbox_size = 0  # their bytes
        self._sender: asyncio.Task[None] | None = None
        self._in_flight = 0  # envelopes of the batch being sent
        self._publish_failures = 0
        self._publish_dropped = 0
        # What is failing now ("pub/sub", "publishing"); the outage began at _down_since.
        self._failing: set[str] = set()
        self._down_since = 0.0
        self._up = asyncio.Event()
        self._up.set()
        self._down = asyncio.Event()
        self._dropping = False  # dropped envelopes since the outbox was last empty (logged once)

    def __repr__(self) -> str:
        return f"RedisBroker(node_id={self._node_id!r}, prefix={self._prefix!r})"

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def client_name(self) -> str:
        """The CLIENT SETNAME of the pub/sub connection (best effort), for operators."""
        return self._client_name

    @property
    def reconnects(self) -> int:
        return self._reconnects

    async def reconnected(self, seen: int) -> int:
        while self._reconnects == seen:
            await self._reconnected.wait()
        return self._reconnects

    @property
    def publish_failures(self) -> int:
        return self._publish_failures

    @property
    def publish_dropped(self) -> int:
        return self._publish_dropped

    @property
    def publish_backlog(self) -> int:
        return len(self._outbox) + self._in_flight

    @property
    def connected(self) -> bool:
        """False from the first failure noticed (pub/sub or publishing) until both work again."""
        return not self._failing

    async def wait_connected(self, connected: bool) -> None:
        """Return once `connected` is `connected`."""
        await (self._up if connected else self._down).wait()

    # -- Broker ----------------------------------------------------------------------

    async def start(self, handler: EnvelopeHandler) -> None:
        """Open the pub/sub connection (raise if Redis is unreachable) and start the
        reader and dispatcher tasks."""
        self._check_open()
        if self._reader is not None:
            raise RuntimeError(f"{self!r} already started")
        conn = await self._open()
        if self._closed:  # closed while connecting
            await conn.disconnect(nowait=True)
            self._check_open()
        self._conn = conn
        self._reader = asyncio.create_task(self._run(conn), name=f"redis-broker-reader:{self._node_id}")
        self._dispatcher = asyncio.create_task(self._dispatch(handler), name=f"redis-broker-dispatcher:{self._node_id}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in (self._reader, self._dispatcher, self._sender):
            if task is not None and task is not current:
                await stop_task(task, logger, f"task {task.get_name()}")
        self._outbox.clear()
        self._outbox_size = 0
        pub, self._pub_conn = self._pub_conn, None
        if pub is not None:
            await pub.disconnect(nowait=True)
        conn, self._conn = self._conn, None
        self._fail_waiters(RuntimeError(f"{self!r} closed"))
        self._wanted.clear()
        self._active.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
        try:
            if conn is not None:
                await conn.disconnect(nowait=True)
        finally:
            await self._client.aclose()

    async def ping(self) -> None:
        """Raise if Redis does not answer, or while the pub/sub connection is down."""
        self._check_open()
        await self._client.ping()
        if self._reader is not None and self._conn is None:
            raise RedisConnectionError("redis pub/sub connection is down (reconnecting)")

    async def publish(self, channel: str, envelope: Envelope) -> None:
        """Returns without waiting for Redis (see the module docstring); raises only when
        the broker is closed or `envelope` does not pack."""
        self._check_open()
        self._hand_over(channel, envelope, envelope.pack())

    async def publish_many(self, items: Sequence[tuple[str, Envelope]]) -> None:
        """`publish` of each, in order (all packed first: one that does not pack raises
        before any is handed over)."""
        self._check_open()
        packed = [envelope.pack() for _, envelope in items]
        for (channel, envelope), payload in zip(items, packed, strict=True):
            self._hand_over(channel, envelope, payload)

    def _hand_over(self, channel: str, envelope: Envelope, payload: bytes) -> None:
        if envelope.origin == self._node_id and channel in self._wanted:
            self._queue.put_nowait((channel, envelope))  # local delivery: no round trip
        command = _publish_command(self._key(channel), payload)
        self._outbox.append(command)
        self._outbox_size += len(command)
        while self._outbox and (len(self._outbox) + self._in_flight > self.outbox_envelopes
                                or self._outbox_size > self.outbox_bytes):
            self._outbox_size -= len(self._outbox.popleft())
            self._publish_dropped += 1
            if not self._dropping:
                self._dropping = True
                logger.warning(
                    "redis outbox full (node %s, %d envelopes, %d bytes): dropping the oldest; "
                    "the other nodes repair them from the store",
                    self._node_id, len(self._outbox), self._outbox_size)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_outbox(), name=f"redis-publisher:{self._node_id}")

    async def _send_outbox(self) -> None:
        """The sender task: PUBLISH the outbox in order, a batch at a time; a batch that
        fails is sent again (backing off) until Redis takes it."""
        outbox = self._outbox
        delay = self.backoff_min
        try:
            while outbox and not self._closed:
                batch = [outbox.popleft() for _ in range(min(PUBLISH_BATCH, len(outbox)))]
                self._outbox_size -= sum(map(len, batch))
                self._in_flight = len(batch)
                while True:
                    try:
                        errors = await self._publish_pipeline(batch)
                    except (OSError, RedisConnectionError, RedisTimeoutError, TimeoutError,
                            asyncio.IncompleteReadError) as exc:
                        self._publish_failures += len(batch)
                        self._failure("publishing", exc)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.backoff_max)
                        continue
                    except Exception:  # a bug: never retried in a loop
                        logger.exception("PUBLISH of %d envelope(s) failed (node %s)", len(batch), self._node_id)
                        self._publish_failures += len(batch)
                        errors = []
                    break
                self._in_flight = 0
                delay = self.backoff_min
                if errors:  # refused by Redis (an ACL, say): sending them again would not help
                    self._publish_failures += len(errors)
                    self._failure("publishing", f"PUBLISH refused: {errors[0]}")
                else:
                    self._recovered("publishing")
                if not outbox:
                    self._dropping = False  # a new episode of drops is logged again
        finally:
            self._sender = None
            self._in_flight = 0

    async def _publish_pipeline(self, commands: list[bytes]) -> list[str]:
        """One write of the PUBLISH commands on this broker's publishing connection, then
        their integer replies read as raw lines (not redis-py's pipeline, which builds and
        parses each command through its generic layers); returns the messages of the
        replies that were errors. A broken connection is dropped and
        the batch sent once more on a new one (after a Redis restart the old one is stale),
        then the error raised; a subscriber may then see an envelope twice, which it
        tolerates (messages are deduplicated by seq)."""
        data = b"".join(commands)
        for attempt in (1, 2):
            conn = self._pub_conn
            try:
                if conn is None:
                    conn = self._pub_conn = await self._open(self._pub_client_name)
                await conn.send_packed_command(data, check_health=False)
                reader = conn._reader  # redis-py's stream of the connection (read here, not parsed)
                if reader is None:
                    raise RedisConnectionError("PUBLISH connection closed")
                async with asyncio.timeout(SOCKET_TIMEOUT):
                    return await _integer_replies(reader, len(commands))
            except (OSError, RedisConnectionError, RedisTimeoutError, TimeoutError,
                    asyncio.IncompleteReadError) as exc:
                self._pub_conn = None
                if conn is not None:
                    await conn.disconnect(nowait=True)
                if attempt == 2:
                    raise RedisConnectionError(f"PUBLISH failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _failure(self, what: str, exc: BaseException | str) -> None:
        """`what` ("pub/sub", "publishing") failed: the first failure of an outage is logged."""
        if not self._failing:
            self._down_since = time.monotonic()
            self._up.clear()
            self._down.set()
            logger.warning(
                "redis connection lost (node %s, %s): %s; retrying. Meanwhile this node acks and "
                "delivers to its own clients; the other nodes catch up from the store when it is back",
                self._node_id, what, exc or type(exc).__name__)
        self._failing.add(what)

    def _recovered(self, what: str) -> None:
        """`what` works again: the end of the outage is logged when nothing else fails."""
        if what not in self._failing:
            return
        self._failing.discard(what)
        if not self._failing:
            self._down.clear()
            self._up.set()
            logger.info(
                "redis connection restored (node %s) after %.2fs; %d channel(s) re-subscribed, "
                "%d publish failure(s) and %d envelope(s) dropped since start",
                self._node_id, time.monotonic() - self._down_since, len(self._wanted),
                self._publish_failures, self._publish_dropped)

    async def subscribe(self, channel: str) -> None:
        """Idempotent. Raises if Redis cannot confirm the subscription now; the channel
        still stays wanted and is subscribed again on the next reconnect."""
        self._check_started()
        if channel in self._wanted and channel in self._active:
            return
        self._wanted.add(channel)
        await self._command(_SUBSCRIBE, channel)

    async def unsubscribe(self, channel: str) -> None:
        """Idempotent. Nothing of `channel` is delivered to the handler after this."""
        self._check_started()
        if channel not in self._wanted and channel not in self._active:
            return
        self._wanted.discard(channel)
        try:
            await self._command(_UNSUBSCRIBE, channel)
        except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
            # Without a connection there is no subscription to drop, and a reconnect
            # only re-subscribes wanted channels; delivery is filtered on _wanted.
            logger.debug("unsubscribe %r (node %s) not confirmed: %s", channel, self._node_id, exc)

    # -- internals -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def _check_started(self) -> None:
        self._check_open()
        if self._reader is None:
            raise RuntimeError(f"{self!r} not started: call start() first")

    def _key(self, channel: str) -> bytes:
        return self._prefix_b + channel.encode()

    def _channel(self, key: bytes) -> str | None:
        if not key.startswith(self._prefix_b):
            return None
        try:
            return key[len(self._prefix_b) :].decode()
        except UnicodeDecodeError:
            return None

    @staticmethod
    def _pubsub_connection_options(url: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            "socket_keepalive": True,
        }
        options.update(parse_url(url))
        # The reader parses RESP2 pub/sub replies itself, and reconnects itself.
        options["protocol"] = 2
        options["retry"] = Retry(NoBackoff(), 0)
        options.setdefault("connection_class", Connection)
        return options

    async def _open(self, name: str | None = None) -> AbstractConnection:
        """A new, connected connection named `name` (default: the pub/sub connection's;
        nothing subscribed yet)."""
        options = dict(self._sub_options)
        connection_class: type[AbstractConnection] = options.pop("connection_class")
        conn = connection_class(**options)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            # Best effort, so an ACL without CLIENT does not stop us.
            await conn.send_command("CLIENT", "SETNAME", name or self._client_name, check_health=False)
            try:
                await conn.read_response()
            except ResponseError as exc:
                logger.debug("CLIENT SETNAME refused: %s", exc)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return conn

    async def _command(self, kind: bytes, channel: str) -> None:
        """Send (UN)SUBSCRIBE for `channel` and wait until the reader sees Redis confirm."""
        conn = self._conn
        # (No await between this check and send_command's own check: a broken
        # connection is never silently re-opened here, only by the reader.)
        if conn is None or not conn.is_connected:
            raise RedisConnectionError(
                f"redis pub/sub connection is down (reconnecting); cannot {kind.decode()} {channel!r}"
            )
        key = self._key(channel)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((kind, key), deque()).append(waiter)
        try:
            await conn.send_command(kind.upper(), key, check_health=False)
        except BaseException:
            waiter.cancel()  # stays queued so later replies still pair up correctly
            raise
        try:
            async with asyncio.timeout(self.confirm_timeout):
                await waiter
        except TimeoutError:
            raise RedisTimeoutError(f"redis did not confirm {kind.decode()} {channel!r}") from None

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._waiters = self._waiters, {}
        for queue in waiters.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()  # the awaiter (if any) still gets it; no "never retrieved"

    async def _run(self, conn: AbstractConnection | None) -> None:
        """The reader task: serve a connection until it breaks, then reconnect."""
        delay = self.backoff_min
        resync = False
        while not self._closed:
            if conn is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                try:
                    conn = await self._open()
                except Exception as exc:
                    logger.debug(
                        "redis pub/sub reconnect (node %s) failed: %s; next attempt in %.1fs",
                        self._node_id,
                        exc,
                        delay,
                    )
                    continue
                delay = self.backoff_min
            try:
                await self._serve(conn, resync=resync)
            except Exception as exc:
                self._failure("pub/sub", exc)
            finally:
                self._conn = None
                self._active.clear()
                self._fail_waiters(RedisConnectionError("redis pub/sub connection lost"))
                await conn.disconnect(nowait=True)
            conn = None
            resync = True

    async def _serve(self, conn: AbstractConnection, *, resync: bool) -> None:
        """Re-subscribe the wanted channels on `conn`, then read it until it breaks."""
        self._conn = conn
        pending: list[asyncio.Future[None]] = []
        if self._wanted:
            keys = [self._key(channel) for channel in sorted(self._wanted)]
            loop = asyncio.get_running_loop()
            for key in keys:
                waiter = loop.create_future()
                self._waiters.setdefault((_SUBSCRIBE, key), deque()).append(waiter)
                pending.append(waiter)
            await conn.send_command("SUBSCRIBE", *keys, check_health=False)
        if resync and not pending:
            self._restored()
        awaiting_pong = False
        stream = conn._reader  # redis-py's stream; replies are parsed here (gateway/broker/resp.py)
        if stream is None:
            raise RedisConnectionError("pub/sub connection closed")
        replies = RespReader(stream)
        while not self._closed:
            reply = await replies.next(self.health_interval)
            if reply is IDLE:  # nothing for health_interval
                if awaiting_pong:
                    raise RedisTimeoutError(f"no reply to PING within {self.health_interval}s")
                await conn.send_command("PING", check_health=False)
                awaiting_pong = True
                continue
            awaiting_pong = False
            self._on_reply(reply)
            if pending and all(waiter.done() for waiter in pending):
                pending = []
                if resync:
                    self._restored()

    def _restored(self) -> None:
        self._reconnects += 1
        done, self._reconnected = self._reconnected, asyncio.Event()
        done.set()
        self._recovered("pub/sub")

    def _on_reply(self, reply: object) -> None:
        if reply == b"PONG":  # PING outside subscribed mode
            return
        if not isinstance(reply, list) or len(reply) < 2 or not isinstance(reply[0], bytes):
            logger.warning("unexpected reply on redis pub/sub connection: %.200r", reply)
            return
        kind, key = reply[0].lower(), reply[1]
        if kind == _PONG:
            return
        if not isinstance(key, bytes):
            logger.warning("unexpected reply on redis pub/sub connection: %.200r", reply)
            return
        if kind == _MESSAGE and len(reply) == 3:
            self._on_message(key, reply[2])
        elif kind in (_SUBSCRIBE, _UNSUBSCRIBE):
            channel = self._channel(key)
            if channel is not None:
                if kind == _SUBSCRIBE:
                    self._active.add(channel)
                else:
                    self._active.discard(channel)
            queue = self._waiters.get((kind, key))
            if queue:
                waiter = queue.popleft()
                if not queue:
                    del self._waiters[(kind, key)]
                if not waiter.done():
                    waiter.set_result(None)
        else:
            logger.warning("unexpected reply on redis pub/sub connection: %.200r", reply)

    def _on_message(self, key: bytes, payload: object) -> None:
        channel = self._channel(key)
        if channel is None or channel not in self._wanted:
            return
        if not isinstance(payload, bytes):
            logger.warning("dropping non-bytes payload on %r (node %s)", channel, self._node_id)
            return
        try:
            envelope = Envelope.unpack(payload)
        except ValueError as exc:
            logger.warning(
                "dropping malformed envelope on %r (node %s, %d bytes): %s",
                channel,
                self._node_id,
                len(payload),
                exc,
            )
            return
        except Exception:  # unpack promises ValueError; never let a payload kill the reader
            logger.exception("dropping undecodable envelope on %r (node %s)", channel, self._node_id)
            return
        if envelope.origin == self._node_id:  # ours: handed to the handler when published
            return
        self._queue.put_nowait((channel, envelope))

    async def _dispatch(self, handler: EnvelopeHandler) -> None:
        """The dispatcher task: run the handler for queued envelopes, in order."""
        while not self._closed:
            channel, envelope = await self._queue.get()
            if channel not in self._wanted:  # unsubscribed since it was queued
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


def _publish_command(key: bytes, payload: bytes) -> bytes:
    """PUBLISH key payload, in RESP."""
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(payload), payload)


async def _integer_replies(reader: asyncio.StreamReader, n: int) -> list[str]:
    """Reads `n` replies to PUBLISH (integers); the messages of those that were errors."""
    errors: list[str] = []
    for _ in range(n):
        line = await reader.readuntil(b"\r\n")
        if line[:1] == b"-":
            errors.append(line[1:-2].decode("utf-8", "replace"))
        elif line[:1] != b":":
            raise RedisConnectionError(f"unexpected reply to PUBLISH: {line[:40]!r}")
    return errors
