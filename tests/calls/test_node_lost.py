"""A node that dies holding a call: the other nodes end it (gateway/calls/sweep.py)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from tests.calls.support import endpoint
from tests.support.procs import pg_redis_cluster
from tests.support.server import agent, visitor

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


async def test_the_call_of_a_killed_node_ends_as_node_lost_for_the_agents_elsewhere(tmp_path: Path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        cluster.env.update({"CALL_HOST_ADDRESSES": "127.0.0.1", "ICE_SERVERS": "[]",
                            "CALL_NODE_HEARTBEAT": "0.5", "CALL_RING_TIMEOUT": "60"})
        t = await cluster.cli("tenant", "create", "--name", "Lost")
        a, b = cluster.start("node-a"), cluster.start("node-b")
        await cluster.wait_ready(a)
        await cluster.wait_ready(b)
        caller = endpoint(440)
        ag = await agent(a.url, t["admin_token"])  # the agent on node A
        v = await visitor(b.url, t["widget_key"])  # the caller on node B, which holds the call
        try:
            await ag.call("presence:set", {"status": "online"})
            conv = (await v.call("conversation:start"))["conversation"]["id"]
            ack = await v.call("call:start", {"conversation_id": conv, "sdp": await caller.offer()}, timeout=10)
            assert ack["ok"], ack
            call_id = ack["call"]["id"]
            await ag.wait_for(lambda: ag.of("call:ringing"))
            b.kill()  # SIGKILL: node B ends nothing itself
            t0 = time.monotonic()

            def lost() -> list[dict[str, Any]]:
                return [e["call"] for e in ag.of("call:updated")
                        if e["call"]["id"] == call_id and e["call"]["state"] == "ended"]

            await ag.wait_for(lambda: lost(), timeout=15)
            ended = lost()[0]
            assert ended["end_reason"] == "node_lost", ended
            assert time.monotonic() - t0 >= 1.5  # not before four heartbeats were missed
            # what a client reads afterwards agrees
            hist = await ag.call("call:list", {"conversation_id": conv})
            assert hist["ok"] and [c["end_reason"] for c in hist["calls"] if c["id"] == call_id] == ["node_lost"]
        finally:
            await caller.close()
            for c in (ag, v):
                with contextlib.suppress(Exception):
                    await c.close()
