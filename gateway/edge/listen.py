"""Serving an aiohttp application so that a request's connection can be taken over.

A websocket upgrade is answered by the edge itself, which then serves the connection with
its own `asyncio.Protocol` (no task per connection). aiohttp has no public way to let go
of a connection it is serving, so aiohttp never holds the real one: each accepted
connection gets an `EdgeProtocol`, which runs aiohttp's protocol (made by the application
runner's `web.Server`, a documented protocol factory) on an `InnerTransport` standing in
for the socket's transport. `InnerTransport.detach` hands the real transport to a new
protocol and tells aiohttp's protocol the connection is lost: what aiohttp then writes or
closes goes nowhere.

`InnerTransport` forwards everything else to the real transport. It offers no native
sendfile, so aiohttp's `FileResponse` would fail on it: responses with file content use
`web.Response(body=<file object>)`, which aiohttp streams from a thread.

A request that a `DirectTaker` registered on the application (`DIRECT_TAKER`) may want —
its request line starts with the taker's `prefix` — is not given to aiohttp at first: its
head is parsed here by `httptools` (llhttp) and offered to the taker as a `DirectRequest`,
which it either takes over (`detach`) or declines (`decline`: the connection then goes to
aiohttp exactly as it came, every byte replayed). The engine takes a new websocket
session's handshake this way, without aiohttp's request, middlewares and two tasks per
connection (docs/architecture.md, "The edge"). A head that is malformed, longer than
`HEAD_LIMIT`, or not an upgrade goes to aiohttp at once; a connection whose head has not
all come `HEAD_TIMEOUT` after it was accepted is dropped (`HeadDeadlines`: aiohttp's own
idle timer, which bounds its connections from their start, is not running yet).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httptools
from aiohttp import web


class InnerTransport(asyncio.Transport):
    """The transport aiohttp's protocol sees: the real one until `detach`, nothing after."""

    def __init__(self, edge: EdgeProtocol, real: Any) -> None:
        super().__init__()
        self.edge: EdgeProtocol | None = edge  # None once the connection is released
        self._real = real
        self._detached = False
        self._on_lost: list[Callable[[], None]] | None = None
        self.socket_hidden = False  # get_extra_info("socket") answers None (see EdgeProtocol.connection_made)

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the connection is lost (at once if it is closing already)."""
        if self._real.is_closing():
            callback()
        elif self._on_lost is None:
            self._on_lost = [callback]
        else:
            self._on_lost.append(callback)

    def lost(self) -> None:
        callbacks, self._on_lost = self._on_lost, None
        for cb in callbacks or ():
            cb()

    @property
    def detached(self) -> bool:
        return self._detached

    def detach(self, protocol: asyncio.BaseProtocol) -> Any:
        """Give the connection to `protocol` (its `connection_made` is called); returns the
        real transport, now `protocol`'s. Reading is paused: resume it once ready."""
        edge = self.edge
        if self._detached or edge is None:
            raise RuntimeError("connection already detached")
        real = self._real
        self._detached = True
        real.pause_reading()
        edge.detached = True
        real.set_protocol(protocol)
        protocol.connection_made(real)
        if edge.inner is not None:
            edge.inner.connection_lost(None)  # aiohttp lets go: it writes and closes nothing more
        edge.release()
        return real

    # --- asyncio.Transport, forwarded until detached -----------------------------------
    def write(self, data: Any) -> None:
        if not self._detached:
            self._real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        if not self._detached:
            self._real.writelines(list_of_data)

    def write_eof(self) -> None:
        if not self._detached:
            self._real.write_eof()

    def can_write_eof(self) -> bool:
        return bool(self._real.can_write_eof())

    def close(self) -> None:
        if not self._detached:
            self._real.close()

    def abort(self) -> None:
        if not self._detached:
            self._real.abort()

    def is_closing(self) -> bool:
        return self._detached or bool(self._real.is_closing())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.socket_hidden and name == "socket":
            return default
        return self._real.get_extra_info(name, default)

    def pause_reading(self) -> None:
        if not self._detached:
            self._real.pause_reading()

    def resume_reading(self) -> None:
        if not self._detached:
            self._real.resume_reading()

    def is_reading(self) -> bool:
        return not self._detached and bool(self._real.is_reading())

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._real.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return 0 if self._detached else int(self._real.get_write_buffer_size())

    def get_write_buffer_limits(self) -> tuple[int, int]:
        low, high = self._real.get_write_buffer_limits()
        return int(low), int(high)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if self.edge is not None:
            self.edge.inner = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        inner: asyncio.BaseProtocol | None = None if self.edge is None else self.edge.inner
        if inner is None:
            raise RuntimeError("connection released")
        return inner


