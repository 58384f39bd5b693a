"""Rate limits per client IP shared by the workers of a node, or by every node of a
cluster (`LIMITS_SCOPE=cluster`) (Redis token buckets).

On a node of several WORKERS the kernel spreads one address's connections and requests
over the workers, so a token bucket kept by each worker lets the address do N times the
configured rate; a load balancer in front of several nodes does the same with the nodes.
`SharedRateLimiter` keeps the bucket in Redis instead (a hash per address, `tokens` and
`updated`), refilled and taken from by one Lua script on Redis's own clock, so every worker
of the node (every process of the cluster) draws from the same bucket. (Below, "the node"
is the cluster with `LIMITS_SCOPE=cluster`.) `SharedRateLimiter` is used for the limits
of infrequent requests — visitor `conversation:start` per IP and uploads per IP — where one
Redis round trip per request costs nothing that matters. The messages per connection stay
in-process (a connection lives on one worker, so its bucket is exact).

The messages per IP are too frequent for a round trip each, and waiting for Redis before
a send would also hold up that connection's later sends. `SyncedRateLimiter` decides each
message at once with the worker's own bucket (the whole limit, as on a node of one
worker), adds what each address sent to the node's bucket in Redis every `interval`
seconds (one script call for every address that sent meanwhile, which also answers
which of the node's addresses are in debt), and the node's bucket may go into debt: while
it is, every worker refuses that address until the debt is paid back at the limit's rate.
So an address gets the limit's rate over the node, and at most what each worker's own
bucket lets through for one `interval` more before every worker refuses it.

An idle worker need not sync twice a second to keep that bound (two syncs a second of
each of 3 idle workers were a third of an idle node's CPU: docs/performance.md): the sync
that puts an address in debt also publishes it on the node's debt channel (the debt list's
key), to which every worker is subscribed. A worker that has let nothing through for
`linger` syncs in a row (10 s by default) pauses, while its subscription is up, until a
message of its own or a debt's news, either of which brings a sync `interval` later and
`linger` more; so an idle node makes no call to Redis and no wake-up for this limit. While
the subscription is down the worker syncs every `interval` as before.

A bucket's hash expires when it would be full again (`burst / rate` seconds after its last
use), so Redis holds only the addresses that are being limited. While Redis cannot be
reached, the worker's own in-process bucket decides (the limit per worker, as before), and
that is logged once until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.admission.ipconns import IpConnections, LocalIpConnections, RedisFailures, SharedIpConnections
from gateway.admission.limits import Limits, RateLimiter
from gateway.aio.tasks import stop_task
from gateway.config import LIMIT_SCOPES

log = logging.getLogger(__name__)

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


# KEYS: the node's list of addresses in debt (a sorted set: bucket key → until when, on
# Redis's clock), then the node's buckets of the addresses that sent. ARGV: rate, burst,
# the most addresses in debt to return, then per bucket what was sent from it. Each bucket
# is the one of `_TAKE`, debited whatever it holds (it may go into debt). Returns Redis's
# clock, then the addresses in debt and until when, as strings (Lua numbers would come
# back truncated to integers). An address newly in debt is published on the channel named
# like the debt list's key (the debt news that wakes paused workers).
_SYNC = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local fresh = false
for i = 2, #KEYS do
  local key = KEYS[i]
  local b = redis.call('HMGET', key, 'tokens', 'updated')
  local tokens = tonumber(b[1]) or burst
  local updated = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - updated) * rate) - tonumber(ARGV[i + 2])
  redis.call('HSET', key, 'tokens', tostring(tokens), 'updated', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
  if tokens < 0 then
    if redis.call('ZADD', KEYS[1], tostring(now - tokens / rate), key) == 1 then fresh = true end
  else
    redis.call('ZREM', KEYS[1], key)
  end
end
if fresh then redis.call('PUBLISH', KEYS[1], '1') end
local debt = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
if #debt > 0 then
  redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(debt[#debt]) - now) * 1000) + 1000)
end
table.insert(debt, 1, tostring(now))
return debt
"""

