"""The lean transport's shared parts: the upgrade handler, one flush timer, one ping timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from aiohttp import web
from engineio import packet as eio_packet

from gateway.tasks import TaskSet
from gateway.transport.frames import accept_key
from gateway.transport.sender import SendThread, sender_available
from gateway.transport.socket import LeanSocket, json_packet_frame, packet_frame

log = logging.getLogger(__name__)

# the request headers a connection keeps (engineio's environ copies all of them)
KEPT_HEADERS = ("User-Agent", "Origin", "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP")
_KEPT_KEYS = tuple("HTTP_" + name.upper().replace("-", "_") for name in KEPT_HEADERS)


class LeanEnviron(Mapping[str, Any]):
    """The WSGI-style environ python-socketio keeps per connection (`AsyncServer.environ`),
    holding only what the handshake reads: `REQUEST_METHOD`, `REMOTE_ADDR` and the kept
    headers, in one small object instead of a dict."""

    __slots__ = ("_headers", "_remote")

    def __init__(self, remote: str, headers: tuple[str | None, ...] | None) -> None:
        self._remote = remote
        self._headers = headers  # values of _KEPT_KEYS (None when absent), or None: no header

    def __getitem__(self, key: str) -> Any:
        if key == "REMOTE_ADDR":
            return self._remote
        if key == "REQUEST_METHOD":
            return "GET"
        h = self._headers
        if h is not None and key in _KEPT_KEYS:
            v = h[_KEPT_KEYS.index(key)]
            if v is not None:
                return v
        raise KeyError(key)

    def _keys(self) -> list[str]:
        keys = ["REQUEST_METHOD", "REMOTE_ADDR"]
        if self._headers is not None:
            keys += [k for k, v in zip(_KEPT_KEYS, self._headers, strict=True) if v is not None]
        return keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __repr__(self) -> str:
        return f"LeanEnviron({dict(self)!r})"


@dataclass(frozen=True, slots=True)
class LeanSettings:
    high_water: int = 1024 * 1024  # bytes buffered for one connection before it is dropped
    flush_delay: float = 0.001  # seconds fan-out frames may wait to be coalesced
    ping_sweep: float = 1.0  # seconds between sweeps of the shared ping timer
    send_thread: bool = False  # socket writes on the C send thread (sender.py) when built
    # leaving connections (DISCONNECT packets and ends) whose handling may start in one turn
    # of the loop; the rest wait, in arrival order, for the next turns (`LeanTransport.on_message`)
    dispatch_budget: int = 128
    # reads (data_received calls) parsed at once in one turn of the loop; the sockets read
    # beyond it keep their bytes and are parsed in later turns (`LeanTransport.read_admitted`)
    read_budget: int = 256


T = TypeVar("T")


class TurnBudget:
    """At most `size` admissions per turn of the event loop: the count starts over once the
    turn's callbacks have run (a `call_soon` scheduled by the turn's first admission)."""

    __slots__ = ("size", "used")

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.used = 0

    def take(self) -> bool:
        """Count one admission in this turn; False when the turn's budget is spent."""
        n = self.used
        if n >= self.size:
            return False
        if not n:
            asyncio.get_running_loop().call_soon(self._start_over)
        self.used = n + 1
        return True

    def _start_over(self) -> None:
        self.used = 0


