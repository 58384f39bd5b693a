"""Per-IP rate limits shared by the workers of a node (`gateway/admission/shared_limits.py`): the same
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
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.admission.ipconns import LocalIpConnections, SharedIpConnections
from gateway.admission.limits import Limits, RateLimiter
from gateway.admission.shared_limits import (
    SYNC_CHUNK,
    NodeLimits,
    SharedRateLimiter,
    SyncedRateLimiter,
    node_limits,
)
from gateway.config import LimitsConfig
from gateway.core.errors import GatewayError
from tests.support.procs import free_port
from tests.support.waits import until

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE, BURST = 10.0, 3.0  # a token every 100 ms: a loaded machine's stall of 50 ms changes no outcome

Hit = Callable[[str], object]


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(REDIS_URL)
    yield r
    await r.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:rl:"


def _limiter(limited: list[str] | None = None, rate: float = RATE) -> RateLimiter:
    return RateLimiter("conversations_per_ip", rate, BURST,
                       on_limited=None if limited is None else limited.append)


@pytest.fixture(params=["local", "shared"])
def hit_at(request: pytest.FixtureRequest, redis: aioredis.Redis, prefix: str) -> Callable[[float], Hit]:
    """The limiter under test at a given rate: in-process, or shared through Redis."""
    def make(rate: float) -> Hit:
        if request.param == "local":
            return _limiter(rate=rate).hit
        return SharedRateLimiter(_limiter(rate=rate), redis, prefix).hit
    return make


@pytest.fixture
def hit(hit_at: Callable[[float], Hit]) -> Hit:
    return hit_at(RATE)


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


async def test_tokens_come_back_at_the_rate(hit_at: Callable[[float], Hit]) -> None:
    """After the wait a refusal names, one token is back, and only one: at 2 tokens a second
    the next one is 0.5 s away, which no delay of a loaded machine between two calls reaches.
    (The shared bucket runs on Redis's clock: the wait is real time.)"""
    hit = hit_at(2.0)
    for _ in range(int(BURST)):
        await _call(hit, "10.0.0.1")
    err = await _refusal(hit, "10.0.0.1")
    await asyncio.sleep(err.details["retry_after"])  # never returns early
    await _call(hit, "10.0.0.1")
    assert (await _refusal(hit, "10.0.0.1")).details["retry_after"] <= 1 / 2.0 + 0.01


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
    one = node_limits(limits, 7, redis_url=REDIS_URL, prefix="p:", node_id="n", worker_node_ids=None)
    assert isinstance(one.connections, LocalIpConnections) and one.redis is None and one.shared == ()
    assert one.conversations == limits.conversations_per_ip.hit and one.uploads == limits.uploads.hit
    assert one.connections.limit == 7
    no_redis = node_limits(limits, 7, redis_url=None, prefix="p:", node_id="n-w0", worker_node_ids=["n-w0", "n-w1"])
    assert isinstance(no_redis.connections, LocalIpConnections)
    assert one.messages == limits.messages_per_ip.hit and one.synced is None
    shared = node_limits(limits, 7, redis_url=REDIS_URL, prefix="p:", node_id="n-w1", worker_node_ids=["n-w0", "n-w1"])
    try:
        assert isinstance(shared.connections, SharedIpConnections)
        assert shared.connections._keys == ["p:ipconns:n-w1", "p:ipconns:n:~workers"]
        conversations, uploads, messages = shared.shared[1:]
        assert isinstance(messages, SyncedRateLimiter) and shared.synced is messages
        assert shared.messages == messages.hit and messages.local is limits.messages_per_ip
        assert messages._prefix == "p:ratelimit:n:messages_per_ip:"
        assert isinstance(conversations, SharedRateLimiter) and isinstance(uploads, SharedRateLimiter)
        assert shared.conversations == conversations.hit and shared.uploads == uploads.hit
        assert conversations._prefix == "p:ratelimit:n:conversations_per_ip:"
        assert uploads.local is limits.uploads
        assert shared.redis_errors() == 0
    finally:
        await shared.close()


async def test_with_the_cluster_scope_every_process_shares_the_limits() -> None:
    """LIMITS_SCOPE=cluster: a process of one worker shares them too (with Redis), under keys
    of the cluster's that no node's can be."""
    limits = Limits(LimitsConfig())
    assert node_limits(limits, 7, redis_url=None, prefix="p:", node_id="a", worker_node_ids=None,
                       scope="cluster").redis is None  # the config check refuses this; no Redis, no sharing
    with pytest.raises(ValueError):
        node_limits(limits, 7, redis_url=REDIS_URL, prefix="p:", node_id="a", worker_node_ids=None, scope="world")
    for node_id, workers in (("a", None), ("b-w1", ["b-w0", "b-w1"])):
        shared = node_limits(limits, 7, redis_url=REDIS_URL, prefix="p:", node_id=node_id, worker_node_ids=workers,
                             scope="cluster")
        try:
            assert isinstance(shared.connections, SharedIpConnections)
            assert shared.connections._keys == [f"p:ipconns:{node_id}", "p:ipconns:~cluster:~workers"]
            conversations, uploads, messages = shared.shared[1:]
            assert isinstance(conversations, SharedRateLimiter) and isinstance(uploads, SharedRateLimiter)
            assert isinstance(messages, SyncedRateLimiter)
            assert [conversations._prefix, uploads._prefix, messages._prefix] == [
                "p:ratelimit:~cluster:conversations_per_ip:", "p:ratelimit:~cluster:uploads_per_ip:",
                "p:ratelimit:~cluster:messages_per_ip:"]
        finally:
            await shared.close()


# --- messages per IP: decided at once, synced to the node ---------------------------

def _messages(redis: aioredis.Redis, prefix: str, limited: list[str] | None = None,
              rate: float = RATE) -> SyncedRateLimiter:
    local = RateLimiter("messages_per_ip", rate, BURST, on_limited=None if limited is None else limited.append)
    return SyncedRateLimiter(local, redis, prefix, interval=60.0)  # synced by hand below


def _refused(w: SyncedRateLimiter, key: str) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        w.hit(key)
    return info.value


async def test_messages_are_limited_for_the_node_once_its_workers_synced(redis: aioredis.Redis,
                                                                         prefix: str) -> None:
    limited: list[str] = []
    w0, w1, w2 = (_messages(redis, prefix, limited) for _ in range(3))
    for w in (w0, w1):  # each worker's own bucket lets its burst through: twice the node's
        for _ in range(int(BURST)):
            w.hit("10.0.0.1")
    w2.hit("10.0.0.2")
    for w in (w0, w1, w2):
        await w.sync()
    await w0.sync()  # w0 synced before w1's messages put the bucket in debt: it learns now
    # the node's bucket is BURST in debt: every worker refuses the address, also w2, whose
    # own bucket is full, for as long as the debt takes to pay back
    for w in (w0, w1, w2):
        err = _refused(w, "10.0.0.1")
        assert err.code.value == "rate_limited" and err.details["limit"] == "messages_per_ip"
        # the debt's wait, longer than the worker's own bucket would name (1 / RATE)
        assert 1 / RATE + 0.01 < err.details["retry_after"] <= BURST / RATE + 0.01
    assert limited == ["messages_per_ip"] * 3  # counted like any refusal (izh_rate_limited_total)
    w2.hit("10.0.0.2")  # another address is not held up
    await asyncio.sleep((BURST + 1.5) / RATE)  # the scenario's time passing: never returns early
    w2.hit("10.0.0.1")  # paid back (and 1.5 tokens more): the worker's own bucket decides again
    await w2.sync()
    assert w2._blocked == {} and not await redis.exists(prefix + "~debt")
    ttl_ms = await redis.pttl(prefix + "10.0.0.1")  # the node's bucket expires when full again
    assert 0 < ttl_ms <= BURST / RATE * 1000 + 1000


async def test_one_worker_alone_is_never_refused_by_its_syncs(redis: aioredis.Redis, prefix: str) -> None:
    """The node's bucket is debited after the fact with what the worker's own (identical)
    bucket let through, so on its own it never goes into debt: the sync refuses nothing
    the worker's bucket would not."""
    w = _messages(redis, prefix)
    for _ in range(5):
        while True:
            try:
                w.hit("10.0.0.1")
            except GatewayError as exc:
                assert exc.details["retry_after"] <= 1 / RATE + 0.01
                break
        await w.sync()
        assert w._blocked == {}
        await asyncio.sleep(1.5 / RATE)  # tokens come back (longer only adds tokens: no debt either way)


async def test_a_sync_carries_every_address_in_chunks(redis: aioredis.Redis, prefix: str) -> None:
    # a token every 10 s: the debt of one token outlasts the three syncs of 1,207 addresses
    # below, however loaded the machine
    w0, w1 = _messages(redis, prefix, rate=0.1), _messages(redis, prefix, rate=0.1)
    keys = [f"10.1.{i // 256}.{i % 256}" for i in range(SYNC_CHUNK * 2 + 7)]
    for key in keys:
        for w in (w0, w1):
            for _ in range(2):
                w.hit(key)
    await w0.sync()
    assert w0._sent == {} and w0._blocked == {}  # 2 of 3 tokens: no debt yet
    await w1.sync()
    assert set(w1._blocked) == set(keys)  # 4 of 3: every one in debt
    assert len(await redis.keys(prefix + "*")) == len(keys) + 1  # and the list of them
    await w0.sync()  # sends nothing, learns the node's debts
    assert set(w0._blocked) == set(keys)


async def test_messages_limited_per_worker_while_redis_is_unreachable(prefix: str,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    gone = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        w = _messages(gone, prefix)
        for _ in range(int(BURST)):
            w.hit("10.0.0.1")
        _refused(w, "10.0.0.1")  # the worker's own bucket
        await w.sync()
        w.hit("10.0.0.9")
        await w.sync()
        assert w.failures.degraded and w.failures.count == 2 and w._sent == {}
        assert sum("limiting per worker" in r.getMessage() for r in caplog.records) == 1
    finally:
        await gone.aclose()


async def test_a_paused_worker_learns_of_a_debt_from_the_news_and_refuses_at_once(redis: aioredis.Redis,
                                                                                   prefix: str) -> None:
    """Three workers of a node. w0 lets nothing through, so after `linger` quiet syncs it
    pauses (it makes no call to Redis while paused). w1 and w2 each let a burst through
    from one address: the node's bucket goes into debt, the sync that did it publishes the
    news, w0 wakes, syncs and refuses that address's very first message to it."""
    def worker() -> SyncedRateLimiter:
        return SyncedRateLimiter(RateLimiter("messages_per_ip", RATE, BURST), redis, prefix, interval=0.05, linger=2)

    w0, w1, w2 = worker(), worker(), worker()
    for w in (w0, w1, w2):
        w.start()
    try:
        await until(lambda: w0.paused)
        paused_at = w0.syncs
        for w in (w1, w2):
            for _ in range(int(BURST)):
                w.hit("10.0.0.9")
        await until(lambda: w0.news >= 1 and w0.syncs > paused_at)
        err = _refused(w0, "10.0.0.9")
        assert err.code == "rate_limited" and err.details["limit"] == "messages_per_ip"
        await until(lambda: w0.paused)  # quiet again: paused again
    finally:
        for w in (w0, w1, w2):
            await w.close()


async def test_a_worker_that_hears_no_news_keeps_syncing(prefix: str) -> None:
    """No subscription (Redis unreachable here): the worker never pauses, so that it goes
    on learning debts every interval once Redis answers."""
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2,
                          retry=Retry(NoBackoff(), 0))  # each failed call fails at once
    w = SyncedRateLimiter(RateLimiter("messages_per_ip", RATE, BURST), dead, prefix, interval=0.02, linger=2)
    w.start()
    try:
        await until(lambda: w.failures.count >= 8)  # eight syncs tried: four times `linger`
        assert not w.paused and not w.listening and w.news_failures.count >= 1
        node = NodeLimits(LocalIpConnections(1), w.hit, w.hit, w.hit, dead, (w,), w)
        assert node.redis_errors() == w.failures.count + w.news_failures.count  # both counted in the metric
    finally:
        await w.close()
        await dead.aclose()


async def test_the_sync_runs_on_its_own_and_once_more_at_close(redis: aioredis.Redis, prefix: str) -> None:
    w = SyncedRateLimiter(RateLimiter("messages_per_ip", RATE, BURST), redis, prefix, interval=0.05)
    w.start()
    try:
        w.hit("10.0.0.1")
        await until(lambda: w.syncs >= 1)  # the first sync, after the hit
        assert await redis.exists(prefix + "10.0.0.1")
    finally:
        w.hit("10.0.0.2")
        await w.close()
    assert await redis.exists(prefix + "10.0.0.2")  # what was sent before the close is counted