SYNC_CHUNK = 500  # addresses per script call
MAX_IN_DEBT = 10_000  # addresses in debt a worker learns of (the first to be paid back first)


class SyncedRateLimiter:
    """`local`'s limit for a whole node, each hit decided at once (see the module's doc).

    `hit` takes a token from the worker's own bucket (`local`) or raises `rate_limited`, as
    `local.hit` does, and also refuses an address whose node bucket was in debt at the last
    sync (with the wait until it is not). `sync` (every `interval` s between `start` and
    `close`; paused after `linger` quiet syncs while the debt news is listened to, until a
    message or a debt's news) adds what each address sent since to its node bucket and
    learns which of the node's addresses are in debt. While Redis cannot be reached the
    worker's own bucket alone decides (logged once)."""

    def __init__(self, local: RateLimiter, redis: Redis, key_prefix: str, *, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, linger: int = 20) -> None:
        self.local = local
        self.name = local.name
        self._prefix = key_prefix
        self._debt_key = key_prefix + "~debt"  # no address ends up there: they hold no "~"
        self._script = redis.register_script(_SYNC)
        self._clock = clock
        self._sent: dict[str, int] = {}  # address → messages let through since the last sync
        self._blocked: dict[str, float] = {}  # address → until when (clock) its node bucket is in debt
        self._redis = redis
        self.interval = interval
        self.linger = max(1, linger)
        self._due = asyncio.Event()  # a message let through, or a debt's news, since the last sync
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = False  # subscribed to the node's debt news
        self.paused = False  # waiting for a message or a debt's news
        self.news = 0  # debts' news received
        self.news_failures = RedisFailures(f"debt news of {self.name}", "syncing every interval")
        self.failures = RedisFailures(f"rate limit {self.name}", "limiting per worker")
        self.syncs = 0  # syncs that reached Redis: each began after the one before had ended

    def hit(self, key: str) -> None:
        """Take a token for `key` or raise `rate_limited` with `details.retry_after`."""
        until = self._blocked.get(key)
        if until is not None:
            wait = until - self._clock()
            if wait > 0:
                self.local.refuse(math.ceil(wait * 1000) / 1000)
            del self._blocked[key]
        self.local.hit(key)
        sent = self._sent
        if not sent:
            self._due.set()
        sent[key] = sent.get(key, 0) + 1

    async def sync(self) -> None:
        """Add what each address sent since the last sync to its node bucket, then take the
        node's addresses in debt as the ones to refuse."""
        sent, self._sent = list(self._sent.items()), {}
        got: list[bytes | str] = []
        for start in range(0, max(1, len(sent)), SYNC_CHUNK):  # one call even when nothing was sent
            chunk = sent[start:start + SYNC_CHUNK]
            try:
                got = await self._script(keys=[self._debt_key, *(self._prefix + k for k, _ in chunk)],
                                         args=[self.local.rate, self.local.burst, MAX_IN_DEBT, *(n for _, n in chunk)])
            except (RedisError, OSError) as exc:
                self.failures.failed("sync", exc)
                return
            self.failures.ok()
        self._blocked = self._in_debt(got)  # the last call's answer: the node's debts after all of them
        self.syncs += 1

    def _in_debt(self, got: list[bytes | str]) -> dict[str, float]:
        """The script's answer as address → until when (this process's clock)."""
        offset = self._clock() - float(got[0])
        cut = len(self._prefix)
        return {_text(got[i])[cut:]: float(got[i + 1]) + offset for i in range(1, len(got) - 1, 2)}

    def start(self) -> None:
        if not self._tasks and self.interval > 0:
            self._tasks = [asyncio.create_task(self._run(), name=f"sync {self.name}"),
                           asyncio.create_task(self._listen(), name=f"debt news {self.name}")]

    async def _run(self) -> None:
        quiet = 0
        while True:
            if quiet >= self.linger and self.listening:
                self.paused = True
                await self._due.wait()
                self.paused = False
                quiet = 0
            await asyncio.sleep(self.interval)
            # set by a message since the last sync (each one that finds nothing waiting) or by news
            due = self._due.is_set()
            self._due.clear()  # before `sync` takes what was sent: a message after it sets it again
            try:
                await self.sync()
            except Exception:
                log.exception("sync of %s failed", self.name)
            quiet = 0 if due else quiet + 1

    async def _listen(self) -> None:
        """Subscribed to the node's debt news, for ever: each news wakes the sync; a lost
        subscription is taken up again (a sync follows, for what was missed meanwhile)."""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._debt_key)
                self.news_failures.ok()
                self.listening = True
                self._due.set()  # news may have gone by unheard: learn the debts once
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if msg is not None and msg.get("type") == "message":
                        self.news += 1
                        self._due.set()
            except (RedisError, OSError) as exc:
                self.news_failures.failed("subscribe", exc)
            finally:
                self.listening = False
                self._due.set()  # no news heard now: sync every interval
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(max(1.0, self.interval))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await stop_task(task, log, task.get_name())
        await self.sync()


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


