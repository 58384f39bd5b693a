"""One node as three worker processes on one port (WORKERS=3), sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.integration.test_node_client import EXPECTED, run_node_conversation
from tests.support.metrics import limits_synced
from tests.support.procs import Cluster, Node, pg_redis_cluster
from tests.support.server import Client, agent, handshake_refusal, new_client_id, visitor
from tests.support.waits import until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def _children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(x) for x in text.split()}


async def _workers_up(node: Node, count: int, timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(node.proc.pid)
        if len(kids) == count:
            return kids
        await asyncio.sleep(0.1)
    raise AssertionError(f"workers: {_children(node.proc.pid)}\n{node.log()}")


async def _start(cluster: Cluster) -> tuple[Node, dict[str, str]]:
    t = await cluster.cli("tenant", "create", "--name", "Workers")  # migrates too
    node = cluster.start("node-w", WORKERS="3")
    await cluster.wait_ready(node)
    await _workers_up(node, 3)
    await _all_listening(node, 3)
    return node, t


async def _all_listening(node: Node, count: int, timeout: float = 20.0) -> None:
    """Until every worker has answered on the shared port (a started worker may not be
    listening yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(await _scrape_workers(node.url, "izh_node_info", tries=30)) == count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not all {count} workers listen:\n{node.log()}")


def _mark(c: Client) -> str:
    sid = c.sio.eio.sid
    assert isinstance(sid, str) and sid
    return sid[0]


async def _fresh_connections() -> aiohttp.ClientSession:
    # one TCP connection per request: the kernel picks a worker for each
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def test_workers_share_the_port_and_hand_over_polling_sessions(tmp_path: Path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        node, t = await _start(cluster)
        clients: list[Client] = []
        try:
            ag = await agent(node.url, t["admin_token"])
            clients.append(ag)
            ws = [await visitor(node.url, t["widget_key"]) for _ in range(12)]
            clients += ws
            assert len({_mark(c) for c in [ag, *ws]}) >= 2  # spread over workers by the kernel

            # long-polling only, every request on a new connection: most land on a worker
            # that does not hold the session and are handed over to the one that does
            http = await _fresh_connections()
            pv = await visitor(node.url, t["widget_key"], options={"transports": ["polling"], "http_session": http})
            clients.append(pv)
            conv = (await pv.call("conversation:start"))["conversation"]["id"]
            assert (await ag.call("conversation:watch", {"conversation_id": conv}))["ok"]
            for i in range(8):
                r = await pv.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                   "text": f"poll {i}"})
                assert r["message"]["seq"] == i + 1
            await ag.wait_for(lambda: len(ag.messages(conv)) == 8)
            await ag.call("message:send", {"conversation_id": conv, "client_id": new_client_id(), "text": "hi"})
            await pv.wait_for(lambda: any(m["text"] == "hi" for m in pv.messages(conv)))

            # the stock client's default: polling, then an upgrade to websocket on a new connection
            http2 = await _fresh_connections()
            up = await visitor(node.url, t["widget_key"],
                               options={"transports": ["polling", "websocket"], "http_session": http2})
            clients.append(up)
            await until(lambda: up.sio.transport() == "websocket", timeout=30)
            conv2 = (await up.call("conversation:start"))["conversation"]["id"]
            r = await up.call("message:send", {"conversation_id": conv2, "client_id": new_client_id(), "text": "up"})
            assert r["ok"]

            # each worker counts what it adopted: sum over scrapes until all three answered
            adopted = await _scrape_workers(node.url, "izh_handoffs_adopted_total")
            assert len(adopted) == 3 and sum(adopted.values()) >= 3, adopted
            # one scrape of the node answers for all three, each sample labelled by worker
            async with http.get(node.url + "/metrics") as resp:
                text = await resp.text()
            info = [line for line in text.splitlines() if line.startswith("izh_node_info{")]
            assert len(info) == 3 and {f'worker="{i}"' in " ".join(info) for i in range(3)} == {True}, info
            assert "izh_scrape_workers_missing 0.0" in text
            whole = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("izh_handoffs_adopted_total{"))
            assert whole >= sum(adopted.values())
            await http.close()
            await http2.close()
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.close()


