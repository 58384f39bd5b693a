"""The owner of a conversation (its tenant and contact never change) is cached, so a
visitor's messages are admitted without reading the conversation back from the store —
the first message of a conversation the visitor just started included (on PostgreSQL that
read is a round trip on the message's path). A real SQLite store, its reads counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.broker.memory import MemoryBroker, MemoryHub
from gateway.chat.principals import VisitorPrincipal
from gateway.chat.service import ChatService
from gateway.config import LimitsConfig
from gateway.core.domain import Conversation
from gateway.core.errors import GatewayError
from gateway.store.sqlite import SqliteStore


class CountingStore(SqliteStore):
    """The real SQLite store, counting the conversation reads."""

    reads = 0

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation:
        self.reads += 1
        return await super().get_conversation(tenant_id, conversation_id)


async def test_a_started_conversation_takes_messages_without_being_read_back(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    await store.migrate()
    broker = MemoryBroker(MemoryHub(), "a")
    await broker.start(_ignore)
    chat = ChatService(store, broker, node_id="a", limits=LimitsConfig(), clock=lambda: 1.0, presence_ttl=45)
    try:
        tenant = await store.create_tenant(name="Shop", widget_key="wk", identity_secret="s", now=1.0)
        me, other = [await store.create_contact(tenant_id=tenant.id, name=n, email=None, now=1.0) for n in "ab"]
        visitor = VisitorPrincipal(tenant_id=tenant.id, visitor_id="v1", contact_id=me.id)
        conv = (await chat.start_conversation(visitor)).conversation
        assert chat.quick_post(visitor, conv.id, "c1", "xin chào") is not None  # known at once
        first = await chat.post_message(visitor, conv.id, "c2", "xin chào")
        assert first.created and first.message.seq >= 1 and store.reads == 0
        # another contact's visitor is still refused, from the cache too
        stranger = VisitorPrincipal(tenant_id=tenant.id, visitor_id="v2", contact_id=other.id)
        with pytest.raises(GatewayError) as refused:
            await chat.post_message(stranger, conv.id, "c3", "?")
        assert refused.value.code.value == "not_found" and store.reads == 0
    finally:
        await chat.close()
        await broker.close()
        await store.close()


async def _ignore(channel: str, env: object) -> None:
    return None
