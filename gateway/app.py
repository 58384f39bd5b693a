"""Build the gateway: explicit wiring of config → store, broker, services, transports, and
the features it is given (`gateway.extension`), composed at construction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from gateway.admin.masterkey import verify_master_key
from gateway.blobs.factory import open_blobs
from gateway.blobs.metered import MeteredBlobs
from gateway.broker import Broker
from gateway.broker.base import Envelope
from gateway.broker.factory import make_broker
from gateway.broker.memory import MemoryHub
from gateway.chat.service import ChatHooks, ChatService
from gateway.cluster.handoff import HandoffSender, handoff_middleware, message_size
from gateway.cluster.noderpc import NODE_PREFIX, NodeRpc
from gateway.cluster.noderpc import Handler as RpcMethod
from gateway.cluster.scrape import METHOD as SCRAPE_METHOD
from gateway.cluster.scrape import NodeScrape
from gateway.cluster.sids import WorkerSids
from gateway.cluster.supervisor import WorkerIdentity
from gateway.config import Config
from gateway.core.domain import Conversation, Message
from gateway.core.hooks import Hooks, Table
from gateway.edge import Admission, EngineSettings, SocketServer
from gateway.extension import Extension, Feature, Hook, Host, Middleware
from gateway.http.api import api_routes
from gateway.http.headers import install_security_headers
from gateway.http.health import health_routes, metrics_routes
from gateway.http.middleware import error_middleware
from gateway.http.openapi import openapi_routes, openapi_text
from gateway.ops.db_gauges import DbGauges
from gateway.ops.metrics import Metrics, Reading
from gateway.realtime.drain import DRAINER_KEY, DrainAdmission, Drainer
from gateway.realtime.emitter import EdgeEmitter
from gateway.realtime.fanout import Fanout
from gateway.realtime.handlers import Handler as EventHandler
from gateway.realtime.handlers import Handlers
from gateway.realtime.handshake import Handshake
from gateway.realtime.presence import PresenceTracker
from gateway.realtime.server import DrainState, RealtimeServer
from gateway.security.auth import VisitorTokens, new_secret
from gateway.store import Store
from gateway.store.db import Database
from gateway.store.factory import open_store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

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
    # the features' start/stop hooks (and the core's own), in the order of the features given
    on_start: tuple[Hook, ...] = ()
    on_stop: tuple[Hook, ...] = ()
    features: tuple[str, ...] = ()  # the names of the features built into this gateway
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
            seen = await self.broker.reconnected(seen)
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


def _core_metrics(gw: Gateway) -> list[Reading]:
    """The core's gauges and counters read at scrape time (the features declare theirs)."""
    fanout, broker = gw.fanout, gw.broker
    out = [
        Reading("izh_open_connections", "Socket.IO connections open on this node",
                lambda: gw.realtime.connection_count),
        Reading("izh_watched_conversations", "Conversations with local watchers",
                lambda: fanout.stats()["conversations"]),
        Reading("izh_deliveries_total", "Messages delivered to connections", lambda: fanout.delivered),
        Reading("izh_gaps_repaired_total", "Gaps in a conversation stream repaired from the store",
                lambda: fanout.gaps_repaired),
        Reading("izh_broker_reconnects_total", "Broker reconnections", lambda: broker.reconnects),
        Reading("izh_broker_publish_failures_total",
                "Envelopes whose PUBLISH failed (each attempt counts; sent again until Redis takes them)",
                lambda: broker.publish_failures),
        Reading("izh_broker_publish_dropped_total",
                "Envelopes dropped unpublished, the outbox being full (the other nodes repair them from the store)",
                lambda: broker.publish_dropped),
        Reading("izh_broker_publish_backlog", "Envelopes waiting for Redis", lambda: broker.publish_backlog),
        Reading("izh_requests_in_flight", "Socket.IO requests being handled", lambda: gw.realtime.inflight),
        Reading("izh_draining", "1 while this node drains", lambda: 1.0 if gw.realtime.drain.draining else 0.0),
    ]
    store = gw.store
    if isinstance(store, SqliteStore):
        out += [
            Reading("izh_sqlite_checkpoints_total", "SQLite checkpoints run", lambda: store.checkpoints),
            Reading("izh_sqlite_wal_restarts_total",
                    "SQLite checkpoints that copied the whole WAL, so that the next write starts it over "
                    "(flat while writes go on: the WAL is growing)", lambda: store.wal_restarts),
            Reading("izh_sqlite_checkpoint_hold_seconds_total",
                    "Time checkpoints held the node's writes to let the WAL start over",
                    lambda: store.writes_held_seconds),
            Reading("izh_sqlite_checkpoint_hold_max_seconds", "The longest such hold since start",
                    lambda: store.writes_held_max),
            Reading("izh_sqlite_append_retries_total",
                    "Batch appends whose one run of statements failed (a stored duplicate: a client's retry; another "
                    "process holding the file's write lock) and that ran again the locking way",
                    lambda: store.optimistic_retries),
        ]
    return out