async def test_connections_per_ip_are_limited_for_the_whole_node(tmp_path: Path) -> None:
    """MAX_CONNECTIONS_PER_IP=4 on a node of three workers: 4 visitors from one address in
    all, wherever the kernel puts each connection (counted per worker, up to 12 would get in),
    and a place freed on one worker is free on every other (every Engine.IO session counts, an agent's
    too); the conversations and uploads per IP too."""
    async with pg_redis_cluster(tmp_path) as cluster:
        t = await cluster.cli("tenant", "create", "--name", "Limits")
        node = cluster.start("node-l", WORKERS="3", MAX_CONNECTIONS_PER_IP="4", RATE_IP_CONVERSATIONS_BURST="3",
                             RATE_IP_CONVERSATIONS_PER_MIN="1", RATE_IP_UPLOADS_BURST="2", RATE_IP_UPLOADS_PER_MIN="1")
        await cluster.wait_ready(node)
        await _workers_up(node, 3)
        await _all_listening(node, 3)
        clients: list[Client] = []
        try:
            refused = 0
            for _ in range(10):
                try:
                    clients.append(await visitor(node.url, t["widget_key"]))
                except socketio.exceptions.ConnectionError:
                    refused += 1
            assert len(clients) == 4, node.log()
            assert refused == 6
            refusal = await handshake_refusal(node.url)
            assert refusal is not None and refusal["context"]["code"] == "rate_limited"
            await clients.pop().close()
            deadline = time.monotonic() + 30  # generous: the release reaches Redis in milliseconds
            while len(clients) < 4:  # the next connection may land on any worker
                try:
                    clients.append(await visitor(node.url, t["widget_key"]))
                except socketio.exceptions.ConnectionError:
                    assert time.monotonic() < deadline, "the freed place was not seen by the other workers"
                    await asyncio.sleep(0.1)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await visitor(node.url, t["widget_key"])
            # conversations per IP: one bucket for the node (per worker, two or three workers
            # holding these visitors would have let 6-8 of the 8 through)
            starts = [await c.call("conversation:start") for c in clients for _ in range(2)]
            assert [s["ok"] for s in starts].count(True) == 3, starts
            assert {s["error"]["code"] for s in starts if not s["ok"]} == {"rate_limited"}
            # uploads per IP, each POST on a new connection (so on any worker): 2 for the node
            http = await _fresh_connections()
            statuses = []
            for _ in range(6):
                async with http.post(node.url + "/api/v1/uploads", data=b"x") as resp:
                    statuses.append(resp.status)
            await http.close()
            assert statuses.count(429) == 4, statuses
            with pytest.raises(socketio.exceptions.ConnectionError):  # every session counts, an agent's too
                clients.append(await agent(node.url, t["admin_token"]))
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.close()


async def test_messages_per_ip_are_limited_for_the_whole_node(tmp_path: Path) -> None:
    """RATE_IP_MESSAGES_BURST=4 on a node of three workers: visitors from one address on two
    workers send 4 messages each (each worker's own bucket lets its 4 through until the
    workers sync, every 0.5 s); then a visitor on the third worker, whose own bucket is
    full, is refused too — the node's bucket is in debt — and nothing of it is stored."""
    async with pg_redis_cluster(tmp_path) as cluster:
        t = await cluster.cli("tenant", "create", "--name", "Messages")
        node = cluster.start("node-m", WORKERS="3", RATE_IP_MESSAGES_BURST="4", RATE_IP_MESSAGES_PER_SEC="0.1")
        await cluster.wait_ready(node)
        await _workers_up(node, 3)
        await _all_listening(node, 3)
        by_worker: dict[str, Client] = {}
        spare: list[Client] = []
        try:
            for _ in range(40):  # the kernel picks each connection's worker
                c = await visitor(node.url, t["widget_key"])
                if _mark(c) in by_worker:
                    spare.append(c)
                else:
                    by_worker[_mark(c)] = c
                if len(by_worker) == 3:
                    break
            assert len(by_worker) == 3, "three workers never got a connection"
            first, second, third = by_worker.values()
            convs = {id(c): (await c.call("conversation:start"))["conversation"]["id"] for c in by_worker.values()}

            async def send(c: Client) -> Any:
                return await c.call("message:send", {"conversation_id": convs[id(c)], "client_id": new_client_id(),
                                                     "text": "x"})

            sent = [await send(c) for c in (first, second) for _ in range(4)]
            accepted = sum(r["ok"] for r in sent)
            assert accepted >= 5, sent  # more than the node's 4: a worker learns only at a sync
            await limits_synced([node.url])  # every worker synced after the others had
            refused = await send(third)
            assert not refused["ok"] and refused["error"]["code"] == "rate_limited", refused
            assert refused["error"]["details"]["limit"] == "messages_per_ip"
            # the debt (at least 1 of 0.1 a second) takes seconds to pay back
            assert refused["error"]["details"]["retry_after"] > 2
            history = await third.call("messages:history", {"conversation_id": convs[id(third)]})
            assert history["ok"] and history["messages"] == []
        finally:
            for c in [*by_worker.values(), *spare]:
                with contextlib.suppress(Exception):
                    await c.close()


