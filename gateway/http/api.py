"""REST API for agents (`Authorization: Bearer <agent token>`), under /api/v1."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.chat.principals import AgentPrincipal, require_admin
from gateway.chat.service import ChatService
from gateway.chat.wire import agent_dict, contact_dict, conversation_dict, message_dict
from gateway.config import Config
from gateway.core.domain import AgentRole, ConversationFilter, ConversationStatus, TenantStatus
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
    req_id,
    req_int,
    req_str,
)
from gateway.http.body import read_json
from gateway.security.auth import hash_token, new_agent_token
from gateway.store import NotFound, Store


def query_ints(q: Mapping[str, str], *keys: str) -> dict[str, Any]:
    """Query strings → ints for the validators (which then check ranges)."""
    out: dict[str, Any] = {}
    for k, v in q.items():
        if k in keys:
            try:
                out[k] = int(v)
            except ValueError:
                raise bad_request(f"'{k}' must be an integer", field=k) from None
        else:
            out[k] = v
    return out


class Api:
    def __init__(self, chat: ChatService, store: Store, config: Config) -> None:
        self.chat = chat
        self.store = store
        self.config = config

    async def principal(self, request: web.Request) -> AgentPrincipal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > 200:
            raise GatewayError(Code.UNAUTHORIZED, "send 'Authorization: Bearer <agent token>'")
        try:
            agent = await self.store.get_agent_by_token_hash(hash_token(token.strip()))
            tenant = await self.store.get_tenant(agent.tenant_id)
        except NotFound:
            raise GatewayError(Code.UNAUTHORIZED, "invalid agent token") from None
        if tenant.status != TenantStatus.ACTIVE:
            raise GatewayError(Code.FORBIDDEN, "this account is not active")
        return AgentPrincipal(agent.tenant_id, agent.id, agent.role, agent.name)

    async def body(self, request: web.Request) -> Mapping[str, Any]:
        """The JSON object of the request's body (`{}` when empty), at most `MAX_EVENT_BYTES`."""
        return as_object(await read_json(request, self.config.limits.max_event_bytes, empty={}), "body")

    @staticmethod
    def path_id(request: web.Request, key: str) -> str:
        return req_id({key: request.match_info[key]}, key)

    # --- handlers --------------------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        agent = await self.store.get_agent(p.tenant_id, p.agent_id)
        return web.json_response({"ok": True, "agent": agent_dict(agent), "tenant_id": p.tenant_id})

    async def list_conversations(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        q = query_ints(request.query, "limit")
        flt = ConversationFilter(
            status=opt_enum(q, "status", ConversationStatus),
            assignee_id=opt_id(q, "assignee_id"),
            unassigned=q.get("unassigned") in ("1", "true"),
            contact_id=opt_id(q, "contact_id"),
            limit=opt_int(q, "limit", 50, lo=1, hi=200),
        )
        return web.json_response({"ok": True, **await self.chat.list_conversations(p, flt)})

    async def get_conversation(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        conv = await self.chat.conversation_for(p, self.path_id(request, "id"))
        return web.json_response({"ok": True, "conversation": conversation_dict(conv)})

    async def patch_conversation(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        conv_id = self.path_id(request, "id")
        body = await self.body(request)
        status = opt_enum(body, "status", ConversationStatus)
        assignee = opt_id(body, "assignee_id")
        unassign = "assignee_id" in body and body["assignee_id"] is None
        conv = await self.chat.update_conversation(p, conv_id, status=status, assignee_id=assignee,
                                                   unassign=unassign)
        return web.json_response({"ok": True, "conversation": conversation_dict(conv)})

    async def list_messages(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        q = query_ints(request.query, "before_seq", "after_seq", "limit")
        before = None if q.get("before_seq") is None else req_int(q, "before_seq", lo=1)
        conv, msgs = await self.chat.history(
            p, self.path_id(request, "id"), before_seq=before, after_seq=opt_int(q, "after_seq", 0),
            limit=opt_int(q, "limit", 50, lo=1, hi=self.config.limits.history_page_max),
        )
        return web.json_response({"ok": True, "epoch": conv.epoch, "last_seq": conv.last_seq,
                                  "messages": [message_dict(m, conv.epoch) for m in msgs]})

    async def post_message(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        conv_id = self.path_id(request, "id")
        body = await self.body(request)
        client_id, text = req_client_id(body), message_text(body, self.config.limits.max_text_chars)
        if opt_bool(body, "note", False):  # a private note (docs/protocol.md)
            res = await self.chat.post_note(p, conv_id, client_id, text)
        else:
            res = await self.chat.post_message(p, conv_id, client_id, text)
        return web.json_response(
            {"ok": True, "duplicate": not res.created, "message": res.wire},
            status=201 if res.created else 200,
        )

    async def post_read(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        body = await self.body(request)
        seq = await self.chat.mark_read(p, self.path_id(request, "id"), req_int(body, "seq"))
        return web.json_response({"ok": True, "seq": seq})

    async def list_contacts(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        q = query_ints(request.query, "limit", "offset")
        contacts = await self.store.list_contacts(
            p.tenant_id, limit=opt_int(q, "limit", 50, lo=1, hi=200), offset=opt_int(q, "offset", 0)
        )
        return web.json_response({"ok": True, "contacts": [contact_dict(c) for c in contacts]})

    async def get_contact(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        try:
            c = await self.store.get_contact(p.tenant_id, self.path_id(request, "id"))
        except NotFound:
            raise not_found("contact") from None
        return web.json_response({"ok": True, "contact": contact_dict(c)})

    async def patch_contact(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        contact_id = self.path_id(request, "id")
        body = await self.body(request)
        unknown = set(body) - {"name", "email", "phone", "attributes"}
        if unknown:
            raise bad_request(f"unknown fields: {', '.join(sorted(unknown))[:200]}")
        fields: dict[str, Any] = {}
        for key, max_len in (("name", 200), ("email", 320), ("phone", 40)):
            if key in body:
                fields[key] = opt_str(body, key, max_len=max_len)
        if "attributes" in body:
            attrs = as_object(body["attributes"], "attributes")
            if len(json.dumps(attrs)) > 16 * 1024:
                raise GatewayError(Code.PAYLOAD_TOO_LARGE, "attributes larger than 16 KiB")
            fields["attributes"] = dict(attrs)
        try:
            c = await self.store.update_contact(p.tenant_id, contact_id, fields)
        except NotFound:
            raise not_found("contact") from None
        for listener in self.chat.contact_listeners:
            await listener(p.tenant_id, contact_id, f"agent:{p.agent_id}", sorted(fields))
        return web.json_response({"ok": True, "contact": contact_dict(c)})

    async def list_agents(self, request: web.Request) -> web.Response:
        p = await self.principal(request)
        agents = await self.store.list_agents(p.tenant_id)
        return web.json_response({"ok": True, "agents": [agent_dict(a) for a in agents]})

    async def create_agent(self, request: web.Request) -> web.Response:
        p = require_admin(await self.principal(request), "create agents")
        body = await self.body(request)
        name = req_str(body, "name", max_len=200)
        role = opt_enum(body, "role", AgentRole) or AgentRole.AGENT
        capacity = opt_int(body, "capacity", 5, lo=0, hi=1000)
        token = new_agent_token()
        agent = await self.store.create_agent(tenant_id=p.tenant_id, name=name, role=role,
                                              token_hash=hash_token(token), capacity=capacity,
                                              now=self.chat.clock())
        return web.json_response({"ok": True, "agent": agent_dict(agent), "token": token}, status=201)


def api_routes(chat: ChatService, store: Store, config: Config) -> list[web.RouteDef]:
    api = Api(chat, store, config)
    base = "/api/v1"
    return [
        web.get(f"{base}/me", api.me),
        web.get(f"{base}/conversations", api.list_conversations),
        web.get(f"{base}/conversations/{{id}}", api.get_conversation),
        web.patch(f"{base}/conversations/{{id}}", api.patch_conversation),
        web.get(f"{base}/conversations/{{id}}/messages", api.list_messages),
        web.post(f"{base}/conversations/{{id}}/messages", api.post_message),
        web.post(f"{base}/conversations/{{id}}/read", api.post_read),
        web.get(f"{base}/contacts", api.list_contacts),
        web.get(f"{base}/contacts/{{id}}", api.get_contact),
        web.patch(f"{base}/contacts/{{id}}", api.patch_contact),
        web.get(f"{base}/agents", api.list_agents),
        web.post(f"{base}/agents", api.create_agent),
    ]
