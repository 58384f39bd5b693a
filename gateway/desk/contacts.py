"""A contact's profile for the console's contact panel, as one agent Socket.IO event:

contact:profile {contact_id} → {contact, identities: [{kind, value}],
                               conversations: [Conversation + unread + last_message]}

`conversations`: the contact's conversations on every channel, newest activity first (at
most 50). Edits go through the core's `PATCH /api/v1/contacts/{id}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.chat.service import ChatService
from gateway.chat.wire import contact_dict
from gateway.core.domain import ConversationFilter
from gateway.core.errors import not_found
from gateway.core.validation import req_id
from gateway.desk.store import ContactIdentities
from gateway.realtime.context import Conn
from gateway.store import NotFound

MAX_CONVERSATIONS = 50


class Contacts:
    def __init__(self, chat: ChatService, identities: ContactIdentities) -> None:
        self.chat = chat
        self.identities = identities

    async def profile(self, conn: Conn, p: Mapping[str, Any]) -> dict[str, Any]:
        contact_id = req_id(p, "contact_id")
        try:
            contact = await self.chat.store.get_contact(conn.tenant_id, contact_id)
        except NotFound:
            raise not_found("contact") from None
        page = await self.chat.list_conversations(
            conn.agent, ConversationFilter(contact_id=contact_id, limit=MAX_CONVERSATIONS))
        found = await self.identities.identities_of(conn.tenant_id, contact_id)
        return {"ok": True, "contact": contact_dict(contact),
                "identities": [{"kind": i.kind, "value": i.value} for i in found],
                "conversations": page["conversations"]}