@pytest.mark.node
async def test_the_stock_node_client_polls_then_upgrades_across_workers(tmp_path: Path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        node, t = await _start(cluster)
        for _ in range(3):
            got = await run_node_conversation(node.url, t["widget_key"], t["admin_token"], "polling,websocket")
            assert got == EXPECTED
        assert sum((await _scrape_workers(node.url, "izh_handoffs_adopted_total")).values()) >= 1


async def test_a_call_is_answered_by_an_agent_on_another_worker(tmp_path: Path) -> None:
    """The call lives on the caller's worker; the agent's accept and hang-up travel there
    through Redis (gateway/cluster/noderpc.py), the media goes to it directly."""
    from tests.calls.support import endpoint

    async with pg_redis_cluster(tmp_path) as cluster:
        cluster.env.update({"CALL_HOST_ADDRESSES": "127.0.0.1", "ICE_SERVERS": "[]"})
        node, t = await _start(cluster)
        clients: list[Client] = []
        caller, callee = endpoint(440), endpoint(660)
        try:
            v = await visitor(node.url, t["widget_key"])
            clients.append(v)
            ag = None
            for _ in range(30):  # an agent connection that landed on another worker than the caller's
                c = await agent(node.url, t["admin_token"])
                clients.append(c)
                if _mark(c) != _mark(v):
                    ag = c
                    break
            assert ag is not None
            await ag.call("presence:set", {"status": "online"})
            conv = (await v.call("conversation:start"))["conversation"]["id"]
            ack = await v.call("call:start", {"conversation_id": conv, "sdp": await caller.offer()}, timeout=10)
            assert ack["ok"], ack
            await caller.answer(ack["sdp"])
            acc = await ag.call("call:accept", {"call_id": ack["call"]["id"], "sdp": await callee.offer()},
                                timeout=10)
            assert acc["ok"] and acc["call"]["state"] == "answered", acc
            await callee.answer(acc["sdp"])
            await until(lambda: caller.frames > 10 and callee.frames > 10, timeout=60)
            hang = await ag.call("call:hangup", {"call_id": ack["call"]["id"]})
            assert hang["ok"] and hang["call"]["end_reason"] == "agent_hangup", hang
        finally:
            for e in (caller, callee):
                await e.close()
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.close()


async def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        node, _ = await _start(cluster)
        workers = await _workers_up(node, 3)
        node.kill()  # SIGKILL: no chance to stop them itself
        for _ in range(200):  # each drains (DRAIN_TIMEOUT) and exits
            if not any(_alive(p) for p in workers):
                break
            await asyncio.sleep(0.1)
        assert not any(_alive(p) for p in workers)


async def _scrape_workers(url: str, metric: str, tries: int = 200) -> dict[str, float]:
    """`metric` of each worker: /metrics?scope=worker on fresh connections until every node
    id was seen (at most `tries` scrapes)."""
    seen: dict[str, float] = {}
    async with await _fresh_connections() as http:
        for _ in range(tries):
            async with http.get(url + "/metrics?scope=worker") as r:
                text = await r.text()
            node = _node_of(text)
            for line in text.splitlines():
                if line.startswith((metric + " ", metric + "{")):
                    seen[node] = float(line.rsplit(" ", 1)[1])
            if len(seen) == 3:
                break
    return seen


def _node_of(metrics: str) -> str:
    for line in metrics.splitlines():
        if line.startswith("izh_node_info{"):
            return line.split('node="', 1)[1].split('"', 1)[0]
    raise AssertionError("no izh_node_info in /metrics")


async def test_a_dead_worker_is_restarted_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    async with pg_redis_cluster(tmp_path) as cluster:
        node, t = await _start(cluster)
        first = await _workers_up(node, 3)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = _children(node.proc.pid)
            if len(now) == 3 and victim not in now:
                break
            await asyncio.sleep(0.1)
        now = _children(node.proc.pid)
        assert len(now) == 3 and victim not in now and len(now & first) == 2
        # the node keeps serving on its port, on every worker
        ok: list[Any] = []
        for _ in range(9):
            v = await visitor(node.url, t["widget_key"])
            ok.append((await v.call("conversation:start"))["ok"])
            await v.close()
        assert all(ok)
        node.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(node.proc.wait, 30)
        assert code == 0, node.log()
        assert not any(_alive(pid) for pid in now)
