"""The lean transport's shared ping timer: pings spread over slices with a per-slice
budget, a missing pong closes the connection, a client that answers stays."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import socketio

from gateway.transport import LeanSocket, LeanTransport
from gateway.transport import hub as hub_module
from gateway.transport.hub import LeanSettings
from tests.transport.rawws import RawClient, serve_lean


@contextlib.asynccontextmanager
async def ping_server() -> AsyncIterator[tuple[str, LeanTransport]]:
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1)
    hub = LeanTransport(sio.eio, LeanSettings(ping_sweep=0.2))
    hub.install()
    async with serve_lean(sio, hub) as url:
        yield url, hub


async def test_a_burst_of_due_pings_is_spread_over_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "PINGS_PER_SLICE", 3)
    pinged: list[float] = []
    stock = LeanSocket.ping_tick

    def spy(self: LeanSocket, now: float, next_due: float, may_ping: bool = True) -> bool:
        done = stock(self, now, next_due, may_ping)
        if done:
            pinged.append(now)
        return done

    monkeypatch.setattr(LeanSocket, "ping_tick", spy)
    async with ping_server() as (url, hub):
        clients = [await RawClient.connect(url) for _ in range(30)]  # all come due together
        readers = [asyncio.create_task(c.recv()) for c in clients]  # answer pings
        await asyncio.sleep(2.0)
        for r in readers:
            r.cancel()
        per_slice: dict[float, int] = {}
        for t in pinged:
            per_slice[t] = per_slice.get(t, 0) + 1
        assert len(pinged) >= 30  # every connection got its ping…
        assert max(per_slice.values()) <= 3  # …at most 3 per slice
        for c in clients:
            await c.close()


async def test_a_missing_pong_closes_and_an_answered_ping_keeps_the_connection() -> None:
    async with ping_server() as (url, hub):
        silent = await RawClient.connect(url)  # never reads, so never answers a ping
        lively = await RawClient.connect(url)
        reader = asyncio.create_task(lively.recv())
        t0 = time.monotonic()
        for _ in range(60):  # poll the server's view for up to 6 s
            if silent.eio_sid not in [s.sid for s in hub.sockets]:
                break
            await asyncio.sleep(0.1)
        assert [s.sid for s in hub.sockets] == [lively.eio_sid]
        assert time.monotonic() - t0 < 4.5  # ping interval + ping timeout + a sweep or two
        assert not reader.done()
        reader.cancel()
        await lively.close()
        await silent.close()