Hit = Callable[[str], Awaitable[None] | None]  # takes a token for an address or raises rate_limited


@dataclass
class NodeLimits:
    """What a process enforces for its whole node beyond its own `Limits`: the connections,
    conversation starts, uploads and messages per IP — shared through Redis on a node of
    several workers, else this process's own. A `Hit` returns an awaitable when it asks
    Redis; `messages` never does (it raises at once)."""

    connections: IpConnections
    conversations: Hit
    uploads: Hit
    messages: Callable[[str], None]
    redis: Redis | None = None
    shared: Sequence[SharedIpConnections | SharedRateLimiter | SyncedRateLimiter] = ()
    synced: SyncedRateLimiter | None = None

    async def start(self) -> None:
        await self.connections.start()
        if self.synced is not None:
            self.synced.start()

    async def close(self) -> None:
        await self.connections.close()
        if self.synced is not None:
            await self.synced.close()
        if self.redis is not None:
            await self.redis.aclose()

    def redis_errors(self) -> int:
        """Failed Redis calls of these limits, the debt news's subscriptions included."""
        news = 0 if self.synced is None else self.synced.news_failures.count
        return sum(x.failures.count for x in self.shared) + news


def node_limits(limits: Limits, max_connections_per_ip: int, *, redis_url: str | None, prefix: str,
                node_id: str, worker_node_ids: Sequence[str] | None, scope: str = "node") -> NodeLimits:
    """The per-IP limits of this process (`node_id`): shared through Redis, when it is
    configured, by the workers of its node (`worker_node_ids`: every worker's node id, two
    or more) or, with `scope` "cluster", by every process of every node that has it; else
    this process's own."""
    if scope not in LIMIT_SCOPES:
        raise ValueError(f"scope must be one of {LIMIT_SCOPES}, got {scope!r}")
    workers = worker_node_ids is not None and len(worker_node_ids) >= 2
    if not redis_url or not (workers or scope == "cluster"):
        return NodeLimits(LocalIpConnections(max_connections_per_ip), limits.conversations_per_ip.hit,
                          limits.uploads.hit, limits.messages_per_ip.hit)
    redis = Redis.from_url(redis_url)
    # whose limits these are: the cluster's, or the node's (its workers' ids are <node>-w<i>);
    # "~" keeps the cluster's keys apart from any node's
    group = "~cluster" if scope == "cluster" else (worker_node_ids or [node_id])[0].rsplit("-w", 1)[0]
    connections = SharedIpConnections(redis, f"{prefix}ipconns:{node_id}", f"{prefix}ipconns:{group}:~workers",
                                      max_connections_per_ip)
    conversations = SharedRateLimiter(limits.conversations_per_ip, redis,
                                      f"{prefix}ratelimit:{group}:conversations_per_ip:")
    uploads = SharedRateLimiter(limits.uploads, redis, f"{prefix}ratelimit:{group}:uploads_per_ip:")
    messages = SyncedRateLimiter(limits.messages_per_ip, redis, f"{prefix}ratelimit:{group}:messages_per_ip:")
    return NodeLimits(connections, conversations.hit, uploads.hit, messages.hit, redis,
                      (connections, conversations, uploads, messages), messages)
