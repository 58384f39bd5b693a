"""Contract suite for `IpConnections` (connections per client IP), run against both
implementations: `LocalIpConnections` (one process) and `SharedIpConnections` (the workers
of a node, counted in the local Redis under a random prefix). Then what only the shared one
promises: one limit for all the workers of a node, a restarted worker's stale counts gone,
a release that missed Redis repaired, and admission by the worker's own counts while Redis
is unreachable. Redis must be running: its tests fail (never skip) when it is not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
import redis.asyncio as aioredis

from gateway.admission.ipconns import DEFAULT_TTL, IpConnections, LocalIpConnections, SharedIpConnections
from gateway.core.errors import GatewayError
from tests.support.waits import until

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 3

Factory = Callable[[int], IpConnections]  # worker index -> that worker's counter


def _keys(prefix: str, index: int) -> tuple[str, str]:
    """Worker `index`'s hash and its group's key (the workers of "node")."""
    return f"{prefix}ipconns:node-w{index}", f"{prefix}ipconns:node:~workers"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    r = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in r.scan_iter(match=f"{prefix}*")]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


@pytest.fixture(params=["local", "shared"])
async def make(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Factory]:
    made: list[IpConnections] = []
    clients: list[aioredis.Redis] = []

    def factory(index: int = 0) -> IpConnections:
        if request.param == "local":
            c: IpConnections = LocalIpConnections(LIMIT)
        else:
            clients.append(aioredis.Redis.from_url(REDIS_URL))
            c = SharedIpConnections(clients[-1], *_keys(redis_prefix, index), LIMIT)
        made.append(c)
        return c

    yield factory
    for c in made:
        await c.close()
    for r in clients:
        await r.aclose()


async def _refused(c: IpConnections, key: str) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await c.acquire(key)
    return info.value


# --- the contract --------------------------------------------------------------------

async def test_admits_up_to_the_limit_then_refuses_with_rate_limited(make: Factory) -> None:
    c = make(0)
    await c.start()
    for _ in range(LIMIT):
        await c.acquire("10.0.0.1")
    err = await _refused(c, "10.0.0.1")
    assert err.code.value == "rate_limited" and err.details["limit"] == "connections_per_ip"
    assert err.details["retry_after"] > 0
    assert c.count("10.0.0.1") == LIMIT  # the refusal counted nothing


async def test_addresses_are_counted_apart(make: Factory) -> None:
    c = make(0)
    await c.start()
    for _ in range(LIMIT):
        await c.acquire("10.0.0.1")
    await c.acquire("10.0.0.2")
    await c.acquire("2001:db8::1")
    assert (c.count("10.0.0.1"), c.count("10.0.0.2"), c.count("2001:db8::1")) == (LIMIT, 1, 1)
    assert len(c) == 3


async def test_a_release_makes_room_and_a_last_release_forgets_the_address(make: Factory) -> None:
    c = make(0)
    await c.start()
    for _ in range(LIMIT):
        await c.acquire("10.0.0.1")
    c.release("10.0.0.1")
    await c.acquire("10.0.0.1")
    for _ in range(LIMIT):
        c.release("10.0.0.1")
    assert c.count("10.0.0.1") == 0 and len(c) == 0
    c.release("10.0.0.1")  # one release too many changes nothing
    for _ in range(LIMIT):
        await _eventually_admitted(c, "10.0.0.1")
    await _refused(c, "10.0.0.1")


async def _eventually_admitted(c: IpConnections, key: str, timeout: float = 10.0) -> None:
    """Admitted once released places have reached the count (a shared release is sent in
    the background; `timeout` is a generous bound, not a measurement)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                await c.acquire(key)
                return
            except GatewayError:
                await asyncio.sleep(0.01)


# --- the workers of one node (shared only) ----------------------------------------------

def _shared(url: str, prefix: str, index: int, limit: int = LIMIT, ttl: float = DEFAULT_TTL) -> SharedIpConnections:
    own, group = _keys(prefix, index)
    return SharedIpConnections(aioredis.Redis.from_url(url), own, group, limit, ttl=ttl)


