"""Build the gateway: explicit wiring of config → store, broker, services, transports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from connectors.install import install as install_connectors
from connectors.install import is_embedded
from gateway.admission.install import install as install_reliability
from gateway.broker import Broker
from gateway.broker.base import Envelope
from gateway.broker.factory import make_broker
from gateway.broker.memory import MemoryHub
from gateway.calls import install as install_calls
from gateway.chat.service import ChatService
from gateway.cluster.handoff import HandoffSender, handoff_middleware, message_size
from gateway.cluster.noderpc import NODE_PREFIX, NodeRpc
from gateway.cluster.scrape import NodeScrape
from gateway.cluster.sids import WorkerSids
from gateway.cluster.supervisor import WorkerIdentity
from gateway.config import Config
from gateway.core.domain import Conversation, Message
from gateway.edge import EngineSettings, SocketServer
from gateway.http.api import api_routes
from gateway.http.headers import install_security_headers
from gateway.http.health import health_routes, metrics_routes
from gateway.http.middleware import error_middleware
from gateway.ops.metrics import Metrics
from gateway.realtime.emitter import EdgeEmitter
from gateway.realtime.fanout import Fanout
from gateway.realtime.handlers import Handlers
from gateway.realtime.handshake import Handshake
from gateway.realtime.presence import PresenceTracker
from gateway.realtime.server import RealtimeServer
from gateway.security.auth import VisitorTokens, new_secret
from gateway.security.keycheck import verify_master_key
from gateway.store import Store
from gateway.store.db import Database
from gateway.store.factory import open_store
from gateway.store.sqlite import SqliteStore
from gateway.widget.install import install as install_widget

log = logging.getLogger(__name__)

ENGINEIO_PATH = "/socket.io/"  # Socket.IO's default path, where RealtimeServer attaches

@dataclass
class Gateway:
    config: Config
    node_id: str
    store: Store
    db: Database  # the same database as `store`, for feature stores with their own tables
    broker: Broker
    chat: ChatService
    realtime: RealtimeServer
    fanout: Fanout
    presence: PresenceTracker
    app: web.Application
    clock: Callable[[], float]
    handlers: Handlers
    metrics: Metrics
    rpc: NodeRpc  # requests to other nodes (and workers): calls live in one process
    worker: WorkerIdentity | None = None  # this process's place among its node's WORKERS
    # features (calls, connectors, widget, …) append their start/stop hooks here
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_background(self) -> None:
        await self.broker.start(self._on_envelope)
        await self.rpc.start()
        self.presence.start()
        self._tasks.append(asyncio.create_task(self._watch_broker(), name="broker-resync"))
        for hook in self.on_start:
            await hook()

    async def _on_envelope(self, channel: str, env: Envelope) -> None:
        if channel.startswith(NODE_PREFIX):
            await self.rpc.on_envelope(env)
        else:
            await self.fanout.on_envelope(channel, env)

    async def _watch_broker(self) -> None:
        seen = self.broker.reconnects
        while True:
            await asyncio.sleep(0.5)
            if self.broker.reconnects != seen:
                seen = self.broker.reconnects
                # (the broker logs the outage and its end: one line each)
                log.debug("broker reconnected; resynchronising conversations from the store")
                await self.fanout.resync()

    async def close(self) -> None:
        for hook in reversed(self.on_stop):
            try:
                await hook()
            except Exception:
                log.exception("a feature failed to stop cleanly")
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.presence.stop()
        await self.rpc.close()
        await self.chat.close()
        self.fanout.close()
        await self.broker.close()
        await self.store.close()


GATEWAY_KEY = web.AppKey("gateway", Gateway)


async def install_features(gw: Gateway) -> None:
    """Each feature package adds its routes, Socket.IO handlers (into
    `gw.handlers.visitor` / `gw.handlers.agent`) and start/stop hooks here, one line each."""
    await install_widget(gw)
    await install_connectors(gw)
    await install_calls(gw)
    await install_reliability(gw)


def _core_metrics(gw: Gateway) -> None:
    m = gw.metrics
    m.info("izh_node_info", "The node (with WORKERS > 1: each worker's node id)", node=gw.node_id)
    m.gauge("izh_open_connections", "Socket.IO connections open on this node", lambda: gw.realtime.connection_count)
    m.gauge("izh_watched_conversations", "Conversations with local watchers",
            lambda: gw.fanout.stats()["conversations"])
    m.counter_fn("izh_deliveries_total", "Messages delivered to connections", lambda: gw.fanout.delivered)
    m.counter_fn("izh_gaps_repaired_total", "Gaps in a conversation stream repaired from the store",
                 lambda: gw.fanout.gaps_repaired)
    m.counter_fn("izh_broker_reconnects_total", "Broker reconnections", lambda: gw.broker.reconnects)
    m.counter_fn("izh_broker_publish_failures_total",
                 "Envelopes whose PUBLISH failed (each attempt counts; sent again until Redis takes them)",
                 lambda: gw.broker.publish_failures)
    m.counter_fn("izh_broker_publish_dropped_total",
                 "Envelopes dropped unpublished, the outbox being full (the other nodes repair them from the store)",
                 lambda: gw.broker.publish_dropped)
    m.gauge("izh_broker_publish_backlog", "Envelopes waiting for Redis", lambda: gw.broker.publish_backlog)
    store = gw.store
    if isinstance(store, SqliteStore):
        m.counter_fn("izh_sqlite_checkpoints_total", "SQLite checkpoints run", lambda: store.checkpoints)
        m.counter_fn("izh_sqlite_wal_restarts_total",
                     "SQLite checkpoints that copied the whole WAL, so that the next write starts it over "
                     "(flat while writes go on: the WAL is growing)", lambda: store.wal_restarts)
        m.counter_fn("izh_sqlite_checkpoint_hold_seconds_total",
                     "Time checkpoints held the node's writes to let the WAL start over",
                     lambda: store.writes_held_seconds)
        m.gauge("izh_sqlite_checkpoint_hold_max_seconds", "The longest such hold since start",
                lambda: store.writes_held_max)
        m.counter_fn("izh_sqlite_append_retries_total",
                     "Batch appends whose one run of statements failed (a stored duplicate: a client's retry; another "
                     "process holding the file's write lock) and that ran again the locking way",
                     lambda: store.optimistic_retries)

    def count_batch(messages: int, seconds: float) -> None:
        m.append_batch_size.observe(messages)
        m.append_batch_seconds.observe(seconds)

    gw.chat.appender.on_batch = count_batch

    async def count_message(msg: Message, conv: Conversation) -> None:
        m.child(m.messages, conv.channel.value, msg.author_type.value).inc()

    gw.chat.message_listeners.append(count_message)


def engine_settings(config: Config) -> EngineSettings:
    """The Engine.IO server's settings from the node's configuration."""
    sc = config.server
    return EngineSettings(
        ping_interval=sc.ping_interval, ping_timeout=sc.ping_timeout, connect_timeout=sc.connect_timeout,
        max_payload=max(config.limits.max_event_bytes, 1024 * 1024), high_water=sc.ws_high_water,
        flush_delay=sc.ws_flush_delay, cors_origins=sc.cors_origins)


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def build_gateway(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    hub: MemoryHub | None = None,
    worker: WorkerIdentity | None = None,
) -> Gateway:
    """`worker`: this process is one of a node's WORKERS (gateway/cluster): its Engine.IO
    session ids name it, and requests for a sibling's sessions are handed to that sibling."""
    node_id = config.server.node_id or default_node_id()
    if not config.storage.database_url:
        os.makedirs(config.storage.data_dir, exist_ok=True)
    store = await open_store(
        config.storage.database_url, sqlite_path=config.sqlite_path, schema=config.storage.database_schema,
        limits=config.store_limits,
    )
    try:  # a malformed or wrong MASTER_KEY stops the start here (gateway/security/keycheck.py)
        await verify_master_key(store, os.environ, config.storage.data_dir, embedded=is_embedded(config))
    except BaseException:
        await store.close()
        raise
    secret = config.security.secret or await store.get_or_create_setting("visitor_token_secret", new_secret())
    broker = make_broker(config.storage.redis_url, node_id, hub=hub, prefix=config.storage.redis_prefix)
    chat = ChatService(store, broker, node_id=node_id, limits=config.limits, clock=clock,
                       presence_ttl=config.presence_ttl)
    sids = None if worker is None else WorkerSids(worker.index, worker.count)
    sockets = SocketServer(engine_settings(config), generate_id=None if sids is None else sids.generate)
    emitter = EdgeEmitter(sockets)

    async def fetch(tenant_id: str, conv_id: str, after: int, limit: int):  # type: ignore[no-untyped-def]
        return await store.get_messages(tenant_id, conv_id, after_seq=after, limit=limit)

    fanout = Fanout(broker, emitter, fetch, store.get_conversation, max_gap=config.limits.resume_max_gap)
    presence = PresenceTracker(store, node_id, clock, config.presence_interval)
    metrics = Metrics()
    tokens = VisitorTokens(secret, config.security.visitor_token_ttl)
    realtime = RealtimeServer(config, chat, Handshake(store, tokens, clock), presence, sockets, metrics)
    handlers = Handlers(chat, fanout, max_watch=config.limits.max_watch_per_socket)
    realtime.bind(fanout, handlers)

    middlewares: list[Any] = [error_middleware]
    if worker is not None:
        assert sids is not None
        sender = HandoffSender(worker.paths, message_size(config.limits.max_event_bytes))
        middlewares.insert(0, handoff_middleware(ENGINEIO_PATH, sids, sender))
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_event_bytes)
    install_security_headers(app, public_url=config.server.public_url)
    gw = Gateway(config, node_id, store, store, broker, chat, realtime, fanout, presence, app, clock, handlers,
                 metrics, NodeRpc(broker, node_id), worker)
    _core_metrics(gw)
    if worker is not None:
        async def close_sender() -> None:
            sender.close()

        gw.on_stop.append(close_sender)
        metrics.counter_fn("izh_handoffs_sent_total", "Requests handed to the sibling worker holding their session",
                           lambda: sender.sent)
        metrics.counter_fn("izh_handoffs_failed_total", "Hand-offs that failed (the client got 'Invalid session')",
                           lambda: sender.failed)
    app[GATEWAY_KEY] = gw
    realtime.attach(app, ENGINEIO_PATH)
    app.add_routes(health_routes({"store": store.ping, "broker": broker.ping}))
    node_scrape = None if worker is None else NodeScrape(metrics.registry, gw.rpc, worker.node_ids(node_id),
                                                         worker.index)
    app.add_routes(metrics_routes(metrics, node_scrape))
    app.add_routes(api_routes(chat, store, config))
    await install_features(gw)

    async def on_startup(_: web.Application) -> None:
        await gw.start_background()

    async def on_cleanup(_: web.Application) -> None:
        await gw.close()

    async def on_shutdown(_: web.Application) -> None:
        await sockets.close()

    app.on_shutdown.append(on_shutdown)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return gw
