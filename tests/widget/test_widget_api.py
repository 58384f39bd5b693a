"""Widget HTTP API against a real gateway: settings, uploads, attachments in message:send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.server import RunningGateway, agent, make_config, new_client_id, run_gateway, visitor

LIMIT = 1000


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with run_gateway(make_config(tmp_path, max_upload_bytes=LIMIT)) as rg:
        yield rg


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def vh(widget_key: str, token: str) -> dict[str, str]:
    return {"X-Widget-Key": widget_key, "X-Visitor-Token": token}


async def upload(http: aiohttp.ClientSession, url: str, headers: dict[str, str], data: Any,
                 name: str = "photo.png", mime: str = "image/png") -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/api/v1/uploads", params={"name": name}, data=data,
                         headers={**headers, "Content-Type": mime}) as r:
        return r.status, await r.json()


async def test_settings_public_and_admin(gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    t = await gateway.tenant()
    _, plain_token = await gateway.agent_token(t.tenant.id)
    url = f"{gateway.url}/api/v1/public/widget/{t.tenant.widget_key}/settings"
    async with http.get(url, headers={"Origin": "https://shop.example"}) as r:
        body = await r.json()
        assert r.status == 200 and body["settings"]["prechat"]["email"] == "optional"
        assert body["max_upload_bytes"] == LIMIT
        assert body["max_text_chars"] == 4000
        assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    admin = {"Authorization": f"Bearer {t.admin_token}"}
    async with http.put(f"{gateway.url}/api/v1/widget/settings", headers=admin,
                        json={"title": "Quê Việt", "prechat": {"email": "required"}}) as r:
        assert r.status == 200
    async with http.put(f"{gateway.url}/api/v1/widget/settings", headers=admin, json={"prechat": {"x": 1}}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request"
    async with http.put(f"{gateway.url}/api/v1/widget/settings", json={"title": "x"},
                        headers={"Authorization": f"Bearer {plain_token}"}) as r:
        assert r.status == 403
    async with http.get(url) as r:
        s = (await r.json())["settings"]
        assert s["title"] == "Quê Việt" and s["prechat"] == {"enabled": True, "name": "optional", "email": "required"}
    async with http.get(f"{gateway.url}/api/v1/public/widget/wk_nope/settings") as r:
        assert r.status == 404


async def test_upload_access_rules(gateway: RunningGateway, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    t, other = await gateway.tenant(), await gateway.tenant("Other")
    wk = t.tenant.widget_key
    v1, v2 = await visitor(gateway.url, wk), await visitor(gateway.url, wk)
    try:
        h1, h2 = vh(wk, v1.session["visitor_token"]), vh(wk, v2.session["visitor_token"])
        status, body = await upload(http, gateway.url, h1, b"\x89PNG data")
        assert status == 201, body
        up = body["upload"]
        assert up["size"] == 9 and up["mime_type"] == "image/png" and up["name"] == "photo.png"
        assert (tmp_path / "uploads" / t.tenant.id / up["id"]).read_bytes() == b"\x89PNG data"

        file_url = f"{gateway.url}/api/v1/uploads/{up['id']}"
        async with http.get(file_url, headers=h1) as r:
            assert r.status == 200 and await r.read() == b"\x89PNG data"
            assert r.headers["Content-Type"] == "image/png"
        for headers in (h2, {"Authorization": f"Bearer {other.admin_token}"}):
            async with http.get(file_url, headers=headers) as r:
                assert r.status == 404, headers
        async with http.get(file_url) as r:
            assert r.status == 401
        async with http.get(file_url, headers={"Authorization": f"Bearer {t.admin_token}"}) as r:
            assert r.status == 200
        async with http.get(f"{file_url}/link", headers=h1) as r:
            link = (await r.json())["url"]
        async with http.get(f"{gateway.url}{link}") as r:
            assert r.status == 200 and await r.read() == b"\x89PNG data"
        async with http.get(f"{gateway.url}{link[:-4]}0000") as r:
            assert r.status == 401
        # a non-image is never served inline
        status, body = await upload(http, gateway.url, h1, b"<script>alert(1)</script>", "x.html", "text/html")
        async with http.get(f"{gateway.url}/api/v1/uploads/{body['upload']['id']}", headers=h1) as r:
            assert r.headers["Content-Type"] == "application/octet-stream"
            assert r.headers["Content-Disposition"].startswith("attachment")
    finally:
        await v1.close()
        await v2.close()


async def test_upload_size_limit(gateway: RunningGateway, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    t = await gateway.tenant()
    v = await visitor(gateway.url, t.tenant.widget_key)
    try:
        h = vh(t.tenant.widget_key, v.session["visitor_token"])
        status, body = await upload(http, gateway.url, h, b"x" * (LIMIT + 1))
        assert status == 413 and body["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
            for _ in range(3):
                yield b"y" * 600

        status, body = await upload(http, gateway.url, h, chunks())
        assert status == 413 and body["error"]["code"] == "payload_too_large"
        assert list((tmp_path / "uploads" / t.tenant.id).iterdir()) == []
        status, _ = await upload(http, gateway.url, h, b"x" * LIMIT)
        assert status == 201
        status, _ = await upload(http, gateway.url, {}, b"x")
        assert status == 401
    finally:
        await v.close()


async def test_message_with_attachments(gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    t = await gateway.tenant()
    wk = t.tenant.widget_key
    v1, v2 = await visitor(gateway.url, wk), await visitor(gateway.url, wk)
    ag = await agent(gateway.url, t.admin_token)
    try:
        c1 = (await v1.call("conversation:start"))["conversation"]["id"]
        c2 = (await v2.call("conversation:start"))["conversation"]["id"]
        _, b1 = await upload(http, gateway.url, vh(wk, v1.session["visitor_token"]), b"img")
        uid = b1["upload"]["id"]

        ack = await v1.call("message:send", {"conversation_id": c1, "client_id": new_client_id(), "text": "",
                                             "attachments": [uid]})
        assert ack["ok"] and ack["message"]["text"] == "", ack  # the text may be empty with an attachment
        att = ack["message"]["attachments"]
        assert att == [{"id": uid, "name": "photo.png", "mime_type": "image/png", "size": 3,
                        "url": f"/api/v1/uploads/{uid}"}]
        # the agent sees it in the history; the other visitor can neither attach nor read it
        hist = await ag.call("messages:history", {"conversation_id": c1})
        assert hist["messages"][-1]["attachments"] == att
        bad = await v2.call("message:send", {"conversation_id": c2, "client_id": new_client_id(), "text": "x",
                                             "attachments": [uid]})
        assert not bad["ok"] and bad["error"]["code"] == "not_found"
        for payload, code in (({"attachments": ["nope"]}, "bad_request"), ({"attachments": "x"}, "bad_request"),
                              ({"text": ""}, "bad_request")):
            ack = await v1.call("message:send", {"conversation_id": c1, "client_id": new_client_id(), "text": "hi",
                                                 **payload})
            assert not ack["ok"] and ack["error"]["code"] == code, payload
        # bound to its conversation: an agent can't reuse the visitor's upload either
        ack = await ag.call("message:send", {"conversation_id": c2, "client_id": new_client_id(), "text": "x",
                                             "attachments": [uid]})
        assert not ack["ok"] and ack["error"]["code"] == "not_found"
        # an agent's attachment is readable by the visitor of that conversation only
        _, b2 = await upload(http, gateway.url, {"Authorization": f"Bearer {t.admin_token}"}, b"doc", "a.pdf",
                             "application/pdf")
        aid = b2["upload"]["id"]
        ack = await ag.call("message:send", {"conversation_id": c1, "client_id": new_client_id(), "text": "file",
                                             "attachments": [aid]})
        assert ack["ok"], ack
        async with http.get(f"{gateway.url}/api/v1/uploads/{aid}", headers=vh(wk, v1.session["visitor_token"])) as r:
            assert r.status == 200
        async with http.get(f"{gateway.url}/api/v1/uploads/{aid}", headers=vh(wk, v2.session["visitor_token"])) as r:
            assert r.status == 404
    finally:
        for c in (v1, v2, ag):
            await c.close()