async def _close(*ws: SharedIpConnections) -> None:
    for w in ws:
        await w.close()
        await w._redis.aclose()


@pytest.fixture
async def pair(redis_prefix: str) -> AsyncIterator[Sequence[SharedIpConnections]]:
    """Workers 0 and 1 of one node, started."""
    ws = [_shared(REDIS_URL, redis_prefix, i) for i in range(2)]
    for w in ws:
        await w.start()
    yield ws
    await _close(*ws)


async def test_the_workers_of_a_node_share_one_limit(pair: Sequence[SharedIpConnections]) -> None:
    w0, w1 = pair
    await w0.acquire("10.0.0.1")
    await w0.acquire("10.0.0.1")
    await w1.acquire("10.0.0.1")
    await _refused(w0, "10.0.0.1")
    await _refused(w1, "10.0.0.1")
    w1.release("10.0.0.1")
    await _eventually_admitted(w0, "10.0.0.1")
    assert (w0.count("10.0.0.1"), w1.count("10.0.0.1")) == (3, 0)
    await _refused(w1, "10.0.0.1")
    # the last place, asked for by both workers at once: exactly one gets it
    w0.release("10.0.0.1")
    await _counted_in_redis(w0, "10.0.0.1", 2)  # the release's flush has reached Redis
    got = await asyncio.gather(w0.acquire("10.0.0.1"), w1.acquire("10.0.0.1"), return_exceptions=True)
    assert sorted(type(g).__name__ for g in got) == ["GatewayError", "NoneType"], got


async def _counted_in_redis(w: SharedIpConnections, key: str, n: int, timeout: float = 10.0) -> None:
    """Until `w`'s hash in Redis counts `n` connections of `key` (what its background flush
    writes; polled, as Redis tells nobody)."""
    async with asyncio.timeout(timeout):
        while True:
            if int(await w._redis.hget(w._own, key) or 0) == n:
                return
            await asyncio.sleep(0.01)


async def test_a_restarted_worker_drops_what_its_predecessor_counted(pair: Sequence[SharedIpConnections],
                                                                    redis_prefix: str) -> None:
    w0, w1 = pair
    for _ in range(LIMIT):
        await w1.acquire("10.0.0.1")
    await _refused(w0, "10.0.0.1")
    # worker 1 dies without closing (its hash stays behind); its replacement starts
    replacement = _shared(REDIS_URL, redis_prefix, 1)
    try:
        await replacement.start()
        await w0.acquire("10.0.0.1")
    finally:
        await _close(replacement)


async def test_a_release_that_missed_redis_is_repaired_by_the_next_sync(pair: Sequence[SharedIpConnections],
                                                                        redis_prefix: str) -> None:
    w0, w1 = pair
    for _ in range(LIMIT):
        await w0.acquire("10.0.0.1")
    # Redis does not hear of these releases (as if the connection broke meanwhile) ...
    missed = _shared("redis://127.0.0.1:1/0", redis_prefix, 0)
    try:
        w0._release = missed._release  # a script bound to an unreachable server
        w0.release("10.0.0.1")
        w0.release("10.0.0.1")
        await until(lambda: w0.failures.count == 1)  # the flush tried, and failed (connection refused)
        await _refused(w1, "10.0.0.1")  # the hash still says 3
        # ... until this worker rewrites its hash from what it holds
        assert await w0.sync()
        await w1.acquire("10.0.0.1")
        await w1.acquire("10.0.0.1")
        await _refused(w1, "10.0.0.1")
    finally:
        await _close(missed)


async def test_a_sync_with_releases_still_queued_counts_each_once(pair: Sequence[SharedIpConnections]) -> None:
    w0, w1 = pair
    for _ in range(LIMIT):
        await w0.acquire("10.0.0.1")
    w0.release("10.0.0.1")  # queued; the sync below writes the count without it ...
    assert await w0.sync()
    # ... and the flush that follows must not subtract it again: it ran while the sync
    # waited for Redis, so a flush that wrongly sent the release has sent it by now; one
    # Redis round trip on the worker's client lets it land before w1 asks
    await w0._redis.ping()
    await w1.acquire("10.0.0.1")
    await _refused(w1, "10.0.0.1")


