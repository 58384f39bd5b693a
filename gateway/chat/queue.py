"""Live queue places: a coalesced, per-tenant "the queue changed, tell the waiting visitors".

Whatever changes where a tenant's waiting visitors stand (a conversation assigned, resolved
or put back in the queue; an agent connecting, choosing a status, or gone for PRESENCE_TTL)
calls `changed(tenant)`. The first change of a quiet tenant runs `tell(tenant)` at once; the
changes made while it runs and for `interval` seconds after it are folded into one more run
at the end of that interval, and so on: at most one run per tenant per `interval` on each
node, never two of one tenant at the same time, whatever the rate of changes (a desk
assigning hundreds of conversations a second recomputes its queue 4 times a second, not
hundreds). `tell` reads the queue as it is when it runs, so nothing is lost by folding.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.aio.tasks import TaskSet

log = logging.getLogger(__name__)


class QueueNotices:
    def __init__(self, tell: Callable[[str], Awaitable[object]], *, interval: float = 0.25,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """`tell(tenant)`: recompute and announce the tenant's queue (its failures are
        logged); `interval`: the least time between two runs for one tenant; `sleep`: the
        clock the interval is waited on (a test's manual clock)."""
        self._tell = tell
        self._interval = interval
        self._sleep = sleep
        self._dirty: set[str] = set()
        self._running: set[str] = set()  # tenants with a run or an interval under way
        self._tasks = TaskSet()
        self._closed = False
        self.runs = 0

    def changed(self, tenant_id: str) -> None:
        """The tenant's queue or its agents changed: its waiting visitors are told, at once
        or at the end of the current interval."""
        if self._closed:
            return
        self._dirty.add(tenant_id)
        if tenant_id not in self._running:
            self._running.add(tenant_id)
            self._tasks.spawn(self._loop(tenant_id), name=f"queue-notices:{tenant_id}")

    async def _loop(self, tenant_id: str) -> None:
        try:
            while tenant_id in self._dirty:
                self._dirty.discard(tenant_id)
                self.runs += 1
                try:
                    await self._tell(tenant_id)
                except Exception:
                    log.exception("telling the queue of tenant %s failed", tenant_id)
                await self._sleep(self._interval)
        finally:
            self._running.discard(tenant_id)

    async def close(self) -> None:
        """Stop: pending changes are dropped (visitors ask again when they reload)."""
        self._closed = True
        self._dirty.clear()
        await self._tasks.close()
