"""REST for privacy (admin agents only), under /api/v1:

GET  /contacts/{id}/export[?format=zip]   all data about one contact (JSON, or a zip with attachments)
POST /contacts/{id}/erase                 erase it (per the tenant's erase_mode)
GET  /privacy/policy, PUT /privacy/policy {message_retention_days: int|null, erase_mode}
GET  /privacy/audit?limit=                the audit trail (who, what, when)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from gateway.chat.principals import AgentPrincipal, require_admin
from gateway.core.errors import bad_request, not_found
from gateway.core.validation import as_object, opt_int, req_id
from gateway.privacy.dsr import ContactNotFound, Dsr
from gateway.privacy.store import ERASE_MODES, Policy, PrivacyRepository

Principal = Callable[[web.Request], Awaitable[AgentPrincipal]]
Body = Callable[[web.Request], Awaitable[Any]]


class PrivacyApi:
    def __init__(self, store: PrivacyRepository, dsr: Dsr, principal: Principal, body: Body) -> None:
        self.store = store
        self.dsr = dsr
        self._principal = principal
        self._body = body

    async def admin(self, request: web.Request) -> AgentPrincipal:
        return require_admin(await self._principal(request))

    @staticmethod
    def contact_id(request: web.Request) -> str:
        return req_id({"id": request.match_info["id"]}, "id")

    async def export(self, request: web.Request) -> web.StreamResponse:
        p = await self.admin(request)
        cid = self.contact_id(request)
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "zip"):
            raise bad_request("format must be json or zip", field="format")
        try:
            if fmt == "zip":
                blob = await self.dsr.export_zip(p.tenant_id, cid)
            else:
                data, _ = await self.dsr.export(p.tenant_id, cid)
        except ContactNotFound:
            raise not_found("contact") from None
        await self.store.audit(p.tenant_id, f"agent:{p.agent_id}", "contact.exported", cid, {"format": fmt})
        if fmt == "zip":
            return web.Response(body=blob, content_type="application/zip", headers={
                "Content-Disposition": f'attachment; filename="contact-{cid}.zip"'})
        return web.json_response({"ok": True, **data})

    async def erase(self, request: web.Request) -> web.Response:
        p = await self.admin(request)
        cid = self.contact_id(request)
        try:
            counts = await self.dsr.erase(p.tenant_id, cid, actor=f"agent:{p.agent_id}")
        except ContactNotFound:
            raise not_found("contact") from None
        return web.json_response({"ok": True, "erased": counts})

    async def get_policy(self, request: web.Request) -> web.Response:
        p = await self.admin(request)
        return web.json_response({"ok": True, "policy": asdict(await self.store.policy(p.tenant_id))})

    async def put_policy(self, request: web.Request) -> web.Response:
        p = await self.admin(request)
        body = as_object(await self._body(request), "body")
        unknown = set(body) - {"message_retention_days", "erase_mode"}
        if unknown:
            raise bad_request(f"unknown fields: {', '.join(sorted(unknown))[:200]}")
        current = await self.store.policy(p.tenant_id)
        days = current.message_retention_days
        if "message_retention_days" in body:
            days = None if body["message_retention_days"] is None else opt_int(
                body, "message_retention_days", 0, lo=1, hi=100_000)
        mode = body.get("erase_mode", current.erase_mode)
        if mode not in ERASE_MODES:
            raise bad_request(f"erase_mode must be one of {', '.join(ERASE_MODES)}", field="erase_mode")
        policy = Policy(days, str(mode))
        await self.store.set_policy(p.tenant_id, policy)
        await self.store.audit(p.tenant_id, f"agent:{p.agent_id}", "policy.updated", p.tenant_id, asdict(policy))
        return web.json_response({"ok": True, "policy": asdict(policy)})

    async def audit(self, request: web.Request) -> web.Response:
        p = await self.admin(request)
        raw = request.query.get("limit", "100")
        try:
            limit = opt_int({"limit": int(raw)}, "limit", 100, lo=1, hi=1000)
        except ValueError:
            raise bad_request("'limit' must be an integer", field="limit") from None
        entries = await self.store.audit_log(p.tenant_id, limit)
        return web.json_response({"ok": True, "entries": [
            {"actor": e.actor, "action": e.action, "subject": e.subject, "details": e.details,
             "created_at": e.created_at} for e in entries]})


def privacy_routes(api: PrivacyApi, base: str = "/api/v1") -> list[web.RouteDef]:
    return [
        web.get(f"{base}/contacts/{{id}}/export", api.export),
        web.post(f"{base}/contacts/{{id}}/erase", api.erase),
        web.get(f"{base}/privacy/policy", api.get_policy),
        web.put(f"{base}/privacy/policy", api.put_policy),
        web.get(f"{base}/privacy/audit", api.audit),
    ]