class TurnBacklog(Generic[T]):
    """What waits for later turns of the event loop: `run` takes `size` items per turn, in
    arrival order, beginning with the turn after the first one waited."""

    def __init__(self, size: int, run: Callable[[T], None]) -> None:
        self.size = max(1, size)
        self._run = run
        self._items: deque[T] = deque()
        self._handle: asyncio.Handle | None = None
        self.deferred = 0  # items that waited
        self.longest = 0  # the most that waited at once

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        q = self._items
        q.append(item)
        self.deferred += 1
        if len(q) > self.longest:
            self.longest = len(q)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._handle = None
        q = self._items
        run = self._run
        for _ in range(min(len(q), self.size)):
            run(q.popleft())
        if q and self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._drain)

    def clear(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._items.clear()


PING_SLICES = 10
PINGS_PER_SLICE = 200  # at most 2,000 pings/s with the default 1 s sweep


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
        self._send_thread = settings.send_thread and sender_available()
        self.sender: SendThread | None = None  # started with the first connection
        self.ping_interval = float(server.ping_interval)
        self.ping_timeout = float(server.ping_timeout)
        self.max_message = int(server.max_http_buffer_size)
        self._next_due: tuple[float, float] | None = None  # (now, now + ping_interval), shared
        self._dirty: list[LeanSocket] = []
        self._flush_handle: asyncio.Handle | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._ping_slice = 0
        self._ping_snapshot: list[LeanSocket] = []
        self._tasks = TaskSet()
        self.dropped_slow = 0
        self.upgrades = 0
        # Socket.IO's fast path for events (SafeAsyncServer.event_task): given the engineio
        # sid and a text packet, the coroutine that handles it, True when it was taken
        # without one (queued for a batch), or None for the stock path
        self.event_task: Callable[[str, str], Awaitable[None] | Literal[True] | None] | None = None
        self.fast_events = 0  # text packets that took it
        self.frames_coalesced = 0  # fan-out frames written …
        self.writes_coalesced = 0  # … in this many writes
        self._dispatch_turn = TurnBudget(settings.dispatch_budget)  # DISCONNECT packets and ends, this turn
        # (socket, packet, "") or (socket, None, why it went): waiting for a later turn (storms)
        self.dispatch_backlog: TurnBacklog[tuple[LeanSocket, str | bytes | None, str]] = TurnBacklog(
            settings.dispatch_budget, self._undefer)
        self._held: dict[LeanSocket, int] = {}  # sockets with items in the backlog: how many
        self._read_turn = TurnBudget(settings.read_budget)  # reads parsed as they arrive, this turn
        # sockets whose bytes wait to be parsed
        self.read_backlog: TurnBacklog[LeanSocket] = TurnBacklog(settings.read_budget, LeanSocket.receive_deferred)

    @property
    def sockets(self) -> list[LeanSocket]:
        """The live lean sockets: those of engineio's `sockets` (no second index per connection)."""
        return [s for s in self.server.sockets.values() if type(s) is LeanSocket]

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
        self.dispatch_backlog.clear()  # their connections are closed next
        self.read_backlog.clear()
        self._held.clear()
        self._flush_handle = self._ping_handle = None
        for s in self.sockets:
            with contextlib.suppress(Exception):
                await s.close(abort=True, reason=self.server.reason.SERVER_DISCONNECT)
        if self.sender is not None:
            self.sender.close()
            self.sender = None

    def stats(self) -> dict[str, int]:
        out = {"connections": len(self.sockets), "upgrades": self.upgrades, "dropped_slow": self.dropped_slow,
               "frames_coalesced": self.frames_coalesced, "writes_coalesced": self.writes_coalesced,
               "dispatch_deferred": self.dispatch_backlog.deferred,
               "dispatch_backlog_max": self.dispatch_backlog.longest,
               "reads_deferred": self.read_backlog.deferred, "read_backlog_max": self.read_backlog.longest}
        if self.sender is not None:
            out.update(self.sender.stats())
        return out

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

    def _environ(self, request: web.Request) -> LeanEnviron:
        # what the handshake needs, not engineio's WSGI-style copy of every header; the
        # address is interned (many connections share one client or proxy address)
        h = request.headers
        values = tuple(h.get(name) for name in KEPT_HEADERS)
        return LeanEnviron(sys.intern(request.remote or ""),
                           values if any(v is not None for v in values) else None)

    def next_ping_due(self) -> float:
        """When a socket connected now gets its first ping: one float shared by all the
        sockets connected within one sweep (the sweep's granularity rounds it anyway)."""
        now = time.monotonic()
        nd = self._next_due
        if nd is None or now - nd[0] >= self.ping_sweep:
            nd = self._next_due = (now, now + self.ping_interval)
        return nd[1]

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
        if self._send_thread and self.sender is None:
            self.sender = SendThread(asyncio.get_running_loop())
        sid = eio.generate_id()
        sock = LeanSocket(self, sid, self.max_message)
        transport.set_protocol(sock)
        sock.connection_made(transport)
        transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n")
        self.upgrades += 1
        eio.sockets[sid] = sock
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
    # Connections leaving in a storm. Each leaving connection's DISCONNECT packet (`41`) and
    # its end are a task each, whose first step runs in the same turn of the loop: 10,000
    # clients leaving at once (a network blip, a deploy of the page) ran 20,000 of them in
    # one turn (measured: the loop stalled 0.8 s, every other connection's messages behind
    # it). At most `dispatch_budget` of them are dispatched per turn; the rest wait in
    # `dispatch_backlog`, in arrival order, for the next turns. Other packets are dispatched at once,
    # except those of a connection that has something waiting (`_held`): they queue behind
    # it, so each connection's packets are still dispatched in the order it sent them (a
    # namespace's DISCONNECT before the CONNECT that reopens it on the same connection).
    def on_message(self, sock: LeanSocket, data: str | bytes) -> None:
        if self._held and sock in self._held:
            self._defer(sock, data, "")
        elif type(data) is str and data[:1] == "1":  # a Socket.IO DISCONNECT
            if self._admitted():
                self._dispatch(sock, data)
            else:
                self._defer(sock, data, "")
        else:
            self._dispatch(sock, data)

    def on_gone(self, sock: LeanSocket, why: str) -> None:
        """The connection ended (`why`: client, transport, ping_timeout): its disconnect
        runs as a task, admitted as DISCONNECT packets are (`on_message`)."""
        if sock.closing or sock.closed:
            return
        if self._admitted():
            self._gone(sock, why)
        else:
            self._defer(sock, None, why)

    def _dispatch(self, sock: LeanSocket, data: str | bytes) -> None:
        if len(data) > self.server.max_http_buffer_size:
            self._gone(sock, "transport")
            return
        fast = self.event_task
        if fast is not None and type(data) is str:
            task = fast(sock.sid, data)
            if task is not None:
                self.fast_events += 1
                if task is not True:
                    self._run(task)
                return
        self._run(self._message(sock.sid, data))

    def _admitted(self) -> bool:
        """Whether a leaving connection's packet or end may be dispatched now (counted
        against this turn's budget); False: it waits in the backlog."""
        return not self.dispatch_backlog and self._dispatch_turn.take()

    def _defer(self, sock: LeanSocket, data: str | bytes | None, why: str) -> None:
        self.dispatch_backlog.push((sock, data, why))
        self._held[sock] = self._held.get(sock, 0) + 1

    def _undefer(self, item: tuple[LeanSocket, str | bytes | None, str]) -> None:
        """Dispatch what waited in the backlog (its turn came). What a connection sent before
        it closed is skipped once it is closing, as `LeanSocket.data_received` stops at a close."""
        sock, data, why = item
        held = self._held
        n = held.pop(sock)
        if n > 1:
            held[sock] = n - 1
        if sock.closing or sock.closed:
            return
        if data is None:
            self._gone(sock, why)
        else:
            self._dispatch(sock, data)

    # Reads in a storm. libuv hands every socket that became readable to one poll phase, and
    # each `data_received` parsed its frames there: 10,000 clients leaving at once made one
    # phase of 10,000 parses, close-frame replies and DISCONNECT packets (the loop stalled
    # 160-610 ms after the dispatch budget above; `data_received` 29 % of the storm's
    # samples). Now at most `read_budget` reads are parsed per turn as they arrive; a socket
    # read beyond that keeps its bytes (`LeanSocket._inbox`, reading paused past
    # `INBOX_PAUSE`) and waits in `read_backlog`, parsed `read_budget` at a time in the
    # next turns, its later bytes and its end behind them. Sockets with nothing waiting
    # are parsed at once up to the budget, so the connections that stay are not held
    # behind the storm.
    def read_admitted(self) -> bool:
        """Whether a socket's read may be parsed now (counted against this turn's budget)."""
        return self._read_turn.take()

    def defer_read(self, sock: LeanSocket) -> None:
        """`sock`'s bytes wait for a later turn (`LeanSocket.receive_deferred`)."""
        self.read_backlog.push(sock)

    def send_ack(self, eio_sid: str, namespace: str, ack_id: int, data: list[Any]) -> bool:
        """Queue a Socket.IO ACK to a lean socket, encoded straight to its frame (behind what
        is already queued for it, like `LeanSocket.send`). False when `eio_sid` is not a
        lean socket or the payload is not JSON: the caller takes the stock path."""
        sock = self.server.sockets.get(eio_sid)
        if type(sock) is not LeanSocket:
            return False
        frame = json_packet_frame(b"43", namespace, data, ack_id)
        if frame is None:
            return False
        sock.queue(frame)
        return True

    async def _message(self, sid: str, data: str | bytes) -> None:
        handler = self.server.handlers.get("message")
        if handler is None:
            return
        try:
            await handler(sid, data)
        except Exception:
            log.exception("message handler error")

    def _gone(self, sock: LeanSocket, why: str) -> None:
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
        if self.server.sockets.get(sock.sid) is sock:
            del self.server.sockets[sock.sid]

    def mark_dirty(self, sock: LeanSocket) -> None:
        self._dirty.append(sock)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(self.flush_delay, self._flush_due)

    def _flush_due(self) -> None:
        # Behind the callbacks already ready: a task woken in the loop turn that queued the
        # first frame (the broker's delivery of a message whose ack is queued) queues its
        # frames before the flush instead of into a second write.
        self._flush_handle = asyncio.get_running_loop().call_soon(self.flush_all)

    def flush_all(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for s in dirty:
            s.flush()

    # --- the shared ping timer ------------------------------------------------------------
    # A sweep is cut into PING_SLICES slices run ping_sweep / PING_SLICES apart, each over
    # every PING_SLICES-th socket of a snapshot taken at the first slice, and a slice sends
    # at most PINGS_PER_SLICE pings (the rest stay due for the next sweep: the client
    # tolerates pingInterval + pingTimeout). Connections made in a burst (a deploy, a
    # reconnect storm) would otherwise all come due in one sweep: thousands of writes in
    # one loop iteration, measured as 50-90 ms stalls with 10,000 connections.
    def _start_ping_timer(self) -> None:
        if self._ping_handle is None:
            self._ping_handle = asyncio.get_running_loop().call_later(
                self.ping_sweep / PING_SLICES, self._ping_sweep)

    def _ping_sweep(self) -> None:
        self._ping_handle = None
        now = time.monotonic()
        next_due = now + self.ping_interval
        if self._ping_slice == 0:
            self._ping_snapshot = self.sockets
        budget = PINGS_PER_SLICE
        for s in self._ping_snapshot[self._ping_slice::PING_SLICES]:
            if s.ping_tick(now, next_due, budget > 0):
                budget -= 1
        self._ping_slice = (self._ping_slice + 1) % PING_SLICES
        if self._ping_slice == 0:
            self._ping_snapshot = []
        if self._ping_snapshot or self.server.sockets:
            self._start_ping_timer()

    def _run(self, coro: Awaitable[Any]) -> None:
        self._tasks.spawn(coro)


class _Detached(web.StreamResponse):
    """What the upgrade handler returns: the connection is no longer aiohttp's."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None
