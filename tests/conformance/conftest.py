"""A real gateway in this process per test, with the heartbeat and connect timeout each
test needs, and an HTTP client that can tell when a request is on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest

from gateway.config import Config
from tests.conformance.wire import header_sent_trace
from tests.support.server import make_config, run_gateway

# the Engine.IO / Socket.IO reference test-suites run against pingInterval 300 ms and
# pingTimeout 200 ms (engine.io-protocol/test-suite, socket.io-protocol/test-suite)
SHORT_PING_INTERVAL = 0.3
SHORT_PING_TIMEOUT = 0.2
# long enough for a loaded machine to send a CONNECT and read its answer before it, short
# enough to keep the suite short
SHORT_CONNECT_TIMEOUT = 2.0
# "calm": heartbeats and the connect timeout far beyond any test's length, so no ping and
# no timeout is interleaved with the packets a test checks
CALM_PING_INTERVAL = 25.0
CALM_PING_TIMEOUT = 20.0
CALM_CONNECT_TIMEOUT = 10.0


@dataclass
class Gateway:
    url: str
    config: Config
    http: aiohttp.ClientSession
    widget_key: str

    def visitor_auth(self) -> str:
        return json.dumps({"widget_key": self.widget_key}, separators=(",", ":"))


StartGateway = Callable[..., Awaitable[Gateway]]


@contextlib.asynccontextmanager
async def run_reference(script: str, config: Config) -> AsyncIterator[tuple[str, str]]:
    """The reference Node server (tests/conformance/reference/server.mjs) with `config`'s
    heartbeat and connect timeout, instead of the gateway: its URL and widget key. For
    checking the tests themselves (CONFORMANCE_REFERENCE=<path of server.mjs>)."""
    widget_key = "wk_reference"
    env = {**os.environ, "WIDGET_KEY": widget_key,
           "PING_INTERVAL_MS": str(round(config.server.ping_interval * 1000)),
           "PING_TIMEOUT_MS": str(round(config.server.ping_timeout * 1000)),
           "CONNECT_TIMEOUT_MS": str(round(config.server.connect_timeout * 1000))}
    proc = await asyncio.create_subprocess_exec("node", script, env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}", widget_key
    finally:
        proc.kill()
        await proc.wait()


@pytest.fixture
async def start_gateway(tmp_path: Any) -> AsyncIterator[StartGateway]:
    """`await start_gateway(ping_interval=…, ping_timeout=…, connect_timeout=…, **limits)`:
    a gateway on loopback (SQLite in tmp_path, one tenant), shut down after the test."""
    reference = os.environ.get("CONFORMANCE_REFERENCE")
    async with contextlib.AsyncExitStack() as stack:
        n = 0

        async def start(*, ping_interval: float = CALM_PING_INTERVAL, ping_timeout: float = CALM_PING_TIMEOUT,
                        connect_timeout: float = CALM_CONNECT_TIMEOUT, **limits: Any) -> Gateway:
            nonlocal n
            n += 1
            base = make_config(tmp_path / f"gw{n}", **limits)
            config = replace(base, server=replace(base.server, ping_interval=ping_interval,
                                                  ping_timeout=ping_timeout, connect_timeout=connect_timeout))
            if reference:
                url, widget_key = await stack.enter_async_context(run_reference(reference, config))
            else:
                # a raw test may leave a long-poll GET pending: cancel it at shutdown rather than wait for it
                running = await stack.enter_async_context(run_gateway(config, shutdown_timeout=0.1))
                url, widget_key = running.url, (await running.tenant()).tenant.widget_key
            http = await stack.enter_async_context(aiohttp.ClientSession(trace_configs=[header_sent_trace()]))
            return Gateway(url, config, http, widget_key)

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
