"""Tenant isolation: an agent of tenant B can neither list, watch, read nor write tenant A's data."""

from __future__ import annotations

import aiohttp

from tests.support.server import RunningGateway, agent, new_client_id, visitor


async def test_agent_of_other_tenant_sees_nothing(gateway: RunningGateway) -> None:
    a = await gateway.tenant("A")
    b = await gateway.tenant("B")
    va = await visitor(gateway.url, a.tenant.widget_key)
    agb = await agent(gateway.url, b.admin_token)
    try:
        conv_id = (await va.call("conversation:start"))["conversation"]["id"]
        await va.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": "secret"})
        contact_id = va.session["contact_id"]

        assert (await agb.call("conversation:list", {}))["conversations"] == []
        for event, payload in [
            ("conversation:watch", {"conversation_id": conv_id}),
            ("conversation:get", {"conversation_id": conv_id}),
            ("messages:history", {"conversation_id": conv_id}),
            ("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": "hack"}),
            ("read", {"conversation_id": conv_id, "seq": 1}),
            ("typing", {"conversation_id": conv_id}),
            ("conversation:status", {"conversation_id": conv_id, "status": "resolved"}),
            ("conversation:assign", {"conversation_id": conv_id, "agent_id": b.admin.id}),
            ("resume", {"conversations": [{"conversation_id": conv_id, "seq": 0}]}),
        ]:
            ack = await agb.call(event, payload)
            err = ack["results"][0]["error"] if event == "resume" else ack["error"]
            assert err["code"] == "not_found", (event, ack)
        # a watch of B never delivered A's messages
        assert not agb.messages()

        headers = {"Authorization": f"Bearer {b.admin_token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for method, path in [
                ("GET", f"/api/v1/conversations/{conv_id}"),
                ("GET", f"/api/v1/conversations/{conv_id}/messages"),
                ("PATCH", f"/api/v1/conversations/{conv_id}"),
                ("POST", f"/api/v1/conversations/{conv_id}/messages"),
                ("POST", f"/api/v1/conversations/{conv_id}/read"),
                ("GET", f"/api/v1/contacts/{contact_id}"),
                ("PATCH", f"/api/v1/contacts/{contact_id}"),
            ]:
                body: dict[str, object] = {"client_id": new_client_id(), "text": "x", "seq": 1,
                                           "status": "resolved"}
                if "contacts" in path:
                    body = {"name": "x"}
                async with http.request(method, gateway.url + path, json=body) as resp:
                    assert resp.status == 404, (method, path, resp.status)
                    assert (await resp.json())["error"]["code"] == "not_found"
            async with http.get(gateway.url + "/api/v1/conversations") as resp:
                assert (await resp.json())["conversations"] == []
            async with http.get(gateway.url + "/api/v1/contacts") as resp:
                assert (await resp.json())["contacts"] == []

        # and A's data is unchanged
        hist = await va.call("messages:history", {"conversation_id": conv_id})
        assert [m["text"] for m in hist["messages"]] == ["secret"]
    finally:
        await va.close()
        await agb.close()


async def test_visitor_cannot_touch_another_visitors_conversation(gateway: RunningGateway) -> None:
    t = await gateway.tenant()
    v1 = await visitor(gateway.url, t.tenant.widget_key)
    v2 = await visitor(gateway.url, t.tenant.widget_key)
    try:
        conv_id = (await v1.call("conversation:start"))["conversation"]["id"]
        # the owner's own send first: the node now knows (caches) who owns the conversation
        sent = await v1.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": "mine"})
        assert sent["ok"], sent
        for event, payload in [
            ("conversation:watch", {"conversation_id": conv_id}),
            ("messages:history", {"conversation_id": conv_id}),
            ("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": "x"}),
        ]:
            assert (await v2.call(event, payload))["error"]["code"] == "not_found"
        assert (await v2.call("conversation:list"))["conversations"] == []
        hist = await v1.call("messages:history", {"conversation_id": conv_id})
        assert [m["text"] for m in hist["messages"]] == ["mine"]
    finally:
        await v1.close()
        await v2.close()
