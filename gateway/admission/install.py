"""Install reliability, security and privacy features into a built `Gateway`:
rate limits and connection caps (gateway/admission/limits.py, gateway/admission/guard.py), graceful drain
(gateway/ops/drain.py), retention and data-subject requests (gateway/privacy/), the OpenAPI
document and their metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.admission.guard import Guard
from gateway.admission.limits import LIMITS_KEY, Limits, upload_limit_middleware
from gateway.admission.shared_limits import node_limits
from gateway.http.api import Api
from gateway.ops.db_gauges import DbGauges
from gateway.ops.drain import DRAINER_KEY, Drainer
from gateway.privacy.dsr import Dsr
from gateway.privacy.retention import Retention, RetentionScheduler
from gateway.privacy.routes import PrivacyApi, privacy_routes
from gateway.privacy.store import PrivacyStore
from gateway.store.db import Database

if TYPE_CHECKING:
    from gateway.app import Gateway

RETENTION_KEY = web.AppKey("retention", RetentionScheduler)
OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def is_sqlite(db: object) -> bool:
    from gateway.store.sqlite import SqliteStore

    return isinstance(db, SqliteStore)


def as_database(store: object) -> Database:
    """The core store as raw `Database` (both SQL backends are one)."""
    from gateway.store.sql import SqlStore

    assert isinstance(store, SqlStore), type(store)
    return store


def privacy_store(db: Database) -> PrivacyStore:
    return PrivacyStore(db, sqlite=is_sqlite(db))


def openapi_text() -> str | None:
    """docs/openapi.yaml of the source tree, or of the working directory (the container's /app)."""
    for path in (OPENAPI_PATH, Path.cwd() / "docs" / "openapi.yaml"):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


async def install(gw: Gateway) -> None:
    cfg = gw.config
    m = gw.metrics
    limits = Limits(cfg.limits, on_limited=lambda name: m.rate_limited.labels(name).inc())
    node = node_limits(limits, cfg.limits.max_connections_per_ip, redis_url=cfg.storage.redis_url,
                       prefix=cfg.storage.redis_prefix, node_id=gw.node_id,
                       worker_node_ids=gw.worker.node_ids(gw.node_id) if gw.worker else None,
                       scope=cfg.limits.scope)
    gw.on_start.append(node.start)
    gw.on_stop.append(node.close)
    if node.redis is not None:
        m.counter_fn("izh_node_limits_redis_errors_total",
                     "Failed Redis calls of the limits shared by the node's workers (then enforced per worker)",
                     lambda: float(node.redis_errors()))
    if node.synced is not None:
        synced = node.synced
        m.counter_fn("izh_node_limits_syncs_total",
                     "Syncs of the per-IP message limit with the node's (or cluster's) other processes",
                     lambda: float(synced.syncs))
    guard = Guard(limits, node)
    gw.realtime.guard = guard
    gw.realtime.sockets.engine.admission = guard
    gw.app[LIMITS_KEY] = limits
    drainer = Drainer(gw.realtime, guard, gw.node_id, cfg.server.drain_timeout)
    gw.app[DRAINER_KEY] = drainer
    gw.app.middlewares.append(drainer.middleware())
    gw.app.middlewares.append(upload_limit_middleware(node.uploads))

    store = privacy_store(gw.db)
    retention = RetentionScheduler(
        Retention(store, cfg.storage.data_dir, cfg.privacy.retention_years, gw.clock),
        cfg.privacy.retention_interval)
    gw.app[RETENTION_KEY] = retention
    gw.on_start.append(retention.start)
    gw.on_stop.append(retention.stop)

    async def audit_correction(tenant_id: str, contact_id: str, actor: str, fields: list[str]) -> None:
        await store.audit(tenant_id, actor, "contact.corrected", contact_id, {"fields": fields})

    gw.chat.contact_listeners.append(audit_correction)
    core = Api(gw.chat, gw.store, cfg)
    forget = getattr(gw.store, "forget_history", None) if is_sqlite(gw.store) else None
    gw.app.add_routes(privacy_routes(PrivacyApi(store, Dsr(store, cfg.storage.data_dir, forget), core.principal,
                                                core.body)))
    spec = await asyncio.to_thread(openapi_text)

    async def openapi(_: web.Request) -> web.Response:
        if spec is None:
            raise web.HTTPNotFound(reason="docs/openapi.yaml is not installed")
        return web.Response(text=spec, content_type="application/yaml")

    gw.app.router.add_get("/api/v1/openapi.yaml", openapi)

    m.gauge("izh_rate_limit_buckets", "Live rate-limit buckets and per-IP connection counters",
            lambda: limits.bucket_count() + len(node.connections))
    m.gauge("izh_requests_in_flight", "Socket.IO requests being handled", lambda: gw.realtime.inflight)
    m.gauge("izh_draining", "1 while this node drains", lambda: 1.0 if guard.draining else 0.0)
    gauges = DbGauges(gw.db, m)
    gw.on_start.append(gauges.start)
    gw.on_stop.append(gauges.stop)
    m.counter_fn("izh_retention_runs_total", "Scheduled retention runs completed", lambda: retention.runs)
