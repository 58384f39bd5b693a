"""gateway/realtime/handshake.py: a widget key's tenant is reused for TENANT_CACHE_SECONDS.

On a real SQLite store; the tenant is changed in the store behind the cache's back (as the
CLI or another node would), and time moves on an injected clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core.domain import TenantStatus
from gateway.core.errors import Code, GatewayError
from gateway.realtime.handshake import Handshake, TenantsByWidgetKey
from gateway.security.auth import VisitorTokens
from gateway.store import NotFound
from gateway.store.sqlite import SqliteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "t.sqlite3"))
    await s.open()
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


async def test_a_change_elsewhere_reaches_new_connects_within_the_ttl(store: SqliteStore) -> None:
    clock = Clock()
    tenant = await store.create_tenant(name="Shop", widget_key="wk_shop", identity_secret="s", now=1.0)
    hs = Handshake(store, VisitorTokens("secret", 3600.0), clock, tenant_cache_seconds=5.0)
    first = await hs.visitor({"widget_key": "wk_shop"})
    assert first.principal.tenant_id == tenant.id
    await store.update_tenant(tenant.id, status=TenantStatus.ENDED.value, ended_at=clock.now)
    clock.now += 4.9
    await hs.visitor({"widget_key": "wk_shop"})  # still the tenant read 4.9 s ago
    assert hs.tenants.reads == 1
    clock.now += 0.1
    with pytest.raises(GatewayError) as refused:
        await hs.visitor({"widget_key": "wk_shop"})
    assert refused.value.code == Code.FORBIDDEN
    assert hs.tenants.reads == 2


async def test_ttl_zero_reads_every_time(store: SqliteStore) -> None:
    clock = Clock()
    tenant = await store.create_tenant(name="Shop", widget_key="wk_zero", identity_secret="s", now=1.0)
    hs = Handshake(store, VisitorTokens("secret", 3600.0), clock, tenant_cache_seconds=0.0)
    await hs.visitor({"widget_key": "wk_zero"})
    await store.update_tenant(tenant.id, status=TenantStatus.ENDED.value, ended_at=clock.now)
    with pytest.raises(GatewayError):
        await hs.visitor({"widget_key": "wk_zero"})
    assert hs.tenants.reads == 2


async def test_unknown_keys_are_not_kept_and_a_clock_going_back_rereads(store: SqliteStore) -> None:
    clock = Clock()
    cache = TenantsByWidgetKey(store, 5.0, clock, capacity=2)
    for _ in range(3):
        with pytest.raises(NotFound):
            await cache.get("wk_nobody")
    assert cache.reads == 3
    await store.create_tenant(name="Late", widget_key="wk_nobody", identity_secret="s", now=1.0)
    assert (await cache.get("wk_nobody")).name == "Late"  # created since: found at once
    clock.now -= 10.0
    await cache.get("wk_nobody")
    assert cache.reads == 5
    # bounded: the least recently used key is forgotten
    for k in ("wk_a", "wk_b"):
        await store.create_tenant(name=k, widget_key=k, identity_secret="s", now=1.0)
        await cache.get(k)
    reads = cache.reads
    await cache.get("wk_nobody")
    assert cache.reads == reads + 1


def test_the_setting() -> None:
    assert load_config({}).security.tenant_cache_seconds == 5.0
    assert load_config({"TENANT_CACHE_SECONDS": "0"}).security.tenant_cache_seconds == 0.0
