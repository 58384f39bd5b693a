"""Two gateways in this process on one SQLite file and one Redis, node A reaching Redis
through a loopback TCP proxy that the test hangs (stops forwarding, connections kept
open) or takes down (connections refused). Node A keeps acking `message:send` and
delivering to its own watchers; when Redis is back, node B's watchers get every message
exactly once, in order; the outage is logged in one line and its end in another.
Redis must be running: these tests fail, never skip, without it."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.broker.redis import RedisBroker
from gateway.config import Config
from tests.contract.test_broker_contract import REDIS_URL, require_redis
from tests.contract.test_redis_broker_resilience import TcpProxy
from tests.support.server import Client, RunningGateway, agent, make_config, new_client_id, run_gateway, visitor

pytestmark = [pytest.mark.redis, pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")]

MESSAGES = 20
ACK = 5.0  # the deadline of each ack; a node that publishes before acking needs ≥ 12 s with Redis hung
CATCH_UP = 30.0  # the outbox retries with backoff (≤ 2 s) and each attempt may wait for a 2 s timeout


@dataclass
class Cluster:
    a: RunningGateway  # through the proxy
    b: RunningGateway  # straight to Redis
    proxy: TcpProxy
    visitor: Client  # on A
    agent_a: Client  # watches the conversation on A
    agent_b: Client  # ... and on B
    conv: str

    @property
    def broker_a(self) -> RedisBroker:
        broker = self.a.gw.broker
        assert isinstance(broker, RedisBroker)
        return broker

    async def send(self, text: str, sender: Client | None = None) -> int:
        res = await (sender or self.visitor).call("message:send", {
            "conversation_id": self.conv, "client_id": new_client_id(), "text": text}, timeout=ACK)
        assert res["ok"], res
        seq: int = res["message"]["seq"]
        return seq

    def seqs(self, client: Client) -> list[int]:
        return [m["seq"] for m in client.messages(self.conv)]

    async def received(self, client: Client, upto: int, timeout: float = ACK) -> None:
        await client.wait_for(lambda: upto in self.seqs(client), timeout)


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    await require_redis()
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    prefix = f"izh-test:{uuid.uuid4().hex[:12]}:"
    limits: dict[str, Any] = {"visitor_messages_per_sec": 1000.0, "visitor_messages_burst": 1000.0}

    def config(url: str) -> Config:
        base = make_config(tmp_path, **limits)  # one data_dir: both nodes on one SQLite file
        return replace(base, storage=replace(base.storage, redis_url=url, redis_prefix=prefix))

    clients: list[Client] = []
    try:
        async with run_gateway(config(proxy.url)) as a, run_gateway(config(REDIS_URL)) as b:
            try:
                nt = await a.tenant()
                _, token_a = await a.agent_token(nt.tenant.id, "Agent A", capacity=10)
                _, token_b = await b.agent_token(nt.tenant.id, "Agent B", capacity=10)
                v = await visitor(a.url, nt.tenant.widget_key)
                clients.append(v)
                agent_a = await agent(a.url, token_a)
                clients.append(agent_a)
                agent_b = await agent(b.url, token_b)
                clients.append(agent_b)
                started = await v.call("conversation:start")
                assert started["ok"], started
                conv = started["conversation"]["id"]
                for ag in (agent_a, agent_b):
                    assert (await ag.call("conversation:watch", {"conversation_id": conv}))["ok"]
                c = Cluster(a, b, proxy, v, agent_a, agent_b, conv)
                assert await c.send("before") == 1
                for ag in (agent_a, agent_b):  # Redis works both ways
                    await c.received(ag, 1)
                yield c
            finally:
                for client in clients:
                    await client.close()
    finally:
        await proxy.stop()


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.INFO]


async def test_a_node_hung_from_redis_keeps_acking_and_its_watchers_get_everything(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with cluster(tmp_path) as c:
        caplog.clear()
        caplog.set_level(logging.INFO)
        c.proxy.pause()  # Redis hangs for node A: nothing forwarded, nothing closed
        acked = [await c.send(f"hung {i}") for i in range(MESSAGES)]  # each within ACK seconds
        assert acked == list(range(2, MESSAGES + 2))
        await c.received(c.agent_a, MESSAGES + 1)  # node A's own watchers, Redis hung
        assert c.seqs(c.agent_a) == list(range(1, MESSAGES + 2))
        await c.broker_a.wait_connected(False)  # A found out (its publishes time out)
        assert c.seqs(c.agent_b) == [1]  # nothing reached node B meanwhile

        c.proxy.resume()
        await c.received(c.agent_b, MESSAGES + 1, CATCH_UP)  # no later message needed
        await c.broker_a.wait_connected(True)
        assert await c.send("after") == MESSAGES + 2
        for ag in (c.agent_a, c.agent_b):  # the end of the stream: nothing more is on its way
            await c.received(ag, MESSAGES + 2)
            assert c.seqs(ag) == list(range(1, MESSAGES + 3))  # each exactly once, in order

        lines = outage_lines(caplog)
        assert [(r.levelno, r.getMessage().split(" (")[0]) for r in lines] == [
            (logging.WARNING, "redis connection lost"), (logging.INFO, "redis connection restored")], lines
        assert c.broker_a.publish_failures > 0 and c.broker_a.publish_dropped == 0


async def test_an_outage_is_logged_once_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Redis refusing node A's connections: sends were acked before too, but each logged two
    WARNINGs; now the outage is one line, its end another, and the failures a counter."""
    async with cluster(tmp_path) as c:
        caplog.clear()
        caplog.set_level(logging.INFO)
        await c.proxy.stop()  # connections cut and refused
        acked = [await c.send(f"down {i}") for i in range(MESSAGES)]
        assert acked == list(range(2, MESSAGES + 2))
        assert len(outage_lines(caplog)) <= 1, outage_lines(caplog)  # not one (or two) per message
        await c.received(c.agent_a, MESSAGES + 1)
        await c.broker_a.wait_connected(False)

        await c.proxy.start()
        await c.received(c.agent_b, MESSAGES + 1, CATCH_UP)
        await c.broker_a.wait_connected(True)
        assert await c.send("after") == MESSAGES + 2
        for ag in (c.agent_a, c.agent_b):
            await c.received(ag, MESSAGES + 2)
            assert c.seqs(ag) == list(range(1, MESSAGES + 3))

        lines = outage_lines(caplog)
        assert len(lines) == 2, lines
        assert lines[0].levelno == logging.WARNING and "redis connection lost" in lines[0].getMessage()
        assert lines[1].levelno == logging.INFO and "redis connection restored" in lines[1].getMessage()
        async with aiohttp.ClientSession() as http, http.get(f"{c.a.url}/metrics") as resp:
            text = await resp.text()
        failures = next(line for line in text.splitlines() if line.startswith("izh_broker_publish_failures_total "))
        assert float(failures.split()[1]) > 0
        assert "izh_broker_publish_dropped_total 0" in text
        assert "\nizh_broker_publish_backlog " in text


async def test_a_hung_pubsub_connection_is_replaced_and_the_node_catches_up(tmp_path: Path) -> None:
    """What other nodes publish while node A's Redis hangs is lost to A's pub/sub connection;
    A finds the connection dead (an unanswered PING), replaces it when Redis answers again,
    and its watchers catch up from the store, with no later message needed."""
    async with cluster(tmp_path) as c:
        c.broker_a.health_interval = 0.2  # (from the reader's next wait on: within 5 s)
        c.proxy.pause()
        await c.broker_a.wait_connected(False)  # no reply to PING
        acked = [await c.send(f"from B {i}", c.agent_b) for i in range(5)]
        assert acked == list(range(2, 7))
        await c.received(c.agent_b, 6)
        c.proxy.resume()
        await c.received(c.agent_a, 6, CATCH_UP)
        assert c.seqs(c.agent_a) == list(range(1, 7))
        assert c.broker_a.reconnects == 1
