"""Private notes never leave for a channel (issue 32): on a public comments thread an
agent's note is stored and shown to agents, but the connectors' outbox takes no row for it
and the public thread never lists it; the agent's reply beside it goes out as usual. The
privacy export labels notes; an erasure blanks them with the contact's messages."""

from __future__ import annotations

import json

import aiohttp

from gateway.config import Config
from gateway.core.domain import Channel
from tests.connectors.test_comments_and_inbound import URL, hub_of
from tests.support.server import agent, new_client_id, run_gateway

SECRET = "ghi chú: khách VIP, đừng giảm giá"


async def test_a_note_on_a_comment_thread_stays_inside(cx_config: Config) -> None:
    async with run_gateway(cx_config) as rg, aiohttp.ClientSession() as http:
        nt = await rg.tenant()
        wk = nt.tenant.widget_key
        await hub_of(rg).ctx.channels.add(tenant_id=nt.tenant.id, kind=Channel.COMMENTS, name="Shop comments",
                                          credentials={}, settings={})
        ag = await agent(rg.url, nt.admin_token)
        try:
            body = {"widget_key": wk, "thread": "p-1", "author_name": "Lan", "author_email": "lan@example.vn",
                    "text": "Còn hàng không?", "client_id": new_client_id()}
            async with http.post(rg.url + URL, json=body) as r:
                assert r.status == 201
            await ag.wait_for(lambda: ag.of("conversation:created"))
            cid = ag.of("conversation:created")[0]["id"]
            assert (await ag.call("conversation:watch", {"conversation_id": cid}))["ok"]
            note = await ag.call("note:send", {"conversation_id": cid, "client_id": new_client_id(), "text": SECRET})
            assert note["ok"] and note["message"]["delivery"]["state"] == "none", note
            reply = await ag.call("message:send", {"conversation_id": cid, "client_id": new_client_id(),
                                                   "text": "Còn ạ"})
            assert reply["ok"] and reply["message"]["delivery"]["state"] == "pending"
            await ag.wait_for(lambda: any(e["id"] == reply["message"]["id"] and e["delivery"]["state"] == "sent"
                                          for e in ag.of("message:updated")), timeout=20)
            async with rg.gw.db.reader() as conn:
                rows = await conn.fetch("SELECT message_id FROM connector_outbox WHERE tenant_id = $1",
                                        nt.tenant.id)
            assert [r["message_id"] for r in rows] == [reply["message"]["id"]]
            async with http.get(rg.url + URL, params={"widget_key": wk, "thread": "p-1"}) as r:
                listed = await r.json()
            assert [c["text"] for c in listed["comments"]] == ["Còn hàng không?", "Còn ạ"]
            assert SECRET not in json.dumps(listed, ensure_ascii=False)

            assert len((await ag.call("search", {"q": "khach vip"}))["results"]) == 1  # agents find notes

            # the privacy export labels the note; an erasure blanks it with the contact's words
            contact = (await ag.call("conversation:get", {"conversation_id": cid}))["contact"]["id"]
            auth = {"Authorization": f"Bearer {nt.admin_token}"}
            async with http.get(f"{rg.url}/api/v1/contacts/{contact}/export", headers=auth) as r:
                exported = (await r.json())["conversations"][0]["messages"]
            assert [(m["author"]["type"], m["private_note"]) for m in exported] == [
                ("contact", False), ("note", True), ("agent", False)]
            async with http.post(f"{rg.url}/api/v1/contacts/{contact}/erase", headers=auth) as r:
                assert r.status == 200 and (await r.json())["erased"]["messages_anonymised"] == 2
            history = await ag.call("messages:history", {"conversation_id": cid})
            assert [m["text"] for m in history["messages"]] == ["", "", "Còn ạ"]
            found = await ag.call("search", {"q": "khach vip"})
            assert found["ok"] and found["results"] == []
        finally:
            await ag.close()
