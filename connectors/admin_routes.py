"""Admin REST for a tenant's channel inboxes (admin agents only, the agent token's tenant),
under /api/v1 (docs/openapi.yaml):

GET    /channels                          the tenant's inboxes (never their credentials)
GET    /channels/audit?channel_id&limit    the tenant's audit trail, newest first (connectors/audit.py)
POST   /channels {kind, name, settings, credentials, enabled}   add one (201)
GET    /channels/{id}                     one inbox
PATCH  /channels/{id} {name?, settings?}  rename / change settings (merged; null removes a key)
POST   /channels/{id}/rotate {credentials}  replace some credentials (the others are kept)
POST   /channels/{id}/disable, /enable    stop / start it
DELETE /channels/{id}                     remove it (its conversations stay)
POST   /channels/{id}/test                check its credentials against the platform
                                          (200 with the report, passed or not; connectors/probe.py)

Definitions are checked against the kind's schema (connectors/schemas.py): a refusal is 400
`bad_request` with `field` (``settings.<key>`` / ``credentials.<key>``). Changes are audited
(`ChannelAdmin`, actor ``agent:<id>``) and reach every node as described in connectors/manage.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from connectors.audit import AuditEntry, AuditRepository
from connectors.channels import ChannelError, ChannelRepository
from connectors.manage import ChannelAdmin, ChannelNotFound, public
from connectors.probe import ChannelProbe
from connectors.schemas import SchemaError
from gateway.chat.principals import AgentPrincipal, require_admin
from gateway.core.domain import Channel
from gateway.core.errors import bad_request, not_found
from gateway.core.validation import req_id

Principal = Callable[[web.Request], Awaitable[AgentPrincipal]]
Body = Callable[[web.Request], Awaitable[Mapping[str, Any]]]
_KINDS = tuple(c.value for c in Channel if c not in (Channel.WIDGET, Channel.CALL))


def _object(body: Mapping[str, Any], key: str, *, required: bool = False) -> dict[str, Any] | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, dict):
        raise bad_request(f"'{key}' must be an object", field=key)
    return v


class ChannelsApi:
    def __init__(self, channels: ChannelRepository, principal: Principal, body: Body,
                 probe: ChannelProbe | None = None, audit: AuditRepository | None = None) -> None:
        self._channels = channels
        self._audit = audit
        self._admin = ChannelAdmin(channels, probe, audit)
        self._principal = principal
        self._body = body

    async def _admin_of(self, request: web.Request) -> AgentPrincipal:
        return require_admin(await self._principal(request))

    @staticmethod
    def _id(request: web.Request) -> str:
        return req_id({"id": request.match_info["id"]}, "id")

    @staticmethod
    def _reply(ch: Any, status: int = 200) -> web.Response:
        return web.json_response({"ok": True, "channel": public(ch)}, status=status)

    async def _run(self, call: Awaitable[Any], status: int = 200) -> web.Response:
        try:
            return self._reply(await call, status)
        except SchemaError as exc:
            raise bad_request(str(exc), field=exc.field) from None
        except ChannelNotFound:
            raise not_found("channel") from None
        except ChannelError as exc:
            raise bad_request(str(exc)) from None

    async def list(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        return web.json_response({"ok": True, "channels": [public(c) for c in await self._channels.list(p.tenant_id)]})

    async def audit(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        channel_id = request.query.get("channel_id") or None
        raw = request.query.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 500:
            raise bad_request("'limit' must be an integer 1..500", field="limit")
        entries = [] if self._audit is None else await self._audit.list(p.tenant_id, channel_id, int(raw))
        return web.json_response({"ok": True, "entries": [audit_entry(e) for e in entries]})

    async def get(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        ch = await self._channels.get(p.tenant_id, self._id(request))
        if ch is None:
            raise not_found("channel")
        return self._reply(ch)

    async def add(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        b = await self._body(request)
        kind, name, enabled = b.get("kind"), b.get("name"), b.get("enabled", True)
        if kind not in _KINDS:
            raise bad_request(f"'kind' must be one of {', '.join(_KINDS)}", field="kind")
        if not isinstance(name, str):
            raise bad_request("'name' must be a string", field="name")
        if not isinstance(enabled, bool):
            raise bad_request("'enabled' must be a boolean", field="enabled")
        unknown = set(b) - {"kind", "name", "settings", "credentials", "enabled"}
        if unknown:
            raise bad_request(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
        return await self._run(self._admin.add(
            tenant_id=p.tenant_id, kind=Channel(kind), name=name, settings=_object(b, "settings") or {},
            credentials=_object(b, "credentials") or {}, enabled=enabled, actor=f"agent:{p.agent_id}"), 201)

    async def update(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        b = await self._body(request)
        unknown = set(b) - {"name", "settings"}
        if unknown:
            raise bad_request(f"unknown field {sorted(unknown)[0]!r}; credentials change with /rotate",
                              field=sorted(unknown)[0])
        name = b.get("name")
        if name is not None and not isinstance(name, str):
            raise bad_request("'name' must be a string", field="name")
        return await self._run(self._admin.update(p.tenant_id, self._id(request), actor=f"agent:{p.agent_id}",
                                                  name=name, settings=_object(b, "settings")))

    async def rotate(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        creds = _object(await self._body(request), "credentials", required=True) or {}
        return await self._run(self._admin.rotate(p.tenant_id, self._id(request), creds,
                                                  actor=f"agent:{p.agent_id}"))

    async def disable(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        return await self._run(self._admin.set_enabled(p.tenant_id, self._id(request), False,
                                                       actor=f"agent:{p.agent_id}"))

    async def enable(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        return await self._run(self._admin.set_enabled(p.tenant_id, self._id(request), True,
                                                       actor=f"agent:{p.agent_id}"))

    async def remove(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        return await self._run(self._admin.remove(p.tenant_id, self._id(request), actor=f"agent:{p.agent_id}"))


    async def test(self, request: web.Request) -> web.Response:
        p = await self._admin_of(request)
        try:
            report = await self._admin.test(p.tenant_id, self._id(request), actor=f"agent:{p.agent_id}")
        except ChannelNotFound:
            raise not_found("channel") from None
        except ChannelError as exc:
            raise bad_request(str(exc)) from None
        return web.json_response({"ok": True, "test": report.as_dict()})


def audit_entry(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "channel_id": e.channel_id, "kind": e.kind, "action": e.action, "actor": e.actor,
            "fields": list(e.fields), "at": e.at}


def channel_routes(api: ChannelsApi, base: str = "/api/v1") -> list[web.RouteDef]:
    return [
        web.get(f"{base}/channels", api.list),
        web.get(f"{base}/channels/audit", api.audit),  # before /channels/{id}
        web.post(f"{base}/channels", api.add),
        web.get(f"{base}/channels/{{id}}", api.get),
        web.patch(f"{base}/channels/{{id}}", api.update),
        web.delete(f"{base}/channels/{{id}}", api.remove),
        web.post(f"{base}/channels/{{id}}/rotate", api.rotate),
        web.post(f"{base}/channels/{{id}}/disable", api.disable),
        web.post(f"{base}/channels/{{id}}/enable", api.enable),
        web.post(f"{base}/channels/{{id}}/test", api.test),
    ]
