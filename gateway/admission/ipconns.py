"""Open `/visitor` connections per client IP, for a whole node (`MAX_CONNECTIONS_PER_IP`).

One process: `LocalIpConnections`, a count per address in memory.

A node of several workers (`WORKERS=N`, gateway/cluster): the kernel spreads one address's
connections over the workers (`SO_REUSEPORT` hashes the source port too), so counts kept by
each worker would let an address hold N times the limit, and dividing the limit by N would
refuse connections below it (the spread is uneven). Several nodes behind a load balancer
are the same with `LIMITS_SCOPE=cluster`. `SharedIpConnections` counts in Redis: one hash
per worker (address → its connections there), the workers counted together listed in a
sorted set of theirs (the group: a node's workers, or every worker of the cluster; each
hash's key scored with when it expires), and a Lua script that sums the address over the
group's live hashes and counts the new connection only if the sum is below the limit — one
atomic step, so two workers cannot both take the last place. The script reads hashes it
is not handed as keys: a single Redis server (or a primary with replicas), not Redis
Cluster. The check costs one Redis round trip per visitor handshake (none per message); a
release goes to Redis with the worker's next check, or on the loop's next turn if none
comes first (so a visitor that reconnects at once is not refused by its own old
connection).

Each worker's own in-memory counts are the truth and its hash a mirror: a worker starts by
replacing its hash (a new process holds no connections, whatever a dead predecessor left),
and rewrites it every `ttl / 3` seconds from memory, which also repairs a release that
failed to reach Redis and keeps its place in the group; the hash and its place expire `ttl`
seconds after its worker stopped writing, so a node that is gone frees its addresses.
While Redis cannot be reached, a worker admits by its own counts alone (the limit per
worker, as a single process does) and logs it once.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.admission.limits import ConnectionCounter, too_many_connections
from gateway.aio.periodic import Periodic
from gateway.aio.tasks import TaskSet

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0

# Releases first (ARGV from the 4th on: addresses whose connection to this worker ended),
# then the check. KEYS: this worker's hash, its group (sorted set: worker hash → when it
# expires, on Redis's clock). ARGV: address, limit, ttl (s), released addresses... 1 when
# counted, 0 when the group is at the limit for it.
_ACQUIRE = """
for i = 4, #ARGV do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[3])
local ttl_ms = math.ceil(ttl * 1000)
redis.call('ZADD', KEYS[2], tostring(now + ttl), KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tostring(now))
redis.call('PEXPIRE', KEYS[2], ttl_ms)
local total = 0
for _, key in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  total = total + (tonumber(redis.call('HGET', key, ARGV[1])) or 0)
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return 1
"""

# KEYS: this worker's hash. ARGV: released addresses (one entry per ended connection).
_RELEASE = """
for i = 1, #ARGV do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return #ARGV
"""

# KEYS: this worker's hash, its group. ARGV: ttl, then address, count, address, count, ...
_REPLACE = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local ttl = tonumber(ARGV[1])
local ttl_ms = math.ceil(ttl * 1000)
if #ARGV > 1 then redis.call('PEXPIRE', KEYS[1], ttl_ms) end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tostring(tonumber(t[1]) + tonumber(t[2]) / 1000000 + ttl), KEYS[1])
redis.call('PEXPIRE', KEYS[2], ttl_ms)
return #ARGV
"""


class RedisFailures:
    """The failed Redis calls of a limit shared by a node's workers: counted, and logged
    once per run of failures (until a call succeeds again)."""

    def __init__(self, subject: str, fallback: str) -> None:
        self.subject = subject
        self.fallback = fallback  # what the worker does meanwhile
        self.count = 0
        self.degraded = False  # the last Redis call failed

    def failed(self, call: str, exc: BaseException) -> None:
        self.count += 1
        if not self.degraded:
            log.warning("%s: Redis %s failed (%s: %s); %s until it answers", self.subject, call,
                        type(exc).__name__, exc, self.fallback)
        self.degraded = True

    def ok(self) -> None:
        self.degraded = False


