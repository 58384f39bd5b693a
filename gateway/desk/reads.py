"""The read positions of a conversation, for agents (the console's read receipts):

conversation:reads {conversation_id} → {reads: [{reader: {type, id}, seq}]}

Each participant who has read anything, with the highest seq it has read; later moves
arrive as the core's `read` event to the conversation's watchers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.chat.service import ChatService
from gateway.core.validation import req_id
from gateway.realtime.context import Conn


class Reads:
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    async def reads(self, conn: Conn, p: Mapping[str, Any]) -> dict[str, Any]:
        conv = await self.chat.conversation_for(conn.agent, req_id(p, "conversation_id"))
        positions = await self.chat.store.get_reads(conv.tenant_id, conv.id)
        out = []
        for participant, seq in sorted(positions.items()):
            kind, _, who = participant.partition(":")
            out.append({"reader": {"type": kind, "id": who}, "seq": seq})
        return {"ok": True, "conversation_id": conv.id, "reads": out}
