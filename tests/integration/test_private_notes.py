"""Private notes (issue 32): an agent's `note:send` (and REST `note: true`) stores a message of
author type `note` in the conversation's stream; agents see it everywhere, a visitor never
sees anything of it — live, in history, on resume — only its place (`hidden: true`), so the
visitor's stream has no gap. Channels: tests/connectors/test_private_notes_channels.py."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from gateway.core.errors import Code
from tests.support.server import RunningGateway, agent, new_client_id, visitor

SECRET = "ghi chú nội bộ: khách hay đổi ý 0912"


def _leaks(events: Any) -> bool:
    text = json.dumps(events, ensure_ascii=False)
    return SECRET in text or '"note"' in text


async def test_a_note_reaches_agents_and_only_its_place_reaches_the_visitor(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    ag = await agent(gateway.url, nt.admin_token)
    watcher = await agent(gateway.url, nt.admin_token)
    v = await visitor(gateway.url, nt.tenant.widget_key, name="Lan")
    later = None
    try:
        conv = (await v.call("conversation:start"))["conversation"]
        cid = conv["id"]
        assert (await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(),
                                              "text": "Chào shop"}))["ok"]
        assert (await watcher.call("conversation:watch", {"conversation_id": cid}))["ok"]

        ack = await ag.call("note:send", {"conversation_id": cid, "client_id": new_client_id(), "text": SECRET})
        assert ack["ok"] and ack["message"]["author"] == {"type": "note", "id": nt.admin.id}, ack
        assert ack["message"]["seq"] == 2 and ack["message"]["text"] == SECRET
        reply = await ag.call("message:send", {"conversation_id": cid, "client_id": new_client_id(),
                                               "text": "Dạ shop đây"})
        assert reply["ok"] and reply["message"]["seq"] == 3

        # live: the watching agent gets the note; the visitor its place, then the reply
        await watcher.wait_for(lambda: any(m["seq"] == 3 for m in watcher.messages(cid)))
        assert [m["author"]["type"] for m in watcher.messages(cid)] == ["contact", "note", "agent"]
        await v.wait_for(lambda: any(m["seq"] == 3 for m in v.messages(cid)))
        live = {m["seq"]: m for m in v.messages(cid)}
        assert live[2] == {"id": None, "conversation_id": cid, "seq": 2, "epoch": conv["epoch"], "client_id": None,
                           "author": {"type": "system", "id": None}, "text": "", "attachments": [],
                           "created_at": 0.0, "delivery": {"state": "none", "error": None}, "hidden": True}
        assert live[3]["text"] == "Dạ shop đây"
        assert not _leaks(v.events)

        # history: the visitor's has the place; the agent's (Socket.IO and REST) the note
        h = await v.call("messages:history", {"conversation_id": cid})
        assert [(m["seq"], m.get("hidden", False)) for m in h["messages"]] == [(1, False), (2, True), (3, False)]
        assert not _leaks(h)
        h = await ag.call("messages:history", {"conversation_id": cid})
        assert [m["author"]["type"] for m in h["messages"]] == ["contact", "note", "agent"]
        async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {nt.admin_token}"}) as http,
                    http.get(f"{gateway.url}/api/v1/conversations/{cid}/messages") as r):
            assert [m["text"] for m in (await r.json())["messages"]][1] == SECRET
            # a note over REST
            async with http.post(f"{gateway.url}/api/v1/conversations/{cid}/messages",
                                 json={"client_id": new_client_id(), "text": SECRET, "note": True}) as r2:
                assert r2.status == 201 and (await r2.json())["message"]["author"]["type"] == "note"
            async with http.post(f"{gateway.url}/api/v1/conversations/{cid}/messages",
                                 json={"client_id": new_client_id(), "text": "x", "note": "yes"}) as r3:
                assert r3.status == 400
        await v.wait_for(lambda: any(m["seq"] == 4 for m in v.messages(cid)))
        assert not _leaks(v.events)

        # resume from seq 1 on a new connection of the same visitor: the places only
        later = await visitor(gateway.url, nt.tenant.widget_key, visitor_token=v.session["visitor_token"])
        res = await later.call("resume", {"conversations": [{"conversation_id": cid, "epoch": conv["epoch"],
                                                             "seq": 1}]})
        assert res["ok"] and res["results"][0]["replayed"] == 3, res
        await later.wait_for(lambda: len(later.messages(cid)) == 3)
        assert [m.get("hidden", False) for m in later.messages(cid)] == [True, False, True]
        assert not _leaks(later.events)
        # a fresh watch (the latest page) likewise
        again = await later.call("conversation:watch", {"conversation_id": cid})
        assert again["ok"] and not _leaks(later.events)

        # the agents' list shows the note as the last message; a visitor cannot write one
        listed = await ag.call("conversation:list", {"limit": 10})
        assert [c["last_message"]["author"]["type"] for c in listed["conversations"] if c["id"] == cid] == ["note"]
        refused = await v.call("note:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "x"})
        assert not refused["ok"] and refused["error"]["code"] == Code.UNKNOWN_EVENT
        bad = await ag.call("note:send", {"conversation_id": cid, "client_id": new_client_id(), "text": ""})
        assert not bad["ok"] and bad["error"]["code"] == Code.BAD_REQUEST
        other = await gateway.tenant("Other")
        stranger = await agent(gateway.url, other.admin_token)
        try:
            gone = await stranger.call("note:send", {"conversation_id": cid, "client_id": new_client_id(),
                                                     "text": "x"})
            assert not gone["ok"] and gone["error"]["code"] == Code.NOT_FOUND
        finally:
            await stranger.close()
    finally:
        for c in (ag, watcher, v, later):
            if c is not None:
                await c.close()
