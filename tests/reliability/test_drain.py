"""Graceful drain: in process (stock clients auto-reconnect) and with processes (SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from typing import Any

import aiohttp
import pytest
import socketio

from gateway.realtime.drain import DRAINER_KEY
from tests.chaos.harness import Participant, tally
from tests.chaos.support import configure, private_redis, stored_messages
from tests.support.procs import pg_redis_cluster
from tests.support.server import Refused, make_config, run_gateway, visitor
from tests.support.waits import until


async def test_drain_refuses_new_work_and_stock_clients_reconnect(tmp_path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        t = await rg.tenant()
        sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=0.5)
        connects: list[float] = []
        drained: list[dict[str, Any]] = []
        refused: list[object] = []
        sio.on("connect", lambda: connects.append(time.monotonic()), namespace="/visitor")
        sio.on("connect_error", lambda data: refused.append(data), namespace="/visitor")
        sio.on("server:draining", lambda data: drained.append(data), namespace="/visitor")
        await sio.connect(rg.url, namespaces=["/visitor"], auth={"widget_key": t.tenant.widget_key},
                          transports=["websocket"], wait_timeout=5)
        try:
            drainer = rg.gw.app[DRAINER_KEY]
            report = await drainer.drain(3.0)
            assert report.connections == 1 and report.closed == 1 and report.inflight_left == 0
            assert drained and drained[0]["node_id"] == rg.gw.node_id
            async with aiohttp.ClientSession() as http:
                async with http.get(rg.url + "/readyz") as resp:
                    assert resp.status == 503
                async with http.get(rg.url + "/healthz") as resp:
                    assert resp.status == 200
                async with http.get(rg.url + "/socket.io/?EIO=4&transport=polling") as resp:
                    assert resp.status == 503  # new handshakes refused while draining
            with pytest.raises((socketio.exceptions.ConnectionError, Refused)):
                await visitor(rg.url, t.tenant.widget_key)
            await until(lambda: len(refused) >= 1, timeout=30)  # the stock client tried again: refused
            assert len(connects) == 1
            # the node (or, behind a load balancer, another one) accepts again: the stock
            # client reconnects by itself, because only its transport was closed
            drainer.resume()
            await until(lambda: len(connects) >= 2 and sio.connected, timeout=30)
        finally:
            await sio.disconnect()


@pytest.mark.postgres
@pytest.mark.slow
async def test_sigterm_drains_and_clients_resume_on_another_node(tmp_path) -> None:
    async with private_redis(tmp_path) as redis, pg_redis_cluster(tmp_path) as cluster:
        configure(cluster, redis.url, DRAIN_TIMEOUT="5")
        await cluster.cli("migrate")
        t = await cluster.cli("tenant", "create", "--name", "Drain")
        a, b = cluster.start("node-a"), cluster.start("node-b")
        await cluster.wait_ready(a)
        await cluster.wait_ready(b)

        def live() -> list[str]:
            return [n.url for n in (a, b) if n.proc.poll() is None and n is not a] or [b.url]

        visitors = [Participant(f"v{i}", "/visitor", {"widget_key": t["widget_key"]}, live) for i in range(6)]
        agent = Participant("admin", "/agent", {"token": t["admin_token"]}, live)
        everyone = [*visitors, agent]
        try:
            for p in everyone:
                await p.connect(a.url)
            convs = []
            for v in visitors:
                assert v.sio is not None
                res = await v.sio.call("conversation:start", namespace="/visitor", timeout=10)
                conv, epoch = res["conversation"]["id"], res["conversation"]["epoch"]
                convs.append(conv)
                v.add_conversation(conv, epoch)
                v._conn_last[conv] = 0
                agent.add_conversation(conv, epoch)
            await agent.reconnect()  # watches every conversation (still on node A: it is the only live url)
            for i in range(3):
                for v, conv in zip(visitors, convs, strict=True):
                    await v.send(conv, f"before {i}")

            started = time.monotonic()
            a.proc.send_signal(signal.SIGTERM)
            # keep talking through the drain: sends that fail are retried on node B
            for i in range(3):
                for v, conv in zip(visitors, convs, strict=True):
                    await v.send(conv, f"during {i}")
                    await agent.send(conv, f"reply {i}")
            rc = await asyncio.to_thread(a.proc.wait, 60)  # generous: a hung node never exits
            took = time.monotonic() - started
            assert rc == 0, a.log()
            # the drain kept within DRAIN_TIMEOUT (5 s) on the node's own clock (its report),
            # whatever the load of the machine made the process's exit take
            drain_seconds = re.search(r"drained: DrainReport\(.*seconds=([0-9.]+)\)", a.log())
            assert drain_seconds is not None and float(drain_seconds.group(1)) <= 5, a.log()
            for p in everyone:
                await p.heal()
                assert p.url == b.url
            assert sum(p.drained for p in everyone) >= 1
            deadline = time.monotonic() + 10
            while True:
                store = await stored_messages(b.url, t["admin_token"], convs)
                result = tally(everyone, store)
                if result.lost == result.duplicated == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            print(f"\nDRAIN {result.line()} exit={rc} took={took:.2f}s")
            assert result.lost == 0 and result.duplicated == 0, result.details[:10]
            assert "draining" in a.log()
        finally:
            await asyncio.gather(*(p.close() for p in everyone))


async def test_drain_answers_waiting_long_polls_with_a_close_packet(tmp_path) -> None:
    """A long-polling client waiting on its GET learns of the drain from that GET at once (a
    close packet, then 400), as websocket clients do from their close frame; before, it
    waited for its next ping (seconds) with no close packet."""
    async with run_gateway(make_config(tmp_path)) as rg:
        nt = await rg.tenant()
        base = f"{rg.url}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(base) as r:
                sid = json.loads((await r.text())[1:])["sid"]
            url = f"{base}&sid={sid}"
            async with http.post(url, data='40/visitor,' + json.dumps({"widget_key": nt.tenant.widget_key})) as r:
                assert r.status == 200
            got = ""
            while "40/visitor" not in got or "session" not in got:  # the CONNECT answer and the session event
                async with http.get(url) as r:
                    got += await r.text()
            drain = asyncio.create_task(rg.gw.app[DRAINER_KEY].drain(2.0))

            async def poll_until_closed() -> list[str]:
                bodies: list[str] = []
                while not bodies or bodies[-1].split("\x1e")[-1] != "1":
                    async with http.get(url) as r:
                        assert r.status == 200
                        bodies.append(await r.text())
                return bodies

            bodies = await asyncio.wait_for(poll_until_closed(), 10)
            assert "server:draining" in "".join(bodies)
            assert (await drain).closed == 1
            async with http.get(url) as r:
                assert r.status == 400
