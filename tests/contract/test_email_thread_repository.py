"""The `EmailThreadRepository` contract (connectors/email/store.py) on SQLite and PostgreSQL."""

from __future__ import annotations

from itertools import count

from connectors.email.store import MAX_THREAD_IDS, EmailIdStore, EmailThreadRepository
from tests.contract.repository_backends import Nodes, nodes

__all__ = ["nodes"]


def repo(nodes: Nodes, node: int = 0, start: int = 10) -> EmailThreadRepository:
    ticks = count(start)
    return EmailIdStore(nodes.stores[node], lambda: float(next(ticks)))


async def test_record_then_thread_oldest_first(nodes: Nodes) -> None:
    ids = repo(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)
    await ids.record(t, "root@x", conv, "in", "Hello")
    await ids.record(t, "ours@help", conv, "out", "Re: Hello")
    await ids.record(t, "next@x", conv, "in", None)
    thread = await repo(nodes, 1).thread(t, conv)
    assert [(x.message_id, x.direction, x.subject) for x in thread] == [
        ("root@x", "in", "Hello"), ("ours@help", "out", "Re: Hello"), ("next@x", "in", None)]
    assert [x.created_at for x in thread] == [10.0, 11.0, 12.0]


async def test_record_is_idempotent_and_keeps_the_first(nodes: Nodes) -> None:
    ids = repo(nodes)
    t = await nodes.tenant()
    conv, other = await nodes.conversation(t), await nodes.conversation(t)
    await ids.record(t, "root@x", conv, "in", "Hello")
    await ids.record(t, "root@x", other, "out", "Changed")
    await repo(nodes, 1, start=100).record(t, "root@x", other, "out", "Changed")
    assert await ids.find_conversation(t, ["root@x"]) == conv
    assert [(x.message_id, x.direction, x.subject) for x in await ids.thread(t, conv)] == [("root@x", "in", "Hello")]
    assert await ids.thread(t, other) == []


async def test_find_conversation_takes_the_first_known_id(nodes: Nodes) -> None:
    ids = repo(nodes)
    t = await nodes.tenant()
    c1, c2 = await nodes.conversation(t), await nodes.conversation(t)
    await ids.record(t, "one@x", c1, "in", None)
    await ids.record(t, "two@x", c2, "in", None)
    assert await ids.find_conversation(t, ["unknown@x", "two@x", "one@x"]) == c2
    assert await ids.find_conversation(t, ["one@x", "two@x"]) == c1
    assert await ids.find_conversation(t, ["unknown@x"]) is None
    assert await ids.find_conversation(t, []) is None
    # only the first 50 ids are looked at
    assert await ids.find_conversation(t, [f"u{i}@x" for i in range(MAX_THREAD_IDS)] + ["one@x"]) is None
    assert await ids.find_conversation(t, [f"u{i}@x" for i in range(MAX_THREAD_IDS - 1)] + ["one@x"]) == c1


async def test_ids_are_tenant_scoped(nodes: Nodes) -> None:
    ids = repo(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    c1, c2 = await nodes.conversation(t1), await nodes.conversation(t2)
    await ids.record(t1, "same@x", c1, "in", "for t1")
    await ids.record(t2, "same@x", c2, "in", "for t2")  # the same Message-ID in another tenant is its own
    assert await ids.find_conversation(t1, ["same@x"]) == c1
    assert await ids.find_conversation(t2, ["same@x"]) == c2
    assert await ids.thread(t2, c1) == []
    assert [x.subject for x in await ids.thread(t2, c2)] == ["for t2"]


async def test_long_ids_and_subjects_are_cut_to_998(nodes: Nodes) -> None:
    ids = repo(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)
    long_id = "x" * 1200 + "@host"
    await ids.record(t, long_id, conv, "in", "s" * 1500)
    (x,) = await ids.thread(t, conv)
    assert x.message_id == long_id[:998] and x.subject == "s" * 998
    assert await ids.find_conversation(t, [long_id[:998]]) == conv


async def test_a_long_thread_keeps_the_first_and_the_latest(nodes: Nodes) -> None:
    ids = repo(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)
    for i in range(MAX_THREAD_IDS + 10):
        await ids.record(t, f"m{i:03}@x", conv, "in", None)
    thread = [x.message_id for x in await ids.thread(t, conv)]
    assert len(thread) == MAX_THREAD_IDS
    assert thread == ["m000@x"] + [f"m{i:03}@x" for i in range(11, MAX_THREAD_IDS + 10)]