def _message_counter(metrics: Metrics) -> Callable[[Message, Conversation], Awaitable[None]]:
    async def count_message(msg: Message, conv: Conversation) -> None:
        metrics.child(metrics.messages, conv.channel.value, msg.author_type.value).inc()

    return count_message


def _batch_counter(metrics: Metrics) -> Callable[[int, float], None]:
    def count_batch(messages: int, seconds: float) -> None:
        metrics.append_batch_size.observe(messages)
        metrics.append_batch_seconds.observe(seconds)

    return count_batch


def _events(extensions: Sequence[Extension], namespace: str) -> dict[str, EventHandler]:
    out: dict[str, EventHandler] = {}
    for ext in extensions:
        table = ext.visitor_events if namespace == "visitor" else ext.agent_events
        taken = sorted(set(out) & set(table))
        if taken:
            raise ValueError(f"/{namespace}: events {taken} declared by two features")
        out.update(table)
    return out


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
    features: Sequence[Feature],
    *,
    clock: Callable[[], float] = time.time,
    hub: MemoryHub | None = None,
    worker: WorkerIdentity | None = None,
) -> Gateway:
    """The core with `features` built in (the composition root, `gateway.composition`,
    chooses them; the core knows none). Each feature's `build` gets the core's services
    (`Host`) and declares its `Extension`; the declarations are composed into the core's
    components at their construction (events, routes, middlewares, admission) or into the
    collections they read at run time, frozen before this returns (chat's listeners and
    checks, the edge's admission, node RPC methods).

    `worker`: this process is one of a node's WORKERS (gateway/cluster): its Engine.IO
    session ids name it, and requests for a sibling's sessions are handed to that sibling."""
    node_id = config.server.node_id or default_node_id()
    if not config.storage.database_url:
        os.makedirs(config.storage.data_dir, exist_ok=True)
    store = await open_store(
        config.storage.database_url, sqlite_path=config.sqlite_path, schema=config.storage.database_schema,
        limits=config.store_limits,
    )
    try:  # a malformed or wrong MASTER_KEY stops the start here (gateway/admin/masterkey.py)
        await verify_master_key(store, os.environ, config.storage.data_dir, embedded=config.embedded,
                                sealed=[column for feature in features for column in feature.sealed])
    except BaseException:
        await store.close()
        raise
    try:
        return await _assemble(config, features, store, node_id, clock=clock, hub=hub, worker=worker)
    except BaseException:
        await store.close()
        raise


