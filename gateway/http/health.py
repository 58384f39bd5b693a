"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.errors import Code, GatewayError
from gateway.metrics import Metrics
from gateway.workers.scrape import NodeScrape


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


def metrics_routes(metrics: Metrics, node: NodeScrape | None = None) -> list[web.RouteDef]:
    """`/metrics`; with `node` (WORKERS > 1), for every worker of the node, each sample
    labelled `worker`, or `?scope=worker` for the worker that answers."""

    async def scrape(request: web.Request) -> web.Response:
        scope = request.query.get("scope", "node")
        if scope not in ("node", "worker"):
            raise GatewayError(Code.BAD_REQUEST, "scope must be 'node' or 'worker'", field="scope")
        if node is None:
            body = metrics.render()
        elif scope == "worker":
            body = node.worker_only()
        else:
            body = await node.node()
        return web.Response(body=body, headers={"Content-Type": metrics.content_type})

    return [web.get("/metrics", scrape)]
