"""Rate limits and connection caps (gateway/admission/limits.py, gateway/admission/guard.py)."""

from __future__ import annotations

import aiohttp
import pytest
import socketio

from gateway.admission.limits import ConnectionCounter, RateLimiter
from gateway.core.errors import Code, GatewayError
from tests.support.server import make_config, new_client_id, run_gateway, visitor
from tests.support.waits import until


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_burst_then_refuses_with_retry_after() -> None:
    clock = FakeClock()
    rl = RateLimiter("x", rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        rl.hit("k")
    with pytest.raises(GatewayError) as err:
        rl.hit("k")
    assert err.value.code == Code.RATE_LIMITED
    assert err.value.details["retry_after"] == pytest.approx(0.5)
    clock.t += 0.5
    rl.hit("k")  # refilled one token
    rl.hit("other")  # keys are independent


def test_idle_buckets_expire_and_key_count_is_capped() -> None:
    clock = FakeClock()
    rl = RateLimiter("x", rate=1.0, burst=2, clock=clock, max_keys=50)
    for i in range(1000):
        rl.hit(f"ip-{i}")
    assert len(rl) == 50  # least recently used dropped beyond max_keys
    clock.t += rl.idle_after + 0.01
    rl.hit("fresh")
    assert len(rl) == 1  # everything idle long enough to be full again is forgotten


def test_connection_counter_drops_zero_keys() -> None:
    c = ConnectionCounter(2)
    c.acquire("a")
    c.acquire("a")
    with pytest.raises(GatewayError):
        c.acquire("a")
    c.release("a")
    c.release("a")
    assert len(c) == 0


async def test_visitor_rate_limits_and_connection_cap(tmp_path) -> None:
    cfg = make_config(tmp_path, visitor_messages_per_sec=0.5, visitor_messages_burst=3,
                      conversations_per_ip_per_min=1, conversations_per_ip_burst=2, max_connections_per_ip=3)
    async with run_gateway(cfg) as rg:
        t = await rg.tenant()
        v = await visitor(rg.url, t.tenant.widget_key)
        others = []
        try:
            conv = (await v.call("conversation:start"))["conversation"]["id"]
            assert (await v.call("conversation:start"))["ok"]
            third = await v.call("conversation:start")
            assert third["error"]["code"] == "rate_limited"
            assert third["error"]["details"]["retry_after"] > 0
            acks = [await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                  "text": f"m{i}"}) for i in range(5)]
            assert [a["ok"] for a in acks] == [True, True, True, False, False]
            assert acks[3]["error"]["code"] == "rate_limited"
            assert acks[3]["error"]["details"]["retry_after"] > 0
            hist = await v.call("messages:history", {"conversation_id": conv})
            assert len(hist["messages"]) == 3  # refused sends stored nothing
            # sessions per IP: 3 allowed, the 4th Engine.IO handshake is refused (429, rate_limited)
            others = [await visitor(rg.url, t.tenant.widget_key) for _ in range(2)]
            with pytest.raises(socketio.exceptions.ConnectionError):
                await visitor(rg.url, t.tenant.widget_key)
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{rg.url}/socket.io/?EIO=4&transport=polling") as r:
                assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
                body = await r.json()
                assert body["context"]["code"] == "rate_limited"
                assert body["context"]["details"]["limit"] == "connections_per_ip"
            await others.pop().close()
            sessions = rg.gw.realtime.sockets.engine.sessions
            await until(lambda: len(sessions) == 2, timeout=5)  # the closed session released its place
            others.append(await visitor(rg.url, t.tenant.widget_key))  # a slot is free again
            body = (await _metrics(rg.url))
            assert 'izh_rate_limited_total{limit="messages_per_connection"}' in body
        finally:
            for o in others:
                await o.close()
            await v.close()


async def _metrics(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        return await resp.text()


async def test_upload_rate_limit_per_ip(tmp_path) -> None:
    import aiohttp

    cfg = make_config(tmp_path, uploads_per_ip_per_min=1, uploads_per_ip_burst=2)
    async with run_gateway(cfg) as rg, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(rg.url + "/api/v1/uploads", data=b"x") as resp:
                statuses.append((resp.status, await resp.json()))
        assert [s for s, _ in statuses[:2]] != [429, 429]  # the endpoint's own answer (no credentials)
        status, body = statuses[2]
        assert status == 429 and body["error"]["code"] == "rate_limited"
        assert body["error"]["details"]["retry_after"] > 0
