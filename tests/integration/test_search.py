"""Search (issue 32) against the real server: the `/agent` namespace's `search` event and
`GET /api/v1/search`: Vietnamese with and without diacritics, contacts, tenant scoping,
paging, highlighted and escaped snippets, validation, agent-only."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway.core.errors import Code
from tests.support.server import RunningGateway, agent, new_client_id, visitor


async def _rest(gateway: RunningGateway, token: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
                http.get(f"{gateway.url}/api/v1/search", params=params) as r):
        return r.status, await r.json()


async def test_search_messages_and_contacts_over_socketio_and_rest(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    other = await gateway.tenant("Other")
    ag = await agent(gateway.url, nt.admin_token)
    v = await visitor(gateway.url, nt.tenant.widget_key, name="Nguyễn Thị Lan", email="lan@example.vn")
    ov = await visitor(gateway.url, other.tenant.widget_key, name="Lan Other")
    try:
        conv = (await v.call("conversation:start"))["conversation"]["id"]
        for text in ("Tôi ở <b>Hà Nội</b>", "Giao hàng về Đà Nẵng được không?", "cảm ơn"):
            assert (await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                  "text": text}))["ok"]
        oconv = (await ov.call("conversation:start"))["conversation"]["id"]
        assert (await ov.call("message:send", {"conversation_id": oconv, "client_id": new_client_id(),
                                               "text": "Hà Nội"}))["ok"]

        for q in ("ha noi", "Hà Nội", "HA NOI"):
            page = await ag.call("search", {"q": q})
            assert page["ok"] and page["kind"] == "messages" and page["next_cursor"] is None, page
            [hit] = page["results"]
            assert hit["conversation_id"] == conv and hit["seq"] == 1 and hit["author_type"] == "contact"
            assert hit["contact_name"] == "Nguyễn Thị Lan"
            assert hit["snippet"] == "Tôi ở &lt;b&gt;<mark>Hà</mark> <mark>Nội</mark>&lt;/b&gt;"
        assert [h["seq"] for h in (await ag.call("search", {"q": "da nang"}))["results"]] == [2]

        contacts = await ag.call("search", {"q": "nguyen lan", "kind": "contacts"})
        assert [c["name"] for c in contacts["results"]] == ["Nguyễn Thị Lan"]
        assert contacts["results"][0]["highlight"]["name"] == "<mark>Nguyễn</mark> Thị <mark>Lan</mark>"
        assert (await ag.call("search", {"q": "example.vn", "kind": "contacts"}))["results"][0]["email"] == \
            "lan@example.vn"

        # paging: limit 1, then the cursor
        first = await ag.call("search", {"q": "n", "limit": 1})  # a prefix: Nội, Nẵng
        seen = [h["seq"] for h in first["results"]]
        cursor = first["next_cursor"]
        while cursor:
            page = await ag.call("search", {"q": "n", "limit": 1, "cursor": cursor})
            seen += [h["seq"] for h in page["results"]]
            cursor = page["next_cursor"]
        assert seen == [2, 1]  # newest first; no word of "cảm ơn" starts with n

        status, body = await _rest(gateway, nt.admin_token, {"q": "hà nội", "limit": "5"})
        assert status == 200 and [h["seq"] for h in body["results"]] == [1]
        status, body = await _rest(gateway, other.admin_token, {"q": "ha noi"})
        assert [h["conversation_id"] for h in body["results"]] == [oconv]

        # validation, on both
        for bad in ({}, {"q": ""}, {"q": "x" * 201}, {"q": "a", "kind": "agents"}, {"q": "a", "limit": 0},
                    {"q": "a", "limit": 51}, {"q": "a", "cursor": "nope"}, {"q": "a", "cursor": "nan~ab"}):
            res = await ag.call("search", bad)
            assert not res["ok"] and res["error"]["code"] == Code.BAD_REQUEST, (bad, res)
        status, body = await _rest(gateway, nt.admin_token, {"q": "a", "limit": "x"})
        assert status == 400 and body["error"]["code"] == Code.BAD_REQUEST
        assert (await ag.call("search", {"q": "!!!"}))["results"] == []
        status, body = await _rest(gateway, "not-a-token", {"q": "a"})
        assert status == 401
        # agents only: the visitor namespace has no such event
        res = await v.call("search", {"q": "ha noi"})
        assert not res["ok"] and res["error"]["code"] == Code.UNKNOWN_EVENT
    finally:
        for c in (ag, v, ov):
            await c.close()
