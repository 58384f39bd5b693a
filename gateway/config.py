"""Typed settings, read from the environment (and an optional KEY=VALUE file).

Precedence: process environment > file named by GATEWAY_CONFIG > defaults.
Every setting is documented in docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.cluster.sids import MAX_WORKERS
from gateway.ops.eventloop import EVENT_LOOPS
from gateway.security.crypto import MasterKeyError, parse_key
from gateway.store.factory import StoreLimits

log = logging.getLogger(__name__)

# Settings of earlier releases that no longer do anything: a set one is ignored, with one
# warning line naming it (docs/operations.md, "Retired settings").
RETIRED_SETTINGS = {
    "SQLITE_WRITE_THREAD": "SQLite commits run on the event loop through the sqlite3 module",
    "SQLITE_WAL_GATHER": "SQLite writes its WAL itself",
    "SEND_THREAD": "websocket writes run on the event loop",
    "WS_TRANSPORT": "websockets are served by the edge's own transport (gateway/edge)",
    "WS_COMPRESSION": "permessage-deflate is not offered",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    public_url: str | None = None
    node_id: str = ""
    cors_origins: tuple[str, ...] = ("*",)
    ws_high_water: int = 1024 * 1024  # bytes buffered for one websocket before it is dropped
    ws_flush_delay: float = 0.001  # seconds fan-out frames may wait to be coalesced
    ping_interval: float = 25.0  # Engine.IO heartbeat: seconds between a pong and the next ping
    ping_timeout: float = 20.0  # seconds a ping may wait for its pong before the session is closed
    connect_timeout: float = 10.0  # seconds a session may go without joining /visitor or /agent (0: no limit)
    drain_timeout: float = 10.0
    event_loop: str = "auto"  # gateway/ops/eventloop.py: auto (uvloop when installed), uvloop or asyncio
    loop_stall_ms: int = 200  # log the loop's stack when it stalls this long (gateway/ops/stallwatch.py; 0 = off)
    workers: int = 1  # processes serving this node's port (gateway/cluster); > 1 needs PostgreSQL + Redis
    gc_gen0_threshold: int = 50_000  # gateway/ops/gctune.py; 0 keeps Python's default
    gc_freeze: bool = True  # freeze the start-up heap out of every collection
    widget_dist: str | None = None  # built widget assets; default: widget/dist of the source tree


@dataclass(frozen=True, slots=True)
class StorageConfig:
    database_url: str | None = None
    database_schema: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "izh:"
    data_dir: str = "./data"
    statement_timeout: float = 5.0  # PostgreSQL: seconds a statement may run (the client waits 1 s more)
    acquire_timeout: float = 5.0  # PostgreSQL: seconds an operation may wait for a pool connection
    sqlite_min_free_mb: int = 64  # SQLite: /readyz fails below this much free space on the file's disk
    sqlite_cache_mb: int = 8  # SQLite: the page cache of the node's connection (MiB)
    blobs: BlobConfig = field(default_factory=lambda: BlobConfig())  # where files are kept (gateway/blobs)


@dataclass(frozen=True, slots=True)
class BlobConfig:
    """Files (uploads, attachments, recordings, exports): under DATA_DIR when `url` is unset,
    else in the S3-compatible bucket `s3://bucket/prefix`; unset S3 settings come from the
    standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ...)."""

    url: str | None = None
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    path_style: bool = False
    timeout: float = 10.0  # seconds to connect and between bytes read
    attempts: int = 2
    orphan_ttl: float = 24 * 3600.0  # seconds an upload never attached to a message is kept
    spool_max_mb: int = 512  # recordings written while the store is unreachable: local spool bound


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_text_chars: int = 4000
    max_event_bytes: int = 64 * 1024
    history_page_max: int = 200
    resume_max_gap: int = 1000
    max_conversations_per_visitor: int = 20
    max_watch_per_socket: int = 200
    max_upload_bytes: int = 10 * 1024 * 1024
    # rate limits (gateway/admission/limits.py; per node, in-process token buckets)
    visitor_messages_per_sec: float = 5.0
    visitor_messages_burst: float = 20.0
    ip_messages_per_sec: float = 50.0
    ip_messages_burst: float = 200.0
    conversations_per_ip_per_min: float = 30.0
    conversations_per_ip_burst: float = 20.0
    uploads_per_ip_per_min: float = 30.0
    uploads_per_ip_burst: float = 10.0
    max_connections_per_ip: int = 1000
    # who shares the per-IP limits (gateway/admission/shared_limits.py): "node" (its workers) or "cluster"
    scope: str = "node"


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    retention_years: float = 3.0  # delete a tenant's data this long after tenants.ended_at
    retention_interval: float = 24 * 3600.0  # seconds between scheduled retention runs (0 = never)
    log_format: str = "text"  # "text" or "json" (one JSON object per line)


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    secret: str | None = None  # signs visitor tokens; stored in the database when unset
    visitor_token_ttl: float = 365 * 24 * 3600.0
    tenant_cache_seconds: float = 5.0  # a widget key's tenant is reused this long by a process (0 = read each time)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    presence_ttl: float = 30.0  # an agent's last connection gone this long: offline everywhere
    presence_interval: float = 10.0  # presence heartbeat and expiry sweep (< presence_ttl)

    @property
    def store_limits(self) -> StoreLimits:
        st = self.storage
        return StoreLimits(statement_timeout=st.statement_timeout, acquire_timeout=st.acquire_timeout,
                           min_free_bytes=st.sqlite_min_free_mb * 1024 * 1024,
                           sqlite_cache_bytes=st.sqlite_cache_mb * 1024 * 1024)

    @property
    def sqlite_path(self) -> str:
        return str(Path(self.storage.data_dir) / "gateway.sqlite3")

    @property
    def embedded(self) -> bool:
        """One node on SQLite (no `DATABASE_URL`, or a sqlite: one): the master key may live
        in DATA_DIR/master.key."""
        url = self.storage.database_url
        return not url or url.startswith("sqlite:")


def read_env_file(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{lineno}: expected KEY=VALUE")
        out[key.strip()] = value.strip().strip('"').strip("'")
    return out


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get_str(self, key: str, default: str | None = None) -> str | None:
        v = self.env.get(key)
        return v if v not in (None, "") else default

    def get_int(self, key: str, default: int, lo: int = 0, hi: int = 2**31) -> int:
        v = self.env.get(key)
        if v in (None, ""):
            return default
        try:
            n = int(v)
        except ValueError as exc:
            raise ConfigError(f"{key} must be an integer, got {v!r}") from exc
        if not lo <= n <= hi:
            raise ConfigError(f"{key} must be between {lo} and {hi}, got {n}")
        return n

    def get_float(self, key: str, default: float) -> float:
        v = self.env.get(key)
        if v in (None, ""):
            return default
        try:
            return float(v)
        except ValueError as exc:
            raise ConfigError(f"{key} must be a number, got {v!r}") from exc

    def get_bool(self, key: str, default: bool) -> bool:
        v = self.env.get(key)
        if v in (None, ""):
            return default
        if v.lower() in ("1", "true", "yes", "on"):
            return True
        if v.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} must be a boolean, got {v!r}")


def _event_loop(value: str) -> str:
    if value not in EVENT_LOOPS:
        raise ConfigError(f"EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, got {value!r}")
    return value


def _positive(r: _Reader, key: str, default: float, lo: float = 1e-9) -> float:
    v = r.get_float(key, default)
    if v < lo:
        raise ConfigError(f"{key} must be at least {lo:g}, got {v:g}")
    return v


LIMIT_SCOPES = ("node", "cluster")  # who shares the per-IP limits (LIMITS_SCOPE)


def _limits_scope(value: str) -> str:
    if value not in LIMIT_SCOPES:
        raise ConfigError(f"LIMITS_SCOPE must be node or cluster, got {value!r}")
    return value


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, got {value!r}")
    return value


def _blob_config(r: _Reader) -> BlobConfig:
    url = r.get_str("BLOB_URL")
    if url and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", url):
        raise ConfigError("BLOB_URL must look like s3://bucket/prefix (or be unset: files under DATA_DIR)")
    endpoint = r.get_str("BLOB_ENDPOINT")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigError("BLOB_ENDPOINT must start with http:// or https://")
    return BlobConfig(
        url=url, endpoint=endpoint, region=r.get_str("BLOB_REGION"),
        access_key_id=r.get_str("BLOB_ACCESS_KEY_ID"), secret_access_key=r.get_str("BLOB_SECRET_ACCESS_KEY"),
        path_style=r.get_bool("BLOB_PATH_STYLE", bool(endpoint)),
        timeout=_positive(r, "BLOB_TIMEOUT", 10.0, 0.01),
        attempts=r.get_int("BLOB_ATTEMPTS", 2, 1, 10),
        orphan_ttl=_positive(r, "UPLOAD_ORPHAN_TTL", 24 * 3600.0, 1.0),
        spool_max_mb=r.get_int("BLOB_SPOOL_MAX_MB", 512, 0, 2**20),
    )


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build the Config from `env` (default: os.environ) and its GATEWAY_CONFIG file."""
    base = dict(os.environ if env is None else env)
    merged: dict[str, str] = {}
    if base.get("GATEWAY_CONFIG"):
        merged.update(read_env_file(base["GATEWAY_CONFIG"]))
    merged.update(base)
    for key in sorted(RETIRED_SETTINGS.keys() & merged.keys()):
        log.warning("%s is no longer a setting and is ignored (%s)", key, RETIRED_SETTINGS[key])
    r = _Reader(merged)
    tls_cert, tls_key = r.get_str("TLS_CERT"), r.get_str("TLS_KEY")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("TLS_CERT and TLS_KEY must be given together")
    db = r.get_str("DATABASE_URL")
    if db and not db.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise ConfigError("DATABASE_URL must start with postgresql://, postgres:// or sqlite:///")
    redis_url = r.get_str("REDIS_URL")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    workers = r.get_int("WORKERS", 1, 1, MAX_WORKERS)
    port = r.get_int("PORT", 8080, 0, 65535)
    limits_scope = _limits_scope(r.get_str("LIMITS_SCOPE", "node") or "node")
    if limits_scope == "cluster" and not redis_url:
        raise ConfigError("LIMITS_SCOPE=cluster needs REDIS_URL: the nodes share their per-IP limits there")
    if workers > 1:
        if not db or db.startswith("sqlite:///") or not redis_url:
            raise ConfigError("WORKERS > 1 needs DATABASE_URL (PostgreSQL) and REDIS_URL: the workers are nodes "
                              "sharing them")
        if tls_cert:
            raise ConfigError("WORKERS > 1 cannot hand TLS connections between workers: terminate TLS in front")
        if port == 0:
            raise ConfigError("WORKERS > 1 needs a fixed PORT (the workers share it)")
    master_key = r.get_str("MASTER_KEY")
    if master_key:  # its match with the data is checked at start (gateway/admin/masterkey.py)
        try:
            parse_key(master_key)
        except MasterKeyError as exc:
            raise ConfigError(str(exc)) from None
    presence_ttl = _positive(r, "PRESENCE_TTL", 30.0)
    presence_interval = _positive(r, "PRESENCE_INTERVAL", 10.0)
    if presence_interval >= presence_ttl:
        raise ConfigError(f"PRESENCE_INTERVAL ({presence_interval:g}) must be less than PRESENCE_TTL "
                          f"({presence_ttl:g}): a connected agent's rows are refreshed every interval")
    origins = tuple(o.strip() for o in (r.get_str("CORS_ORIGINS", "*") or "*").split(",") if o.strip())
    return Config(
        server=ServerConfig(
            host=r.get_str("HOST", "127.0.0.1") or "127.0.0.1",
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            public_url=r.get_str("PUBLIC_URL"),
            node_id=r.get_str("NODE_ID", "") or "",
            cors_origins=origins,
            ws_high_water=r.get_int("WS_HIGH_WATER", 1024 * 1024, 4096, 2**30),
            ws_flush_delay=r.get_float("WS_FLUSH_DELAY", 0.001),
            ping_interval=_positive(r, "PING_INTERVAL", 25.0, 0.05),
            ping_timeout=_positive(r, "PING_TIMEOUT", 20.0, 0.05),
            connect_timeout=_positive(r, "CONNECT_TIMEOUT", 10.0, 0.0),
            drain_timeout=r.get_float("DRAIN_TIMEOUT", 10.0),
            event_loop=_event_loop(r.get_str("EVENT_LOOP", "auto") or "auto"),
            workers=workers,
            loop_stall_ms=r.get_int("LOOP_STALL_MS", 200, 0, 60_000),
            gc_gen0_threshold=r.get_int("GC_GEN0_THRESHOLD", 50_000, 0, 10_000_000),
            gc_freeze=r.get_bool("GC_FREEZE", True),
            widget_dist=r.get_str("WIDGET_DIST"),
        ),
        storage=StorageConfig(
            database_url=db,
            database_schema=r.get_str("DATABASE_SCHEMA"),
            redis_url=redis_url,
            redis_prefix=r.get_str("REDIS_PREFIX", "izh:") or "izh:",
            data_dir=r.get_str("DATA_DIR", "./data") or "./data",
            statement_timeout=_positive(r, "DATABASE_STATEMENT_TIMEOUT", 5.0, 0.001),
            acquire_timeout=_positive(r, "DATABASE_ACQUIRE_TIMEOUT", 5.0, 0.001),
            sqlite_min_free_mb=r.get_int("SQLITE_MIN_FREE_MB", 64, 0, 2**20),
            sqlite_cache_mb=r.get_int("SQLITE_CACHE_MB", 8, 1, 2**20),
            blobs=_blob_config(r),
        ),
        limits=LimitsConfig(
            max_text_chars=r.get_int("MAX_TEXT_CHARS", 4000, 1, 1_000_000),
            max_event_bytes=r.get_int("MAX_EVENT_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
            history_page_max=r.get_int("HISTORY_PAGE_MAX", 200, 1, 10_000),
            resume_max_gap=r.get_int("RESUME_MAX_GAP", 1000, 1, 1_000_000),
            max_conversations_per_visitor=r.get_int("MAX_CONVERSATIONS_PER_VISITOR", 20, 1, 10_000),
            max_watch_per_socket=r.get_int("MAX_WATCH_PER_SOCKET", 200, 1, 100_000),
            max_upload_bytes=r.get_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024, 1, 2**31 - 1),
            visitor_messages_per_sec=_positive(r, "RATE_VISITOR_MESSAGES_PER_SEC", 5.0),
            visitor_messages_burst=_positive(r, "RATE_VISITOR_MESSAGES_BURST", 20.0, lo=1.0),
            ip_messages_per_sec=_positive(r, "RATE_IP_MESSAGES_PER_SEC", 50.0),
            ip_messages_burst=_positive(r, "RATE_IP_MESSAGES_BURST", 200.0, lo=1.0),
            conversations_per_ip_per_min=_positive(r, "RATE_IP_CONVERSATIONS_PER_MIN", 30.0),
            conversations_per_ip_burst=_positive(r, "RATE_IP_CONVERSATIONS_BURST", 20.0, lo=1.0),
            uploads_per_ip_per_min=_positive(r, "RATE_IP_UPLOADS_PER_MIN", 30.0),
            uploads_per_ip_burst=_positive(r, "RATE_IP_UPLOADS_BURST", 10.0, lo=1.0),
            max_connections_per_ip=r.get_int("MAX_CONNECTIONS_PER_IP", 1000, 1, 10_000_000),
            scope=limits_scope,
        ),
        security=SecurityConfig(
            secret=r.get_str("GATEWAY_SECRET"),
            visitor_token_ttl=r.get_float("VISITOR_TOKEN_TTL", 365 * 24 * 3600.0),
            tenant_cache_seconds=_positive(r, "TENANT_CACHE_SECONDS", 5.0, lo=0.0),
        ),
        privacy=PrivacyConfig(
            retention_years=_positive(r, "RETENTION_YEARS", 3.0, lo=0.0),
            retention_interval=_positive(r, "RETENTION_INTERVAL", 24 * 3600.0, lo=0.0),
            log_format=_log_format(r.get_str("LOG_FORMAT", "text") or "text"),
        ),
        presence_ttl=presence_ttl,
        presence_interval=presence_interval,
    )
