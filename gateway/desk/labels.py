"""Labels on conversations, as agent Socket.IO events:

label:add / label:remove {conversation_id, label} → {labels}   (the conversation's, after)
label:list {conversation_ids?}  → {labels: {id: [..]}, names: [..]}  (the tenant's names in use)
label:conversations {label, limit?} → {conversation_ids}  (newest first: the list's filter)

A change is announced to every agent of the tenant as `conversation:labels`
{conversation_id, labels}; visitors never see labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.broker import Broker, Envelope, tenant_channel
from gateway.chat.service import ChatService
from gateway.core.errors import bad_request
from gateway.core.validation import opt_int, req_id, req_str
from gateway.desk.store import LabelRepository
from gateway.realtime.context import Conn
from gateway.realtime.handlers import Handler

MAX_LABEL_CHARS = 40
MAX_LABELS = 20  # per conversation
Ack = dict[str, Any]


def label_of(p: Mapping[str, Any]) -> str:
    """A label: 1-40 characters, spaces collapsed, no control characters."""
    v = " ".join(req_str(p, "label", max_len=200).split())
    if len(v) > MAX_LABEL_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in v):
        raise bad_request(f"'label' must be 1-{MAX_LABEL_CHARS} printable characters", field="label")
    return v


class Labels:
    def __init__(self, chat: ChatService, repo: LabelRepository, broker: Broker, *, node_id: str,
                 clock: Callable[[], float]) -> None:
        self.chat = chat
        self.repo = repo
        self.broker = broker
        self.node_id = node_id
        self.clock = clock

    def events(self) -> dict[str, Handler]:
        return {"label:add": self.add, "label:remove": self.remove, "label:list": self.list,
                "label:conversations": self.conversations}

    async def add(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv = await self.chat.conversation_for(conn.agent, req_id(p, "conversation_id"))
        label = label_of(p)
        have = (await self.repo.labels_of(conv.tenant_id, [conv.id]))[conv.id]
        if label not in have and len(have) >= MAX_LABELS:
            raise bad_request(f"at most {MAX_LABELS} labels per conversation", field="label")
        await self.repo.add_label(conv.tenant_id, conv.id, label, now=self.clock())
        return await self._changed(conv.tenant_id, conv.id)

    async def remove(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv = await self.chat.conversation_for(conn.agent, req_id(p, "conversation_id"))
        await self.repo.remove_label(conv.tenant_id, conv.id, label_of(p))
        return await self._changed(conv.tenant_id, conv.id)

    async def _changed(self, tenant_id: str, conversation_id: str) -> Ack:
        labels = (await self.repo.labels_of(tenant_id, [conversation_id]))[conversation_id]
        data = {"conversation_id": conversation_id, "labels": labels}
        await self.broker.publish(tenant_channel(tenant_id), Envelope(
            kind="event", tenant_id=tenant_id, conversation_id=conversation_id, data=data, origin=self.node_id,
            extra={"event": "conversation:labels"}))
        return {"ok": True, **data}

    async def list(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        ids = p.get("conversation_ids") or []
        if not isinstance(ids, list) or len(ids) > 200:
            raise bad_request("'conversation_ids' must be a list of at most 200 ids", field="conversation_ids")
        wanted = [req_id({"conversation_ids": i}, "conversation_ids") for i in dict.fromkeys(ids)]
        return {"ok": True, "labels": await self.repo.labels_of(conn.tenant_id, wanted),
                "names": await self.repo.tenant_labels(conn.tenant_id)}

    async def conversations(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        label = label_of(p)
        limit = opt_int(p, "limit", 200, lo=1, hi=200)
        return {"ok": True, "label": label,
                "conversation_ids": await self.repo.labelled(conn.tenant_id, label, limit=limit)}
