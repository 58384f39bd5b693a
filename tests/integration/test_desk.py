"""The desk feature against the real server: canned responses over REST (admins write, any
agent reads, tenant-scoped, validated), labels over agent events (announced to the tenant's
agents, never to visitors, filterable) and a conversation's read positions."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway.core.domain import AuthorType, Channel, NewMessage
from tests.support.server import RunningGateway, agent, new_client_id, visitor


async def test_canned_responses_crud(gateway: RunningGateway) -> None:
    nt, other = await gateway.tenant(), await gateway.tenant("Other")
    _, agent_token = await gateway.agent_token(nt.tenant.id, "Lan")
    admin = {"Authorization": f"Bearer {nt.admin_token}"}
    plain = {"Authorization": f"Bearer {agent_token}"}
    stranger = {"Authorization": f"Bearer {other.admin_token}"}
    async with aiohttp.ClientSession(base_url=gateway.url) as http:
        async def req(method: str, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
            async with http.request(method, f"/api/v1{path}", headers=headers, **kw) as r:
                return r.status, await r.json()

        st, body = await req("POST", "/canned-responses", admin, json={"shortcut": "/Hello", "text": "Xin chào!"})
        assert st == 201 and body["canned_response"]["shortcut"] == "hello"
        cid = body["canned_response"]["id"]
        st, body = await req("POST", "/canned-responses", admin, json={"shortcut": "hello", "text": "again"})
        assert st == 400 and body["error"]["details"]["field"] == "shortcut"
        for bad in ({"shortcut": "two words", "text": "x"}, {"shortcut": "x", "text": ""}, {"shortcut": "x"},
                    {"shortcut": "x", "text": "y", "extra": 1}, {"shortcut": 3, "text": "y"}):
            st, body = await req("POST", "/canned-responses", admin, json=bad)
            assert st == 400, bad
        st, body = await req("POST", "/canned-responses", plain, json={"shortcut": "x", "text": "y"})
        assert st == 403 and body["error"]["code"] == "forbidden"
        st, body = await req("GET", "/canned-responses", plain)
        assert st == 200 and [c["text"] for c in body["canned_responses"]] == ["Xin chào!"]
        st, body = await req("PATCH", f"/canned-responses/{cid}", admin, json={"text": "Chào anh/chị"})
        assert st == 200 and body["canned_response"]["text"] == "Chào anh/chị"
        # another tenant neither sees nor changes it
        st, body = await req("GET", "/canned-responses", stranger)
        assert body["canned_responses"] == []
        for method in ("PATCH", "DELETE"):
            st, body = await req(method, f"/canned-responses/{cid}", stranger, json={"text": "x"} if method == "PATCH"
                                 else None)
            assert st == 404 and body["error"]["code"] == "not_found"
        st, _ = await req("GET", "/canned-responses", {})
        assert st == 401
        st, _ = await req("DELETE", f"/canned-responses/{cid}", admin)
        assert st == 200
        st, body = await req("GET", "/canned-responses", admin)
        assert body["canned_responses"] == []


async def test_labels_announced_to_agents_filterable_never_to_visitors(gateway: RunningGateway) -> None:
    nt, other = await gateway.tenant(), await gateway.tenant("Other")
    v = await visitor(gateway.url, nt.tenant.widget_key, name="Hà")
    ag, ag2 = await agent(gateway.url, nt.admin_token), await agent(gateway.url, nt.admin_token)
    stranger = await agent(gateway.url, other.admin_token)
    try:
        a = (await v.call("conversation:start"))["conversation"]["id"]
        b = (await v.call("conversation:start"))["conversation"]["id"]
        await v.call("conversation:watch", {"conversation_id": a, "after_seq": 0})
        await ag.call("conversation:watch", {"conversation_id": a, "after_seq": 0})
        got = await ag.call("label:add", {"conversation_id": a, "label": "  khách   VIP "})
        assert got == {"ok": True, "conversation_id": a, "labels": ["khách VIP"]}
        await ag.call("label:add", {"conversation_id": b, "label": "khách VIP"})
        await ag.call("label:add", {"conversation_id": a, "label": "hoàn tiền"})
        await ag2.wait_for(lambda: {"conversation_id": a, "labels": ["hoàn tiền", "khách VIP"]}
                           in ag2.of("conversation:labels"))
        listed = await ag2.call("label:list", {"conversation_ids": [a, b]})
        assert listed["labels"] == {a: ["hoàn tiền", "khách VIP"], b: ["khách VIP"]}
        assert listed["names"] == ["hoàn tiền", "khách VIP"]
        found = await ag.call("label:conversations", {"label": "hoàn tiền"})
        assert found["conversation_ids"] == [a]
        removed = await ag.call("label:remove", {"conversation_id": a, "label": "hoàn tiền"})
        assert removed["labels"] == ["khách VIP"]
        # validated and tenant-scoped
        for bad in ({"conversation_id": a}, {"conversation_id": a, "label": ""},
                    {"conversation_id": a, "label": "x" * 41}, {"conversation_id": a, "label": "a\x07b"},
                    {"conversation_id": "nope", "label": "x"}):
            assert (await ag.call("label:add", bad))["error"]["code"] == "bad_request", bad
        assert (await stranger.call("label:add", {"conversation_id": a, "label": "x"}))["error"]["code"] == "not_found"
        assert (await stranger.call("label:list", {"conversation_ids": [a]}))["labels"] == {a: []}
        assert (await stranger.call("label:conversations", {"label": "khách VIP"}))["conversation_ids"] == []
        # the visitor has no such events and sees no label
        assert (await v.call("label:add", {"conversation_id": a, "label": "x"}))["error"]["code"] == "unknown_event"
        await v.call("message:send", {"conversation_id": a, "client_id": new_client_id(), "text": "sync"})
        await v.wait_for(lambda: any(m["text"] == "sync" for m in v.messages(a)))
        assert v.of("conversation:labels") == [] and stranger.of("conversation:labels") == []
    finally:
        for c in (v, ag, ag2, stranger):
            await c.close()


async def test_read_positions_of_a_conversation(gateway: RunningGateway) -> None:
    nt, other = await gateway.tenant(), await gateway.tenant("Other")
    v = await visitor(gateway.url, nt.tenant.widget_key, name="Hà")
    ag = await agent(gateway.url, nt.admin_token)
    stranger = await agent(gateway.url, other.admin_token)
    try:
        conv = (await v.call("conversation:start"))["conversation"]["id"]
        await ag.call("conversation:watch", {"conversation_id": conv, "after_seq": 0})
        for text in ("one", "two"):
            await ag.call("message:send", {"conversation_id": conv, "client_id": new_client_id(), "text": text})
        assert (await ag.call("conversation:reads", {"conversation_id": conv}))["reads"] == []
        await v.call("read", {"conversation_id": conv, "seq": 2})
        await ag.wait_for(lambda: any(r["reader"]["type"] == "contact" for r in ag.of("read")))
        reads = (await ag.call("conversation:reads", {"conversation_id": conv}))["reads"]
        contact_id = v.session["contact_id"] if "contact_id" in v.session else reads[0]["reader"]["id"]
        assert reads == [{"reader": {"type": "contact", "id": contact_id}, "seq": 2}]
        assert (await stranger.call("conversation:reads", {"conversation_id": conv}))["error"]["code"] == "not_found"
        assert (await v.call("conversation:reads", {"conversation_id": conv}))["error"]["code"] == "unknown_event"
        assert (await ag.call("conversation:reads", {}))["error"]["code"] == "bad_request"
    finally:
        for c in (v, ag, stranger):
            await c.close()


async def test_contact_profile_across_channels(gateway: RunningGateway) -> None:
    nt, other = await gateway.tenant(), await gateway.tenant("Other")
    store = gateway.gw.store
    ag = await agent(gateway.url, nt.admin_token)
    stranger = await agent(gateway.url, other.admin_token)
    try:
        contact = await store.get_or_create_contact_by_identity(nt.tenant.id, "email", "lan@example.vn", name="Lan",
                                                               email="lan@example.vn", now=1.0)
        first = await store.create_conversation(tenant_id=nt.tenant.id, channel=Channel.EMAIL, contact_id=contact.id,
                                                now=10.0, external_thread_id="t1", subject="Bảo hành")
        later = await store.create_conversation(tenant_id=nt.tenant.id, channel=Channel.WIDGET,
                                                contact_id=contact.id, now=20.0)
        await store.append_message(nt.tenant.id, first.id, NewMessage(
            author_type=AuthorType.CONTACT, author_id=contact.id, text="Máy hỏng"), now=11.0)
        got = await ag.call("contact:profile", {"contact_id": contact.id})
        assert got["ok"] and got["contact"]["name"] == "Lan"
        assert got["identities"] == [{"kind": "email", "value": "lan@example.vn"}]
        assert [c["id"] for c in got["conversations"]] == [later.id, first.id]  # newest activity first
        by_id = {c["id"]: c for c in got["conversations"]}
        assert by_id[first.id]["channel"] == "email" and by_id[first.id]["last_message"]["text"] == "Máy hỏng"
        assert by_id[later.id]["channel"] == "widget" and by_id[later.id]["last_message"] is None
        assert (await stranger.call("contact:profile", {"contact_id": contact.id}))["error"]["code"] == "not_found"
        assert (await ag.call("contact:profile", {"contact_id": "x"}))["error"]["code"] == "bad_request"
    finally:
        await ag.close()
        await stranger.close()
