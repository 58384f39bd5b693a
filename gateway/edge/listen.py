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
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

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


class EdgeProtocol(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol on an `InnerTransport` until detached."""

    __slots__ = ("detached", "inner", "transport")

    def __init__(self, server: web.Server) -> None:
        self.inner: Any = server()
        self.detached = False
        self.transport: InnerTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = self.transport = InnerTransport(self, transport)
        # aiohttp's connection_made sets TCP_NODELAY (and SO_KEEPALIVE, with tcp_keepalive)
        # through the transport's socket, which uvloop hands out as a stand-in that makes a
        # socket object per call (3 system calls and about 5 us per option per connect); the
        # loop's own transport has set TCP_NODELAY on every accepted connection already
        # (uvloop and asyncio alike: tests/unit/test_edge_accept.py). So an EdgeSite's
        # connections have no SO_KEEPALIVE: heartbeats and keepalive_timeout bound idle ones
        t.socket_hidden = True
        try:
            self.inner.connection_made(t)
        finally:
            t.socket_hidden = False

    def data_received(self, data: bytes) -> None:
        if not self.detached and self.inner is not None:
            self.inner.data_received(data)

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

    def pause_writing(self) -> None:
        if not self.detached and self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if not self.detached and self.inner is not None:
            self.inner.resume_writing()


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
                 accept_fds: int = 4) -> None:
        self._runner = runner
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.reuse_port = reuse_port
        self.backlog = backlog
        self.sock = sock
        self.accept_fds = max(1, accept_fds)
        self.server: asyncio.Server | None = None
        self._more: list[asyncio.Server] = []  # the same sockets through their other descriptors

    def protocol(self) -> EdgeProtocol:
        server = self._runner.server
        assert server is not None, "call runner.setup() first"
        return EdgeProtocol(server)

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
        if self.server is not None:
            self.server.close()
            self.server = None