class IpConnections(Protocol):
    limit: int

    async def acquire(self, key: str) -> None:
        """Count one more connection from `key`, or raise `rate_limited` (nothing counted)."""

    def release(self, key: str) -> None:
        """One connection from `key` has ended (one that `acquire` counted)."""

    def count(self, key: str) -> int:
        """This process's connections from `key`."""

    def __len__(self) -> int:
        """Addresses with a connection to this process."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalIpConnections:
    """The counts of this process alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counter = ConnectionCounter(limit)

    async def acquire(self, key: str) -> None:
        self._counter.acquire(key)

    def release(self, key: str) -> None:
        self._counter.release(key)

    def count(self, key: str) -> int:
        return self._counter.count(key)

    def __len__(self) -> int:
        return len(self._counter)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class SharedIpConnections:
    """The counts of a group of workers (a node's, or a cluster's), summed in Redis (see the
    module docstring).

    `own`: this worker's hash (unique to the worker); `group`: the sorted set of the group's
    hashes. The Redis client stays the caller's."""

    def __init__(self, redis: Redis, own: str, group: str, limit: int, *, ttl: float = DEFAULT_TTL) -> None:
        if own == group:
            raise ValueError("a worker's hash cannot be its group's key")
        self.limit = limit
        self.ttl = ttl
        self._redis = redis
        self._keys = [own, group]
        self._own = own
        self._shared: dict[str, int] = {}  # connections counted in Redis too
        self._local = ConnectionCounter(limit)  # connections admitted while Redis was unreachable
        # ended connections not yet subtracted in Redis: the next acquire's script or a flush
        # (whichever comes first) sends them, so an acquire right after a release sees it
        self._released: list[str] = []
        self._flushing = False
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._replace = redis.register_script(_REPLACE)
        self._tasks = TaskSet()
        self._refresher = Periodic("ipconns-refresh", self._refresh, ttl / 3, delay=ttl / 3)
        self.failures = RedisFailures("connections per IP", "counting this worker's connections only")

    async def acquire(self, key: str) -> None:
        try:
            released, self._released = self._released, []
            counted = await self._acquire(keys=self._keys, args=[key, self.limit, self.ttl, *released])
        except (RedisError, OSError) as exc:
            self.failures.failed("acquire", exc)
            if self.count(key) >= self.limit:
                raise too_many_connections() from None
            self._local.acquire(key)
            return
        self.failures.ok()
        if not counted:
            raise too_many_connections()
        self._shared[key] = self._shared.get(key, 0) + 1

    def release(self, key: str) -> None:
        if self._local.count(key):
            self._local.release(key)
            return
        n = self._shared.get(key, 0)
        if n <= 0:
            return
        if n == 1:
            del self._shared[key]
        else:
            self._shared[key] = n - 1
        self._released.append(key)
        if not self._flushing:
            self._flushing = True
            self._tasks.spawn(self._flush())

    def count(self, key: str) -> int:
        return self._shared.get(key, 0) + self._local.count(key)

    def __len__(self) -> int:
        return len(self._shared.keys() | self._local.keys())

    async def start(self) -> None:
        """Replace this worker's hash (a predecessor's counts are not ours) and keep it fresh."""
        await self.sync()
        self._refresher.start()

    async def close(self) -> None:
        """Stop refreshing and drop this worker's hash and its place in the group (the Redis
        client stays open: the caller's)."""
        await self._refresher.stop()
        await self._tasks.close()
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._own)
            await self._redis.zrem(self._keys[1], self._own)

    async def sync(self) -> bool:
        """Write this worker's counts to its hash; False if Redis could not be reached. The
        counts already leave out the releases still queued: the hash written, they are done."""
        args: list[str | int | float] = [self.ttl]
        for key, n in self._shared.items():
            args += [key, n]
        self._released = []
        try:
            await self._replace(keys=self._keys, args=args)
        except (RedisError, OSError) as exc:
            self.failures.failed("sync", exc)
            return False
        self.failures.ok()
        return True

    async def _refresh(self) -> None:
        await self.sync()

    async def _flush(self) -> None:
        """Send the releases no acquire has taken along (the next turn of the loop)."""
        self._flushing = False
        released, self._released = self._released, []
        if not released:
            return
        try:
            await self._release(keys=[self._own], args=released)
        except (RedisError, OSError) as exc:
            self.failures.failed("release", exc)  # the next sync rewrites the hash from memory
