"""Presence that tells the truth across nodes (issue 31): two gateway processes sharing
PostgreSQL and Redis; an agent connected to one node is seen by the other's agents and
visitors, and is offline everywhere PRESENCE_TTL after their last connection closed, or
after the node holding it died."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.procs import pg_redis_cluster
from tests.support.server import agent, visitor

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

TTL = {"PRESENCE_TTL": "5", "PRESENCE_INTERVAL": "0.5"}
CEILING = 30.0  # a ceiling, not a window: the loaded machine may be slow


async def availability_until(v: Any, conv_id: str, state: str) -> dict[str, Any]:
    """The visitor's `conversation:availability` once it says `state` (asked again until a ceiling)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CEILING
    while True:
        got = await v.call("conversation:availability", {"conversation_id": conv_id})
        assert got["ok"], got
        if got["agents"] == state:
            return dict(got)
        assert loop.time() < deadline, got
        await asyncio.sleep(0.05)


def presence_of(watcher: Any, agent_id: str) -> list[str]:
    return [e["status"] for e in watcher.of("agent:presence") if e["id"] == agent_id]


async def test_presence_across_nodes_connection_close_and_node_death(tmp_path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        await cluster.cli("migrate")
        t = await cluster.cli("tenant", "create", "--name", "Presence")
        x = await cluster.cli("agent", "create", "--tenant", t["tenant_id"], "--name", "Xuan", "--capacity", "1")
        a, b = cluster.start("node-a", **TTL), cluster.start("node-b", **TTL)
        await cluster.wait_ready(a)
        await cluster.wait_ready(b)

        w = await agent(b.url, t["admin_token"])  # watches the tenant from node B, away: never routed to
        assert (await w.call("presence:set", {"status": "away"}))["ok"]
        v1 = await visitor(b.url, t["widget_key"])
        v2 = await visitor(b.url, t["widget_key"])
        xa = None
        try:
            start = await v1.call("conversation:start")
            assert (start["agents"], start["queue_position"], start["agents_available"]) == ("none", None, False)

            xa = await agent(a.url, x["token"])  # X on node A: W on node B sees them online
            await w.wait_for(lambda: presence_of(w, x["agent_id"])[-1:] == ["online"], CEILING)
            assert presence_of(w, x["agent_id"]) == ["online"]  # one event (chosen offline: no "offline" first)
            await w.wait_for(lambda: w.of("conversation:updated"), CEILING)  # v1's waiting conversation → X
            start = await v2.call("conversation:start")  # X is at capacity (1): busy, first in the queue
            assert (start["agents"], start["queue_position"], start["agents_available"]) == ("busy", 1, False)
            conv2 = start["conversation"]["id"]

            # X closes the console: not routed to at once, shown offline once the TTL has passed
            await xa.close()
            xa = None
            got = await availability_until(v2, conv2, "none")
            assert got["queue_position"] is None
            assert presence_of(w, x["agent_id"])[-1:] == ["online"]  # routing did not wait for the TTL
            await w.wait_for(lambda: presence_of(w, x["agent_id"])[-1:] == ["offline"], CEILING)
            agents = (await w.call("agent:list"))["agents"]
            mine = next(g for g in agents if g["id"] == x["agent_id"])
            assert (mine["status"], mine["chosen_status"]) == ("offline", "online")  # their choice is kept

            # back on node A, then node A dies: node B's expiry shows them offline
            n = len(presence_of(w, x["agent_id"]))
            xa = await agent(a.url, x["token"])
            await w.wait_for(lambda: presence_of(w, x["agent_id"])[n:] == ["online"], CEILING)
            got = await v2.call("conversation:availability", {"conversation_id": conv2})
            assert got["agents"] == "busy" and got["queue_position"] == 1
            a.kill()
            await w.wait_for(lambda: presence_of(w, x["agent_id"])[-1:] == ["offline"], CEILING)
            await availability_until(v2, conv2, "none")
        finally:
            for c in (xa, v1, v2, w):
                if c is not None:
                    await c.close()
