"""The `LinkRepository` contract (connectors/links.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from connectors.links import ConversationLink, LinkRepository, LinkStore
from tests.contract.repository_backends import Nodes, nodes

__all__ = ["nodes"]


def repo(nodes: Nodes, node: int = 0) -> LinkRepository:
    return LinkStore(nodes.stores[node], lambda: 5.0)


async def test_ensure_records_once_and_reads_back(nodes: Nodes) -> None:
    links = repo(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)
    assert await links.ensure(t, conv, channel_id=None, recipient_id="a@x", meta={"subject": "Hi"})
    want = ConversationLink(conversation_id=conv, tenant_id=t, channel_id=None, recipient_id="a@x",
                            meta={"subject": "Hi"})
    assert await links.get(t, conv) == want
    assert await links.find(conv) == want
    assert await repo(nodes, 1).get(t, conv) == want  # another node reads it
    # a second ensure changes nothing, whatever it says
    assert not await links.ensure(t, conv, channel_id="other", recipient_id="b@x", meta={"x": 1})
    assert await links.get(t, conv) == want


async def test_meta_defaults_to_empty(nodes: Nodes) -> None:
    links = repo(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)
    await links.ensure(t, conv, channel_id=None, recipient_id="PSID-1")
    link = await links.get(t, conv)
    assert link is not None and link.meta == {} and link.recipient_id == "PSID-1"


async def test_exactly_one_of_concurrent_ensures_creates_the_link(nodes: Nodes) -> None:
    a, b = repo(nodes, 0), repo(nodes, 1)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)
    results = await asyncio.gather(*((a, b)[i % 2].ensure(t, conv, channel_id=None, recipient_id=f"r{i}")
                                     for i in range(6)))
    assert sorted(results) == [False] * 5 + [True]
    link = await a.get(t, conv)
    assert link is not None and link.recipient_id == f"r{results.index(True)}"  # the creator's values


async def test_get_is_tenant_scoped_and_find_is_not(nodes: Nodes) -> None:
    links = repo(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    conv = await nodes.conversation(t1)
    await links.ensure(t1, conv, channel_id=None, recipient_id="a@x")
    assert await links.get(t2, conv) is None
    found = await links.find(conv)
    assert found is not None and found.tenant_id == t1


async def test_not_found(nodes: Nodes) -> None:
    links = repo(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)  # a conversation without a link (the widget's)
    assert await links.get(t, conv) is None
    assert await links.find(conv) is None
    assert await links.find("nope") is None
