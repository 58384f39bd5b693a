"""Node-to-node requests over the in-process broker (the same envelopes Redis carries)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.broker.base import Envelope
from gateway.broker.factory import make_broker
from gateway.broker.memory import MemoryHub
from gateway.cluster.noderpc import Handler, NodeRpc
from gateway.core.errors import Code, GatewayError


async def _node(hub: MemoryHub, node_id: str, timeout: float = 1.0) -> NodeRpc:
    broker = make_broker(None, node_id, hub=hub)
    rpc = NodeRpc(broker, node_id, {}, timeout=timeout)

    async def deliver(channel: str, env: Envelope) -> None:
        if channel.startswith("node:"):
            await rpc.on_envelope(env)

    await broker.start(deliver)
    await rpc.start()
    return rpc


def methods(rpc: NodeRpc) -> dict[str, Handler]:
    """The test's own table of `rpc`'s methods (a plain dict, filled as each test needs)."""
    assert isinstance(rpc.handlers, dict)
    return rpc.handlers


@pytest.fixture
async def pair() -> AsyncIterator[tuple[NodeRpc, NodeRpc]]:
    hub = MemoryHub()
    a, b = await _node(hub, "a"), await _node(hub, "b")
    yield a, b
    for n in (a, b):
        await n.close()
        await n.broker.close()


async def test_a_request_runs_on_the_named_node_and_its_result_comes_back(pair: tuple[NodeRpc, NodeRpc]) -> None:
    a, b = pair
    seen: list[tuple[str, dict[str, Any]]] = []

    async def echo(tenant_id: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.append((tenant_id, params))
        return {"ok": True, "on": b.node_id, "x": params["x"] * 2}

    methods(b)["echo"] = echo
    got = await asyncio.gather(*(a.call("b", "echo", "t1", {"x": i}) for i in range(5)))
    assert [g["x"] for g in got] == [0, 2, 4, 6, 8] and all(g["on"] == "b" for g in got)
    assert sorted(p["x"] for _, p in seen) == [0, 1, 2, 3, 4] and {t for t, _ in seen} == {"t1"}


async def test_errors_travel_back_with_code_and_details(pair: tuple[NodeRpc, NodeRpc]) -> None:
    a, b = pair

    async def refuse(tenant_id: str, params: dict[str, Any]) -> dict[str, Any]:
        raise GatewayError(Code.CONVERSATION_CLOSED, "no longer ringing", state="answered")

    async def crash(tenant_id: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    methods(b).update({"refuse": refuse, "crash": crash})
    with pytest.raises(GatewayError) as e:
        await a.call("b", "refuse", "t", {})
    assert e.value.code == Code.CONVERSATION_CLOSED and e.value.details == {"state": "answered"}
    with pytest.raises(GatewayError) as e:
        await a.call("b", "crash", "t", {})
    assert e.value.code == Code.INTERNAL and "bug" not in e.value.message
    with pytest.raises(GatewayError) as e:
        await a.call("b", "nothing", "t", {})
    assert e.value.code == Code.UNAVAILABLE


async def test_no_reply_in_time_is_unavailable(pair: tuple[NodeRpc, NodeRpc]) -> None:
    a, _ = pair
    a.timeout = 0.2
    with pytest.raises(GatewayError) as e:
        await a.call("gone", "echo", "t", {})  # no node subscribes node:gone
    assert e.value.code == Code.UNAVAILABLE and e.value.details == {"node": "gone"}
    assert not a._waiting


async def test_stray_envelopes_are_ignored(pair: tuple[NodeRpc, NodeRpc]) -> None:
    a, b = pair
    for env in (Envelope("message", "t", {}), Envelope("rpc", "t", {}, extra={"id": 5}),
                Envelope("rpc", "t", {}, extra={"id": "x", "reply": True})):  # nobody waits for x
        await b.on_envelope(env)
    assert not b._tasks
