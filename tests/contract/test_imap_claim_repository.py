"""The `ImapClaimRepository` contract (connectors/email/store.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from connectors.channels import ChannelStore
from connectors.email.store import ImapClaimRepository, ImapPollClaims
from gateway.core.domain import Channel
from gateway.security.crypto import SecretBox
from tests.contract.repository_backends import Nodes, nodes

__all__ = ["nodes"]


async def inbox(nodes: Nodes, tenant_id: str, address: str) -> str:
    ch = await ChannelStore(nodes.db, SecretBox(b"\x05" * 32), lambda: 1.0).add(
        tenant_id=tenant_id, kind=Channel.EMAIL, name="n", credentials={}, settings={"address": address})
    return ch.id


def claims(nodes: Nodes) -> tuple[ImapClaimRepository, ImapClaimRepository]:
    return ImapPollClaims(nodes.stores[0]), ImapPollClaims(nodes.stores[1])


async def test_one_node_holds_an_inbox_until_its_claim_runs_out(nodes: Nodes) -> None:
    a, b = claims(nodes)
    t = await nodes.tenant()
    ch = await inbox(nodes, t, "s@shop.vn")
    assert await a.claim(t, ch, "node-a", 100.0, 9.0)
    assert not await b.claim(t, ch, "node-b", 100.0, 9.0)
    assert await a.claim(t, ch, "node-a", 105.0, 9.0)  # renewed by its holder: A's until 114
    assert not await b.claim(t, ch, "node-b", 113.9, 9.0)  # a refused claim leaves A's as it was
    assert not await b.claim(t, ch, "node-b", 113.9, 9.0)
    assert await b.claim(t, ch, "node-b", 114.0, 9.0)  # A stopped renewing: its claim ran out
    assert not await a.claim(t, ch, "node-a", 120.0, 9.0)
    assert await b.claim(t, ch, "node-b", 120.0, 9.0)


async def test_inboxes_are_claimed_independently(nodes: Nodes) -> None:
    a, b = claims(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    ch1, ch2 = await inbox(nodes, t1, "one@x"), await inbox(nodes, t2, "two@x")
    assert await a.claim(t1, ch1, "node-a", 100.0, 9.0)
    assert await b.claim(t2, ch2, "node-b", 100.0, 9.0)
    assert not await a.claim(t2, ch2, "node-a", 100.0, 9.0)


async def test_exactly_one_of_concurrent_claims_wins(nodes: Nodes) -> None:
    a, b = claims(nodes)
    t = await nodes.tenant()
    ch = await inbox(nodes, t, "s@shop.vn")
    for k in range(5):
        now = 200.0 + 10 * k
        won = await asyncio.gather(a.claim(t, ch, "node-a", now, 9.0), b.claim(t, ch, "node-b", now, 9.0))
        assert sorted(won) == [False, True]
