"""The `OutboxRepository` contract (connectors/outbox_repository.py) on SQLite and PostgreSQL.

Two repositories on one database stand for two nodes; times are explicit (`now`)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from connectors.outbox_repository import OutboxRepository, OutboxRow, SqlOutboxRepository
from gateway.core.domain import AuthorType, Channel, NewMessage
from tests.contract.repository_backends import Nodes, nodes

__all__ = ["nodes"]

LEASE = 30.0


def repos(nodes: Nodes) -> tuple[OutboxRepository, OutboxRepository]:
    return SqlOutboxRepository(nodes.stores[0]), SqlOutboxRepository(nodes.stores[1])


async def queue(nodes: Nodes, repo: OutboxRepository, times: list[float]) -> tuple[str, list[str]]:
    """Queue one row per time (in one conversation of a new tenant); the tenant and the message ids."""
    t = await nodes.tenant()
    conv = await nodes.conversation(t, Channel.FACEBOOK)
    ids = []
    for now in times:
        mid = f"m-{uuid.uuid4().hex[:10]}"
        assert await repo.enqueue(message_id=mid, tenant_id=t, conversation_id=conv, channel=Channel.FACEBOOK,
                                  now=now)
        ids.append(mid)
    return t, ids


async def row(repo: OutboxRepository, mid: str) -> OutboxRow:
    r = await repo.get(mid)
    assert r is not None
    return r


async def test_enqueue_creates_a_queued_row_once(nodes: Nodes) -> None:
    a, b = repos(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t, Channel.ZALO)
    assert await a.enqueue(message_id="m1", tenant_id=t, conversation_id=conv, channel=Channel.ZALO, now=50.0)
    want = OutboxRow(message_id="m1", tenant_id=t, conversation_id=conv, channel=Channel.ZALO, state="queued",
                     attempts=0, next_attempt_at=50.0, last_error=None, external_id=None, created_at=50.0)
    assert await b.get("m1") == want
    assert not await b.enqueue(message_id="m1", tenant_id=t, conversation_id=conv, channel=Channel.ZALO, now=99.0)
    assert await a.get("m1") == want


async def test_exactly_one_of_concurrent_enqueues_queues(nodes: Nodes) -> None:
    a, b = repos(nodes)
    t = await nodes.tenant()
    conv = await nodes.conversation(t)
    results = await asyncio.gather(*((a, b)[i % 2].enqueue(message_id="m1", tenant_id=t, conversation_id=conv,
                                                            channel=Channel.EMAIL, now=float(i)) for i in range(6)))
    assert sorted(results) == [False] * 5 + [True]
    assert (await row(a, "m1")).next_attempt_at == float(results.index(True))


async def test_enqueue_on_a_finished_row_changes_nothing(nodes: Nodes) -> None:
    a, _ = repos(nodes)
    t, (mid,) = await queue(nodes, a, [10.0])
    (claimed,) = await a.claim_due(now=10.0, limit=5, lease=LEASE, node_id="n1")
    assert await a.finish(mid, node_id="n1", state="sent", error=None, external_id="x1", now=11.0)
    assert not await a.enqueue(message_id=mid, tenant_id=t, conversation_id=claimed.conversation_id,
                               channel=Channel.FACEBOOK, now=12.0)
    assert (await row(a, mid)).state == "sent"


async def test_not_found(nodes: Nodes) -> None:
    a, _ = repos(nodes)
    assert await a.get("nope") is None
    assert await a.claim_due(now=1e12, limit=10, lease=LEASE, node_id="n1") == []
    assert not await a.reschedule("nope", node_id="n1", next_attempt_at=1.0, error="e", now=1.0)
    assert not await a.finish("nope", node_id="n1", state="sent", error=None, external_id=None, now=1.0)
    assert await a.reclaim_all(now=1.0) == 0


async def test_claim_takes_due_rows_earliest_first_up_to_the_limit(nodes: Nodes) -> None:
    a, _ = repos(nodes)
    lease = 1000.0  # the claimed rows' leases outlast the test
    _, ids = await queue(nodes, a, [30.0, 10.0, 20.0, 40.0, 100.0])
    first = await a.claim_due(now=50.0, limit=2, lease=lease, node_id="n1")
    assert [r.message_id for r in first] == [ids[1], ids[2]]
    assert all((r.state, r.attempts) == ("sending", 1) for r in first)
    assert [r.message_id for r in await a.claim_due(now=50.0, limit=10, lease=lease, node_id="n1")] == [ids[0], ids[3]]
    assert await a.claim_due(now=50.0, limit=10, lease=lease, node_id="n1") == []  # ids[4] is not due yet
    assert [r.message_id for r in await a.claim_due(now=100.0, limit=10, lease=lease, node_id="n1")] == [ids[4]]


async def test_a_running_lease_is_never_claimed_and_a_run_out_one_is(nodes: Nodes) -> None:
    a, b = repos(nodes)
    _, (mid,) = await queue(nodes, a, [10.0])
    assert [r.message_id for r in await a.claim_due(now=100.0, limit=5, lease=LEASE, node_id="n1")] == [mid]
    assert await b.claim_due(now=100.0 + LEASE - 0.5, limit=5, lease=LEASE, node_id="n2") == []
    (again,) = await b.claim_due(now=100.0 + LEASE, limit=5, lease=LEASE, node_id="n2")  # n1 died mid-send
    assert (again.message_id, again.state, again.attempts) == (mid, "sending", 2)
    # n1's late outcome is refused: the row is n2's now
    assert not await a.finish(mid, node_id="n1", state="sent", error=None, external_id="x", now=131.0)
    assert not await a.reschedule(mid, node_id="n1", next_attempt_at=200.0, error="late", now=131.0)
    assert await row(a, mid) == again
    assert await b.finish(mid, node_id="n2", state="sent", error=None, external_id="x2", now=132.0)
    assert (await row(a, mid)).external_id == "x2"


async def test_concurrent_claims_never_share_a_row(nodes: Nodes) -> None:
    a, b = repos(nodes)
    _, ids = await queue(nodes, a, [float(i) for i in range(12)])
    got_a: list[str] = []
    got_b: list[str] = []
    while len(got_a) + len(got_b) < len(ids):
        ra, rb = await asyncio.gather(a.claim_due(now=100.0, limit=4, lease=LEASE, node_id="n1"),
                                      b.claim_due(now=100.0, limit=4, lease=LEASE, node_id="n2"))
        assert ra or rb
        got_a += [r.message_id for r in ra]
        got_b += [r.message_id for r in rb]
    assert not set(got_a) & set(got_b)
    assert sorted(got_a + got_b) == sorted(ids)
    for mid in ids:
        assert (await row(a, mid)).attempts == 1


async def test_reschedule_queues_the_row_again_for_later(nodes: Nodes) -> None:
    a, b = repos(nodes)
    _, (mid,) = await queue(nodes, a, [10.0])
    await a.claim_due(now=10.0, limit=5, lease=LEASE, node_id="n1")
    assert not await b.reschedule(mid, node_id="n2", next_attempt_at=20.0, error="not mine", now=11.0)
    assert await a.reschedule(mid, node_id="n1", next_attempt_at=60.0, error="x" * 800, now=11.0)
    r = await row(a, mid)
    assert (r.state, r.attempts, r.next_attempt_at, r.last_error) == ("queued", 1, 60.0, "x" * 500)
    assert not await a.reschedule(mid, node_id="n1", next_attempt_at=70.0, error="twice", now=12.0)  # not sending
    assert await b.claim_due(now=59.0, limit=5, lease=LEASE, node_id="n2") == []
    (again,) = await b.claim_due(now=60.0, limit=5, lease=LEASE, node_id="n2")
    assert again.attempts == 2 and again.last_error == "x" * 500


@pytest.mark.parametrize("state, error, external_id", [("sent", None, "ext-1"), ("failed", "e" * 900, None)])
async def test_finish_ends_the_row_for_good(nodes: Nodes, state: str, error: str | None,
                                            external_id: str | None) -> None:
    a, b = repos(nodes)
    _, (mid,) = await queue(nodes, a, [10.0])
    assert not await a.finish(mid, node_id="n1", state=state, error=error, external_id=external_id,
                              now=10.0)  # queued, not claimed
    await a.claim_due(now=10.0, limit=5, lease=LEASE, node_id="n1")
    assert not await b.finish(mid, node_id="n2", state=state, error=error, external_id=external_id, now=11.0)
    assert await a.finish(mid, node_id="n1", state=state, error=error, external_id=external_id, now=11.0)
    r = await row(b, mid)
    assert (r.state, r.attempts, r.external_id) == (state, 1, external_id)
    assert r.last_error == (None if error is None else error[:500])
    assert not await a.finish(mid, node_id="n1", state="failed", error="again", external_id=None, now=12.0)
    assert await b.claim_due(now=1e9, limit=5, lease=LEASE, node_id="n2") == []  # never due again
    assert await a.reclaim_all(now=1e9) == 0
    assert (await row(b, mid)).state == state


async def test_reclaim_all_makes_every_sending_row_due_now(nodes: Nodes) -> None:
    a, b = repos(nodes)
    _, ids = await queue(nodes, a, [1.0, 2.0, 3.0, 500.0])
    await a.claim_due(now=10.0, limit=2, lease=LEASE, node_id="n1")  # ids[0], ids[1] sending until 40
    await a.claim_due(now=10.0, limit=5, lease=LEASE, node_id="n2")  # ids[2]
    await a.finish(ids[2], node_id="n2", state="sent", error=None, external_id=None, now=11.0)
    assert await b.reclaim_all(now=20.0) == 2
    for mid in ids[:2]:
        r = await row(a, mid)
        assert (r.state, r.attempts, r.next_attempt_at) == ("queued", 1, 20.0)
    assert (await row(a, ids[2])).state == "sent"
    assert (await row(a, ids[3])).state == "queued" and (await row(a, ids[3])).next_attempt_at == 500.0
    assert not await a.finish(ids[0], node_id="n1", state="sent", error=None, external_id=None, now=21.0)
    claimed = await b.claim_due(now=20.0, limit=5, lease=LEASE, node_id="n3")  # due at once, lease or not
    assert sorted(r.message_id for r in claimed) == sorted(ids[:2]) and {r.attempts for r in claimed} == {2}


async def test_message_seq_is_the_tenants_stored_message(nodes: Nodes) -> None:
    a, _ = repos(nodes)
    t, other = await nodes.tenant(), await nodes.tenant("Other")
    conv = await nodes.conversation(t)
    seqs = {}
    for i in range(3):
        res = await nodes.db.append_message(t, conv, NewMessage(author_type=AuthorType.AGENT, author_id=None,
                                                                text=f"r{i}", client_id=uuid.uuid4().hex), now=5.0)
        seqs[res.message.id] = res.message.seq
    for mid, seq in seqs.items():
        assert await a.message_seq(t, mid) == seq
    assert sorted(seqs.values()) == [1, 2, 3]
    assert await a.message_seq(other, next(iter(seqs))) is None
    assert await a.message_seq(t, "nope") is None


async def test_parts_accepted_are_recorded_by_the_claimer_and_kept_through_retries(nodes: Nodes) -> None:
    a, b = repos(nodes)
    _, [mid] = await queue(nodes, a, [1.0])
    assert not await a.record_part(mid, node_id="n1", part="text", external_id="m_1", now=2.0)  # queued
    assert [r.message_id for r in await a.claim_due(now=2.0, limit=5, lease=LEASE, node_id="n1")] == [mid]
    assert not await b.record_part(mid, node_id="n2", part="text", external_id="m_x", now=3.0)  # not its claim
    assert await a.record_part(mid, node_id="n1", part="text", external_id="m_1", now=3.0)
    assert (await row(a, mid)).parts == {"text": "m_1"}
    assert await a.reschedule(mid, node_id="n1", next_attempt_at=10.0, error="file failed", now=4.0)
    assert (await row(b, mid)).parts == {"text": "m_1"}  # a retry knows what went out
    [again] = await b.claim_due(now=10.0, limit=5, lease=LEASE, node_id="n2")
    assert again.parts == {"text": "m_1"}
    assert await b.record_part(mid, node_id="n2", part="attachment:0", external_id="m_2", now=11.0)
    assert await b.reclaim_all(now=12.0) == 1  # a restart keeps them too
    [third] = await a.claim_due(now=12.0, limit=5, lease=LEASE, node_id="n1")
    assert third.parts == {"text": "m_1", "attachment:0": "m_2"}
    assert await a.finish(mid, node_id="n1", state="sent", error=None, external_id="m_1", now=13.0)
    assert (await row(a, mid)).parts == {"text": "m_1", "attachment:0": "m_2"}
    assert not await a.record_part(mid, node_id="n1", part="attachment:1", external_id="m_3", now=14.0)