HEAD_LIMIT = 8192  # bytes of a request head parsed here before the connection is left to aiohttp
HEAD_TIMEOUT = 60.0  # seconds a connection may take to send a whole request head parsed here


class HeadDeadlines:
    """Connections whose first request head is being parsed here (they have no aiohttp
    protocol yet, whose idle timer would otherwise bound them): each is closed `timeout`
    seconds after it was accepted unless its head has all come by then. One loop timer
    sweeps them every quarter of `timeout` while any waits; a connection costs a dict
    entry, not a timer of its own."""

    def __init__(self, timeout: float = HEAD_TIMEOUT) -> None:
        self.timeout = timeout
        self._waiting: dict[EdgeProtocol, float] = {}  # in the order accepted: oldest first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.closed = 0  # connections closed for a head not sent in time
        self.sweeps = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, proto: EdgeProtocol) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._waiting[proto] = loop.time()
        if self._handle is None:
            self._handle = loop.call_later(self.timeout / 4, self._sweep)

    def discard(self, proto: EdgeProtocol) -> None:
        self._waiting.pop(proto, None)

    def _sweep(self) -> None:
        self._handle = None
        self.sweeps += 1
        loop = self._loop
        assert loop is not None
        due = loop.time() - self.timeout
        expired = []
        for proto, since in self._waiting.items():
            if since > due:
                break
            expired.append(proto)
        for proto in expired:
            del self._waiting[proto]
            self.closed += 1
            proto.head_timed_out()
        if self._waiting:
            self._handle = loop.call_later(self.timeout / 4, self._sweep)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._waiting.clear()


@dataclass(frozen=True, slots=True)
class RequestHead:
    """An HTTP/1.1 request head as `httptools` parsed it: header names in lower case, a
    repeated header's values joined by ", "."""

    method: str
    target: str
    headers: dict[str, str]


class DirectTaker(Protocol):
    """What may answer some requests itself, before aiohttp sees them."""

    @property
    def prefix(self) -> bytes:
        """Requests whose first bytes are these are parsed and offered (e.g. b"GET /x?")."""

    def offer(self, request: DirectRequest) -> bool:
        """True: the taker answers `request` — it will `detach` or `decline` it (or find it
        `lost`); False: aiohttp serves it, as if it had never been offered."""


DIRECT_TAKER = web.AppKey("edge_direct_taker", DirectTaker)


class DirectRequest:
    """A parsed request head offered to a `DirectTaker`; the connection's reading is paused
    until the taker detaches it (and resumes reading) or declines it."""

    __slots__ = ("_edge", "head", "peer", "rest")

    def __init__(self, edge: EdgeProtocol, head: RequestHead, peer: str, rest: bytes) -> None:
        self._edge: EdgeProtocol | None = edge
        self.head = head
        self.peer = peer  # the client's address
        self.rest = rest  # bytes the client sent after the head (its protocol's, once detached)

    @property
    def lost(self) -> bool:
        """The connection has ended (or was detached or declined already)."""
        edge = self._edge
        return edge is None or edge._real is None

    def detach(self, protocol: asyncio.BaseProtocol) -> Any:
        """Give the connection to `protocol` (its `connection_made` is called); returns the
        real transport, reading paused: resume it once ready, then hand it `rest`."""
        edge, self._edge = self._edge, None
        if edge is None or edge._real is None:
            raise RuntimeError("connection lost or already answered")
        real = edge._real
        edge.detached = True
        edge.release()
        real.set_protocol(protocol)
        protocol.connection_made(real)
        return real

    def decline(self) -> None:
        """Serve the request with aiohttp after all (every byte of it replayed)."""
        edge, self._edge = self._edge, None
        if edge is not None and edge._real is not None:
            edge._to_inner()


