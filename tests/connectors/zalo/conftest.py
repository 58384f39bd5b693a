from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from connectors.base import InboundMessage
from connectors.zalo import ZaloAccount, ZaloConnector, ZaloTokens
from tests.connectors.zalo import fake_zalo as fz


class ManualClock:
    """Injected clock + sleep: time moves only when the test says so."""

    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.t + delay, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        self.t += seconds
        due = [w for w in self._waiters if w[0] <= self.t]
        self._waiters = [w for w in self._waiters if w[0] > self.t]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)
        for _ in range(20):  # let woken tasks run their HTTP round trips
            await asyncio.sleep(0.01)

    @property
    def waiting(self) -> int:
        return sum(1 for _, f in self._waiters if not f.done())


@dataclass
class Sink:
    """Stores like the inbound pipeline: once per external message id."""

    received: list[InboundMessage] = field(default_factory=list)
    stored: dict[tuple[str, str], InboundMessage] = field(default_factory=dict)

    async def __call__(self, msg: InboundMessage) -> None:
        self.received.append(msg)
        self.stored.setdefault((msg.tenant_id, msg.external_message_id), msg)


@dataclass
class Saved:
    """The injected token persistence callback; records every pair it durably stored."""

    pairs: list[ZaloTokens] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    fail: int = 0

    async def __call__(self, account: ZaloAccount, tokens: ZaloTokens) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        self.pairs.append(tokens)
        self.events.append(f"persist:{tokens.access_token}")


@pytest.fixture
async def fake() -> AsyncIterator[fz.FakeZalo]:
    async with fz.run_fake_zalo() as f:
        yield f


def make_account(fake: fz.FakeZalo, tokens: ZaloTokens | None = None, **kw: object) -> ZaloAccount:
    if tokens is None:
        at, rt, exp = fake.issue()
        tokens = ZaloTokens(at, rt, exp)
    fields: dict[str, object] = dict(
        tenant_id="t1",
        app_id=fz.APP_ID,
        oa_id=fz.OA_ID,
        oa_secret_key=fz.OA_SECRET,
        app_secret_key=fz.APP_SECRET,
        tokens=tokens,
        channel_id="ch1",
        api_base=fake.url,
        oauth_base=fake.url,
    )
    fields.update(kw)
    return ZaloAccount(**fields)  # type: ignore[arg-type]


@dataclass
class Harness:
    connector: ZaloConnector
    sink: Sink
    saved: Saved
    url: str
    http: aiohttp.ClientSession

    async def post(self, raw: bytes, headers: dict[str, str], app_id: str = fz.APP_ID) -> aiohttp.ClientResponse:
        async with self.http.post(f"{self.url}/webhooks/zalo/{app_id}", data=raw, headers=headers) as r:
            await r.read()
            return r


@pytest.fixture
async def harness_factory(fake: fz.FakeZalo) -> AsyncIterator[Callable[..., object]]:
    runners: list[web.AppRunner] = []
    connectors: list[ZaloConnector] = []
    http = aiohttp.ClientSession()

    async def make(account: ZaloAccount | None = None, **kw: object) -> Harness:
        saved = Saved()
        c = ZaloConnector([account or make_account(fake)], saved, **kw)  # type: ignore[arg-type]
        sink = Sink()
        await c.start(sink)
        connectors.append(c)
        app = web.Application()
        app.add_routes(c.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return Harness(c, sink, saved, f"http://127.0.0.1:{runner.addresses[0][1]}", http)

    yield make
    for c in connectors:
        await c.stop()
    for r in runners:
        await r.cleanup()
    await http.close()
