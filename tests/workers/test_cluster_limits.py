"""LIMITS_SCOPE=cluster: two nodes (one process each) behind one address's traffic share the
per-IP limits through Redis — connections, conversation starts and messages — where each
node alone would let the address have the limit again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support.metrics import limits_synced
from tests.support.procs import pg_redis_cluster
from tests.support.server import Client, handshake_refusal, new_client_id, visitor

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

LIMITS = {"LIMITS_SCOPE": "cluster", "MAX_CONNECTIONS_PER_IP": "3", "RATE_IP_CONVERSATIONS_BURST": "2",
          "RATE_IP_CONVERSATIONS_PER_MIN": "1", "RATE_IP_MESSAGES_BURST": "3", "RATE_IP_MESSAGES_PER_SEC": "0.1"}


async def test_two_nodes_share_the_per_ip_limits(tmp_path: Path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        t = await cluster.cli("tenant", "create", "--name", "Cluster limits")
        a, b = cluster.start("node-a", **LIMITS), cluster.start("node-b", **LIMITS)
        await cluster.wait_ready(a)
        await cluster.wait_ready(b)
        clients: list[Client] = []
        try:
            # connections: 3 for the address on both nodes together
            for n in (a, a, b):
                clients.append(await visitor(n.url, t["widget_key"]))
            a1, a2, b1 = clients
            for n in (b, a):
                with pytest.raises(socketio.exceptions.ConnectionError):
                    clients.append(await visitor(n.url, t["widget_key"]))
                refusal = await handshake_refusal(n.url)
                assert refusal is not None and refusal["context"]["code"] == "rate_limited"
            await a2.close()
            deadline = time.monotonic() + 30  # generous: the release reaches Redis in milliseconds
            while True:  # the place freed on node A is free on node B
                try:
                    clients.append(await visitor(b.url, t["widget_key"]))
                    break
                except socketio.exceptions.ConnectionError:
                    assert time.monotonic() < deadline, "the freed place was not seen by the other node"
                    await asyncio.sleep(0.1)
            # conversation starts: a bucket of 2 for both nodes
            conv_a = (await a1.call("conversation:start"))["conversation"]["id"]
            conv_b = (await b1.call("conversation:start"))["conversation"]["id"]
            third = await a1.call("conversation:start")
            assert not third["ok"] and third["error"]["details"]["limit"] == "conversations_per_ip", third

            async def send(c: Client, conv: str) -> Any:
                return await c.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                     "text": "x"})

            # messages: 2 on node A (its own bucket keeps 1 of its 3), 3 on node B; once the
            # nodes have synced (every 0.5 s) the cluster's bucket of 3 is in debt, and node A
            # refuses what its own bucket would still let through
            sent = [await send(a1, conv_a) for _ in range(2)] + [await send(b1, conv_b) for _ in range(3)]
            assert all(r["ok"] for r in sent), sent
            await limits_synced([a.url, b.url])  # each node synced after the other had
            refused_msg = await send(a1, conv_a)
            assert not refused_msg["ok"] and refused_msg["error"]["code"] == "rate_limited", refused_msg
            assert refused_msg["error"]["details"]["limit"] == "messages_per_ip"
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.close()
