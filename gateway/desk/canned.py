"""Canned responses over REST, under /api/v1 (any agent of the tenant reads; admins write):

GET    /canned-responses           the tenant's, by shortcut
POST   /canned-responses           {shortcut, text} → 201 {canned_response}
PATCH  /canned-responses/{id}      {shortcut?, text?}
DELETE /canned-responses/{id}

A shortcut is 1-32 of a-z, 0-9, "_" and "-" (lowercased), typed as "/shortcut" in the
console's composer; one per tenant (a taken one is `bad_request` with field "shortcut").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.chat.principals import AgentPrincipal, require_admin
from gateway.core.errors import bad_request, not_found
from gateway.core.validation import message_text, req_id, req_str
from gateway.desk.store import CannedResponse, CannedResponseRepository
from gateway.store.rows import new_id
from gateway.store.sql import Conflict

Principal = Callable[[web.Request], Awaitable[AgentPrincipal]]
Body = Callable[[web.Request], Awaitable[Mapping[str, Any]]]

_SHORTCUT = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_PER_TENANT = 500


def shortcut_of(body: Mapping[str, Any]) -> str:
    v = req_str(body, "shortcut", max_len=33).strip().lstrip("/").lower()
    if not _SHORTCUT.fullmatch(v):
        raise bad_request("'shortcut' must be 1-32 of a-z, 0-9, '_' and '-'", field="shortcut")
    return v


class CannedApi:
    def __init__(self, repo: CannedResponseRepository, principal: Principal, body: Body, *,
                 clock: Callable[[], float], max_text_chars: int) -> None:
        self.repo = repo
        self._principal = principal
        self._body = body
        self.clock = clock
        self.max_text_chars = max_text_chars

    def routes(self, base: str = "/api/v1") -> list[web.RouteDef]:
        return [
            web.get(f"{base}/canned-responses", self.list),
            web.post(f"{base}/canned-responses", self.create),
            web.patch(f"{base}/canned-responses/{{id}}", self.update),
            web.delete(f"{base}/canned-responses/{{id}}", self.delete),
        ]

    async def _admin_body(self, request: web.Request, allowed: set[str]) -> tuple[AgentPrincipal, Mapping[str, Any]]:
        p = require_admin(await self._principal(request), "change canned responses")
        body = await self._body(request)
        unknown = set(body) - allowed
        if unknown:
            raise bad_request(f"unknown fields: {', '.join(sorted(unknown))[:200]}")
        return p, body

    async def list(self, request: web.Request) -> web.Response:
        p = await self._principal(request)
        found = await self.repo.list_canned(p.tenant_id)
        return web.json_response({"ok": True, "canned_responses": [c.to_dict() for c in found]})

    async def create(self, request: web.Request) -> web.Response:
        p, body = await self._admin_body(request, {"shortcut", "text"})
        shortcut, text = shortcut_of(body), message_text(body, self.max_text_chars)
        if len(await self.repo.list_canned(p.tenant_id)) >= MAX_PER_TENANT:
            raise bad_request(f"at most {MAX_PER_TENANT} canned responses per account")
        now = self.clock()
        c = CannedResponse(new_id(), p.tenant_id, shortcut, text, now, now)
        try:
            await self.repo.add_canned(c)
        except Conflict:
            raise bad_request(f"the shortcut /{shortcut} is taken", field="shortcut") from None
        return web.json_response({"ok": True, "canned_response": c.to_dict()}, status=201)

    async def update(self, request: web.Request) -> web.Response:
        p, body = await self._admin_body(request, {"shortcut", "text"})
        cid = req_id({"id": request.match_info["id"]}, "id")
        shortcut = shortcut_of(body) if "shortcut" in body else None
        text = message_text(body, self.max_text_chars) if "text" in body else None
        try:
            c = await self.repo.update_canned(p.tenant_id, cid, shortcut=shortcut, text=text, now=self.clock())
        except Conflict:
            raise bad_request(f"the shortcut /{shortcut} is taken", field="shortcut") from None
        if c is None:
            raise not_found("canned response")
        return web.json_response({"ok": True, "canned_response": c.to_dict()})

    async def delete(self, request: web.Request) -> web.Response:
        p, _ = await self._admin_body(request, set())
        cid = req_id({"id": request.match_info["id"]}, "id")
        if not await self.repo.delete_canned(p.tenant_id, cid):
            raise not_found("canned response")
        return web.json_response({"ok": True})
