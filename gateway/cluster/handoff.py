"""Hand an HTTP connection, with the request just read from it, to a sibling worker.

SO_REUSEPORT lets the kernel pick the worker for each new TCP connection, so a long-polling
request (or a polling→websocket upgrade) for an Engine.IO session may arrive at a worker
that does not hold it. That worker re-serialises the request (line, headers, body), sends it
with the connection's file descriptor (SCM_RIGHTS) over a unix SEQPACKET socket to the
owner, and forgets the connection; the owner adopts the socket into its own aiohttp server
and feeds it the request, which is then served as if it had arrived there. Later requests
on the same keep-alive connection go to the owner directly. Only plain TCP can be handed
over (TLS state lives in the process): with WORKERS > 1, terminate TLS in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from gateway.cluster.sids import WorkerSids
from gateway.edge.engine import UNKNOWN_SID, error_response

log = logging.getLogger(__name__)

HEAD_SLACK = 64 * 1024  # request line + headers (aiohttp refuses lines/fields over 8 KB each)
_DROPPED_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


def message_size(max_body: int) -> int:
    """The largest hand-off message: a request head plus a body of up to `max_body` bytes."""
    return max_body + HEAD_SLACK


def encode_request(method: str, raw_path: str, version: tuple[int, int],
                   raw_headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The request as HTTP/1.x bytes again; the body, already de-chunked, gets a Content-Length."""
    out = [f"{method} {raw_path} HTTP/{version[0]}.{version[1]}\r\n".encode("latin-1")]
    for name, value in raw_headers:
        if name.lower() not in _DROPPED_HEADERS:
            out.append(name + b": " + value + b"\r\n")
    if body or method not in ("GET", "HEAD", "OPTIONS"):
        out.append(b"Content-Length: " + str(len(body)).encode() + b"\r\n")
    out.append(b"\r\n")
    out.append(body)
    return b"".join(out)


def _buffers(sock: socket.socket, size: int) -> None:
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, opt, size)


class HandoffReceiver:
    """Listens at `path` for connections handed over by siblings and adopts them into the
    aiohttp server whose protocol factory is `factory` (`web.AppRunner.server`)."""

    def __init__(self, path: str, factory: Callable[[], Any], max_message: int) -> None:
        self.path = path
        self.factory = factory
        self.max_message = max_message
        self.adopted = 0
        self.refused = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a previous incarnation of this worker
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        _buffers(s, self.max_message)
        s.bind(self.path)
        os.chmod(self.path, 0o600)
        s.listen(64)
        s.setblocking(False)
        self._listener = s
        asyncio.get_running_loop().add_reader(s.fileno(), self._accept)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for c in list(self._conns):
            self._drop(c)
        if self._listener is not None:
            loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        for t in self._tasks:
            t.cancel()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        _buffers(conn, self.max_message)
        self._conns.add(conn)
        asyncio.get_running_loop().add_reader(conn.fileno(), self._read, conn)

    def _drop(self, conn: socket.socket) -> None:
        self._conns.discard(conn)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(conn.fileno())
        conn.close()

    def _read(self, conn: socket.socket) -> None:
        while True:
            try:
                data, fds, flags, _ = socket.recv_fds(conn, self.max_message, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn)
                return
            if not data and not fds:
                self._drop(conn)  # the sibling closed its end (it restarted or stopped)
                return
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 1:
                log.warning("hand-off message refused (truncated or without one descriptor)")
                self.refused += 1
                for fd in fds:
                    os.close(fd)
                continue
            task = asyncio.ensure_future(self._adopt(fds[0], data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _adopt(self, fd: int, request: bytes) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            self.refused += 1
            return
        try:
            sock.setblocking(False)
            _, proto = await asyncio.get_running_loop().connect_accepted_socket(self.factory, sock)
        except Exception:
            log.exception("could not adopt a handed-over connection")
            sock.close()
            self.refused += 1
            return
        self.adopted += 1
        proto.data_received(request)


class HandoffSender:
    """Sends (request bytes, socket descriptor) to sibling `i` at `paths[i]`, one SEQPACKET
    connection per sibling, reconnected when the sibling has restarted."""

    def __init__(self, paths: Sequence[str], max_message: int) -> None:
        self.paths = list(paths)
        self.max_message = max_message
        self.sent = 0
        self.failed = 0
        self._conns: dict[int, socket.socket] = {}

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    def _conn(self, worker: int) -> socket.socket:
        c = self._conns.get(worker)
        if c is None:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                _buffers(c, self.max_message)
                c.connect(self.paths[worker])  # a local connect: immediate, or refused
                c.setblocking(False)
            except OSError:
                c.close()
                raise
            self._conns[worker] = c
        return c

    async def send(self, worker: int, request: bytes, fd: int, timeout: float = 2.0) -> bool:
        """True once the sibling has the descriptor (the caller may then close its own)."""
        if len(request) > self.max_message:
            self.failed += 1
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in (1, 2):
            try:
                c = self._conn(worker)
                while True:
                    try:
                        socket.send_fds(c, [request], [fd])
                        self.sent += 1
                        return True
                    except (BlockingIOError, InterruptedError):
                        if loop.time() > deadline:
                            raise TimeoutError from None
                        await _writable(loop, c)
            except (OSError, TimeoutError) as exc:
                old = self._conns.pop(worker, None)
                if old is not None:
                    old.close()
                if attempt == 2 or isinstance(exc, TimeoutError):
                    log.warning("hand-off to worker %d failed: %r", worker, exc)
        self.failed += 1
        return False


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    fut: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await asyncio.wait_for(fut, 0.05)
    except TimeoutError:
        pass
    finally:
        loop.remove_writer(fd)


class _Gone(asyncio.Protocol):
    """The protocol of a connection this worker no longer serves, until its descriptor closes."""


class _HandedOver(web.StreamResponse):
    """What the middleware returns once the connection is the sibling's: aiohttp must neither
    write to it nor close it again."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handoff_middleware(eio_path: str, sids: WorkerSids, sender: HandoffSender) -> Any:
    """Routes Engine.IO requests (`eio_path`) whose `sid` another worker made to that worker."""
    path = eio_path.rstrip("/")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.rstrip("/") != path:
            return await handler(request)
        owner = sids.owner(request.query.get("sid", ""))
        if owner is None or owner == sids.index:
            return await handler(request)
        return await _hand_over(request, owner, sender)

    return middleware


async def _hand_over(request: web.Request, owner: int, sender: HandoffSender) -> web.StreamResponse:
    transport: Any = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or transport.get_extra_info("sslcontext") is not None:
        return web.Response(status=400, text="session held by another worker; cannot hand over this connection")
    body = await request.read() if request.body_exists else b""
    proto: Any = transport.get_protocol()  # aiohttp's protocol of this connection
    raw = encode_request(request.method, request.raw_path, (request.version.major, request.version.minor),
                         request.raw_headers, body)
    transport.pause_reading()
    if not await sender.send(owner, raw, sock.fileno()):
        transport.resume_reading()
        # what Engine.IO answers for a session it does not know: the client reconnects
        return error_response(UNKNOWN_SID)
    # the sibling has its own descriptor now: aiohttp forgets the connection (it neither
    # answers nor closes it), and ours is dropped without a response, FIN or RST
    proto.connection_lost(None)
    transport.set_protocol(_Gone())
    transport.close()
    return _HandedOver()
