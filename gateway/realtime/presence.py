"""Agent presence of this node: live socket counts per agent, heartbeated to the store
so every node's auto-assignment sees which agents are connected somewhere.

A connect or disconnect writes the agent's count at once (the caller waits for the write,
so a connected agent can be assigned as soon as its connect returns), but the writes of
one turn of the loop, and those that queue while one runs, share one `touch_presence`
(`GroupQueue`): each writes the counts as they are when it runs. A node whose agents all
reconnect or disconnect at once (a restart, a network cut) then makes a few transactions
instead of one per agent, each of which would have queued in front of message appends.

What the tenant sees (issue 31): an agent is `present` from the write that records a
connection of theirs until no node has written a row of theirs for `ttl` seconds (their
last connection closed, or the node holding it stopped heartbeating). Every node runs the
expiry every `interval`; the store flips each agent once, and the flips — both ways — are
given to `announce` (the chat service publishes them to the tenant's agents).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gateway.aio.batching import GroupQueue
from gateway.aio.periodic import Periodic
from gateway.core.domain import Agent, AgentStatus
from gateway.store import Store

log = logging.getLogger(__name__)

WRITE_BATCH = 2_000  # agents per coalesced write (touch_presence chunks it into transactions)


async def _ignore(agents: list[Agent]) -> None:
    return None


class PresenceTracker:
    def __init__(self, store: Store, node_id: str, clock: Callable[[], float], interval: float, *,
                 ttl: float | None = None,
                 announce: Callable[[list[Agent]], Awaitable[None]] = _ignore,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """`interval`: seconds between heartbeats and expiry sweeps; `ttl` (PRESENCE_TTL,
        > interval; 3 times interval unless given): how long an agent stays present after their
        last connection anywhere; `announce`: told each batch of agents whose presence flipped."""
        self._store = store
        self._node_id = node_id
        self._clock = clock
        self.ttl = 3 * interval if ttl is None else ttl
        self._announce = announce
        self._counts: dict[str, int] = {}
        self._periodic = Periodic("presence-heartbeat", self._heartbeat, interval, delay=interval, sleep=sleep)
        self._expiry = Periodic("presence-expiry", self._expire_tick, interval, delay=interval, sleep=sleep)
        self._writes: GroupQueue[str, None] = GroupQueue(self._write, max_batch=WRITE_BATCH, name="presence-writes")
        self._stopped = False

    def count(self, agent_id: str) -> int:
        return self._counts.get(agent_id, 0)

    async def add(self, agent_id: str) -> int:
        n = self._counts.get(agent_id, 0) + 1
        self._counts[agent_id] = n
        await self._writes.submit(agent_id)
        return n

    async def remove(self, agent_id: str) -> int:
        n = max(0, self._counts.get(agent_id, 0) - 1)
        if n:
            self._counts[agent_id] = n
        else:
            self._counts.pop(agent_id, None)
        await self._writes.submit(agent_id)
        return n

    async def _write(self, agent_ids: list[str]) -> list[None]:
        """The current count of each agent in `agent_ids` (0: none left), in one call."""
        if not self._stopped:
            counts = self._counts
            made = await self._store.touch_presence(self._node_id, {a: counts.get(a, 0) for a in agent_ids},
                                                    self._clock())
            if made:
                await self._tell(made)
        return [None] * len(agent_ids)

    async def _tell(self, agents: list[Agent]) -> None:
        """Announce the flips that change what others see (not those of an agent who chose offline)."""
        agents = [a for a in agents if a.status != AgentStatus.OFFLINE]
        if not agents:
            return
        try:
            await self._announce(agents)
        except Exception:
            log.exception("announcing the presence of %d agent(s) failed", len(agents))

    async def expire(self) -> list[Agent]:
        """Agents of any tenant whose last connection anywhere is older than `ttl` stop
        being present (announced); returns them."""
        gone = await self._store.expire_presence(self._clock() - self.ttl)
        if gone:
            await self._tell(gone)
        return gone

    async def _expire_tick(self) -> None:
        await self.expire()

    def start(self) -> None:
        self._periodic.start()
        self._expiry.start()

    async def stop(self) -> None:
        """Stop the heartbeat, the expiry and the coalesced writes (a write in flight is
        cancelled and rolled back; later ones write nothing), then set this node's rows to
        0 sockets: its agents stop being routed to at once and, unless they are connected
        elsewhere, are shown offline by the next expiry anywhere `ttl` seconds later."""
        await self._periodic.stop()
        await self._expiry.stop()
        self._stopped = True
        await self._writes.close()
        if self._counts:
            with contextlib.suppress(Exception):
                await self._store.touch_presence(self._node_id, dict.fromkeys(self._counts, 0), self._clock())

    async def _heartbeat(self) -> None:
        """Refresh every agent's row through the same queue as connects and disconnects:
        each write takes the counts as they are when it starts, and one runs at a time, so
        an agent who leaves while a heartbeat of thousands is being written (several
        transactions) is removed by the write after it instead of being left behind."""
        if self._counts:
            await asyncio.gather(*[self._writes.enqueue(a) for a in list(self._counts)])
