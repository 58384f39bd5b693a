"""A raw Engine.IO 4 / Socket.IO 5 websocket client for transport tests: it sees every
packet in wire order and can stop reading on demand (unlike the stock clients)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from gateway.edge import SocketServer
from gateway.edge.listen import EdgeSite


def _mask_frame(payload: bytes, opcode: int = 1) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.eio_sid = ""
        self._ack_id = 0

    @classmethod
    async def connect(cls, url: str, rcvbuf: int | None = None) -> RawClient:
        u = urlparse(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (u.hostname, u.port))
        # a small limit: asyncio stops reading the socket once 2*limit bytes wait unread
        reader, writer = await asyncio.open_connection(sock=sock, limit=8192)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {u.netloc}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        c = cls(reader, writer)
        opened = await c.recv()
        assert opened.startswith("0"), opened
        c.eio_sid = json.loads(opened[1:])["sid"]
        return c

    async def recv(self) -> str:
        while True:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            data = await self.reader.readexactly(n)
            text = data.decode()
            if text == "2":  # engine.io ping
                self.send_text("3")
                continue
            return text

    def send_text(self, text: str) -> None:
        self.writer.write(_mask_frame(text.encode()))

    def send_texts(self, texts: list[str]) -> None:
        """Several frames in one write: the server reads them in one go."""
        self.writer.write(b"".join(_mask_frame(t.encode()) for t in texts))

    def connect_ns(self, ns: str, auth: dict[str, Any]) -> None:
        self.send_text(f"40{ns},{json.dumps(auth)}")

    def emit(self, ns: str, event: str, data: Any) -> int:
        self._ack_id += 1
        self.send_text(f"42{ns},{self._ack_id}{json.dumps([event, data])}")
        return self._ack_id

    async def recv_packet(self) -> tuple[str, Any]:
        """('connect'|'event'|'ack'|…, decoded payload) of the next socket.io packet."""
        text = await self.recv()
        assert text[0] == "4", text
        kind = text[1]
        body = text[2:]
        if body.startswith("/"):
            _, _, body = body.partition(",")
        if kind == "0":
            return "connect", json.loads(body)
        if kind == "2":
            return "event", json.loads(body[body.index("["):])
        if kind == "3":
            i = body.index("[")
            return "ack", (int(body[:i]), json.loads(body[i:]))
        return kind, body

    async def closed(self) -> bool:
        """Read until the server ends the connection (a close frame or EOF): True then."""
        while True:
            try:
                b0, b1 = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return True
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            await self.reader.readexactly(n)
            if b0 & 0x0F == 0x8:
                return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_sockets(sockets: SocketServer) -> AsyncIterator[str]:
    """A bare Socket.IO server of the edge (its namespaces registered) on a loopback port:
    its URL; closed after."""
    app = web.Application()
    sockets.engine.add_routes(app, "/socket.io/")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = EdgeSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site.url
    finally:
        await site.stop()
        await sockets.close()
        await runner.cleanup()
