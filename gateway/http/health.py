"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.metrics import Metrics


def health_routes(checks: dict[str, Callable[[], Awaitable[None]]], timeout: float = 2.0) -> list[web.RouteDef]:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        return web.json_response({"ok": ok, "checks": results}, status=200 if ok else 503)

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


def metrics_routes(metrics: Metrics) -> list[web.RouteDef]:
    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})

    return [web.get("/metrics", scrape)]
