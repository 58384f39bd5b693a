"""Run a real gateway in this process on a loopback port, with real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import socketio
from aiohttp import web

from gateway.admin.tenants import NewTenant, create_agent, create_tenant
from gateway.app import Gateway, build_gateway
from gateway.broker.memory import MemoryHub
from gateway.composition import default_features
from gateway.config import BlobConfig, Config, LimitsConfig, ServerConfig, StorageConfig
from gateway.edge.listen import EdgeSite
from gateway.extension import Feature


@dataclass
class RunningGateway:
    gw: Gateway
    url: str
    runner: web.AppRunner
    site: EdgeSite

    async def tenant(self, name: str = "Shop", **kw: Any) -> NewTenant:
        return await create_tenant(self.gw.store, name, now=time.time(), **kw)

    async def agent_token(self, tenant_id: str, name: str = "Agent", capacity: int = 5) -> tuple[str, str]:
        na = await create_agent(self.gw.store, tenant_id, name, capacity=capacity, now=time.time())
        return na.agent.id, na.token


def make_config(tmp_path: Any, **limits: Any) -> Config:
    return Config(
        server=ServerConfig(host="127.0.0.1", port=0, node_id=f"test-{uuid.uuid4().hex[:6]}"),
        storage=StorageConfig(data_dir=str(tmp_path)),
        limits=replace(LimitsConfig(), **limits),
    )


def node_config(tmp_path: Any, name: str, database_url: str, schema: str, *, redis_url: str | None = None,
                blobs: BlobConfig | None = None) -> Config:
    """`make_config` for node `name` of a cluster sharing `database_url` (in `schema`), its
    own data directory under `tmp_path`; `redis_url`: the broker they share; `blobs`: the
    object store they share (default: files under each node's own data directory)."""
    cfg = make_config(tmp_path / name)
    return replace(cfg, server=replace(cfg.server, node_id=name),
                   storage=replace(cfg.storage, database_url=database_url, database_schema=schema,
                                   redis_url=redis_url, blobs=blobs or cfg.storage.blobs))


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """`app` served on a free loopback port: its base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def run_gateway(config: Config, hub: MemoryHub | None = None,
                      shutdown_timeout: float = 60.0,
                      features: Sequence[Feature] | None = None,
                      clock: Callable[[], float] = time.time) -> AsyncIterator[RunningGateway]:
    """`shutdown_timeout`: seconds the shutdown waits for requests still being handled (a
    raw client's long-poll GET left pending, say) before cancelling them; `features`: those
    built in (default: the node's, `default_features()`); `clock`: the gateway's."""
    gw = await build_gateway(config, default_features() if features is None else features, hub=hub, clock=clock)
    runner = web.AppRunner(gw.app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = EdgeSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield RunningGateway(gw, site.url, runner, site)
    finally:
        await site.stop()
        await runner.cleanup()


@dataclass
class Client:
    """A python-socketio AsyncClient on one namespace that records every event."""

    sio: socketio.AsyncClient
    namespace: str
    events: list[tuple[str, Any]] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        return await self.sio.call(event, data, namespace=self.namespace, timeout=timeout)

    def of(self, event: str) -> list[Any]:
        return [d for e, d in self.events if e == event]

    def messages(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.of("message:new") if conversation_id in (None, m["conversation_id"])]

    async def wait_for(self, pred: Any, timeout: float = 5.0) -> None:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: bool(pred()))

        await asyncio.wait_for(_wait(), timeout)

    async def _record(self, event: str, data: Any) -> None:
        async with self._cond:
            if event == "session":
                self.session = data
            self.events.append((event, data))
            self._cond.notify_all()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


class Refused(Exception):
    """The server refused the handshake; `data` is its connect_error payload."""

    def __init__(self, data: Any) -> None:
        super().__init__(repr(data))
        self.data = data

    @property
    def code(self) -> str | None:
        d = self.data.get("data") if isinstance(self.data, dict) else None
        return d.get("code") if isinstance(d, dict) else None


async def connect(url: str, namespace: str, auth: Any, *, wait_session: bool = True,
                  transports: Sequence[str] = ("websocket",), **client_options: Any) -> Client:
    sio = socketio.AsyncClient(reconnection=False, **client_options)
    client = Client(sio, namespace)
    refusal: list[Any] = []

    async def catch_all(event: str, *args: Any) -> None:
        await client._record(event, args[0] if args else None)

    async def on_error(data: Any = None) -> None:
        refusal.append(data)

    sio.on("*", catch_all, namespace=namespace)
    sio.on("connect_error", on_error, namespace=namespace)
    try:
        await sio.connect(url, namespaces=[namespace], auth=auth, transports=list(transports), wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        await client.close()
        if refusal and isinstance(refusal[0], dict):  # a CONNECT_ERROR (not a refused HTTP handshake)
            raise Refused(refusal[0]) from None
        raise
    if wait_session:
        await client.wait_for(lambda: client.session)
    return client


async def handshake_refusal(url: str) -> dict[str, Any] | None:
    """A raw Engine.IO polling handshake at `url`: the refusal's JSON body (HTTP 429 beyond
    the sessions per IP), or None when it was accepted (the session is then closed again,
    so that it holds no place)."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as r:
            if r.status != 200:
                assert r.status == 429 and r.headers.get("Retry-After"), r.status
                body: dict[str, Any] = await r.json()
                return body
            sid = json.loads((await r.text())[1:])["sid"]
        async with http.post(f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}", data="1") as r:
            assert r.status == 200
    return None


async def visitor(url: str, widget_key: str, *, options: dict[str, Any] | None = None, **auth: Any) -> Client:
    """`options`: for `connect` (transports, AsyncClient options), apart from the auth fields."""
    return await connect(url, "/visitor", {"widget_key": widget_key, **auth}, **(options or {}))


async def agent(url: str, token: str, **options: Any) -> Client:
    return await connect(url, "/agent", {"token": token}, **options)


def new_client_id() -> str:
    return str(uuid.uuid4())
