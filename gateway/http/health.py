"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.cluster.scrape import NodeScrape
from gateway.core.errors import Code, GatewayError
from gateway.ops.metrics import Metrics

READY_BUDGET = 2.0  # seconds /readyz takes at most, whatever its checks do


def health_routes(checks: dict[str, Callable[[], Awaitable[None]]], budget: float = READY_BUDGET) -> list[web.RouteDef]:
    """`/healthz` (the process answers) and `/readyz`: every check runs at once, and the
    answer comes within `budget` seconds whatever they do — a check not done by then is
    reported ``"error: timeout"``; 200 when every check passed, else 503. A check is not
    cancelled (cancelling a driver's operation midway can leave its connection unusable):
    it ends on its own, within its own timeouts, and a later `/readyz` that finds it still
    running waits for that run instead of starting another, so a hung dependency holds at
    most one check of each kind. A failure with a reason (`StoreUnavailable`) shows it."""
    running: dict[str, asyncio.Future[None]] = {}

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    def start(name: str, check: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        task = running.get(name)
        if task is None or task.done():
            task = running[name] = asyncio.ensure_future(check())
            task.add_done_callback(_retrieve)
        return task

    async def readyz(_: web.Request) -> web.Response:
        tasks = {name: start(name, check) for name, check in checks.items()}
        if tasks:
            await asyncio.wait(tasks.values(), timeout=budget)
        results: dict[str, str] = {}
        for name, task in tasks.items():
            if not task.done():
                results[name] = "error: timeout"
            elif task.cancelled():
                results[name] = "error: cancelled"
            elif (exc := task.exception()) is not None:
                results[name] = _describe(exc)
            else:
                results[name] = "ok"
        ok = all(v == "ok" for v in results.values())
        return web.json_response({"ok": ok, "checks": results}, status=200 if ok else 503)

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, GatewayError) and isinstance(reason, str):
        return f"error: {exc.code.value} ({reason})"
    return f"error: {type(exc).__name__}"


def _retrieve(task: asyncio.Future[None]) -> None:
    """Mark a check's outcome as seen (no "exception never retrieved" warning)."""
    if not task.cancelled():
        task.exception()


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
