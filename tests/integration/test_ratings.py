"""Satisfaction ratings against the real server with real clients: a visitor rates its
resolved conversation once per resolution, agents get it live and over REST, it is in
/metrics, the data-subject export and erased with the contact; and `agent:profiles`."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.server import RunningGateway, agent, new_client_id, visitor


async def send(c: Any, conv_id: str, text: str) -> None:
    ack = await c.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": text})
    assert ack["ok"], ack


async def set_status(ag: Any, conv_id: str, status: str) -> None:
    ack = await ag.call("conversation:status", {"conversation_id": conv_id, "status": status})
    assert ack["ok"] and ack["conversation"]["status"] == status, ack


def error(ack: dict[str, Any]) -> tuple[str, Any]:
    assert ack["ok"] is False, ack
    err = ack["error"]
    return err["code"], err.get("details", {})


async def test_rating_lifecycle(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    other = await gateway.tenant("Other")
    v = await visitor(gateway.url, nt.tenant.widget_key, name="Minh", email="minh@example.vn")
    ag = await agent(gateway.url, nt.admin_token)
    headers = {"Authorization": f"Bearer {nt.admin_token}"}
    try:
        conv_id = (await v.call("conversation:start"))["conversation"]["id"]
        await send(v, conv_id, "hello")
        await ag.call("conversation:watch", {"conversation_id": conv_id, "after_seq": 0})
        await send(ag, conv_id, "hi, how can I help?")
        # not resolved yet: refused, typed
        assert error(await v.call("conversation:rate", {"conversation_id": conv_id, "score": 5})) == (
            "conflict", {"reason": "not_resolved"})
        await set_status(ag, conv_id, "resolved")
        for bad in ({"score": 0}, {"score": 6}, {"score": "5"}, {"score": True}, {},
                    {"score": 3, "comment": "x" * 1001}, {"score": 3, "comment": 7}):
            code, details = error(await v.call("conversation:rate", {"conversation_id": conv_id, **bad}))
            assert code == "bad_request" and details["field"] in ("score", "comment"), (bad, details)
        ack = await v.call("conversation:rate", {"conversation_id": conv_id, "score": 4,
                                                  "comment": "  Nhanh và lịch sự  "})
        assert ack["ok"], ack
        rated = ack["rating"]
        assert rated["score"] == 4 and rated["comment"] == "Nhanh và lịch sự" and rated["seq"] == 2
        assert rated["agent_id"] == nt.admin.id
        await ag.wait_for(lambda: any(e["conversation_id"] == conv_id and e["score"] == 4
                                      for e in ag.of("conversation:rated")))
        # one rating per resolution
        assert error(await v.call("conversation:rate", {"conversation_id": conv_id, "score": 1})) == (
            "conflict", {"reason": "already_rated"})
        # a new message reopens it; resolved again, the new resolution can be rated
        await send(v, conv_id, "one more thing")
        await set_status(ag, conv_id, "resolved")
        ack = await v.call("conversation:rate", {"conversation_id": conv_id, "score": 2})
        assert ack["ok"] and ack["rating"]["seq"] == 3 and ack["rating"]["comment"] is None, ack

        async with aiohttp.ClientSession(base_url=gateway.url, headers=headers) as http:
            async with http.get(f"/api/v1/conversations/{conv_id}/ratings") as r:
                body = await r.json()
                assert r.status == 200 and [(x["seq"], x["score"]) for x in body["ratings"]] == [(2, 4), (3, 2)]
            async with http.get("/api/v1/ratings", params={"limit": "1"}) as r:
                assert [x["score"] for x in (await r.json())["ratings"]] == [2]
            async with http.get("/api/v1/ratings", params={"limit": "x"}) as r:
                assert r.status == 400
            async with http.get(f"/api/v1/conversations/{conv_id}/ratings",
                                headers={"Authorization": f"Bearer {other.admin_token}"}) as r:
                assert r.status == 404
            async with http.get("/metrics") as r:
                assert "izh_ratings_submitted_total 2.0" in await r.text()
            async with http.get(f"/api/v1/conversations/{conv_id}") as r:
                contact_id = (await r.json())["conversation"]["contact_id"]
            async with http.get(f"/api/v1/contacts/{contact_id}/export") as r:
                exported = (await r.json())["ratings"]
                assert [(x["score"], x["comment"]) for x in exported] == [(4, "Nhanh và lịch sự"), (2, None)]
            async with http.post(f"/api/v1/contacts/{contact_id}/erase") as r:
                assert (await r.json())["erased"]["ratings"] == 2
            async with http.get(f"/api/v1/contacts/{contact_id}/export") as r:
                assert (await r.json())["ratings"] == []
            async with http.get(f"/api/v1/conversations/{conv_id}/ratings") as r:
                assert (await r.json())["ratings"] == []
    finally:
        await v.close()
        await ag.close()


async def test_a_visitor_cannot_rate_another_visitors_conversation(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    a = await visitor(gateway.url, nt.tenant.widget_key)
    b = await visitor(gateway.url, nt.tenant.widget_key)
    ag = await agent(gateway.url, nt.admin_token)
    try:
        conv_id = (await a.call("conversation:start"))["conversation"]["id"]
        await send(a, conv_id, "hello")
        await set_status(ag, conv_id, "resolved")
        assert error(await b.call("conversation:rate", {"conversation_id": conv_id, "score": 1}))[0] == "not_found"
    finally:
        for c in (a, b, ag):
            await c.close()


async def test_agent_profiles_name_only_the_tenants_agents(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    other = await gateway.tenant("Other")
    lan_id, _ = await gateway.agent_token(nt.tenant.id, "Nguyễn Lan Anh")
    v = await visitor(gateway.url, nt.tenant.widget_key)
    try:
        ack = await v.call("agent:profiles", {"ids": [lan_id, other.admin.id, "f" * 32, lan_id]})
        assert ack == {"ok": True, "agents": [{"id": lan_id, "name": "Nguyễn Lan Anh", "initials": "NA"}]}
        bads: list[dict[str, Any]] = [{}, {"ids": []}, {"ids": ["nope"]}, {"ids": [[1]]}, {"ids": ["f" * 32] * 21}]
        for bad in bads:
            assert error(await v.call("agent:profiles", bad))[0] == "bad_request", bad
    finally:
        await v.close()
