"""The agents' REST API against the real server."""

from __future__ import annotations

import aiohttp

from tests.support.server import RunningGateway, agent, new_client_id, visitor


async def test_rest_conversation_lifecycle(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    v = await visitor(gateway.url, nt.tenant.widget_key, name="Minh", email="minh@example.vn")
    ag = await agent(gateway.url, nt.admin_token)
    headers = {"Authorization": f"Bearer {nt.admin_token}"}
    try:
        conv_id = (await v.call("conversation:start"))["conversation"]["id"]
        await v.call("conversation:watch", {"conversation_id": conv_id, "after_seq": 0})
        for i in range(3):
            await v.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": f"v{i}"})
        async with aiohttp.ClientSession(base_url=gateway.url, headers=headers) as http:
            async with http.get("/api/v1/me") as r:
                assert (await r.json())["agent"]["role"] == "admin"
            async with http.get("/api/v1/conversations", params={"status": "open"}) as r:
                convs = (await r.json())["conversations"]
                assert [c["id"] for c in convs] == [conv_id] and convs[0]["unread"] == 3
            async with http.get(f"/api/v1/conversations/{conv_id}/messages", params={"limit": "2"}) as r:
                page = await r.json()
                assert [m["text"] for m in page["messages"]] == ["v1", "v2"] and page["last_seq"] == 3
            async with http.get(f"/api/v1/conversations/{conv_id}/messages", params={"before_seq": "2"}) as r:
                assert [m["text"] for m in (await r.json())["messages"]] == ["v0"]
            cid = new_client_id()
            async with http.post(f"/api/v1/conversations/{conv_id}/messages", json={"client_id": cid,
                                                                                    "text": "REST reply"}) as r:
                assert r.status == 201 and (await r.json())["message"]["seq"] == 4
            async with http.post(f"/api/v1/conversations/{conv_id}/messages", json={"client_id": cid,
                                                                                    "text": "REST reply"}) as r:
                body = await r.json()
                assert r.status == 200 and body["duplicate"] is True and body["message"]["seq"] == 4
            await v.wait_for(lambda: any(m["text"] == "REST reply" for m in v.messages(conv_id)))
            async with http.post(f"/api/v1/conversations/{conv_id}/read", json={"seq": 4}) as r:
                assert (await r.json())["seq"] == 4
            async with http.get("/api/v1/conversations") as r:
                assert (await r.json())["conversations"][0]["unread"] == 0
            async with http.patch(f"/api/v1/conversations/{conv_id}", json={"status": "resolved"}) as r:
                assert (await r.json())["conversation"]["status"] == "resolved"
            await v.wait_for(lambda: any(c["status"] == "resolved" for c in v.of("conversation:updated")))
            await ag.wait_for(lambda: any(c.get("status") == "resolved" for c in ag.of("conversation:updated")))
            async with http.get("/api/v1/contacts") as r:
                contacts = (await r.json())["contacts"]
                assert contacts[0]["name"] == "Minh" and contacts[0]["email"] == "minh@example.vn"
            contact_id = contacts[0]["id"]
            async with http.patch(f"/api/v1/contacts/{contact_id}", json={"phone": "+84901234567",
                                                                           "attributes": {"tier": "gold"}}) as r:
                c = (await r.json())["contact"]
                assert c["phone"] == "+84901234567" and c["attributes"] == {"tier": "gold"}
            async with http.post("/api/v1/agents", json={"name": "Hoa", "capacity": 3}) as r:
                created = await r.json()
                assert r.status == 201 and created["token"].startswith("izh_at_")
            async with http.get("/api/v1/agents") as r:
                assert {a["name"] for a in (await r.json())["agents"]} == {"Admin", "Hoa"}
            # a plain agent may not create agents
            async with http.post("/api/v1/agents", json={"name": "X"},
                                 headers={"Authorization": f"Bearer {created['token']}"}) as r:
                assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    finally:
        await v.close()
        await ag.close()


async def test_rest_errors_are_typed_json(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    good = {"Authorization": f"Bearer {nt.admin_token}"}
    cases = [
        ("GET", "/api/v1/conversations", {}, None, 401, "unauthorized"),
        ("GET", "/api/v1/conversations", {"Authorization": "Bearer nope"}, None, 401, "unauthorized"),
        ("GET", "/api/v1/conversations/not-an-id", good, None, 400, "bad_request"),
        ("GET", "/api/v1/conversations", good, None, 200, None),
        ("GET", "/api/v1/conversations?limit=abc", good, None, 400, "bad_request"),
        ("GET", "/api/v1/conversations?status=weird", good, None, 400, "bad_request"),
        ("GET", f"/api/v1/conversations/{'0' * 32}", good, None, 404, "not_found"),
        ("POST", "/api/v1/agents", good, b"{not json", 400, "bad_request"),
        ("POST", "/api/v1/agents", good, b"[1,2]", 400, "bad_request"),
        ("POST", "/api/v1/agents", good, b"x" * 200_000, 413, "payload_too_large"),
        ("PATCH", f"/api/v1/contacts/{'0' * 32}", good, b'{"nickname": "x"}', 400, "bad_request"),
        ("GET", "/api/v1/nope", good, None, 404, "not_found"),
    ]
    async with aiohttp.ClientSession(base_url=gateway.url) as http:
        for method, path, headers, body, status, code in cases:
            async with http.request(method, path, headers=headers, data=body) as r:
                assert r.status == status, (method, path, r.status, await r.text())
                if code:
                    assert (await r.json())["error"]["code"] == code, (method, path)
    async with aiohttp.ClientSession(base_url=gateway.url) as http:
        async with http.get("/healthz") as r:
            assert r.status == 200
        async with http.get("/readyz") as r:
            assert (await r.json()) == {"ok": True, "checks": {"store": "ok", "broker": "ok", "blobs": "ok"}}
        async with http.get("/metrics") as r:
            text = await r.text()
            assert "izh_open_connections" in text and "izh_socket_events_total" in text
            assert "izh_sqlite_wal_restarts_total" in text  # the embedded store
            assert "izh_sqlite_append_retries_total 0" in text
            assert "izh_append_batch_messages_count" in text and "izh_append_batch_seconds_bucket" in text
        async with http.get("/metrics?scope=worker") as r:  # one process: the same
            assert r.status == 200 and "izh_open_connections" in await r.text()
        async with http.get("/metrics?scope=cluster") as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request"
