"""The agents' conversation list (issue 32): `last_message` per conversation and the
contacts with the list, over Socket.IO and REST, against the real server."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.server import RunningGateway, agent, new_client_id, visitor


async def test_list_carries_last_message_and_contacts(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    other = await gateway.tenant("Other")
    ag = await agent(gateway.url, nt.admin_token)
    visitors = []
    try:
        convs: dict[str, str] = {}
        for name in ("Lan", "Minh", "Hoa"):
            v = await visitor(gateway.url, nt.tenant.widget_key, name=name)
            visitors.append(v)
            convs[name] = (await v.call("conversation:start"))["conversation"]["id"]
        for name in ("Lan", "Minh"):
            sent = await visitors[0 if name == "Lan" else 1].call(
                "message:send", {"conversation_id": convs[name], "client_id": new_client_id(), "text": f"Chào, {name}"})
            assert sent["ok"], sent
        long_text = "á" * 300
        reply = await ag.call("message:send", {"conversation_id": convs["Lan"], "client_id": new_client_id(),
                                                "text": long_text})
        assert reply["ok"], reply
        ov = await visitor(gateway.url, other.tenant.widget_key, name="Stranger")
        visitors.append(ov)
        await ov.call("conversation:start")

        listed = await ag.call("conversation:list", {"limit": 200})
        assert listed["ok"], listed
        by_id = {c["id"]: c for c in listed["conversations"]}
        assert set(by_id) == set(convs.values())  # the other tenant's is not listed
        lan, minh, hoa = (by_id[convs[n]] for n in ("Lan", "Minh", "Hoa"))
        assert lan["last_message"]["seq"] == 2 and lan["last_message"]["text"] == long_text[:200]
        assert lan["last_message"]["author"] == {"type": "agent", "id": nt.admin.id}
        assert lan["last_message"]["attachments"] == 0
        assert isinstance(lan["last_message"]["created_at"], float)
        assert minh["last_message"]["text"] == "Chào, Minh" and minh["last_message"]["author"]["type"] == "contact"
        assert hoa["last_message"] is None  # started, nothing written yet
        assert lan["subject"] is None
        # every contact once, each conversation's among them
        contacts = {c["id"]: c for c in listed["contacts"]}
        assert len(contacts) == len(listed["contacts"]) == 3
        assert {c["contact_id"] for c in listed["conversations"]} == set(contacts)
        assert sorted(c["name"] for c in contacts.values()) == ["Hoa", "Lan", "Minh"]

        # the same page over REST
        async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {nt.admin_token}"}) as http,
                    http.get(f"{gateway.url}/api/v1/conversations", params={"limit": "200"}) as r):
            assert r.status == 200
            rest: dict[str, Any] = await r.json()
        assert {c["id"]: c["last_message"] for c in rest["conversations"]} == {
            c["id"]: c["last_message"] for c in listed["conversations"]}
        assert sorted(c["id"] for c in rest["contacts"]) == sorted(contacts)

        # a summary after a message carries the same last_message shape
        await visitors[2].call("message:send", {"conversation_id": convs["Hoa"], "client_id": new_client_id(),
                                                 "text": "Còn hàng không?"})
        await ag.wait_for(lambda: any(u["id"] == convs["Hoa"] and u.get("last_message")
                                      for u in ag.of("conversation:updated")))
        summary = [u for u in ag.of("conversation:updated") if u["id"] == convs["Hoa"] and u.get("last_message")][-1]
        assert set(summary["last_message"]) == {"seq", "text", "author", "created_at", "attachments"}
        assert summary["last_message"]["text"] == "Còn hàng không?"

        # the pending status filter
        patched = await ag.call("conversation:status", {"conversation_id": convs["Minh"], "status": "pending"})
        assert patched["ok"] and patched["conversation"]["status"] == "pending"
        pending = await ag.call("conversation:list", {"status": "pending"})
        assert [c["id"] for c in pending["conversations"]] == [convs["Minh"]]
        assert [c["id"] for c in pending["contacts"]] == [pending["conversations"][0]["contact_id"]]
    finally:
        for v in visitors:
            await v.close()
        await ag.close()
