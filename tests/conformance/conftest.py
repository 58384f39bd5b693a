"""A real gateway in this process per test, with the heartbeat and connect timeout each
test needs, and an HTTP client that can tell when a request is on the wire."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest

from gateway.config import Config
from tests.conformance.wire import header_sent_trace
from tests.support.server import RunningGateway, make_config, run_gateway

# the Engine.IO / Socket.IO reference test-suites run against pingInterval 300 ms and
# pingTimeout 200 ms (engine.io-protocol/test-suite, socket.io-protocol/test-suite)
SHORT_PING_INTERVAL = 0.3
SHORT_PING_TIMEOUT = 0.2
SHORT_CONNECT_TIMEOUT = 0.5
# "calm": heartbeats and the connect timeout far beyond any test's length, so no ping and
# no timeout is interleaved with the packets a test checks
CALM_PING_INTERVAL = 25.0
CALM_PING_TIMEOUT = 20.0
CALM_CONNECT_TIMEOUT = 10.0


@dataclass
class Gateway:
    running: RunningGateway
    config: Config
    http: aiohttp.ClientSession
    widget_key: str

    @property
    def url(self) -> str:
        return self.running.url

    def visitor_auth(self) -> str:
        return json.dumps({"widget_key": self.widget_key}, separators=(",", ":"))


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(tmp_path: Any) -> AsyncIterator[StartGateway]:
    """`await start_gateway(ping_interval=…, ping_timeout=…, connect_timeout=…, **limits)`:
    a gateway on loopback (SQLite in tmp_path, one tenant), shut down after the test."""
    async with contextlib.AsyncExitStack() as stack:
        n = 0

        async def start(*, ping_interval: float = CALM_PING_INTERVAL, ping_timeout: float = CALM_PING_TIMEOUT,
                        connect_timeout: float = CALM_CONNECT_TIMEOUT, **limits: Any) -> Gateway:
            nonlocal n
            n += 1
            base = make_config(tmp_path / f"gw{n}", **limits)
            config = replace(base, server=replace(base.server, ping_interval=ping_interval,
                                                  ping_timeout=ping_timeout, connect_timeout=connect_timeout))
            # a raw test may leave a long-poll GET pending: cancel it at shutdown rather than wait for it
            running = await stack.enter_async_context(run_gateway(config, shutdown_timeout=0.1))
            http = await stack.enter_async_context(aiohttp.ClientSession(trace_configs=[header_sent_trace()]))
            nt = await running.tenant()
            return Gateway(running, config, http, nt.tenant.widget_key)

        yield start


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    """Calm settings: no ping or connect timeout during a test."""
    return await start_gateway()


@pytest.fixture
async def short_gateway(start_gateway: StartGateway) -> Gateway:
    """The reference test-suites' short settings: PING_INTERVAL 0.3 s, PING_TIMEOUT 0.2 s,
    CONNECT_TIMEOUT 0.5 s."""
    return await start_gateway(ping_interval=SHORT_PING_INTERVAL, ping_timeout=SHORT_PING_TIMEOUT,
                               connect_timeout=SHORT_CONNECT_TIMEOUT)


@pytest.fixture(params=["polling", "websocket"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)
