"""gateway/edge/listen.py: `EdgeSite` accepts several connections per turn of uvloop's loop.

libuv accepts one connection per ready descriptor per turn (libuv#3696): under a burst the
listen queue overflowed while the loop had time to spare (bench (e) at 2,000 connects/s:
tens of thousands of SYNs dropped). The site polls its socket through `accept_fds`
descriptors. These tests run on uvloop, the gateway's default loop; the first one also
fails loudly if libuv's one-per-descriptor behaviour changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
import uvloop
from aiohttp import web

from gateway.edge.listen import DIRECT_TAKER, DirectRequest, EdgeProtocol, EdgeSite

QUEUED = 8


class CountingSite(EdgeSite):
    """An `EdgeSite` that counts the connections its loop has accepted."""

    def __init__(self, runner: web.AppRunner, accept_fds: int) -> None:
        super().__init__(runner, "127.0.0.1", 0, accept_fds=accept_fds)
        self.accepted = 0
        self.all_in: asyncio.Future[None] | None = None

    def protocol(self) -> EdgeProtocol:
        self.accepted += 1
        if self.accepted == QUEUED and self.all_in is not None and not self.all_in.done():
            self.all_in.set_result(None)
        return super().protocol()


async def accepted_in_one_turn(accept_fds: int) -> tuple[int, int]:
    """(connections accepted by the first turn that finds QUEUED waiting, by the end)."""
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(web.Application(), access_log=None, handle_signals=False)
    await runner.setup()
    site = CountingSite(runner, accept_fds)
    site.all_in = loop.create_future()
    await site.start()
    clients: list[socket.socket] = []
    try:
        # blocking connects: the kernel completes each handshake and queues it for accept
        # while this coroutine keeps the loop from polling
        clients = [socket.create_connection(("127.0.0.1", site.port)) for _ in range(QUEUED)]
        first_turn = loop.create_future()
        # runs in the turn after this one: after this turn's poll has accepted what it will
        loop.call_soon(lambda: first_turn.set_result(site.accepted))
        in_one_turn = await first_turn
        await asyncio.wait_for(site.all_in, 30)
        return in_one_turn, site.accepted
    finally:
        for c in clients:
            c.close()
        await site.stop()
        await runner.cleanup()


@pytest.mark.parametrize("accept_fds", [1, 4])
def test_one_turn_accepts_one_connection_per_descriptor(accept_fds: int) -> None:
    in_one_turn, in_all = uvloop.run(accepted_in_one_turn(accept_fds))
    assert in_one_turn == accept_fds  # 1: libuv's one per descriptor per turn, as the site's docstring says
    assert in_all == QUEUED


def test_stop_closes_every_descriptor() -> None:
    """After `stop`, the port is free: no duplicate descriptor kept the socket listening."""

    async def main() -> int:
        runner = web.AppRunner(web.Application(), access_log=None, handle_signals=False)
        await runner.setup()
        site = EdgeSite(runner, "127.0.0.1", 0, accept_fds=4)
        await site.start()
        port = site.port
        await site.stop()
        await runner.cleanup()
        return port

    port = uvloop.run(main())
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener still bound would refuse this
        s.bind(("127.0.0.1", port))
        s.listen()


@pytest.mark.parametrize("loop_name", ["uvloop", "asyncio"])
def test_accepted_connections_have_tcp_nodelay(loop_name: str) -> None:
    """`EdgeProtocol` hides the socket from aiohttp's `connection_made` (which would set
    TCP_NODELAY again, and SO_KEEPALIVE): the loop's transport sets TCP_NODELAY on every
    accepted connection; no SO_KEEPALIVE (heartbeats and aiohttp's keepalive_timeout bound
    idle connections)."""

    async def main() -> tuple[int, bool]:
        seen: list[tuple[int, bool]] = []

        async def handler(request: web.Request) -> web.Response:
            sock = request.transport.get_extra_info("socket") if request.transport else None
            assert sock is not None  # visible again once aiohttp's connection_made is over
            seen.append((sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                         bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = EdgeSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.1 200")
            writer.close()
        finally:
            await site.stop()
            await runner.cleanup()
        return seen[0]

    nodelay, keepalive = uvloop.run(main()) if loop_name == "uvloop" else asyncio.run(main())
    assert nodelay != 0
    assert not keepalive


class Declining:
    """A `DirectTaker` that is offered the heads starting `GET /x?` and declines them all."""

    prefix = b"GET /x?"

    def __init__(self) -> None:
        self.offered = 0

    def offer(self, request: DirectRequest) -> bool:
        self.offered += 1
        return False


def test_a_head_not_sent_in_time_is_dropped() -> None:
    """Before aiohttp has the connection (whose own idle timer then bounds it), a connection
    whose request head has not all come within the head timeout is closed: one that sent
    nothing, one that stopped mid-head. One that sent its request, given to aiohttp, stays."""

    async def main() -> tuple[int, int, bytes]:
        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", ok)
        app.router.add_get("/x", ok)
        taker = Declining()
        app[DIRECT_TAKER] = taker
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = EdgeSite(runner, "127.0.0.1", 0, head_timeout=0.4)
        await site.start()
        try:
            upgrade = await asyncio.open_connection("127.0.0.1", site.port)  # offered, declined, aiohttp's
            upgrade[1].write(b"GET /x?a=1 HTTP/1.1\r\nHost: y\r\nConnection: Upgrade\r\nUpgrade: z\r\n\r\n")
            assert (await upgrade[0].readuntil(b"ok")).startswith(b"HTTP/1.1 200")
            upgrade[1].close()
            served = await asyncio.open_connection("127.0.0.1", site.port)
            served[1].write(b"GET /x?a=1 HTTP/1.1\r\nHost: y\r\n\r\n")  # parsed here, not an upgrade: aiohttp's
            assert (await served[0].readuntil(b"ok")).startswith(b"HTTP/1.1 200")
            silent = await asyncio.open_connection("127.0.0.1", site.port)
            partial = await asyncio.open_connection("127.0.0.1", site.port)
            partial[1].write(b"GET /x?a=1 HTTP/1.1\r\nHost: ")
            # both dropped (the server's end of the connection): EOF, or a reset
            for reader, _ in (silent, partial):
                with contextlib.suppress(ConnectionResetError):
                    assert await asyncio.wait_for(reader.read(), 30) == b""
            # the served connection was accepted before them: its deadline has passed too
            served[1].write(b"GET / HTTP/1.1\r\nHost: y\r\n\r\n")
            again = await asyncio.wait_for(served[0].readuntil(b"ok"), 30)
            for _, writer in (served, silent, partial):
                writer.close()
            return site.head_deadlines.closed, taker.offered, again
        finally:
            await site.stop()
            await runner.cleanup()

    closed, offered, again = uvloop.run(main())
    assert closed == 2
    assert offered == 1
    assert again.startswith(b"HTTP/1.1 200")
