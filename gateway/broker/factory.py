"""Pick the broker implementation from configuration."""

from __future__ import annotations

from gateway.broker.base import Broker
from gateway.broker.memory import MemoryBroker, MemoryHub
from gateway.broker.redis import RedisBroker

REDIS_SCHEMES = ("redis", "rediss", "unix")


def make_broker(
    redis_url: str | None,
    node_id: str,
    *,
    hub: MemoryHub | None = None,
    prefix: str = "izh:",
) -> Broker:
    """No URL: a `MemoryBroker` on `hub` (or a new hub, for a single-process gateway).
    A redis://, rediss:// or unix:// URL: a `RedisBroker`. Anything else: ValueError."""
    if not redis_url:
        return MemoryBroker(hub if hub is not None else MemoryHub(), node_id)
    scheme, sep, _ = redis_url.partition("://")
    if sep and scheme.lower() in REDIS_SCHEMES:
        return RedisBroker(redis_url, node_id, prefix=prefix)
    # (never echo the URL: it may carry a password)
    shown = f"{scheme}://…" if sep else "a URL without a scheme"
    raise ValueError(f"unsupported broker URL {shown}: expected redis://, rediss:// or unix://")
