"""Per-IP rate limits shared by the workers of a node (`gateway/shared_limits.py`): the same
token-bucket behaviour as the in-process `RateLimiter` (one contract, both run), one bucket
for every worker of a node, the in-process bucket while Redis is unreachable, and the
wiring `node_limits` chooses. Redis must be running: its tests fail (never skip) when it
is not."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from gateway.config import LimitsConfig
from gateway.errors import GatewayError
from gateway.ipconns import LocalIpConnections, SharedIpConnections
from gateway.limits import Limits, RateLimiter
from gateway.shared_limits import SharedRateLimiter, node_limits

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE, BURST = 20.0, 3.0  # a token every 50 ms

Hit = Callable[[str], object]


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(REDIS_URL)
    yield r
    await r.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:rl:"


def _limiter(limited: list[str] | None = None) -> RateLimiter:
    return RateLimiter("conversations_per_ip", RATE, BURST,
                       on_limited=None if limited is None else limited.append)


@pytest.fixture(params=["local", "shared"])
def hit(request: pytest.FixtureRequest, redis: aioredis.Redis, prefix: str) -> Hit:
    if request.param == "local":
        return _limiter().hit
    return SharedRateLimiter(_limiter(), redis, prefix).hit


async def _call(hit: Hit, key: str) -> None:
    out = hit(key)
    if inspect.isawaitable(out):
        await out


async def _refusal(hit: Hit, key: str) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await _call(hit, key)
    return info.value


# --- the contract --------------------------------------------------------------------

async def test_a_burst_then_rate_limited_with_the_wait(hit: Hit) -> None:
    for _ in range(int(BURST)):
        await _call(hit, "10.0.0.1")
    err = await _refusal(hit, "10.0.0.1")
    assert err.code.value == "rate_limited" and err.details["limit"] == "conversations_per_ip"
    assert 0 < err.details["retry_after"] <= 1 / RATE + 0.01
    await _call(hit, "10.0.0.2")  # another address has its own bucket


async def test_tokens_come_back_at_the_rate(hit: Hit) -> None:
    for _ in range(int(BURST)):
        await _call(hit, "10.0.0.1")
    await _refusal(hit, "10.0.0.1")
    await asyncio.sleep(1.5 / RATE)
    await _call(hit, "10.0.0.1")
    await _refusal(hit, "10.0.0.1")


# --- shared by the workers of a node -------------------------------------------------

async def test_the_workers_of_a_node_draw_from_one_bucket(redis: aioredis.Redis, prefix: str) -> None:
    limited: list[str] = []
    w0 = SharedRateLimiter(_limiter(limited), redis, prefix)
    w1 = SharedRateLimiter(_limiter(limited), redis, prefix)
    await w0.hit("10.0.0.1")
    await w1.hit("10.0.0.1")
    await w0.hit("10.0.0.1")
    for w in (w0, w1):
        with pytest.raises(GatewayError):
            await w.hit("10.0.0.1")
    assert limited == ["conversations_per_ip"] * 2  # each refusal counted (izh_rate_limited_total)
    # the bucket lives only until it would be full again
    ttl_ms = await redis.pttl(prefix + "10.0.0.1")
    assert 0 < ttl_ms <= BURST / RATE * 1000 + 1000


async def test_while_redis_is_unreachable_each_worker_limits_alone(redis: aioredis.Redis, prefix: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    gone = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        w = SharedRateLimiter(_limiter(), gone, prefix)
        for _ in range(int(BURST)):
            await w.hit("10.0.0.1")
        with pytest.raises(GatewayError):
            await w.hit("10.0.0.1")
        assert w.failures.degraded and w.failures.count == BURST + 1
        assert sum("limiting per worker" in r.getMessage() for r in caplog.records) == 1
        w._take = SharedRateLimiter(_limiter(), redis, prefix)._take  # Redis is back
        await w.hit("10.0.0.1")
        assert not w.failures.degraded
    finally:
        await gone.aclose()


async def test_node_limits_are_shared_only_on_a_node_of_workers_with_redis() -> None:
    limits = Limits(LimitsConfig())
    one = node_limits(limits, 7, redis_url=REDIS_URL, prefix="p:", worker_node_ids=None)
    assert isinstance(one.connections, LocalIpConnections) and one.redis is None and one.shared == ()
    assert one.conversations == limits.conversations_per_ip.hit and one.uploads == limits.uploads.hit
    assert one.connections.limit == 7
    no_redis = node_limits(limits, 7, redis_url=None, prefix="p:", worker_node_ids=["n-w0", "n-w1"])
    assert isinstance(no_redis.connections, LocalIpConnections)
    shared = node_limits(limits, 7, redis_url=REDIS_URL, prefix="p:", worker_node_ids=["n-w0", "n-w1"], index=1)
    try:
        assert isinstance(shared.connections, SharedIpConnections) and shared.connections._own == "p:ipconns:n-w1"
        conversations, uploads = shared.shared[1:]
        assert isinstance(conversations, SharedRateLimiter) and isinstance(uploads, SharedRateLimiter)
        assert shared.conversations == conversations.hit and shared.uploads == uploads.hit
        assert conversations._prefix == "p:ratelimit:n:conversations_per_ip:"
        assert uploads.local is limits.uploads
        assert shared.redis_errors() == 0
    finally:
        await shared.close()
