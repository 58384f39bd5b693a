"""Agent presence of this node: live socket counts per agent, heartbeated to the store
so every node's auto-assignment sees which agents are connected somewhere."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from gateway.periodic import Periodic
from gateway.store import Store

log = logging.getLogger(__name__)


class PresenceTracker:
    def __init__(self, store: Store, node_id: str, clock: Callable[[], float], interval: float) -> None:
        self._store = store
        self._node_id = node_id
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._periodic = Periodic("presence-heartbeat", self._heartbeat, interval, delay=interval)

    def count(self, agent_id: str) -> int:
        return self._counts.get(agent_id, 0)

    async def add(self, agent_id: str) -> int:
        n = self._counts.get(agent_id, 0) + 1
        self._counts[agent_id] = n
        await self._store.touch_presence(self._node_id, {agent_id: n}, self._clock())
        return n

    async def remove(self, agent_id: str) -> int:
        n = max(0, self._counts.get(agent_id, 0) - 1)
        if n:
            self._counts[agent_id] = n
        else:
            self._counts.pop(agent_id, None)
        await self._store.touch_presence(self._node_id, {agent_id: n}, self._clock())
        return n

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        if self._counts:
            with contextlib.suppress(Exception):
                await self._store.touch_presence(self._node_id, dict.fromkeys(self._counts, 0), self._clock())

    async def _heartbeat(self) -> None:
        if self._counts:
            await self._store.touch_presence(self._node_id, dict(self._counts), self._clock())