async def test_a_hash_expires_when_its_worker_stops_refreshing_it(redis_prefix: str) -> None:
    w0 = _shared(REDIS_URL, redis_prefix, 0, ttl=1.0)
    r = aioredis.Redis.from_url(REDIS_URL)
    try:
        await w0.acquire("10.0.0.1")
        left_ms = await r.pttl(_keys(redis_prefix, 0)[0])
        assert 0 < left_ms <= 1000
    finally:
        await _close(w0)
        await r.aclose()


async def test_while_redis_is_unreachable_a_worker_counts_its_own(redis_prefix: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    w = _shared("redis://127.0.0.1:1/0", redis_prefix, 0)
    try:
        assert not await w.sync()
        for _ in range(LIMIT):
            await w.acquire("10.0.0.1")
        err = await _refused(w, "10.0.0.1")
        assert err.code.value == "rate_limited"
        assert w.failures.degraded and w.failures.count >= LIMIT + 1
        assert sum("counting this worker's connections only" in r.getMessage() for r in caplog.records) == 1
        w.release("10.0.0.1")
        await w.acquire("10.0.0.1")
    finally:
        await _close(w)


async def test_a_group_counts_whoever_joins_it_and_forgets_a_worker_that_died(redis_prefix: str) -> None:
    """The workers of a cluster (`LIMITS_SCOPE=cluster`) are not known in advance: each joins
    its group with its first count or sync, and one that dies leaves it when its hash
    expires (`ttl`)."""
    group = f"{redis_prefix}ipconns:~cluster:~workers"
    # b's hash expires a second after its last refresh; a's and c's stay in place for 10 s
    # without one, so a loaded machine that runs their refreshers late changes nothing.
    made = [SharedIpConnections(aioredis.Redis.from_url(REDIS_URL), f"{redis_prefix}ipconns:{name}", group, LIMIT,
                                ttl=ttl) for name, ttl in (("a", 10.0), ("b-w3", 1.0), ("c", 10.0))]
    a, b, c = made
    try:
        await a.start()
        await b.start()
        await a.acquire("10.0.0.1")
        await a.acquire("10.0.0.1")
        await b.acquire("10.0.0.1")
        await _refused(a, "10.0.0.1")
        await c.start()  # a process that joins later is held to the same count
        await _refused(c, "10.0.0.1")
        await b._refresher.stop()  # b dies without a word: its hash stays until it expires
        await _eventually_admitted(c, "10.0.0.1")
        await _refused(c, "10.0.0.1")
        assert set(await c._redis.zrange(group, 0, -1)) == {a._own.encode(), c._own.encode()}  # b's place is gone
        await a.close()  # a stops cleanly: its places are free at once
        await c.acquire("10.0.0.1")
        await c.acquire("10.0.0.1")
        await _refused(c, "10.0.0.1")
    finally:
        await _close(*made)


async def test_a_place_lasts_the_whole_ttl_to_the_millisecond(redis_prefix: str) -> None:
    """A hash and its place in the group expire `ttl` after the write that renewed them, not
    at a whole second before: with a short ttl, a second cut off would drop a live worker's
    counts between two refreshes. A whole second cut off would leave at most 1 s of the
    1.5 s: the bounds tell the two apart with 0.5 s to spare for a slow machine between
    the write and the reading."""
    group = f"{redis_prefix}ipconns:~cluster:~workers"
    w = SharedIpConnections(aioredis.Redis.from_url(REDIS_URL), f"{redis_prefix}ipconns:w", group, LIMIT, ttl=1.5)
    try:
        for write in (w.start, lambda: w.acquire("10.0.0.1")):
            await write()
            secs, micros = await w._redis.time()
            score = await w._redis.zscore(group, w._own)
            assert score is not None
            left = score - (secs + micros / 1e6)
            assert 1.0 < left <= 1.5, left
            assert 1000 < await w._redis.pttl(w._own) <= 1500 or not w.count("10.0.0.1")
            assert 1000 < await w._redis.pttl(group) <= 1500
    finally:
        await _close(w)
