"""Graceful drain (SIGTERM): stop accepting, tell clients to go elsewhere, finish in-flight work.

1. `/readyz` answers 503 and new Engine.IO/Socket.IO handshakes are refused (the load
   balancer takes the node out; clients' reconnects land on other nodes).
2. Every connection gets `server:draining` `{"node_id", "retry_after"}`.
3. Requests being handled finish (bounded), then every Engine.IO session is closed
   *without* a Socket.IO disconnect (websockets with a close frame, long-polling clients
   with a close packet on their waiting GET), so stock clients reconnect by themselves
   and resume.
4. The caller then stops the HTTP runner; the whole drain stays within `DRAIN_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.edge import Refusal
from gateway.realtime.server import DrainState, RealtimeServer

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DrainAdmission:
    """The engine's admission check for new sessions while the node drains: refused (503).
    aiohttp's requests meet the drain middleware first; this is for the handshakes the
    edge takes off aiohttp (`EngineServer.offer`), which it then declines back to aiohttp,
    whose middleware answers them as before."""

    def __init__(self, state: DrainState) -> None:
        self.state = state

    async def acquire(self, remote: str) -> None:
        if self.state.draining:
            raise Refusal(503, "this node is draining", retry_after=1.0, context={"code": "unavailable"})

    def release(self, remote: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class DrainReport:
    connections: int
    closed: int
    inflight_left: int
    seconds: float


class Drainer:
    def __init__(self, realtime: RealtimeServer, node_id: str, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.realtime = realtime
        self.state = realtime.drain
        self.node_id = node_id
        self.timeout = timeout
        self.clock = clock

    @property
    def draining(self) -> bool:
        return self.state.draining

    def resume(self) -> None:
        """Accept again (a drain called off; tests)."""
        self.state.draining = False

    def middleware(self) -> Any:
        @web.middleware
        async def drain_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.state.draining:
                if request.path == "/readyz":
                    return web.json_response({"ok": False, "draining": True,
                                              "checks": {"drain": "draining"}}, status=503)
                if request.path.startswith("/socket.io") and "sid" not in request.query:
                    return web.json_response(
                        {"ok": False, "error": {"code": "unavailable", "message": "this node is draining",
                                                "details": {"retry_after": 1.0}}},
                        status=503, headers={"Retry-After": "1"})
            return await handler(request)

        return drain_middleware

    async def _wait_idle(self, deadline: float) -> None:
        while self.realtime.inflight > 0 and self.clock() < deadline:  # noqa: ASYNC110 - a counter, polled
            await asyncio.sleep(0.02)

    async def drain(self, budget: float | None = None) -> DrainReport:
        """Run steps 1-3 within `budget` seconds (default: the configured timeout)."""
        started = self.clock()
        deadline = started + (self.timeout if budget is None else budget)
        self.state.draining = True
        conns = len(self.realtime.conns)
        log.info("draining: %d connections, %d requests in flight", conns, self.realtime.inflight)
        await self.realtime.broadcast("server:draining", {"node_id": self.node_id, "retry_after": 1.0})
        # let requests already running finish (their acks go out on the open transports)
        await self._wait_idle(started + (deadline - started) / 2)
        await asyncio.sleep(min(0.2, max(0.0, deadline - self.clock())))
        # websockets get a close frame (1001), waiting polling GETs a close packet: clients
        # reconnect by themselves, to another node
        closed = self.realtime.sockets.engine.close_all("server_draining")
        await self._wait_idle(deadline)
        report = DrainReport(conns, closed, self.realtime.inflight, self.clock() - started)
        log.info("drained: %s", report)
        return report


DRAINER_KEY = web.AppKey("drainer", Drainer)
