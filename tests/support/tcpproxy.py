"""A loopback TCP proxy for fault tests: put it between a client and a server, then make the
server look stopped (`stop`) or hung (`hang`) without touching the server itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TcpProxy:
    """Forwards 127.0.0.1:`port` to (`host`, `target_port`).

    * `stop()`: every open connection is closed and new ones are accepted and closed at once
      (a server that was stopped);
    * `hang()`: connections stay open, new ones are accepted, but no byte is forwarded in
      either direction (a hung server, or a network that drops everything);
    * `resume()`: forwarding again (connections made while hung start flowing).
    """

    def __init__(self, host: str, target_port: int) -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.refusing = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        await self._drop_all()
        if self._server is not None:
            await self._server.wait_closed()

    async def stop(self) -> None:
        self.refusing = True
        await self._drop_all()

    def hang(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self.refusing = False
        self._flowing.set()

    async def _drop_all(self) -> None:
        """Reset every connection, both sides (their pumps then end on their own)."""
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
            self._writers.add(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            await self._flowing.wait()
            if dst.is_closing():
                break
            dst.write(data)
            await dst.drain()
        dst.close()


@contextlib.asynccontextmanager
async def tcp_proxy(host: str, port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