class _HeadParser:
    """`httptools` callbacks collecting one request head."""

    __slots__ = ("done", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        had = self.headers.get(key)
        self.headers[key] = text if had is None else f"{had}, {text}"

    def on_headers_complete(self) -> None:
        self.done = True


class EdgeProtocol(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol on an `InnerTransport` until detached;
    with a `DirectTaker`, the head of a request it may want is parsed here first."""

    __slots__ = ("_buffer", "_deadlines", "_head", "_parser", "_real", "_server", "_taker", "detached", "inner",
                 "transport")

    def __init__(self, server: web.Server, taker: DirectTaker | None = None,
                 deadlines: HeadDeadlines | None = None) -> None:
        """`deadlines`: where a connection parsed here waits for its head (with a `taker`)."""
        self._server = server
        self._taker = taker
        self._deadlines = deadlines if taker is not None else None
        self.inner: Any = None
        self.detached = False
        self.transport: InnerTransport | None = None
        self._real: Any = None
        self._buffer = bytearray()
        self._parser: Any = None
        self._head: _HeadParser | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._real = transport
        if self._taker is None:
            self._start_inner()
        elif self._deadlines is not None:
            self._deadlines.add(self)

    def head_timed_out(self) -> None:
        """The head did not all come within the deadline: the connection is dropped."""
        self._deadlines = None
        if self._real is not None:
            self._real.abort()

    def _head_done(self) -> None:
        if self._deadlines is not None:
            self._deadlines.discard(self)
            self._deadlines = None

    def _start_inner(self) -> None:
        self.inner = self._server()
        t = self.transport = InnerTransport(self, self._real)
        # aiohttp's connection_made sets TCP_NODELAY (and SO_KEEPALIVE, with tcp_keepalive)
        # through the transport's socket, which uvloop hands out as a stand-in that makes a
        # socket object per call (3 system calls and about 5 us per option per connect); the
        # loop's own transport has set TCP_NODELAY on every accepted connection already
        # (uvloop and asyncio alike: tests/unit/test_edge_accept.py). So an EdgeSite's
        # connections have no SO_KEEPALIVE: Engine.IO heartbeats, and aiohttp's own idle
        # timer (keepalive_timeout, armed in this very call), bound idle ones
        t.socket_hidden = True
        try:
            self.inner.connection_made(t)
        finally:
            t.socket_hidden = False

    def _to_inner(self) -> None:
        """aiohttp serves the connection from here on, from its first byte."""
        self._head_done()
        self._taker = None
        self._parser = self._head = None
        data, self._buffer = bytes(self._buffer), bytearray()
        self._start_inner()
        self._real.resume_reading()
        if data:
            self.inner.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            if not self.detached:
                self.inner.data_received(data)
            return
        if self.detached or self._real is None:
            return
        buf = self._buffer
        buf += data
        if self._head is not None and self._head.done:  # offered: the taker decides; keep the bytes
            if len(buf) > 2 * HEAD_LIMIT:
                self._real.abort()
            return
        taker = self._taker
        assert taker is not None
        if self._parser is None:
            prefix = taker.prefix
            if len(buf) < len(prefix):
                if not prefix.startswith(buf):
                    self._to_inner()
                return
            if not buf.startswith(prefix):
                self._to_inner()
                return
            self._head = _HeadParser()
            self._parser = httptools.HttpRequestParser(self._head)
            data = bytes(buf)  # the parser has seen none of it yet
        head = self._head
        assert head is not None
        upgrade_at = -1
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            upgrade_at = len(buf) - len(data) + int(exc.args[0])
        except httptools.HttpParserError:
            self._to_inner()  # aiohttp answers it as it would have
            return
        if not head.done:
            if len(buf) > HEAD_LIMIT:
                self._to_inner()
            return
        if upgrade_at < 0 or upgrade_at > HEAD_LIMIT:  # not an upgrade, or longer than taken here
            self._to_inner()
            return
        method = self._parser.get_method().decode("latin-1")
        request = DirectRequest(self, RequestHead(method, head.url.decode("latin-1"), head.headers),
                                _peer(self._real), bytes(buf[upgrade_at:]))
        self._parser = None
        self._head_done()
        self._real.pause_reading()
        if not taker.offer(request):
            request.decline()

    def eof_received(self) -> bool | None:
        if self.detached or self.inner is None:
            return None
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.detached and self.inner is not None:
            if self.transport is not None:
                self.transport.lost()
            self.inner.connection_lost(exc)
        self.release()

    def release(self) -> None:
        """Drop the references between this protocol, its `InnerTransport` and aiohttp's
        protocol, so that a finished connection is freed at once rather than by the
        cyclic garbage collector (tens of thousands of connections made in a burst would
        otherwise wait, and hold memory, until a full collection)."""
        t = self.transport
        if t is not None:
            t.edge = None
        self.transport = None
        self.inner = None
        self._real = None
        self._parser = self._head = None
        self._head_done()

    def pause_writing(self) -> None:
        if not self.detached and self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if not self.detached and self.inner is not None:
            self.inner.resume_writing()


def _peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return ""


def detachable(request: web.BaseRequest) -> InnerTransport | None:
    """The request's connection, if it can be taken over (it came through an `EdgeSite`)."""
    t = request.transport
    if isinstance(t, InnerTransport) and not t.detached and not t.is_closing():
        return t
    return None


class EdgeSite:
    """`runner`'s application served on `host`:`port` (0: any free port) through
    `EdgeProtocol`; like aiohttp's `TCPSite`, started after `runner.setup()`.

    The loop polls each listening socket through `accept_fds` descriptors (`os.dup`s of
    it). libuv, under uvloop, accepts one connection per ready descriptor per turn of its
    loop (libuv#3696, since 1.45): with one descriptor a burst of connects fills the listen
    queue, and the kernel drops SYNs (clients retry after 1, 3, 7 s), while the loop still
    has time to spare, because each turn also serves every other ready connection. Each
    descriptor lets the loop take one more connection per turn; a turn where fewer are
    waiting costs the extra descriptors one refused `accept` each. The standard loop
    accepts up to `backlog` per turn from any one descriptor. Every descriptor is of the
    same socket: nothing else can bind the port (no `SO_REUSEPORT` beyond the workers')."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                 reuse_port: bool = False, backlog: int = 1024, sock: socket.socket | None = None,
                 accept_fds: int = 4, head_timeout: float = HEAD_TIMEOUT) -> None:
        self._runner = runner
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.reuse_port = reuse_port
        self.backlog = backlog
        self.sock = sock
        self.accept_fds = max(1, accept_fds)
        self._taker = runner.app.get(DIRECT_TAKER)  # registered while the application was assembled
        self.head_deadlines = HeadDeadlines(head_timeout)
        self.server: asyncio.Server | None = None
        self._more: list[asyncio.Server] = []  # the same sockets through their other descriptors

    def protocol(self) -> EdgeProtocol:
        server = self._runner.server
        assert server is not None, "call runner.setup() first"
        return EdgeProtocol(server, self._taker, self.head_deadlines)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self.server = await loop.create_server(self.protocol, sock=self.sock, ssl=self.ssl_context,
                                                   backlog=self.backlog)
        else:
            self.server = await loop.create_server(self.protocol, self.host, self.port, ssl=self.ssl_context,
                                                   backlog=self.backlog, reuse_address=True,
                                                   reuse_port=self.reuse_port or None)
        self.port = self.server.sockets[0].getsockname()[1]
        for _ in range(self.accept_fds - 1):
            for listener in self.server.sockets:
                again = socket.socket(fileno=os.dup(listener.fileno()))
                self._more.append(await loop.create_server(self.protocol, sock=again, ssl=self.ssl_context,
                                                           backlog=self.backlog))

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting; open connections are the runner's (`runner.cleanup()`) and the edge's."""
        for more in self._more:
            more.close()
        self._more.clear()
        self.head_deadlines.close()
        if self.server is not None:
            self.server.close()
            self.server = None
