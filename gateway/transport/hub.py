"""The lean transport's shared parts: the upgrade handler, one flush timer, one ping timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from engineio import packet as eio_packet

from gateway.transport.frames import accept_key
from gateway.transport.socket import LeanSocket, packet_frame

log = logging.getLogger(__name__)

# the request headers a connection keeps (engineio's environ copies all of them)
KEPT_HEADERS = ("User-Agent", "Origin", "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP")


@dataclass(frozen=True, slots=True)
class LeanSettings:
    high_water: int = 1024 * 1024  # bytes buffered for one connection before it is dropped
    flush_delay: float = 0.001  # seconds fan-out frames may wait to be coalesced
    ping_sweep: float = 1.0  # seconds between sweeps of the shared ping timer


class LeanTransport:
    """Serves websocket connections of one engineio `AsyncServer` with `LeanSocket`s.

    `install` puts its upgrade handler in front of engineio's aiohttp route: a fresh
    websocket connection (`?EIO=4&transport=websocket`, no sid) is upgraded here and taken
    off aiohttp; everything else (polling, polling→websocket upgrades, bad requests) goes
    to engineio's stock `handle_request`.
    """

    def __init__(self, server: Any, settings: LeanSettings) -> None:
        self.server = server  # engineio.AsyncServer
        self.high_water = settings.high_water
        self.flush_delay = settings.flush_delay
        self.ping_sweep = settings.ping_sweep
        self.ping_interval = float(server.ping_interval)
        self.ping_timeout = float(server.ping_timeout)
        self.sockets: set[LeanSocket] = set()
        self._dirty: list[LeanSocket] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dropped_slow = 0
        self.upgrades = 0
        self.frames_coalesced = 0  # fan-out frames written …
        self.writes_coalesced = 0  # … in this many writes

    # --- wiring -------------------------------------------------------------------
    def install(self) -> None:
        """Route engineio's GET requests through `handle` (call before `sio.attach`)."""
        stock_create_route = self.server._async["create_route"]

        def create_route(app: web.Application, eio: Any, path: str) -> None:
            app.router.add_get(path, self.handle)
            app.router.add_post(path, eio.handle_request)
            app.router.add_route("OPTIONS", path, eio.handle_request)

        assert callable(stock_create_route)
        self.server._async = {**self.server._async, "create_route": create_route}

    async def shutdown(self) -> None:
        log.info("lean websocket transport: %s", self.stats())
        for h in (self._flush_handle, self._ping_handle):
            if h is not None:
                h.cancel()
        self._flush_handle = self._ping_handle = None
        for s in list(self.sockets):
            with contextlib.suppress(Exception):
                await s.close(abort=True, reason=self.server.reason.SERVER_DISCONNECT)

    def stats(self) -> dict[str, int]:
        return {"connections": len(self.sockets), "upgrades": self.upgrades, "dropped_slow": self.dropped_slow,
                "frames_coalesced": self.frames_coalesced, "writes_coalesced": self.writes_coalesced}

    # --- the upgrade --------------------------------------------------------------------
    def _wants_lean(self, request: web.Request) -> bool:
        q = request.query
        if q.get("transport") != "websocket" or "sid" in q or q.get("EIO") != "4" or "j" in q:
            return False
        if "websocket" not in self.server.transports:
            return False
        h = request.headers
        if h.get("Upgrade", "").lower() != "websocket" or "upgrade" not in h.get("Connection", "").lower():
            return False
        if h.get("Sec-WebSocket-Version") != "13" or not h.get("Sec-WebSocket-Key"):
            return False
        origin = h.get("Origin")
        if origin and self.server.cors_allowed_origins != []:
            allowed = self.server._cors_allowed_origins({"HTTP_ORIGIN": origin, "wsgi.url_scheme": "http",
                                                         "HTTP_HOST": h.get("Host", "")})
            if allowed is not None and origin not in allowed:
                return False  # the stock path answers with its 400
        transport = request.transport
        return transport is not None and hasattr(transport, "set_protocol")

    def _environ(self, request: web.Request) -> dict[str, Any]:
        # what the handshake needs, not engineio's WSGI-style copy of every header
        env: dict[str, Any] = {"REQUEST_METHOD": "GET", "REMOTE_ADDR": request.remote or ""}
        for name in KEPT_HEADERS:
            v = request.headers.get(name)
            if v is not None:
                env["HTTP_" + name.upper().replace("-", "_")] = v
        return env

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._wants_lean(request):
            resp: web.StreamResponse = await self.server.handle_request(request)
            return resp
        eio = self.server
        environ = self._environ(request)
        transport: Any = request.transport  # asyncio's or uvloop's transport (not an asyncio.Transport subclass)
        proto = request.protocol
        tail: bytes = getattr(proto, "_message_tail", b"")
        accept = accept_key(request.headers["Sec-WebSocket-Key"])
        # take the connection off aiohttp: it must neither write to nor close it again
        transport.pause_reading()
        proto.transport = None
        proto.connection_lost(None)
        sid = eio.generate_id()
        sock = LeanSocket(self, sid, int(eio.max_http_buffer_size))
        transport.set_protocol(sock)
        sock.connection_made(transport)
        transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n")
        self.upgrades += 1
        eio.sockets[sid] = sock
        self.sockets.add(sock)
        sock.write_frame(packet_frame(eio_packet.Packet(eio_packet.OPEN, {
            "sid": sid,
            "upgrades": [],
            "pingTimeout": int(eio.ping_timeout * 1000),
            "pingInterval": int(eio.ping_interval + eio.ping_interval_grace_period) * 1000,
            "maxPayload": eio.max_http_buffer_size,
        })))
        try:
            ok = await eio._trigger_event("connect", sid, environ, run_async=False)
        except Exception:
            log.exception("engine.io connect handler failed")
            ok = False
        if ok is not None and ok is not True:
            sock.closing = sock.closed = True
            sock.close_transport()
            self.forget(sock)
        else:
            self._start_ping_timer()
            if tail:
                sock.data_received(tail)
            if sock.transport is not None:
                transport.resume_reading()
        return _Detached()

    # --- callbacks from sockets -------------------------------------------------------
    def on_message(self, sock: LeanSocket, data: str | bytes) -> None:
        if len(data) > self.server.max_http_buffer_size:
            self.on_gone(sock, "transport")
            return
        self._run(self._message(sock.sid, data))

    async def _message(self, sid: str, data: str | bytes) -> None:
        handler = self.server.handlers.get("message")
        if handler is None:
            return
        try:
            await handler(sid, data)
        except Exception:
            log.exception("message handler error")

    def on_gone(self, sock: LeanSocket, why: str) -> None:
        if sock.closing or sock.closed:
            return
        reasons = self.server.reason
        reason = {"client": reasons.CLIENT_DISCONNECT, "ping_timeout": reasons.PING_TIMEOUT}.get(
            why, reasons.TRANSPORT_CLOSE)
        self._run(sock.close(abort=why != "ping_timeout", reason=reason))

    def on_overflow(self, sock: LeanSocket) -> None:
        """A consumer too slow to keep up: drop it (it resumes by (epoch, seq) later)."""
        if sock.closing or sock.closed:
            return
        self.dropped_slow += 1
        log.info("websocket %s: write buffer above %d bytes, dropping the connection", sock.sid, self.high_water)
        sock.abort()
        self.on_gone(sock, "transport")

    def forget(self, sock: LeanSocket) -> None:
        self.sockets.discard(sock)
        if self.server.sockets.get(sock.sid) is sock:
            del self.server.sockets[sock.sid]

    def mark_dirty(self, sock: LeanSocket) -> None:
        self._dirty.append(sock)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(self.flush_delay, self.flush_all)

    def flush_all(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for s in dirty:
            s.flush()

    # --- the shared ping timer ------------------------------------------------------------
    def _start_ping_timer(self) -> None:
        if self._ping_handle is None:
            self._ping_handle = asyncio.get_running_loop().call_later(self.ping_sweep, self._ping_sweep)

    def _ping_sweep(self) -> None:
        self._ping_handle = None
        now = time.monotonic()
        for s in list(self.sockets):
            s.ping_tick(now)
        if self.sockets:
            self._start_ping_timer()

    def _run(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Detached(web.StreamResponse):
    """What the upgrade handler returns: the connection is no longer aiohttp's."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None
