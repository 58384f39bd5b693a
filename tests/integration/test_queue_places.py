"""Live queue places over the real server (issue 31): a visitor waiting for an agent is sent
`conversation:availability` as the tenant's queue moves and as agents come and go, without
asking; agents watching the conversation are not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from tests.support.server import RunningGateway, agent, make_config, run_gateway, visitor
from tests.support.waits import until_async

CEILING = 15.0  # a ceiling, not a window: the loaded machine may be slow


@pytest.fixture
async def gateway(tmp_path) -> AsyncIterator[RunningGateway]:
    config = replace(make_config(tmp_path), presence_ttl=1.0, presence_interval=0.25)
    async with run_gateway(config) as rg:
        yield rg


def told(v: Any, conv_id: str) -> list[tuple[str, int | None]]:
    return [(e["agents"], e["queue_position"]) for e in v.of("conversation:availability")
            if e["conversation_id"] == conv_id]


async def no_agent_connected(gateway: RunningGateway, tenant_id: str) -> None:
    """The server has seen the console close (polled under a ceiling)."""
    async def none_left() -> bool:
        return not await gateway.gw.chat.available_agents(tenant_id)

    await until_async(none_left, timeout=CEILING)


async def told_until(v: Any, conv_id: str, state: tuple[str, int | None]) -> None:
    await v.wait_for(lambda: told(v, conv_id)[-1:] == [state], CEILING)


async def test_a_waiting_visitor_moves_up_as_the_agent_frees_room(gateway: RunningGateway) -> None:
    """X (capacity 1) is full; B and C wait, 1st and 2nd. X resolves A's conversation: B's is
    assigned to X, and C is told "busy, 1st" at once (before: only a reload told C)."""
    nt = await gateway.tenant()
    x_id, x_token = await gateway.agent_token(nt.tenant.id, "Xuân", capacity=1)
    adm = await agent(gateway.url, nt.admin_token)
    x = await agent(gateway.url, x_token)
    a, b, c = [await visitor(gateway.url, nt.tenant.widget_key) for _ in range(3)]
    try:
        assert (await adm.call("presence:set", {"status": "away"}))["ok"]  # only X takes conversations
        ca = await a.call("conversation:start")
        assert ca["conversation"]["assigned"], ca
        cb = await b.call("conversation:start")
        cc = await c.call("conversation:start")
        assert (cb["agents"], cb["queue_position"]) == ("busy", 1)
        assert (cc["agents"], cc["queue_position"]) == ("busy", 2)
        conv_c = cc["conversation"]["id"]
        assert (await x.call("conversation:watch", {"conversation_id": conv_c}))["ok"]

        done = await x.call("conversation:status", {"conversation_id": ca["conversation"]["id"],
                                                     "status": "resolved"})
        assert done["ok"], done
        await b.wait_for(lambda: any(u["assigned"] for u in b.of("conversation:updated")), CEILING)
        await told_until(c, conv_c, ("busy", 1))
        assert not x.of("conversation:availability")  # visitors only
        again = await c.call("conversation:availability", {"conversation_id": conv_c})
        assert (again["agents"], again["queue_position"]) == ("busy", 1)
    finally:
        for cl in (a, b, c, x, adm):
            await cl.close()


async def test_no_agent_online_to_busy_when_a_full_agent_connects_and_back(gateway: RunningGateway) -> None:
    """X (capacity 1) takes A's conversation and closes the console; B is told "no agent
    online". X connects again, still full: B is told "busy, 1st". X leaves: B is told "no
    agent online" once PRESENCE_TTL has passed (a reload of the console does not flicker)."""
    nt = await gateway.tenant()
    x_id, x_token = await gateway.agent_token(nt.tenant.id, "Xuân", capacity=1)
    adm = await agent(gateway.url, nt.admin_token)
    assert (await adm.call("presence:set", {"status": "away"}))["ok"]
    x = await agent(gateway.url, x_token)
    a, b = [await visitor(gateway.url, nt.tenant.widget_key) for _ in range(2)]
    try:
        assert (await a.call("conversation:start"))["conversation"]["assigned"]
        await x.close()
        await no_agent_connected(gateway, nt.tenant.id)
        cb = await b.call("conversation:start")
        conv_b = cb["conversation"]["id"]
        assert (cb["agents"], cb["queue_position"]) == ("none", None)

        x = await agent(gateway.url, x_token)
        await told_until(b, conv_b, ("busy", 1))

        await x.close()
        await adm.wait_for(lambda: [e["status"] for e in adm.of("agent:presence") if e["id"] == x_id][-1:]
                           == ["offline"], CEILING)
        await told_until(b, conv_b, ("none", None))
    finally:
        for cl in (a, b, x, adm):
            await cl.close()


async def test_an_agent_with_room_connecting_assigns_the_waiting_conversation(gateway: RunningGateway) -> None:
    """The other way out of "no agent online": an agent with room connects and the waiting
    conversation is assigned to them (`conversation:updated`), not merely told "busy"."""
    nt = await gateway.tenant()
    y_id, y_token = await gateway.agent_token(nt.tenant.id, "Yến", capacity=2)
    adm = await agent(gateway.url, nt.admin_token)
    assert (await adm.call("presence:set", {"status": "away"}))["ok"]
    v = await visitor(gateway.url, nt.tenant.widget_key)
    y = None
    try:
        started = await v.call("conversation:start")
        assert (started["agents"], started["queue_position"]) == ("none", None)
        y = await agent(gateway.url, y_token)
        await v.wait_for(lambda: any(u["assigned"] for u in v.of("conversation:updated")), CEILING)
        got = await v.call("conversation:availability", {"conversation_id": started["conversation"]["id"]})
        assert (got["agents"], got["queue_position"]) == ("available", None)
    finally:
        for cl in (v, y, adm):
            if cl is not None:
                await cl.close()
