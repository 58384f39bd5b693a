"""`connector_links`: which inbox and channel identity a connector conversation uses.

`LinkRepository` is the contract (tests/contract/test_link_repository.py runs it on SQLite
and PostgreSQL); `LinkStore` implements it over `gateway.store.db.Database`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.aio.lru import LruCache
from gateway.chat.principals import AgentPrincipal, Principal
from gateway.core.domain import DeliveryState
from gateway.core.errors import Code, GatewayError
from gateway.store.db import Database


@dataclass(frozen=True, slots=True)
class ConversationLink:
    conversation_id: str
    tenant_id: str
    channel_id: str | None
    recipient_id: str  # the contact's identity on the channel (email address, PSID, ...)
    meta: dict[str, Any] = field(default_factory=dict)


class LinkRepository(Protocol):
    """One link per conversation, written once and never changed here (privacy's erasure
    empties `recipient_id` and `meta`)."""

    async def ensure(
        self, tenant_id: str, conversation_id: str, *, channel_id: str | None, recipient_id: str,
        meta: dict[str, Any] | None = None,
    ) -> bool:
        """Record the conversation's link unless it has one; True for exactly one of any
        number of concurrent calls for a conversation (the one that created it), False for
        the others, which change nothing."""
        ...

    async def get(self, tenant_id: str, conversation_id: str) -> ConversationLink | None:
        """The conversation's link when it is the tenant's, else None."""
        ...

    async def find(self, conversation_id: str) -> ConversationLink | None:
        """By conversation id alone, any tenant (inbound routing by reply address; ids are global)."""
        ...


class LinkStore:
    """`LinkRepository` on the `connector_links` table."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def ensure(
        self, tenant_id: str, conversation_id: str, *, channel_id: str | None, recipient_id: str,
        meta: dict[str, Any] | None = None,
    ) -> bool:
        """Record the link once; True when this call created it (= a new connector conversation)."""
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO connector_links (conversation_id, tenant_id, channel_id, recipient_id, meta, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (conversation_id) DO NOTHING RETURNING conversation_id",
                conversation_id, tenant_id, channel_id, recipient_id, json.dumps(meta or {}), self._clock(),
            )
        return row is not None

    async def get(self, tenant_id: str, conversation_id: str) -> ConversationLink | None:
        async with self._db.reader() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM connector_links WHERE tenant_id = $1 AND conversation_id = $2",
                tenant_id, conversation_id,
            )
        return None if row is None else _link(row)

    async def find(self, conversation_id: str) -> ConversationLink | None:
        """By conversation id alone (inbound routing by reply address; ids are global)."""
        async with self._db.reader() as conn:
            row = await conn.fetchrow("SELECT * FROM connector_links WHERE conversation_id = $1", conversation_id)
        return None if row is None else _link(row)


def _link(row: Any) -> ConversationLink:
    return ConversationLink(
        conversation_id=str(row["conversation_id"]),
        tenant_id=str(row["tenant_id"]),
        channel_id=row["channel_id"],
        recipient_id=str(row["recipient_id"]),
        meta=json.loads(row["meta"]),
    )


class ErasedContactCheck:
    """A send check (`ChatService.send_checks`): an agent's reply in a conversation whose
    channel link lost its recipient (the contact was anonymised) is refused before it is
    stored, `contact_erased`; one with a recipient is stored `pending` (the outbox delivers
    it), so its ack, REST 201 and `message:new` say so. Conversations found without a link
    (the widget's, calls') are remembered, so their messages cost no read."""

    def __init__(self, links: LinkRepository, cache_size: int = 100_000) -> None:
        self._links = links
        self._unlinked: LruCache[tuple[str, str], bool] = LruCache(cache_size)

    async def __call__(self, author: Principal, tenant_id: str, conversation_id: str) -> DeliveryState | None:
        if not isinstance(author, AgentPrincipal):
            return None
        key = (tenant_id, conversation_id)
        if self._unlinked.get(key):
            return None
        link = await self._links.get(tenant_id, conversation_id)
        if link is None:
            self._unlinked.put(key, True)
            return None
        if not link.recipient_id:
            raise GatewayError(Code.CONTACT_ERASED, "the contact was erased: nothing can be sent to it")
        return DeliveryState.PENDING  # the outbox delivers it (Outbox.on_message queues it)
