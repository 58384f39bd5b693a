"""Socket.IO event handlers: decode → use case → ack. One table per namespace.

Every handler takes the connection and the (untrusted) payload and returns the ack
body `{"ok": true, …}`; errors are raised as GatewayError and turned into
`{"ok": false, "error": {…}}` by the dispatcher.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from gateway.chat.service import ChatService, PostResult
from gateway.chat.wire import (
    agent_dict,
    contact_dict,
    conversation_dict,
    message_dict,
    visitor_conversation_dict,
    visitor_message_dict,
)
from gateway.core.domain import AgentStatus, ConversationFilter, ConversationStatus
from gateway.core.errors import Code, GatewayError, bad_request, not_found
from gateway.core.validation import (
    as_object,
    message_text,
    opt_bool,
    opt_enum,
    opt_id,
    opt_int,
    opt_str,
    req_client_id,
    req_enum,
    req_id,
    req_int,
)
from gateway.realtime.context import Conn
from gateway.realtime.fanout import Fanout, ResetRequired
from gateway.store import NotFound

Ack = dict[str, Any]
Handler = Callable[[Conn, Mapping[str, Any]], Awaitable[Ack]]
SendRequest = tuple[str, str, str, list[str]]
"""A validated `message:send`: (conversation id, client id, text, upload ids)."""


def send_ack(res: PostResult) -> Ack:
    return {"ok": True, "duplicate": not res.created, "message": res.wire}


def _with(core: dict[str, Handler], more: Mapping[str, Handler], namespace: str) -> Mapping[str, Handler]:
    taken = sorted(set(core) & set(more))
    if taken:
        raise ValueError(f"{namespace}: a feature declares core events {taken}")
    return MappingProxyType({**core, **more})


class Handlers:
    """The event tables of the two namespaces: the core's events and those the features
    declared (`visitor_events`, `agent_events`; a feature cannot replace a core event),
    read-only once built."""

    def __init__(self, chat: ChatService, fanout: Fanout, *, max_watch: int,
                 visitor_events: Mapping[str, Handler] | None = None,
                 agent_events: Mapping[str, Handler] | None = None) -> None:
        self.chat = chat
        self.fanout = fanout
        self.max_watch = max_watch
        common: dict[str, Handler] = {
            "conversation:watch": self.watch,
            "conversation:unwatch": self.unwatch,
            "resume": self.resume,
            "message:send": self.send,
            "messages:history": self.history,
            "typing": self.typing,
            "read": self.read,
        }
        self.visitor = _with({
            **common,
            "conversation:start": self.start,
            "conversation:list": self.visitor_list,
            "conversation:availability": self.visitor_availability,
        }, visitor_events or {}, "/visitor")
        self.agent = _with({
            **common,
            "session:get": self.agent_session,
            "conversation:list": self.agent_list,
            "conversation:get": self.agent_get,
            "conversation:assign": self.assign,
            "conversation:status": self.set_status,
            "presence:set": self.presence,
            "agent:list": self.agent_list_agents,
            "note:send": self.note,
        }, agent_events or {}, "/agent")

    # --- shared ----------------------------------------------------------
    async def _watch_one(self, conn: Conn, conv_id: str, epoch: str | None, after: int | None) -> Ack:
        # The access check reads the conversation unless its owner is cached (a visitor's
        # `session` lists them); then a route made for it reads it once subscribed, and
        # that one read serves the route and the answer.
        p = conn.principal
        conv = None if self.chat.access_known(p, conv_id) else await self.chat.conversation_for(p, conv_id)
        if conv_id not in conn.watching and len(conn.watching) >= self.max_watch:
            raise GatewayError(Code.LIMIT_REACHED, "watching too many conversations", limit=self.max_watch)
        try:
            replayed, read = await self.fanout.watch_read(conn, conv_id, after, epoch, known=conv)
        except ResetRequired as exc:
            current = conv or await self.chat.conversation_for(p, conv_id)
            raise GatewayError(Code.RELOAD_REQUIRED, str(exc), epoch=current.epoch,
                               last_seq=current.last_seq) from None
        except NotFound:
            raise not_found("conversation") from None
        conv = conv or read or await self.chat.conversation_for(p, conv_id)
        view = conversation_dict(conv) if conn.is_agent else visitor_conversation_dict(conv)
        return {"ok": True, "conversation": view, "replayed": replayed}

    async def watch(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        after = None if p.get("after_seq") is None else req_int(p, "after_seq")
        epoch = opt_str(p, "epoch", max_len=64)
        return await self._watch_one(conn, conv_id, epoch, after)

    async def unwatch(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        await self.fanout.unwatch(conn, conv_id)
        return {"ok": True}

    async def resume(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        items = p.get("conversations")
        if not isinstance(items, list) or len(items) > self.max_watch:
            raise bad_request(f"'conversations' must be a list of at most {self.max_watch}")
        parsed = []
        for raw in items:
            item = as_object(raw, "conversations[]")
            parsed.append((req_id(item, "conversation_id"), opt_str(item, "epoch", max_len=64),
                           req_int(item, "seq")))
        results = []
        for conv_id, epoch, seq in parsed:
            try:
                ack = await self._watch_one(conn, conv_id, epoch, seq)
                results.append({"conversation_id": conv_id, **ack})
            except GatewayError as exc:
                results.append({"conversation_id": conv_id, **exc.to_dict()})
        return {"ok": True, "results": results}

    async def send(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        return await self.post(conn, self.parse_send(p))

    async def post(self, conn: Conn, req: SendRequest) -> Ack:
        """A validated `message:send` (`parse_send`) stored and published: its ack."""
        conv_id, client_id, text, ids = req
        return send_ack(await self.chat.post_message(conn.principal, conv_id, client_id, text, ids))

    def parse_send(self, p: Mapping[str, Any]) -> SendRequest:
        """A `message:send` payload's (conversation id, client id, text, upload ids)."""
        conv_id = req_id(p, "conversation_id")
        client_id = req_client_id(p)
        attachments = p.get("attachments") or []
        if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
            raise bad_request("'attachments' must be a list of upload ids", field="attachments")
        ids = [req_id({"attachments": a}, "attachments") for a in dict.fromkeys(attachments)]
        # the text may be empty when there is an attachment
        text = "" if ids and p.get("text") in (None, "") else message_text(p, self.chat.limits.max_text_chars)
        return conv_id, client_id, text, ids

    async def history(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        before = None if p.get("before_seq") is None else req_int(p, "before_seq", lo=1)
        after = opt_int(p, "after_seq", 0)
        limit = opt_int(p, "limit", 50, lo=1, hi=self.chat.limits.history_page_max)
        conv, msgs = await self.chat.history(conn.principal, conv_id, before_seq=before, after_seq=after,
                                             limit=limit)
        view = message_dict if conn.is_agent else visitor_message_dict
        return {"ok": True, "messages": [view(m, conv.epoch) for m in msgs],
                "epoch": conv.epoch, "last_seq": conv.last_seq}

    async def typing(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        await self.chat.typing(conn.principal, conv_id, opt_bool(p, "typing", True), conn.sid)
        return {"ok": True}

    async def read(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        seq = req_int(p, "seq")
        return {"ok": True, "seq": await self.chat.mark_read(conn.principal, conv_id, seq)}

    # --- visitor ---------------------------------------------------------
    async def start(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        res = await self.chat.start_conversation(conn.visitor)
        await self.fanout.watch(conn, res.conversation.id, 0, None, known=res.conversation)
        return {"ok": True, "conversation": visitor_conversation_dict(res.conversation),
                "agents_available": res.agents_available, **res.availability.to_dict()}

    async def visitor_availability(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        """Whether an agent has, or can take, the visitor's conversation (issue 31)."""
        availability = await self.chat.availability(conn.visitor, req_id(p, "conversation_id"))
        return {"ok": True, **availability.to_dict()}

    async def visitor_list(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        convs = await self.chat.list_visitor_conversations(conn.visitor)
        return {"ok": True, "conversations": [visitor_conversation_dict(c) for c in convs]}

    # --- agent -----------------------------------------------------------
    async def agent_session(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        agent = await self.chat.store.get_agent(conn.tenant_id, conn.agent.agent_id)
        return {"ok": True, "agent": agent_dict(agent), "tenant_id": conn.tenant_id}

    async def agent_list(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        flt = ConversationFilter(
            status=opt_enum(p, "status", ConversationStatus),
            assignee_id=conn.agent.agent_id if opt_bool(p, "mine", False) else opt_id(p, "assignee_id"),
            unassigned=opt_bool(p, "unassigned", False),
            contact_id=opt_id(p, "contact_id"),
            limit=opt_int(p, "limit", 50, lo=1, hi=200),
        )
        return {"ok": True, **await self.chat.list_conversations(conn.agent, flt)}

    async def agent_get(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv = await self.chat.conversation_for(conn.principal, req_id(p, "conversation_id"))
        try:
            contact = await self.chat.store.get_contact(conn.tenant_id, conv.contact_id)
        except NotFound:
            raise not_found("contact") from None
        return {"ok": True, "conversation": conversation_dict(conv), "contact": contact_dict(contact)}

    async def assign(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        if "agent_id" not in p:
            raise bad_request("'agent_id' is required (null to unassign)", field="agent_id")
        agent_id = opt_id(p, "agent_id")
        conv = await self.chat.update_conversation(
            conn.agent, conv_id, status=None, assignee_id=agent_id, unassign=agent_id is None
        )
        return {"ok": True, "conversation": conversation_dict(conv)}

    async def set_status(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        status = req_enum(p, "status", ConversationStatus)
        conv = await self.chat.update_conversation(conn.agent, conv_id, status=status, assignee_id=None,
                                                   unassign=False)
        return {"ok": True, "conversation": conversation_dict(conv)}

    async def presence(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        status = req_enum(p, "status", AgentStatus)
        await self.chat.set_presence(conn.agent, status)
        agent = await self.chat.store.get_agent(conn.tenant_id, conn.agent.agent_id)
        return {"ok": True, "agent": agent_dict(agent)}

    async def note(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        """A private note: a message of author type `note`, for agents only."""
        conv_id = req_id(p, "conversation_id")
        client_id = req_client_id(p)
        text = message_text(p, self.chat.limits.max_text_chars)
        return send_ack(await self.chat.post_note(conn.agent, conv_id, client_id, text))

    async def agent_list_agents(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        agents = await self.chat.store.list_agents(conn.tenant_id)
        return {"ok": True, "agents": [agent_dict(a) for a in agents]}
