"""Two gateway processes on loopback sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.procs import pg_redis_cluster
from tests.support.server import agent, new_client_id, visitor

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


async def test_two_nodes_converse_and_survive_sigkill(tmp_path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        await cluster.cli("migrate")
        t = await cluster.cli("tenant", "create", "--name", "Multi")
        a, b = cluster.start("node-a"), cluster.start("node-b")
        await cluster.wait_ready(a)
        await cluster.wait_ready(b)

        ag = await agent(b.url, t["admin_token"])           # agent on node B
        v = await visitor(a.url, t["widget_key"])           # visitor on node A
        try:
            started = await v.call("conversation:start")
            conv_id, epoch = started["conversation"]["id"], started["conversation"]["epoch"]
            await ag.wait_for(lambda: ag.of("conversation:created"))
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]

            acked = []
            for i in range(10):
                r = await v.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                  "text": f"visitor {i}"})
                acked.append(r["message"]["seq"])
            await ag.wait_for(lambda: len(ag.messages(conv_id)) == 10)
            assert [m["seq"] for m in ag.messages(conv_id)] == list(range(1, 11))

            r = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                               "text": "agent reply"})
            assert r["message"]["seq"] == 11
            await v.wait_for(lambda: any(m["seq"] == 11 for m in v.messages(conv_id)))
            seen = max(m["seq"] for m in v.messages(conv_id))
            token = v.session["visitor_token"]

            # keep sending while node A dies under the visitor
            inflight = new_client_id()
            send = asyncio.create_task(v.call("message:send", {"conversation_id": conv_id,
                                                               "client_id": inflight, "text": "in flight"}))
            a.kill()
            try:
                res = await send
                acked.append(res["message"]["seq"])
            except Exception:
                pass  # not acked: the client retries with the same client_id below
            await v.close()

            for i in range(3):
                await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                               "text": f"while away {i}"})

            # the visitor comes back on node B and resumes
            v = await visitor(b.url, t["widget_key"], visitor_token=token)
            res = await v.call("resume", {"conversations": [{"conversation_id": conv_id, "epoch": epoch,
                                                              "seq": seen}]})
            assert res["results"][0]["ok"], res
            retry = await v.call("message:send", {"conversation_id": conv_id, "client_id": inflight,
                                                  "text": "in flight"})
            assert retry["ok"]
            hist = await ag.call("messages:history", {"conversation_id": conv_id, "limit": 200})
            seqs = [m["seq"] for m in hist["messages"]]
            assert seqs == list(range(1, len(seqs) + 1))          # no holes, no duplicates
            assert set(acked) <= set(seqs)                        # nothing acked was lost
            assert sum(m["client_id"] == inflight for m in hist["messages"]) == 1
            replayed = [m["text"] for m in v.messages(conv_id)]
            assert replayed[:3] == [m["text"] for m in hist["messages"] if m["seq"] in (seen + 1, seen + 2,
                                                                                          seen + 3)]
            await ag.wait_for(lambda: any(m["client_id"] == inflight for m in ag.messages(conv_id)))
            assert len({m["seq"] for m in ag.messages(conv_id)}) == len(ag.messages(conv_id))
        finally:
            await v.close()
            await ag.close()
