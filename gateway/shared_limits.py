"""Rate limits per client IP shared by the workers of a node (Redis token buckets).

On a node of several WORKERS the kernel spreads one address's connections and requests
over the workers, so a token bucket kept by each worker lets the address do N times the
configured rate. `SharedRateLimiter` keeps the bucket in Redis instead (a hash per
address, `tokens` and `updated`), refilled and taken from by one Lua script on Redis's own
clock, so every worker of the node draws from the same bucket. It is used for the limits
of infrequent requests — visitor `conversation:start` per IP and uploads per IP — where one
Redis round trip per request costs nothing that matters; the per-message limits stay
in-process (per connection, which lives on one worker and is therefore exact, and per IP).

A bucket's hash expires when it would be full again (`burst / rate` seconds after its last
use), so Redis holds only the addresses that are being limited. While Redis cannot be
reached, the worker's own in-process bucket decides (the limit per worker, as before), and
that is logged once until Redis answers again.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.ipconns import IpConnections, LocalIpConnections, RedisFailures, SharedIpConnections
from gateway.limits import Limits, RateLimiter

# KEYS: the bucket. ARGV: rate (tokens/s), burst, cost. Returns the seconds to wait, as a
# string ("0" when the tokens were taken): Lua numbers would come back truncated to integers.
_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(b[1]) or burst
local updated = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class SharedRateLimiter:
    """`local`'s limit (name, rate, burst, what a refusal raises), for a whole node.

    `key_prefix`: where the node's buckets of this limit live in Redis (one per node and
    limit, e.g. `izh:ratelimit:<node>:uploads_per_ip:`). The Redis client stays the caller's."""

    def __init__(self, local: RateLimiter, redis: Redis, key_prefix: str) -> None:
        self.local = local
        self.name = local.name
        self._prefix = key_prefix
        self._take = redis.register_script(_TAKE)
        self.failures = RedisFailures(f"rate limit {self.name}", "limiting per worker")

    async def hit(self, key: str, cost: float = 1.0) -> None:
        """Take `cost` tokens from `key`'s bucket of the node or raise `rate_limited` with
        `details.retry_after` (seconds)."""
        try:
            wait = float(await self._take(keys=[self._prefix + key], args=[self.local.rate, self.local.burst, cost]))
        except (RedisError, OSError, ValueError) as exc:
            self.failures.failed("take", exc)
            self.local.hit(key, cost)
            return
        self.failures.ok()
        if wait > 0:
            self.local.refuse(math.ceil(wait * 1000) / 1000)


Hit = Callable[[str], Awaitable[None] | None]  # takes a token for an address or raises rate_limited


@dataclass
class NodeLimits:
    """What a process enforces for its whole node beyond its own `Limits`: the connections,
    conversation starts and uploads per IP — shared through Redis on a node of several
    workers, else this process's own. A `Hit` returns an awaitable when it asks Redis."""

    connections: IpConnections
    conversations: Hit
    uploads: Hit
    redis: Redis | None = None
    shared: Sequence[SharedIpConnections | SharedRateLimiter] = ()

    async def start(self) -> None:
        await self.connections.start()

    async def close(self) -> None:
        await self.connections.close()
        if self.redis is not None:
            await self.redis.aclose()

    def redis_errors(self) -> int:
        return sum(x.failures.count for x in self.shared)


def node_limits(limits: Limits, max_connections_per_ip: int, *, redis_url: str | None, prefix: str,
                worker_node_ids: Sequence[str] | None, index: int = 0) -> NodeLimits:
    """Shared through Redis when this process is one of a node's workers (`worker_node_ids`:
    every worker's node id, by index) and Redis is configured; else this process's own."""
    if not worker_node_ids or len(worker_node_ids) < 2 or not redis_url:
        return NodeLimits(LocalIpConnections(max_connections_per_ip), limits.conversations_per_ip.hit,
                          limits.uploads.hit)
    redis = Redis.from_url(redis_url)
    node = worker_node_ids[0].rsplit("-w", 1)[0]
    connections = SharedIpConnections(redis, [f"{prefix}ipconns:{node_id}" for node_id in worker_node_ids], index,
                                      max_connections_per_ip)
    conversations = SharedRateLimiter(limits.conversations_per_ip, redis,
                                      f"{prefix}ratelimit:{node}:conversations_per_ip:")
    uploads = SharedRateLimiter(limits.uploads, redis, f"{prefix}ratelimit:{node}:uploads_per_ip:")
    return NodeLimits(connections, conversations.hit, uploads.hit, redis, (connections, conversations, uploads))