async def _assemble(config: Config, features: Sequence[Feature], store: SqliteStore | PostgresStore, node_id: str,
                    *, clock: Callable[[], float], hub: MemoryHub | None, worker: WorkerIdentity | None) -> Gateway:
    secret = config.security.secret or await store.get_or_create_setting("visitor_token_secret", new_secret())
    broker = make_broker(config.storage.redis_url, node_id, hub=hub, prefix=config.storage.redis_prefix)
    metrics = Metrics()
    chat_hooks = ChatHooks()
    chat = ChatService(store, broker, node_id=node_id, limits=config.limits, clock=clock,
                       presence_ttl=config.presence_ttl, hooks=chat_hooks, on_batch=_batch_counter(metrics))
    sids = None if worker is None else WorkerSids(worker.index, worker.count)
    admission: Hooks[Admission] = Hooks()
    drain_state = DrainState()
    admission.add(DrainAdmission(drain_state))  # first: a draining node acquires nothing
    sockets = SocketServer(engine_settings(config), generate_id=None if sids is None else sids.generate,
                           admission=admission)
    emitter = EdgeEmitter(sockets)

    async def fetch(tenant_id: str, conv_id: str, after: int, limit: int):  # type: ignore[no-untyped-def]
        return await store.get_messages(tenant_id, conv_id, after_seq=after, limit=limit)

    fanout = Fanout(broker, emitter, fetch, store.get_conversation, max_gap=config.limits.resume_max_gap)
    presence = PresenceTracker(store, node_id, clock, config.presence_interval, ttl=config.presence_ttl,
                               announce=chat.announce_presence)
    tokens = VisitorTokens(secret, config.security.visitor_token_ttl)
    rpc_methods: Table[str, RpcMethod] = Table()
    rpc = NodeRpc(broker, node_id, rpc_methods)

    blobs = MeteredBlobs(open_blobs(config.storage.blobs, config.storage.data_dir), metrics.registry)
    host = Host(config=config, node_id=node_id, store=store, db=store, blobs=blobs, broker=broker, chat=chat,
                fanout=fanout, rpc=rpc, metrics=metrics, tokens=tokens, clock=clock, worker=worker)
    extensions = [await feature.build(host) for feature in features]

    chat_hooks.message_listeners.add(_message_counter(metrics))
    for ext in extensions:
        for listener in ext.message_listeners:
            chat_hooks.message_listeners.add(listener)
        for check in ext.send_checks:
            chat_hooks.send_checks.add(check)
        for contact_listener in ext.contact_listeners:
            chat_hooks.contact_listeners.add(contact_listener)
        if ext.attachments is not None:
            chat_hooks.attachments.add(ext.attachments)
        for gate in ext.admission:
            admission.add(gate)
        for name, method in ext.rpc_methods.items():
            rpc_methods.add(name, method)

    handlers = Handlers(chat, fanout, max_watch=config.limits.max_watch_per_socket,
                        visitor_events=_events(extensions, "visitor"), agent_events=_events(extensions, "agent"))
    handshake = Handshake(store, tokens, clock, config.security.tenant_cache_seconds)
    realtime = RealtimeServer(config, chat, handshake, presence, sockets, metrics, fanout,
                              handlers, gates=[gate for ext in extensions for gate in ext.admission],
                              drain=drain_state)
    drainer = Drainer(realtime, node_id, config.server.drain_timeout)

    middlewares: list[Middleware] = [error_middleware, drainer.middleware()]
    middlewares += [m for ext in extensions for m in ext.middlewares]
    core_stop: list[Hook] = []
    if worker is not None:
        assert sids is not None
        sender = HandoffSender(worker.paths, message_size(config.limits.max_event_bytes))
        middlewares.insert(0, handoff_middleware(ENGINEIO_PATH, sids, sender))

        async def close_sender() -> None:
            sender.close()

        core_stop.append(close_sender)
        metrics.add(Reading("izh_handoffs_sent_total", "Requests handed to the sibling worker holding their session",
                            lambda: sender.sent))
        metrics.add(Reading("izh_handoffs_failed_total", "Hand-offs that failed (the client got 'Invalid session')",
                            lambda: sender.failed))
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_event_bytes)
    install_security_headers(app, public_url=config.server.public_url)
    gauges = DbGauges(store, metrics, [g for ext in extensions for g in ext.db_gauges])
    gw = Gateway(config, node_id, store, store, broker, chat, realtime, fanout, presence, app, clock, handlers,
                 metrics, rpc, worker,
                 on_start=(*(h for ext in extensions for h in ext.on_start), gauges.start),
                 on_stop=(*core_stop, *(h for ext in extensions for h in ext.on_stop), gauges.stop, blobs.close),
                 features=tuple(f.name for f in features))
    metrics.info("izh_node_info", "The node (with WORKERS > 1: each worker's node id)", node=node_id)
    for reading in _core_metrics(gw):
        metrics.add(reading)
    for ext in extensions:
        for reading in ext.metrics:
            metrics.add(reading)
    app[GATEWAY_KEY] = gw
    app[DRAINER_KEY] = drainer
    for ext in extensions:
        for key, value in ext.app_state.items():
            app[key] = value
    realtime.attach(app, ENGINEIO_PATH)
    app.add_routes(health_routes({"store": store.ping, "broker": broker.ping, "blobs": blobs.ping}))
    node_scrape = None
    if worker is not None:
        node_scrape = NodeScrape(metrics.registry, rpc, worker.node_ids(node_id), worker.index)
        rpc_methods.add(SCRAPE_METHOD, node_scrape.serve)
    app.add_routes(metrics_routes(metrics, node_scrape))
    app.add_routes(api_routes(chat, store, config))
    for ext in extensions:
        app.add_routes(ext.routes)
    app.add_routes(openapi_routes(await asyncio.to_thread(openapi_text)))
    chat_hooks.freeze()
    admission.freeze()
    rpc_methods.freeze()

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
