"""The `TokenRefreshClaims` contract (connectors/token_claims.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from connectors.channels import ChannelStore
from connectors.token_claims import SqlTokenRefreshClaims, TokenRefreshClaims
from gateway.core.domain import Channel
from gateway.security.crypto import SecretBox
from tests.contract.repository_backends import Nodes, nodes

__all__ = ["nodes"]


def channels(nodes: Nodes) -> ChannelStore:
    return ChannelStore(nodes.db, SecretBox(b"\x05" * 32), lambda: 1.0)


async def inbox(nodes: Nodes, tenant_id: str, address: str) -> str:
    ch = await channels(nodes).add(tenant_id=tenant_id, kind=Channel.ZALO, name="n", credentials={},
                                   settings={"address": address})
    return ch.id


def claims(nodes: Nodes) -> tuple[TokenRefreshClaims, TokenRefreshClaims]:
    return SqlTokenRefreshClaims(nodes.stores[0]), SqlTokenRefreshClaims(nodes.stores[1])


async def test_one_refresh_at_a_time_until_released_or_run_out(nodes: Nodes) -> None:
    a, b = claims(nodes)
    t = await nodes.tenant()
    ch = await inbox(nodes, t, "1")
    assert await a.claim(t, ch, "node-a", 100.0, 10.0)
    assert not await b.claim(t, ch, "node-b", 105.0, 10.0)
    assert not await a.claim(t, ch, "node-a", 105.0, 10.0)  # not even its holder twice
    await b.release(t, ch, "node-b")  # another node's release changes nothing
    assert not await b.claim(t, ch, "node-b", 109.9, 10.0)
    await a.release(t, ch, "node-a")
    assert await b.claim(t, ch, "node-b", 109.9, 10.0)
    assert not await a.claim(t, ch, "node-a", 119.8, 10.0)
    assert await a.claim(t, ch, "node-a", 119.9, 10.0)  # B died mid-refresh: its claim ran out


async def test_inboxes_are_claimed_independently_and_removed_with_their_inbox(nodes: Nodes) -> None:
    a, b = claims(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    ch1, ch2 = await inbox(nodes, t1, "1"), await inbox(nodes, t2, "2")
    assert await a.claim(t1, ch1, "node-a", 100.0, 10.0)
    assert await b.claim(t2, ch2, "node-b", 100.0, 10.0)
    assert await channels(nodes).remove(t1, ch1)  # its claim goes with it


async def test_exactly_one_of_concurrent_claims_wins(nodes: Nodes) -> None:
    a, b = claims(nodes)
    t = await nodes.tenant()
    ch = await inbox(nodes, t, "1")
    for k in range(5):
        now = 200.0 + 20 * k
        won = await asyncio.gather(a.claim(t, ch, "node-a", now, 10.0), b.claim(t, ch, "node-b", now, 10.0))
        assert sorted(won) == [False, True]
