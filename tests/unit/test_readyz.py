"""`/readyz` answers within its budget whatever its checks do (issue 37, item 4)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.http.health import health_routes
from tests.support.server import serve_app


async def test_readyz_answers_within_its_budget_whatever_hangs() -> None:
    release = asyncio.Event()
    calls = {"hung": 0, "stubborn": 0}

    async def ok() -> None:
        return None

    async def hung() -> None:  # a database that never answers
        calls["hung"] += 1
        await release.wait()

    async def stubborn() -> None:  # ... and a driver that does not give up when cancelled
        calls["stubborn"] += 1
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    app = web.Application()
    app.add_routes(health_routes({"a": ok, "hung": hung, "stubborn": stubborn}, 0.2))
    async with serve_app(app) as url, aiohttp.ClientSession() as http:
        try:
            await check_twice(url, http)
        finally:
            release.set()  # so that the server can stop even where the answer never came
        assert calls == {"hung": 1, "stubborn": 1}
        async with http.get(url + "/readyz") as r:
            assert r.status == 200


async def check_twice(url: str, http: aiohttp.ClientSession) -> None:
    for _ in range(2):  # the second finds the checks still running: no second run of each
        async with asyncio.timeout(10):  # the hung checks end only when the test releases them
            async with http.get(url + "/readyz") as r:
                body = await r.json()
        assert r.status == 503
        assert body["checks"] == {"a": "ok", "hung": "error: timeout", "stubborn": "error: timeout"}
