"""In-process rate limits (per process: on a node of several WORKERS, each worker's own):
token buckets keyed by connection or client IP.

`RateLimiter` is the reusable piece: `hit(key)` takes one token from `key`'s bucket or raises
`GatewayError(rate_limited, details.retry_after)`. Idle buckets are dropped (a bucket that
has refilled completely carries no information), and the number of live buckets is capped,
so memory stays bounded whatever keys clients make up.

Feature code (e.g. the widget upload endpoint) gets the node's limits from the aiohttp app:

    limits = request.app[LIMITS_KEY]
    limits.uploads.hit(client_ip(request))        # raises rate_limited

`Limits` bundles the limiters the gateway uses, built from `LimitsConfig`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, KeysView
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import web

from gateway.config import LimitsConfig
from gateway.core.errors import Code, GatewayError


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets: `rate` tokens per second, at most `burst` saved up, per key."""

    def __init__(self, name: str, rate: float, burst: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic,
                 on_limited: Callable[[str], None] | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.name = name
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self.on_limited = on_limited
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently used first
        self._last_sweep = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    @property
    def idle_after(self) -> float:
        """Seconds after which an untouched bucket is full again (and can be forgotten)."""
        return self.burst / self.rate

    def try_hit(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens; 0.0 when allowed, else the seconds to wait before retrying."""
        now = self.clock()
        self._sweep(now)
        b = self._buckets.get(key)
        if b is None:
            b = _Bucket(self.burst, now)
            self._buckets[key] = b
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            b.tokens = min(self.burst, b.tokens + (now - b.updated) * self.rate)
            b.updated = now
            self._buckets.move_to_end(key)
        if b.tokens >= cost:
            b.tokens -= cost
            return 0.0
        return (cost - b.tokens) / self.rate

    def hit(self, key: str, cost: float = 1.0) -> None:
        """Take `cost` tokens or raise `rate_limited` with `details.retry_after` (seconds)."""
        wait = self.try_hit(key, cost)
        if wait > 0:
            self.refuse(math.ceil(wait * 1000) / 1000)

    def refuse(self, retry_after: float) -> NoReturn:
        """Raise this limit's `rate_limited` (and count it)."""
        if self.on_limited is not None:
            self.on_limited(self.name)
        raise GatewayError(Code.RATE_LIMITED, f"too many requests ({self.name})",
                           limit=self.name, retry_after=retry_after)

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self.idle_after:
            return
        self._last_sweep = now
        horizon = now - self.idle_after
        while self._buckets:
            key, b = next(iter(self._buckets.items()))
            if b.updated > horizon:
                break
            del self._buckets[key]


def too_many_connections() -> GatewayError:
    """The refusal of a connection beyond `MAX_CONNECTIONS_PER_IP`."""
    return GatewayError(Code.RATE_LIMITED, "too many connections from this address",
                        limit="connections_per_ip", retry_after=5.0)


class ConnectionCounter:
    """Open connections per key (client IP), refusing beyond `limit`. Keys at 0 are dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)

    def keys(self) -> KeysView[str]:
        return self._counts.keys()

    def acquire(self, key: str) -> None:
        n = self._counts.get(key, 0)
        if n >= self.limit:
            raise too_many_connections()
        self._counts[key] = n + 1

    def release(self, key: str) -> None:
        n = self._counts.get(key, 0) - 1
        if n > 0:
            self._counts[key] = n
        else:
            self._counts.pop(key, None)


class Limits:
    """The rate limiters of one process. Keys: `conn:<sid>` per connection, the client IP per
    address. (Open connections per IP: `gateway.admission.ipconns`, held by the `Guard`.)"""

    def __init__(self, cfg: LimitsConfig, *, clock: Callable[[], float] = time.monotonic,
                 on_limited: Callable[[str], None] | None = None) -> None:
        def mk(name: str, rate: float, burst: float) -> RateLimiter:
            return RateLimiter(name, rate, burst, clock=clock, on_limited=on_limited)

        self.messages_per_connection = mk("messages_per_connection", cfg.visitor_messages_per_sec,
                                          cfg.visitor_messages_burst)
        self.messages_per_ip = mk("messages_per_ip", cfg.ip_messages_per_sec, cfg.ip_messages_burst)
        self.conversations_per_ip = mk("conversations_per_ip", cfg.conversations_per_ip_per_min / 60.0,
                                       cfg.conversations_per_ip_burst)
        self.uploads = mk("uploads_per_ip", cfg.uploads_per_ip_per_min / 60.0, cfg.uploads_per_ip_burst)

    def bucket_count(self) -> int:
        return (len(self.messages_per_connection) + len(self.messages_per_ip) + len(self.conversations_per_ip)
                + len(self.uploads))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIMITS_KEY = web.AppKey("limits", Limits)


UPLOAD_PATH = "/api/v1/uploads"


def upload_limit_middleware(hit: Callable[[str], Awaitable[None] | None]) -> Any:
    """Applies the uploads limit per client IP to `POST /api/v1/uploads` before its handler
    runs. `hit(ip)`: `limits.uploads.hit` (raises), or a limit shared by the node's workers
    (`gateway.admission.shared_limits`: returns an awaitable that raises)."""

    @web.middleware
    async def limit_uploads(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path.rstrip("/") == UPLOAD_PATH:
            pending = hit(client_ip(request))
            if pending is not None:
                await pending
        return await handler(request)

    return limit_uploads


def client_ip(request: web.Request) -> str:
    """The peer address of an HTTP request (the gateway does not trust X-Forwarded-For)."""
    return request.remote or ""
