"""A call held by one node, answered by an agent connected to another (two gateways in
this process sharing PostgreSQL and an in-process broker; WORKERS=N workers are such nodes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.broker.memory import MemoryHub
from tests.calls.support import accept_call, call_nodes, calls_of, close_all, endpoint, parties, start_call
from tests.support.server import RunningGateway
from tests.support.waits import until

pytestmark = [pytest.mark.postgres]


@pytest.fixture
async def two_nodes(tmp_path: Any, loopback_ice: None, monkeypatch: pytest.MonkeyPatch
                    ) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    async with call_nodes(tmp_path, monkeypatch, hub=MemoryHub()) as nodes:
        yield nodes


async def _frames_flow(caller: Any, callee: Any) -> None:
    await until(lambda: caller.frames > 10 and callee.frames > 10, timeout=60)  # audio both ways


async def test_an_agent_on_another_node_answers_and_hangs_up(two_nodes: tuple[RunningGateway, RunningGateway]
                                                             ) -> None:
    a, b = two_nodes
    p = await parties(a, agent_url=b.url)  # the agent on node B, the caller on node A
    agent_id, ag, v = p.agent_id, p.agent, p.visitor
    caller, callee = endpoint(440), endpoint(660)
    try:
        call_id = await start_call(v, caller)
        assert call_id in calls_of(a).active and call_id not in calls_of(b).active

        acc = await accept_call(ag, call_id, callee)
        assert acc["call"]["state"] == "answered" and acc["call"]["agent_id"] == agent_id
        await _frames_flow(caller, callee)
        assert caller.loud_frames > 5 and callee.loud_frames > 5

        again = await ag.call("call:accept", {"call_id": call_id, "sdp": await endpoint(1).offer()})
        assert again["ok"] is False and again["error"]["code"] == "conversation_closed"  # the code crossed nodes

        hang = await ag.call("call:hangup", {"call_id": call_id})
        assert hang["ok"] and hang["call"]["state"] == "ended" and hang["call"]["end_reason"] == "agent_hangup"
        assert call_id not in calls_of(a).active
        await v.wait_for(lambda: any(e["call"]["state"] == "ended" for e in v.of("call:updated")))
        gone = await ag.call("call:hangup", {"call_id": call_id})
        assert gone["ok"] is False and gone["error"]["code"] == "not_found"
    finally:
        await close_all((caller, callee), (ag, v))


async def test_a_decline_from_another_node_ends_a_call_nobody_else_can_take(
        two_nodes: tuple[RunningGateway, RunningGateway]) -> None:
    a, b = two_nodes
    p = await parties(a, agent_url=b.url)
    ag, v = p.agent, p.visitor
    caller = endpoint(440)
    try:
        conv = (await v.call("conversation:start"))["conversation"]
        ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
        call_id = ack["call"]["id"]
        res = await ag.call("call:decline", {"call_id": call_id})
        assert res["ok"], res
        await v.wait_for(lambda: any(e["call"]["end_reason"] == "declined" for e in v.of("call:updated")
                                     if e["call"]["state"] == "ended"))
        assert call_id not in calls_of(a).active
    finally:
        await close_all((caller,), (ag, v))
