"""Connector tables on every backend beyond the repository contracts (tests/contract/test_*_repository.py):
IMAP claims going with their tenant, the outbox worker on two nodes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.base import OutboundMessage, SendResult, TransientError
from connectors.channels import ChannelStore
from connectors.email.store import ImapPollClaims
from connectors.links import LinkStore
from connectors.outbox import Outbox
from connectors.outbox_repository import SqlOutboxRepository
from connectors.settings import OutboxSettings
from gateway.broker.memory import MemoryBroker, MemoryHub
from gateway.chat.service import ChatService
from gateway.config import LimitsConfig
from gateway.core.domain import AuthorType, Channel, DeliveryState, NewMessage
from gateway.privacy.store import PrivacyStore
from gateway.security.crypto import SecretBox
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.contract.repository_backends import BACKENDS, open_nodes
from tests.support.waits import until

Opened = SqliteStore | PostgresStore


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Opened]]:
    """Two independently opened stores on one fresh database (two "nodes")."""
    async with open_nodes(request.param, tmp_path) as nodes:
        yield nodes.stores


async def tenant(store: Opened, name: str = "Shop") -> str:
    t = await store.create_tenant(name=name, widget_key=f"wk_{uuid.uuid4().hex}", identity_secret="s", now=1.0)
    return t.id


async def test_imap_poll_claims_go_with_their_tenant(stores: list[Opened]) -> None:
    t = await tenant(stores[0])
    ch = await ChannelStore(stores[0], SecretBox(b"\x05" * 32), time.time).add(
        tenant_id=t, kind=Channel.EMAIL, name="Hỗ trợ", credentials={}, settings={"address": "s@shop.vn"})
    assert await ImapPollClaims(stores[1]).claim(t, ch.id, "node-b", 100.0, 9.0)
    assert (await PrivacyStore(stores[0], sqlite=isinstance(stores[0], SqliteStore)).delete_tenant_rows(t)
            )["email_imap_polls"] == 1


class Recorder:
    channel = Channel.YOUTUBE

    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[str] = []
        self.fail_first = fail_first

    async def start(self, sink: object) -> None: ...

    async def stop(self) -> None: ...

    def routes(self) -> list[object]:
        return []

    async def send(self, msg: OutboundMessage) -> SendResult:
        await asyncio.sleep(0.01)
        if self.fail_first > 0:
            self.fail_first -= 1
            raise TransientError("busy", retry_after=0.0)
        self.sent.append(msg.message_id)
        return SendResult(external_message_id=f"x-{msg.message_id}")


def outbox_on(store: Opened, node: str, recorder: Recorder, **settings: float) -> Outbox:
    chat = ChatService(store, MemoryBroker(MemoryHub(), node), node_id=node, limits=LimitsConfig(),
                       clock=time.time, presence_ttl=45.0)
    return Outbox(rows=SqlOutboxRepository(store), store=store, chat=chat, links=LinkStore(store, time.time),
                  connectors={Channel.YOUTUBE: recorder},  # type: ignore[dict-item]
                  settings=OutboxSettings(base_delay=0.0, max_delay=0.0, batch=5, **settings),  # type: ignore[arg-type]
                  node_id=node, clock=time.time)


async def test_two_nodes_never_send_one_row_twice(stores: list[Opened]) -> None:
    a_store, b_store = stores
    t = await tenant(a_store)
    contact = await a_store.create_contact(tenant_id=t, name="V", email=None, now=1.0)
    conv = await a_store.create_conversation(tenant_id=t, channel=Channel.YOUTUBE, contact_id=contact.id, now=1.0,
                                             external_thread_id="v1")
    await LinkStore(a_store, time.time).ensure(t, conv.id, channel_id=None, recipient_id="UC1")
    rec_a, rec_b = Recorder(fail_first=3), Recorder()
    a, b = outbox_on(a_store, "node-a", rec_a), outbox_on(b_store, "node-b", rec_b)
    ids = []
    for i in range(12):
        res = await a_store.append_message(t, conv.id, NewMessage(author_type=AuthorType.AGENT, author_id=None,
                                                                  text=f"r{i}", client_id=str(uuid.uuid4())),
                                           now=time.time())
        await (a if i % 2 else b).on_message(res.message, res.conversation)
        ids.append(res.message.id)
    deadline = time.monotonic() + 30
    while len(rec_a.sent) + len(rec_b.sent) < len(ids):
        assert time.monotonic() < deadline
        await asyncio.gather(a.run_once(), b.run_once())
    assert sorted(rec_a.sent + rec_b.sent) == sorted(ids)  # each exactly once
    for mid in ids:
        row = await a.get(mid)
        assert row is not None and row.state == "sent" and row.external_id == f"x-{mid}"
    msgs = await a_store.get_messages(t, conv.id)
    assert {m.delivery_state for m in msgs} == {DeliveryState.SENT}


async def test_a_stop_ends_the_worker_even_when_a_wake_comes_with_it(stores: list[Opened]) -> None:
    """`stop()` cancels the worker while it waits for work; a `wake()` in the same turn (a
    message stored as the node stops) must not eat that cancel (with `asyncio.wait_for` on
    Python 3.11 it did: the worker went on polling and `stop()` never returned)."""
    ob = outbox_on(stores[0], "n", Recorder(), poll_interval=30.0)
    for _ in range(5):
        ob.start()
        # the empty pass is done: the worker waits for a wake
        await until(lambda: ob._wake._waiters, timeout=5.0, interval=0.001)
        worker = ob._task
        ob.wake()
        stopping = asyncio.create_task(ob.stop())
        done, _ = await asyncio.wait([stopping], timeout=2)
        if not done and worker is not None:  # the cancel was lost: end the worker for the next test
            worker.cancel()
            await stopping
        assert done, "stop() did not end the worker"


async def test_backoff_grows_with_jitter_and_respects_retry_after(stores: list[Opened]) -> None:
    ob = outbox_on(stores[0], "n", Recorder())
    ob._settings = OutboxSettings(base_delay=2.0, max_delay=60.0)
    ob._rand = lambda: 1.0
    assert [ob.backoff(n, None) for n in (1, 2, 3, 6, 20)] == [2.0, 4.0, 8.0, 60.0, 60.0]
    ob._rand = lambda: 0.0
    assert ob.backoff(3, None) == 4.0  # jitter: half of 8
    assert ob.backoff(1, 30.0) == 30.0
