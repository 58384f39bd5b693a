"""An Engine.IO v4 server on aiohttp: sessions over HTTP long-polling and websockets.

HTTP is parsed by aiohttp; websocket frames by the `websockets` Sans-I/O layer
(`gateway.edge.ws`); JSON by orjson. What this module owns is the Engine.IO protocol
(https://socket.io/docs/v4/engine-io-protocol/): the handshake, the two transports and the
upgrade between them, heartbeats, and the limits every session is held to before it has
proved anything:

- every session counts against its address's connection cap (`Admission`) from its
  handshake until it closes;
- a session that has not joined a Socket.IO namespace within `connect_timeout` is closed;
- a polling POST is refused with 413 before its body is read when its declared length is
  over `max_payload`, and read no further than that otherwise; malformed bodies answer 400
  and close the session, with one debug log line;
- heartbeats run on one `TimerWheel`: a ping every `ping_interval` after the last pong, the
  session closed when no pong came within `ping_timeout`; the OPEN packet advertises both
  in milliseconds, as configured.

A websocket connection is taken off aiohttp once its upgrade request is parsed: its
transport gets a `WsConnection` protocol (no task per connection) through
`gateway.edge.listen`, which is why the application must be served by an `EdgeSite`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from websockets.frames import CloseCode
from websockets.utils import accept_key

from gateway.edge.listen import DIRECT_TAKER, DirectRequest, InnerTransport, detachable
from gateway.edge.turns import TurnBacklog, TurnBudget
from gateway.edge.wheel import TimerWheel
from gateway.edge.wire import (
    CLOSE,
    MESSAGE,
    NOOP,
    PING,
    PONG,
    UPGRADE,
    PacketError,
    decode_payload,
    open_packet,
    ws_frame,
)
from gateway.edge.ws import ParserPool, WsConnection

log = logging.getLogger(__name__)

PING_FRAME = ws_frame(PING.encode())
MAX_POLL_PACKETS = 1000  # packets in one polling POST

# Engine.IO's error codes (the reference server's `Server.errors`)
UNKNOWN_TRANSPORT, UNKNOWN_SID, BAD_HANDSHAKE_METHOD, BAD_REQUEST, FORBIDDEN, UNSUPPORTED_PROTOCOL_VERSION = range(6)
ERROR_MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


@dataclass(frozen=True, slots=True)
class EngineSettings:
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    connect_timeout: float = 10.0  # seconds a session may go without joining a namespace
    upgrade_timeout: float = 10.0  # seconds a polling→websocket upgrade may take
    max_payload: int = 1024 * 1024  # bytes of one message or polling POST body
    high_water: int = 1024 * 1024  # bytes buffered for one websocket before it is dropped
    flush_delay: float = 0.001  # seconds queued websocket frames may wait to be coalesced
    cors_origins: tuple[str, ...] = ("*",)  # origins allowed, or ("*",)
    # leaving connections whose handling may start in one turn of the loop; the rest wait
    dispatch_budget: int = 128
    # websocket reads parsed in one turn of the loop; the rest wait for the next turns
    read_budget: int = 256
    # seconds per tick of the heartbeat wheel, at most: see `heartbeat_tick`
    timer_resolution: float = 1.0
    timers_per_tick: int = 200  # heartbeats (pings, timeouts) handled per run of the wheel; the rest in the next turns


TICKS_PER_DEADLINE = 10  # the heartbeat tick is at most a tenth of the shortest deadline


def heartbeat_tick(s: EngineSettings) -> float:
    """Seconds per tick of the heartbeat wheel: `timer_resolution`, or a tenth of the
    shortest of `ping_interval`, `ping_timeout` and `connect_timeout` when that is less (a
    deadline then fires at most 10 % late; never early).

    A coarse tick is what makes idling cheap: the pings of every session due in one tick
    leave in one run of the wheel, so their pongs come back together and one wake-up of the
    loop reads many of them. With 15,000 idle connections on one process, pings spread over
    10 ms ticks cost 0.0162 cores per 10,000 connections, over 1 s ticks 0.0132
    (docs/performance.md); Engine.IO clients allow pingInterval + pingTimeout for a ping to
    come, so a ping up to one tick late is within the protocol."""
    deadlines = [d for d in (s.ping_interval, s.ping_timeout, s.connect_timeout) if d > 0]
    return min([s.timer_resolution, *(d / TICKS_PER_DEADLINE for d in deadlines)])


class Refusal(Exception):
    """An admission check's refusal of a handshake: answered `status` with `message`."""

    def __init__(self, status: int, message: str, retry_after: float | None = None,
                 context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.context = context


class Admission(Protocol):
    """Sessions per client address: `acquire` raises `Refusal` beyond the cap; every
    acquired session is released exactly once."""

    async def acquire(self, remote: str) -> None: ...

    def release(self, remote: str) -> None: ...


class EngineHandler(Protocol):
    """The layer above (Socket.IO): told of messages and of each session's end."""

    def on_message(self, session: Session, text: str) -> None: ...

    def on_close(self, session: Session, reason: str) -> None: ...


class Session:
    """One Engine.IO session, on long-polling or on a websocket."""

    __slots__ = (
        "_engine", "_more", "_ns", "_ns_sid", "closed", "connect_by", "next_ping", "origin", "outbox", "poll_get",
        "pong_by", "posting", "probe", "remote", "sid", "tick", "user_agent", "ws",
    )

    def __init__(self, engine: EngineServer, sid: str, remote: str, user_agent: str, origin: str) -> None:
        self._engine = engine
        self.sid = sid
        self.remote = remote
        self.user_agent = user_agent
        self.origin = origin
        self.ws: WsConnection | None = None  # the websocket carrying the session, once it has one
        self.probe: WsConnection | None = None  # a websocket being upgraded to
        self.outbox: list[bytes] | None = None  # polling: packets for the next GET
        self.poll_get: asyncio.Future[None] | None = None  # polling: the GET waiting for packets
        self.posting = False
        self.closed = False
        self.tick: object = None  # TimerWheel entry
        self.next_ping = 0.0  # when the next ping is due (0: waiting for a pong)
        self.pong_by = 0.0  # when the pong to the last ping is due (0: none awaited)
        self.connect_by = 0.0  # when the session must have joined a namespace (0: it has)
        # the Socket.IO layer's namespaces joined (namespace → its sid): the first in two
        # fields, the others (rare) in a dict
        self._ns: str | None = None
        self._ns_sid = ""
        self._more: dict[str, str] | None = None

    # --- the namespaces joined (kept here for the Socket.IO layer) --------------------
    def ns_get(self, ns: str) -> str | None:
        """The sid of namespace `ns` on this session, or None."""
        if ns == self._ns:
            return self._ns_sid
        more = self._more
        return None if more is None else more.get(ns)

    def ns_set(self, ns: str, sid: str) -> None:
        if self._ns is None or ns == self._ns:
            self._ns, self._ns_sid = ns, sid
        elif self._more is None:
            self._more = {ns: sid}
        else:
            self._more[ns] = sid

    def ns_pop(self, ns: str) -> str | None:
        if ns == self._ns:
            sid = self._ns_sid
            self._ns, self._ns_sid = None, ""
            return sid
        return None if self._more is None else self._more.pop(ns, None)

    def ns_take_all(self) -> list[tuple[str, str]]:
        """Every (namespace, sid) joined, forgotten here."""
        out = [] if self._ns is None else [(self._ns, self._ns_sid)]
        if self._more:
            out += self._more.items()
        self._ns, self._ns_sid, self._more = None, "", None
        return out

    @property
    def transport(self) -> str:
        return "polling" if self.ws is None else "websocket"

    # --- packets out ----------------------------------------------------------------
    def send(self, packet: bytes, *, now: bool = False) -> None:
        """Queue an Engine.IO packet (its text as UTF-8). On a websocket it is coalesced with
        the others queued unless `now`; on polling it goes out with the next GET."""
        ws = self.ws
        if ws is not None:
            frame = ws_frame(packet)
            if now:
                ws.write(frame)
            else:
                ws.queue(frame)
        elif not self.closed:
            self.poll_out(packet)

    def send_frame(self, frame: bytes, packet: bytes) -> None:
        """Queue `packet` using `frame`, its websocket frame built once for many sessions."""
        ws = self.ws
        if ws is not None:
            ws.queue(frame)
        elif not self.closed:
            self.poll_out(packet)

    def poll_out(self, packet: bytes) -> None:
        box = self.outbox
        if box is None:
            self.outbox = [packet]
        else:
            box.append(packet)
        waiter = self.poll_get
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take_outbox(self) -> list[bytes]:
        box, self.outbox = self.outbox, None
        return box or []

    # --- heartbeats and deadlines (TimerWheel) ---------------------------------------
    def schedule(self) -> None:
        """File the session in the wheel at its earliest deadline (none: not filed)."""
        if self.closed:
            return
        due = self.next_ping
        pong_by = self.pong_by
        if pong_by and (not due or pong_by < due):
            due = pong_by
        connect_by = self.connect_by
        if connect_by and (not due or connect_by < due):
            due = connect_by
        if due:
            self._engine.wheel.file(self, due)

    def on_time(self, now: float) -> None:
        if self.closed:  # a closed polling session whose client never came for its close packet
            self._engine.forget(self)
            return
        if self.connect_by and now >= self.connect_by:
            self._engine.close(self, "connect_timeout")
            return
        if self.pong_by and now >= self.pong_by:
            self._engine.close(self, "ping_timeout")
            return
        if self.next_ping and now >= self.next_ping:
            engine = self._engine
            self.next_ping = 0.0
            self.pong_by = engine.wheel.when(now + engine.settings.ping_timeout)
            ws = self.ws
            if ws is not None:
                ws.write(PING_FRAME)
            else:
                self.poll_out(PING.encode())
        self.schedule()

    def on_pong(self) -> None:
        if self.pong_by:
            self.pong_by = 0.0
            engine = self._engine
            wheel = engine.wheel
            self.next_ping = wheel.when(wheel.now() + engine.settings.ping_interval)
            self.schedule()

    def joined(self) -> None:
        """The session has joined a namespace: no connect deadline any more."""
        self.connect_by = 0.0


def error_response(code: int, status: int = 400, context: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """Engine.IO's error answer: `{"code": N, "message": "..."}` (and `context`)."""
    body: dict[str, Any] = {"code": code, "message": ERROR_MESSAGES[code]}
    if context:
        body["context"] = context
    return web.json_response(body, status=status, headers=headers)


class EngineServer:
    """Engine.IO sessions at `path` of an aiohttp application (`add_routes`)."""

    def __init__(self, settings: EngineSettings, handler: EngineHandler, *,
                 generate_id: Callable[[], str] | None = None, admission: Iterable[Admission] = ()) -> None:
        """`admission`: the checks every session passes at its handshake, in order (read at
        each handshake: the assembly may fill the collection before the server starts)."""
        self.settings = settings
        self.handler = handler
        self.generate_id = generate_id or _random_sid
        self.admission = admission
        self.sessions: dict[str, Session] = {}
        self.high_water = settings.high_water
        self.parsers = ParserPool(settings.max_payload)
        self.wheel = TimerWheel(heartbeat_tick(settings), per_tick=settings.timers_per_tick)
        self._allow_any_origin = "*" in settings.cors_origins
        self._origins = frozenset(settings.cors_origins)
        self._dirty: list[WsConnection] = []
        self._flush_handle: asyncio.Handle | None = None
        loop = self.wheel.running_loop
        self._read_turn = TurnBudget(settings.read_budget, loop)
        self.read_backlog: TurnBacklog[WsConnection] = TurnBacklog(settings.read_budget, WsConnection.receive_deferred,
                                                                   loop)
        self._dispatch_turn = TurnBudget(settings.dispatch_budget, loop)
        # (session, Socket.IO packet text or None: the session ended, why): waiting for a later turn
        self.dispatch_backlog: TurnBacklog[tuple[Session, str | None, str]] = TurnBacklog(
            settings.dispatch_budget, self._undefer, loop)
        self._held: dict[Session, int] = {}
        self._path = ""  # where add_routes put the engine
        self._prefix = b""  # the first bytes of the requests offered to it (`prefix`)
        self._taking: set[asyncio.Task[None]] = set()  # websocket handshakes taken off aiohttp, being admitted
        self.draining = False
        # counters
        self.handshakes = 0
        self.upgrades = 0
        self.dropped_slow = 0
        self.refused = 0
        self.timeouts: dict[str, int] = {"connect_timeout": 0, "ping_timeout": 0}
        self.bad_requests = 0
        self.frames_coalesced = 0
        self.writes_coalesced = 0

    def add_routes(self, app: web.Application, path: str) -> None:
        """Serve Engine.IO at `path` of `app`; served through an `EdgeSite`, a new
        websocket session's handshake is answered without aiohttp (`offer`)."""
        app.router.add_route("*", path, self.handle)
        self._path = path
        self._prefix = f"GET {path}?".encode("latin-1")
        app[DIRECT_TAKER] = self

    # --- a new websocket session, taken off aiohttp (gateway.edge.listen.DirectTaker) ------
    @property
    def prefix(self) -> bytes:
        return self._prefix

    def offer(self, request: DirectRequest) -> bool:
        """Take a websocket handshake that opens a session (no `sid`) when nothing about it
        is unusual; anything else — another method or query, an origin not allowed, a
        malformed upgrade, a refusal by an admission check — is left to (or declined back
        to) `handle` on aiohttp, which answers it as it always has."""
        head = request.head
        if head.method != "GET":
            return False
        url = urlsplit(head.target)
        if url.path != self._path:
            return False
        q = parse_qs(url.query, keep_blank_values=True)
        if q.get("EIO") != ["4"] or q.get("transport") != ["websocket"] or "sid" in q or "j" in q:
            return False
        h = head.headers
        origin = h.get("origin", "")
        if origin and not self._origin_allowed(origin):
            return False
        key = h.get("sec-websocket-key", "")
        if not (h.get("upgrade", "").lower() == "websocket" and "upgrade" in h.get("connection", "").lower()
                and h.get("sec-websocket-version") == "13" and _valid_key(key)):
            return False
        task = self.wheel.running_loop().create_task(self._take(request, key, h.get("user-agent", ""), origin))
        self._taking.add(task)
        task.add_done_callback(self._taking.discard)
        return True

    async def _take(self, request: DirectRequest, key: str, user_agent: str, origin: str) -> None:
        remote = sys.intern(request.peer)
        try:
            await self._admit(remote)
        except Exception:  # a Refusal, or a check that failed: aiohttp's way asks again, answers, counts and logs
            request.decline()
            return
        except BaseException:  # cancelled (a shutdown): aiohttp's way answers or closes it
            request.decline()
            raise
        if request.lost:
            self._release(remote)
            return
        session = self._new_session(remote, user_agent, origin)
        conn = WsConnection(self, session)
        transport = request.detach(conn)
        transport.write(_switching(key) + self._open_frame(session))
        session.ws = conn
        transport.resume_reading()
        if request.rest:
            conn.data_received(request.rest)

    def stats(self) -> dict[str, int]:
        return {"sessions": len(self.sessions), "handshakes": self.handshakes, "upgrades": self.upgrades,
                "dropped_slow": self.dropped_slow, "refused": self.refused, "bad_requests": self.bad_requests,
                "frames_coalesced": self.frames_coalesced, "writes_coalesced": self.writes_coalesced,
                "dispatch_deferred": self.dispatch_backlog.deferred, "reads_deferred": self.read_backlog.deferred,
                **self.timeouts}

    # --- HTTP ----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        origin = request.headers.get("Origin")
        if origin and not self._origin_allowed(origin):
            return self._bad(BAD_REQUEST, "origin not allowed", {"message": "Not an accepted origin."})
        cors = self._cors_headers(origin)
        if request.method == "OPTIONS":
            return self._preflight(request, cors)
        if q.get("EIO") != "4":
            return self._bad(UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version", headers=cors)
        transport = q.get("transport")
        if transport not in ("polling", "websocket"):
            return self._bad(UNKNOWN_TRANSPORT, "unknown transport", headers=cors)
        if "j" in q:  # JSONP polling is not served
            return self._bad(BAD_REQUEST, "JSONP", headers=cors)
        sid = q.get("sid")
        if sid is None:
            if request.method != "GET":
                return self._bad(BAD_HANDSHAKE_METHOD, "handshake not a GET", headers=cors)
            return await self._handshake(request, transport, cors)
        session = self.sessions.get(sid)
        if session is not None and session.closed and not (request.method == "GET" and transport == "polling"):
            self.forget(session)  # only the GET that fetches its close packet finds a closed session
            session = None
        if session is None:
            return self._bad(UNKNOWN_SID, "unknown session", headers=cors)
        if transport == "websocket":
            if request.method != "GET" or session.ws is not None or session.probe is not None \
                    or not _is_upgrade(request):
                return self._bad(BAD_REQUEST, "bad upgrade", headers=cors)
            return await self._upgrade(request, session)
        if session.ws is not None:
            return self._bad(BAD_REQUEST, "polling on an upgraded session", headers=cors)
        if request.method == "GET":
            return await self._poll(request, session, cors)
        if request.method == "POST":
            return await self._post(request, session, cors)
        return self._bad(BAD_HANDSHAKE_METHOD, "method not allowed", headers=cors)

    def _bad(self, code: int, why: str, context: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> web.Response:
        self.bad_requests += 1
        log.debug("engine.io request refused: %s", why)
        return error_response(code, 403 if code == FORBIDDEN else 400, context, headers)

    def _origin_allowed(self, origin: str) -> bool:
        return self._allow_any_origin or origin in self._origins

    @staticmethod
    def _cors_headers(origin: str | None) -> dict[str, str]:
        if not origin:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}

    @staticmethod
    def _preflight(request: web.Request, cors: dict[str, str]) -> web.Response:
        headers = {**cors, "Access-Control-Allow-Methods": "OPTIONS, GET, POST"}
        wanted = request.headers.get("Access-Control-Request-Headers")
        if wanted:
            headers["Access-Control-Allow-Headers"] = wanted[:1024]
        return web.Response(status=204, headers=headers)

    async def _handshake(self, request: web.Request, transport: str, cors: dict[str, str]) -> web.StreamResponse:
        if transport == "websocket" and not _is_upgrade(request):
            return self._bad(BAD_REQUEST, "websocket handshake without an upgrade", headers=cors)
        remote = sys.intern(request.remote or "")
        try:
            await self._admit(remote)
        except Refusal as exc:
            self.refused += 1
            headers = dict(cors)
            if exc.retry_after is not None:
                headers["Retry-After"] = str(max(1, round(exc.retry_after)))
            body: dict[str, Any] = {"code": FORBIDDEN, "message": exc.message}
            if exc.context:
                body["context"] = exc.context
            return web.json_response(body, status=exc.status, headers=headers)
        h = request.headers
        session = self._new_session(remote, h.get("User-Agent", ""), h.get("Origin", ""))
        if transport == "polling":
            s = self.settings
            body_text = open_packet(session.sid, ["websocket"], s.ping_interval, s.ping_timeout, s.max_payload)
            return web.Response(text=body_text, content_type="text/plain", headers=cors)
        # the 101 answer and the open packet leave in one write
        conn = self._take_over(request, session, self._open_frame(session))
        if conn is None:
            self._close_answered(session)
            return self._bad(BAD_REQUEST, "cannot take the connection over", headers=cors)
        session.ws = conn
        conn.transport.resume_reading()
        return _Detached()

    async def _admit(self, remote: str) -> None:
        """Pass every admission check, or raise (a `Refusal`, a cancellation) with none held."""
        acquired: list[Admission] = []
        try:
            for check in self.admission:
                await check.acquire(remote)
                acquired.append(check)
        except BaseException:
            for check in reversed(acquired):
                check.release(remote)
            raise

    def _release(self, remote: str) -> None:
        """Release what `_admit` acquired (a session's end, or one that never began)."""
        for check in self.admission:
            check.release(remote)

    def _new_session(self, remote: str, user_agent: str, origin: str) -> Session:
        """A session admitted (its admission acquired), filed with its first ping and its
        connect deadline."""
        session = Session(self, self.generate_id(), remote, user_agent[:200], origin[:200])
        self.sessions[session.sid] = session
        self.handshakes += 1
        now = self.wheel.now()
        s = self.settings
        session.next_ping = self.wheel.when(now + s.ping_interval)
        session.connect_by = self.wheel.when(now + s.connect_timeout) if s.connect_timeout > 0 else 0.0
        session.schedule()
        return session

    def _open_frame(self, session: Session) -> bytes:
        """The OPEN packet of a session opened on a websocket, as a frame."""
        s = self.settings
        return ws_frame(open_packet(session.sid, [], s.ping_interval, s.ping_timeout, s.max_payload).encode())

    def _take_over(self, request: web.Request, session: Session, first: bytes = b"") -> WsConnection | None:
        """Answer the upgrade and move the connection from aiohttp to a `WsConnection`
        (reading paused: the caller resumes it); `first` (a websocket frame) is written with
        the 101 answer. None when the connection cannot be taken over (not served through an
        `EdgeSite`, closing) or the key is malformed."""
        inner = detachable(request)
        if inner is None:
            return None
        key = request.headers.get("Sec-WebSocket-Key", "")
        if not _valid_key(key):
            return None
        conn = WsConnection(self, session)
        transport = inner.detach(conn)
        transport.write(_switching(key) + first)
        return conn

    async def _upgrade(self, request: web.Request, session: Session) -> web.StreamResponse:
        conn = self._take_over(request, session)
        if conn is None:
            return self._bad(BAD_REQUEST, "cannot take the connection over")
        session.probe = conn
        self.upgrades += 1
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.settings.upgrade_timeout, self._upgrade_timed_out, session, conn)
        conn.session = (session, timer)
        conn.transport.resume_reading()
        return _Detached()

    def _upgrade_timed_out(self, session: Session, conn: WsConnection) -> None:
        if session.probe is conn:
            session.probe = None
            conn.abort()

    async def _poll(self, request: web.Request, session: Session, cors: dict[str, str]) -> web.StreamResponse:
        if session.poll_get is not None:
            self._close_answered(session)
            return self._bad(BAD_REQUEST, "concurrent polling GET", headers=cors)
        if not session.outbox and not session.closed:
            waiter = session.poll_get = asyncio.get_running_loop().create_future()
            inner = request.transport
            if isinstance(inner, InnerTransport):  # a client gone while it waits frees the poll
                inner.on_lost(lambda: None if waiter.done() else waiter.set_result(None))
            try:
                await waiter
            finally:
                session.poll_get = None
            t = request.transport
            if t is None or t.is_closing():  # nobody to answer: the packets wait for the next GET
                return web.Response(status=499)
            if session.ws is not None:  # upgraded meanwhile: its packets go to the websocket
                return web.Response(body=NOOP.encode(), content_type="text/plain", charset="UTF-8", headers=cors)
        body = b"\x1e".join(session.take_outbox())
        if session.closed:
            self.forget(session)
        return web.Response(body=body, content_type="text/plain", charset="UTF-8", headers=cors)

    async def _post(self, request: web.Request, session: Session, cors: dict[str, str]) -> web.StreamResponse:
        limit = self.settings.max_payload
        if request.content_length is not None and request.content_length > limit:
            self.bad_requests += 1
            return web.json_response({"code": BAD_REQUEST, "message": "Payload too large"}, status=413,
                                     headers={**cors, "Connection": "close"})
        if session.posting:
            self._close_answered(session)
            return self._bad(BAD_REQUEST, "concurrent polling POST", headers=cors)
        session.posting = True
        try:
            body = await _read_bounded(request, limit)
        finally:
            session.posting = False
        if body is None:
            self.bad_requests += 1
            return web.json_response({"code": BAD_REQUEST, "message": "Payload too large"}, status=413,
                                     headers={**cors, "Connection": "close"})
        try:
            packets = decode_payload(body.decode("utf-8"), MAX_POLL_PACKETS)
        except (UnicodeDecodeError, PacketError) as exc:
            self._close_answered(session)
            return self._bad(BAD_REQUEST, f"malformed polling body: {exc}", headers=cors)
        for packet in packets:
            if session.closed:
                break
            if not self._on_packet(session, packet):
                self._close_answered(session)
                return self._bad(BAD_REQUEST, "unexpected packet on polling", headers=cors)
        return web.Response(text="ok", content_type="text/html", headers=cors)

    # --- packets in ------------------------------------------------------------------
    def _on_packet(self, session: Session, packet: str) -> bool:
        """Handle one Engine.IO packet of an open session; False when it breaks the protocol."""
        kind = packet[:1]
        if kind == PONG:  # every idle session's, every ping interval: first
            session.on_pong()
        elif kind == MESSAGE:
            self.on_message(session, packet[1:])
        elif kind == CLOSE:
            self.close(session, "client", client_closed=True)
        elif kind == NOOP:
            pass
        else:  # OPEN, PING (the server pings in v4), UPGRADE outside an upgrade, garbage
            return False
        return True

    # from WsConnection (the WsOwner protocol)
    def on_text(self, conn: WsConnection, text: str) -> None:
        owner = conn.session
        if isinstance(owner, tuple):  # a probe: polling → websocket upgrade in progress
            self._on_probe(conn, owner[0], owner[1], text)
            return
        session: Session = owner
        if session.closed:
            return
        if not text or not self._on_packet(session, text):
            log.debug("engine.io session %s: bad packet on the websocket", session.sid)
            self.close(session, "transport")

    def _on_probe(self, conn: WsConnection, session: Session, timer: asyncio.TimerHandle, text: str) -> None:
        if session.closed or session.probe is not conn:
            conn.abort()
            return
        if text == PING + "probe":
            conn.write(ws_frame(b"3probe"))
            session.poll_out(NOOP.encode())  # ends the pending GET, so the client can pause polling
        elif text == UPGRADE:
            timer.cancel()
            session.probe = None
            conn.session = session
            session.ws = conn
            box = session.take_outbox()
            for packet in box:
                if packet != NOOP.encode():
                    conn.queue(ws_frame(packet))
            waiter = session.poll_get
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            timer.cancel()
            session.probe = None
            conn.abort()

    def on_binary(self, conn: WsConnection, data: bytes) -> None:
        owner = conn.session
        if isinstance(owner, tuple):
            conn.abort()
            return
        log.debug("engine.io session %s: binary message refused", owner.sid)
        conn.fail(CloseCode.UNSUPPORTED_DATA, "binary messages are not accepted")

    def on_closed(self, conn: WsConnection, why: str) -> None:
        owner = conn.session
        if isinstance(owner, tuple):
            session, timer = owner
            timer.cancel()
            if session.probe is conn:
                session.probe = None
            return
        self.on_gone(owner, why)

    def read_admitted(self) -> bool:
        return self._read_turn.take()

    def defer_read(self, conn: WsConnection) -> None:
        self.read_backlog.push(conn)

    def count_coalesced(self, frames: int) -> None:
        self.frames_coalesced += frames
        self.writes_coalesced += 1

    def mark_dirty(self, conn: WsConnection) -> None:
        self._dirty.append(conn)
        if self._flush_handle is None:
            self._flush_handle = self.wheel.running_loop().call_later(self.settings.flush_delay, self._flush_due)

    def _flush_due(self) -> None:
        # behind the callbacks already ready, so that a task woken in the same turn queues
        # its frames before the flush rather than into a second write
        self._flush_handle = self.wheel.running_loop().call_soon(self.flush_all)

    def flush_all(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    def on_overflow(self, conn: WsConnection) -> None:
        """A reader too slow to keep up: drop it (its client resumes by (epoch, seq))."""
        owner = conn.session
        if conn.closed:
            return
        self.dropped_slow += 1
        log.info("websocket above %d buffered bytes: dropping the connection", self.high_water)
        conn.abort()
        if not isinstance(owner, tuple):
            self.on_gone(owner, "transport")

    # --- dispatch, spread over turns in storms ----------------------------------------
    # A DISCONNECT packet and a session's end start work in the Socket.IO layer; when many
    # connections leave at once, at most `dispatch_budget` of them start per turn of the
    # loop and the rest wait in `dispatch_backlog`, in arrival order. Other messages of a
    # session with something waiting queue behind it, so each session's packets keep
    # their order.
    def on_message(self, session: Session, text: str) -> None:
        if self._held and session in self._held:
            self._defer(session, text, "")
        elif text[:1] == "1":  # a Socket.IO DISCONNECT
            if self._admitted():
                self.handler.on_message(session, text)
            else:
                self._defer(session, text, "")
        else:
            self.handler.on_message(session, text)

    def on_gone(self, session: Session, why: str) -> None:
        if session.closed:
            return
        if self._admitted():
            self.close(session, why)
        else:
            self._defer(session, None, why)

    def _admitted(self) -> bool:
        return not self.dispatch_backlog and self._dispatch_turn.take()

    def _defer(self, session: Session, text: str | None, why: str) -> None:
        self.dispatch_backlog.push((session, text, why))
        self._held[session] = self._held.get(session, 0) + 1

    def _undefer(self, item: tuple[Session, str | None, str]) -> None:
        session, text, why = item
        n = self._held.pop(session)
        if n > 1:
            self._held[session] = n - 1
        if session.closed:
            return
        if text is None:
            self.close(session, why)
        else:
            self.handler.on_message(session, text)

    # --- closing ----------------------------------------------------------------------
    def close(self, session: Session, reason: str, *, client_closed: bool = False,
              code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """End `session` (idempotent): its websocket gets a close frame `code`, a waiting
        polling GET gets a close packet (a noop when the client closed it), the address's
        place is released and the layer above is told."""
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.sid, None)
        self.wheel.cancel(session)
        if reason in self.timeouts:
            self.timeouts[reason] += 1
        ws, probe = session.ws, session.probe
        session.probe = None
        if ws is not None:
            ws.close(code) if reason != "transport" else ws.abort()
        if probe is not None:
            probe.abort()
        waiter = session.poll_get
        if ws is None:  # polling: the client learns of the end from its next (or waiting) GET
            session.outbox = [*(session.outbox or ()), (NOOP if client_closed else CLOSE).encode()]
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            elif not client_closed:  # kept until that GET comes, or for a heartbeat's length
                self.sessions[session.sid] = session
                self.wheel.file(session, self.wheel.now() + self.settings.ping_interval + self.settings.ping_timeout)
        self._release(session.remote)
        try:
            self.handler.on_close(session, reason)
        except Exception:
            log.exception("closing session %s failed", session.sid)

    def _close_answered(self, session: Session) -> None:
        """Close a polling session whose end this very request answers (400): it is not
        kept for a later GET."""
        self.close(session, "transport")
        self.forget(session)

    def forget(self, session: Session) -> None:
        """Drop a closed session's entry (kept for its client's last GET)."""
        self.wheel.cancel(session)
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    def close_all(self, reason: str, code: int = CloseCode.GOING_AWAY) -> int:
        """Close every session (a drain or a shutdown); how many there were."""
        sessions = [s for s in self.sessions.values() if not s.closed]
        for s in sessions:
            self.close(s, reason, code=code)
        self.flush_all()
        return len(sessions)

    async def shutdown(self) -> None:
        log.info("engine.io: %s", self.stats())
        for task in list(self._taking):
            task.cancel()
        self.dispatch_backlog.clear()
        self.read_backlog.clear()
        self._held.clear()
        self.close_all("server_shutdown")
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.wheel.close()


def _random_sid() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


def _valid_key(key: str) -> bool:
    """A Sec-WebSocket-Key: base64 of 16 bytes."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (ValueError, binascii.Error):
        return False


def _switching(key: str) -> bytes:
    """The 101 answer to a websocket upgrade with `key`."""
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n")


def _is_upgrade(request: web.Request) -> bool:
    h = request.headers
    return (h.get("Upgrade", "").lower() == "websocket" and "upgrade" in h.get("Connection", "").lower()
            and h.get("Sec-WebSocket-Version") == "13" and "Sec-WebSocket-Key" in h)


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None once it passes `limit` bytes (read no further)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


class _Detached(web.StreamResponse):
    """What the upgrade handler returns: the connection is no longer aiohttp's."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None

