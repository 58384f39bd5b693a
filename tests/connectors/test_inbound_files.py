"""Files a channel only links to (Messenger's CDN addresses, which expire) are kept like
uploads (issue 30): a signed Messenger webhook through the real gateway, the image fetched
from a stand-in CDN on loopback and stored with an id, served by the download route; a
file the CDN does not give keeps its remote address, and the message is stored anyway."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.core.domain import ConversationFilter
from tests.connectors.facebook.fake_graph import encode_payload, signed_headers
from tests.connectors.facebook.payloads import PAGE_ID, attachment_event, delivery, messaging_entry
from tests.support.server import make_config, run_gateway, serve_app

SECRET = "app-secret-files"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


async def test_a_messenger_image_is_kept_with_an_id(tmp_path: Path, cx_env: dict[str, str]) -> None:
    async def cdn(request: web.Request) -> web.Response:
        if request.match_info["name"] == "photo.jpg":
            return web.Response(body=JPEG, content_type="image/jpeg")
        return web.Response(status=403)

    app = web.Application()
    app.router.add_get("/v/{name}", cdn)
    async with serve_app(app) as cdn_url, run_gateway(make_config(tmp_path)) as rg, \
            aiohttp.ClientSession() as http:
        nt = await rg.tenant()
        auth = {"Authorization": f"Bearer {nt.admin_token}"}
        async with http.post(f"{rg.url}/api/v1/channels", headers=auth, json={
                "kind": "facebook", "name": "Page", "settings": {"address": PAGE_ID, "api_base": "http://127.0.0.1:9"},
                "credentials": {"page_access_token": "EAAG-tok", "app_secret": SECRET, "verify_token": "v"}}) as r:
            assert r.status == 201, await r.text()
        body = encode_payload(delivery(messaging_entry(attachment_event(
            "m_files", ("image", f"{cdn_url}/v/photo.jpg?oh=1"), ("file", f"{cdn_url}/v/gone.pdf")))))
        async with http.post(f"{rg.url}/webhooks/facebook", data=body, headers=signed_headers(SECRET, body)) as r:
            assert r.status == 200, await r.text()

        store = rg.gw.store  # stored before the webhook was answered
        [conv] = await store.list_conversations(nt.tenant.id, ConversationFilter())
        msgs = await store.get_messages(nt.tenant.id, conv.id, after_seq=0, limit=10)
        [msg] = [m for m in msgs if m.attachments]
        image, pdf = msg.attachments
        assert image["kind"] == "image" and image["mime_type"] == "image/jpeg" and image["size"] == len(JPEG)
        assert image["url"] == f"/api/v1/uploads/{image['id']}" and image["name"] == "photo.jpg"
        assert pdf == {"kind": "file", "url": f"{cdn_url}/v/gone.pdf"}  # not given: the link stays
        async with http.get(f"{rg.url}/api/v1/uploads/{image['id']}", headers=auth) as r:
            assert r.status == 200 and await r.read() == JPEG

