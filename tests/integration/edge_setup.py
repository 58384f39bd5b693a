"""A running gateway with every body-taking route reachable (agent token, visitor token,
comments, Facebook and Zalo channels), and for each JSON-body route how to address it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from connectors.feature import CONNECTORS_KEY
from gateway.app import ENGINEIO_PATH
from gateway.core.domain import Channel
from tests.connectors.facebook.fake_graph import signed_headers
from tests.connectors.zalo import fake_zalo as fz
from tests.support.server import RunningGateway, make_config, new_client_id, run_gateway, visitor

FB_SECRET = "edge-fb-app-secret"
FB_PAGE = "100000000000001"

# POST/PUT/PATCH routes that take no JSON body, and why
NOT_JSON = {
    ("POST", ENGINEIO_PATH): "Engine.IO long-polling packets (the transport's own parser)",
    ("POST", "/api/v1/uploads"): "the raw file bytes",
    ("POST", "/api/v1/contacts/{id}/erase"): "no body",
    ("POST", "/api/v1/channels/{id}/disable"): "no body",
    ("POST", "/api/v1/channels/{id}/enable"): "no body",
    ("POST", "/api/v1/channels/{id}/test"): "no body",
}


@dataclass
class Edge:
    rg: RunningGateway
    http: aiohttp.ClientSession
    admin: str
    widget_key: str
    visitor_token: str
    conversation_id: str
    contact_id: str
    channel_id: str


Builder = Callable[[Edge, bytes], tuple[str, bytes, dict[str, str]]]


def _agent(path: str) -> Builder:
    def build(e: Edge, body: bytes) -> tuple[str, bytes, dict[str, str]]:
        url = (path.replace("{conv}", e.conversation_id).replace("{contact}", e.contact_id)
               .replace("{channel}", e.channel_id))
        return url, body, {"Authorization": f"Bearer {e.admin}", "Content-Type": "application/json"}

    return build


def _visitor_contact(e: Edge, body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return (f"/api/v1/public/widget/{e.widget_key}/contact", body,
            {"X-Widget-Key": e.widget_key, "X-Visitor-Token": e.visitor_token})


def _comments(e: Edge, body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return "/api/v1/public/comments", body, {"X-Widget-Key": e.widget_key, "Content-Type": "application/json"}


def _facebook(e: Edge, body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return "/webhooks/facebook", body, signed_headers(FB_SECRET, body)


def _zalo(e: Edge, body: bytes) -> tuple[str, bytes, dict[str, str]]:
    # the signature covers a `"timestamp"` found in the raw bytes: wrap the hostile value
    ts = fz.now_ms()
    raw = b'{"timestamp":"' + ts.encode() + b'","x":' + body + b"}"
    return f"/webhooks/zalo/{fz.APP_ID}", raw, {"X-ZEvent-Signature": fz.sign(raw, ts)}


JSON_ROUTES: dict[tuple[str, str], Builder] = {
    ("PATCH", "/api/v1/conversations/{id}"): _agent("/api/v1/conversations/{conv}"),
    ("POST", "/api/v1/conversations/{id}/messages"): _agent("/api/v1/conversations/{conv}/messages"),
    ("POST", "/api/v1/conversations/{id}/read"): _agent("/api/v1/conversations/{conv}/read"),
    ("PATCH", "/api/v1/contacts/{id}"): _agent("/api/v1/contacts/{contact}"),
    ("POST", "/api/v1/agents"): _agent("/api/v1/agents"),
    ("PUT", "/api/v1/widget/settings"): _agent("/api/v1/widget/settings"),
    ("PUT", "/api/v1/privacy/policy"): _agent("/api/v1/privacy/policy"),
    ("POST", "/api/v1/channels"): _agent("/api/v1/channels"),
    ("PATCH", "/api/v1/channels/{id}"): _agent("/api/v1/channels/{channel}"),
    ("POST", "/api/v1/channels/{id}/rotate"): _agent("/api/v1/channels/{channel}/rotate"),
    ("POST", "/api/v1/canned-responses"): _agent("/api/v1/canned-responses"),
    # the body is read before the id is looked up: any id will do
    ("PATCH", "/api/v1/canned-responses/{id}"): _agent(f"/api/v1/canned-responses/{'0' * 32}"),
    ("POST", "/api/v1/public/widget/{key}/contact"): _visitor_contact,
    ("POST", "/api/v1/public/comments"): _comments,
    ("POST", "/webhooks/facebook"): _facebook,
    ("POST", "/webhooks/zalo/{app_id}"): _zalo,
}


@contextlib.asynccontextmanager
async def edge_gateway(tmp_path: Path) -> AsyncIterator[Edge]:
    async with run_gateway(make_config(tmp_path)) as rg:
        hub = rg.gw.app[CONNECTORS_KEY]
        nt = await rg.tenant()
        tid = nt.tenant.id
        await hub.ctx.channels.add(tenant_id=tid, kind=Channel.COMMENTS, name="c", credentials={}, settings={})
        page = await hub.ctx.channels.add(
            tenant_id=tid, kind=Channel.FACEBOOK, name="Page",
            credentials={"page_access_token": "EAAG-x", "app_secret": FB_SECRET, "verify_token": "v"},
            settings={"address": FB_PAGE, "api_base": "http://127.0.0.1:9", "graph_version": "v23.0"})
        await hub.ctx.channels.add(
            tenant_id=tid, kind=Channel.ZALO, name="OA",
            credentials={"oa_secret_key": fz.OA_SECRET, "app_secret_key": fz.APP_SECRET, "access_token": "a",
                         "refresh_token": "r", "expires_at": time.time() + 3600},
            settings={"address": fz.OA_ID, "app_id": fz.APP_ID, "api_base": "http://127.0.0.1:9",
                      "oauth_base": "http://127.0.0.1:9"})
        await hub.connectors[Channel.ZALO].reload_accounts(force=True)  # type: ignore[attr-defined]
        v = await visitor(rg.url, nt.tenant.widget_key)
        try:
            conv = (await v.call("conversation:start"))["conversation"]
            sent = await v.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                 "text": "hi"})
            assert sent["ok"], sent
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{rg.url}/api/v1/conversations/{conv['id']}",
                                    headers={"Authorization": f"Bearer {nt.admin_token}"}) as r:
                    contact_id = (await r.json())["conversation"]["contact_id"]
                yield Edge(rg, http, nt.admin_token, nt.tenant.widget_key, v.session["visitor_token"], conv["id"],
                           contact_id, page.id)
        finally:
            await v.close()


def body_routes(rg: RunningGateway) -> set[tuple[str, str]]:
    """(method, path pattern) of every POST/PUT/PATCH route of the running app."""
    out = set()
    for route in rg.gw.app.router.routes():
        if route.resource is None:
            continue
        if route.method in ("POST", "PUT", "PATCH"):
            out.add((route.method, route.resource.canonical))
        elif route.method == "*":  # every method: counted as the POST it takes
            out.add(("POST", route.resource.canonical))
    return out
