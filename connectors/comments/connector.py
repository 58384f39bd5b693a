"""IZIComment connector: public product/page comment threads.

* ``POST /api/v1/public/comments`` — a shopper comments (widget key in the body or the
  ``X-Widget-Key`` header). One conversation per (tenant, thread id = product/page id);
  ``client_id`` (UUID) makes a retry store nothing new.
* ``GET /api/v1/public/comments?widget_key=…&thread=…[&before_seq=…][&limit=…]`` — the
  published thread: shoppers' comments and agents' replies that were published.
* An agent's reply goes through the outbox like any channel; `send` "delivers" it by
  marking it published (state `sent`), after which the GET lists it.

The tenant needs an enabled `comments` channel (`channel add --kind comments`).
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from connectors.base import InboundMessage, InboundSink, OutboundMessage, SendResult
from connectors.context import ConnectorContext
from gateway.core.domain import AuthorType, Channel, DeliveryState, Message, TenantStatus
from gateway.core.errors import Code, GatewayError, bad_request
from gateway.core.validation import as_object, message_text, opt_int, opt_str, req_client_id, req_str
from gateway.http.body import read_json
from gateway.store import NotFound

BASE = "/api/v1/public/comments"
MAX_BODY_BYTES = 16 * 1024
MAX_COMMENT_CHARS = 2000
PAGE_MAX = 100
_THREAD_RE = re.compile(r"^[A-Za-z0-9._:/@-]{1,200}$")
_EMAIL_RE = re.compile(r"^[^@\s<>]{1,64}@[^@\s<>]{1,190}\.[^@\s<>]{1,63}$")
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type, X-Widget-Key",
         "Access-Control-Allow-Methods": "GET, POST, OPTIONS"}


def _thread(value: object) -> str:
    if not isinstance(value, str) or not _THREAD_RE.match(value):
        raise bad_request("'thread' must be 1..200 characters of letters, digits and ._:/@-", field="thread")
    return value


class CommentsConnector:
    channel = Channel.COMMENTS

    def __init__(self, ctx: ConnectorContext) -> None:
        self._ctx = ctx
        self._max_chars = min(MAX_COMMENT_CHARS, ctx.config.limits.max_text_chars)

    async def start(self, sink: InboundSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    def routes(self) -> list[web.RouteDef]:
        return [web.post(BASE, self.post), web.get(BASE, self.get), web.options(BASE, self.options)]

    async def send(self, msg: OutboundMessage) -> SendResult:
        # Publishing is the delivery: the GET lists agent replies whose state is `sent`.
        return SendResult(external_message_id=f"comment:{msg.message_id}")

    # --- REST ------------------------------------------------------------
    async def options(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=_CORS)

    async def _tenant_id(self, widget_key: object) -> str:
        if not isinstance(widget_key, str) or not 1 <= len(widget_key) <= 200:
            raise GatewayError(Code.UNAUTHORIZED, "widget_key is required")
        try:
            tenant = await self._ctx.store.get_tenant_by_widget_key(widget_key)
        except NotFound:
            raise GatewayError(Code.UNAUTHORIZED, "unknown widget key") from None
        if tenant.status != TenantStatus.ACTIVE:
            raise GatewayError(Code.FORBIDDEN, "this business is not active")
        if await self._ctx.channels.for_tenant(tenant.id, Channel.COMMENTS) is None:
            raise GatewayError(Code.FORBIDDEN, "comments are not enabled for this business")
        return tenant.id

    async def post(self, request: web.Request) -> web.Response:
        body = as_object(await read_json(request, MAX_BODY_BYTES), "body")
        tenant_id = await self._tenant_id(body.get("widget_key") or request.headers.get("X-Widget-Key"))
        thread = _thread(body.get("thread"))
        name = req_str(body, "author_name", max_len=100).strip()
        email = opt_str(body, "author_email", max_len=254)
        if email is not None and not _EMAIL_RE.match(email.strip()):
            raise bad_request("'author_email' is not an email address", field="author_email")
        text = message_text(body, self._max_chars).strip()
        client_id = req_client_id(body)
        ch = await self._ctx.channels.for_tenant(tenant_id, Channel.COMMENTS)
        author = email.strip().lower() if email else f"anon:{client_id}"
        res = await self._ctx.inbound.deliver(InboundMessage(
            tenant_id=tenant_id, channel=Channel.COMMENTS, external_thread_id=thread, external_author_id=author,
            external_message_id=f"comment:{client_id}", text=text, sent_at=time.time(), author_name=name,
            author_email=email.strip().lower() if email else None, channel_id=ch.id if ch else None,
            meta={"thread": thread},
        ))
        data = {"ok": True, "duplicate": not res.created,
                "comment": self._public(res.message, name)}
        return web.json_response(data, status=200 if not res.created else 201, headers=_CORS)

    async def get(self, request: web.Request) -> web.Response:
        q = request.query
        tenant_id = await self._tenant_id(q.get("widget_key") or request.headers.get("X-Widget-Key"))
        thread = _thread(q.get("thread"))
        params: dict[str, Any] = {}
        for key in ("before_seq", "limit"):
            if key in q:
                try:
                    params[key] = int(q[key])
                except ValueError:
                    raise bad_request(f"'{key}' must be an integer", field=key) from None
        limit = opt_int(params, "limit", 50, lo=1, hi=PAGE_MAX)
        before = params.get("before_seq")
        async with self._ctx.db.reader() as conn:
            row = await conn.fetchrow(
                "SELECT id FROM conversations WHERE tenant_id = $1 AND channel = $2 AND external_thread_id = $3",
                tenant_id, Channel.COMMENTS.value, thread,
            )
        comments: list[dict[str, Any]] = []
        if row is not None:
            msgs = await self._ctx.store.get_messages(tenant_id, str(row["id"]), before_seq=before, limit=limit,
                                                      newest=True)
            names: dict[tuple[str, str], str] = {}
            for m in msgs:  # the public sees contacts' comments and agents' sent replies, nothing else
                if m.author_type == AuthorType.AGENT and m.delivery_state != DeliveryState.SENT:
                    continue
                if m.author_type not in (AuthorType.CONTACT, AuthorType.AGENT):  # system entries, private notes
                    continue
                comments.append(self._public(m, await self._name(tenant_id, m, names)))
        return web.json_response({"ok": True, "thread": thread, "comments": comments}, headers=_CORS)

    async def _name(self, tenant_id: str, m: Message, cache: dict[tuple[str, str], str]) -> str:
        key = (m.author_type.value, m.author_id or "")
        if key not in cache:
            name = ""
            try:
                if m.author_type == AuthorType.AGENT and m.author_id:
                    name = (await self._ctx.store.get_agent(tenant_id, m.author_id)).name
                elif m.author_id:
                    name = (await self._ctx.store.get_contact(tenant_id, m.author_id)).name or ""
            except NotFound:
                pass
            cache[key] = name
        return cache[key]

    @staticmethod
    def _public(m: Message, author_name: str) -> dict[str, Any]:
        """What the public may see: no emails, no internal ids of contacts."""
        return {"id": m.id, "seq": m.seq, "text": m.text, "created_at": m.created_at,
                "author": {"type": m.author_type.value, "name": author_name}}
