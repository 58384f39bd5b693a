"""Visitor ↔ agent conversations over the real server with python-socketio clients."""

from __future__ import annotations

from tests.support.server import RunningGateway, agent, new_client_id, visitor


async def test_visitor_agent_conversation_both_ways(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    ag = await agent(gateway.url, nt.admin_token)
    v = await visitor(gateway.url, nt.tenant.widget_key, name="Lan")
    try:
        assert v.session["visitor_token"]
        started = await v.call("conversation:start")
        assert started["ok"] is True
        assert started["agents_available"] is True  # the admin is online and has room
        conv_id = started["conversation"]["id"]

        await ag.wait_for(lambda: ag.of("conversation:created"))
        listed = await ag.call("conversation:list", {})
        assert [c["id"] for c in listed["conversations"]] == [conv_id]
        assert listed["conversations"][0]["assignee_id"] == nt.admin.id
        watched = await ag.call("conversation:watch", {"conversation_id": conv_id})
        assert watched["ok"], watched

        sent = await v.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                              "text": "Xin chào, tôi cần giúp đỡ"})
        assert sent["ok"] and sent["message"]["seq"] == 1 and sent["duplicate"] is False
        await ag.wait_for(lambda: ag.messages(conv_id))
        assert ag.messages(conv_id)[0]["text"] == "Xin chào, tôi cần giúp đỡ"

        reply = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                "text": "Chào bạn!"})
        assert reply["message"]["seq"] == 2
        await v.wait_for(lambda: len(v.messages(conv_id)) == 2)
        assert [m["seq"] for m in v.messages(conv_id)] == [1, 2]
        assert v.messages(conv_id)[1]["author"]["type"] == "agent"

        read = await v.call("read", {"conversation_id": conv_id, "seq": 2})
        assert read == {"ok": True, "seq": 2}
        await ag.wait_for(lambda: ag.of("read"))
        assert ag.of("read")[-1]["seq"] == 2 and ag.of("read")[-1]["reader"]["type"] == "contact"

        await v.call("typing", {"conversation_id": conv_id, "typing": True})
        await ag.wait_for(lambda: ag.of("typing"))
        assert not v.of("typing")  # the typist does not get its own indicator
    finally:
        await v.close()
        await ag.close()


async def test_idempotent_send_same_client_id(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    v = await visitor(gateway.url, nt.tenant.widget_key)
    try:
        conv_id = (await v.call("conversation:start"))["conversation"]["id"]
        cid = new_client_id()
        a = await v.call("message:send", {"conversation_id": conv_id, "client_id": cid, "text": "hi"})
        b = await v.call("message:send", {"conversation_id": conv_id, "client_id": cid, "text": "hi"})
        assert a["message"]["seq"] == b["message"]["seq"] == 1
        assert a["message"]["id"] == b["message"]["id"]
        assert b["duplicate"] is True
        token = v.session["visitor_token"]
    finally:
        await v.close()
    # and again after a reconnect, on a new connection of the same visitor
    v2 = await visitor(gateway.url, nt.tenant.widget_key, visitor_token=token)
    try:
        c = await v2.call("message:send", {"conversation_id": conv_id, "client_id": cid, "text": "hi"})
        assert c["ok"] and c["message"]["seq"] == 1 and c["duplicate"] is True
        hist = await v2.call("messages:history", {"conversation_id": conv_id})
        assert [m["seq"] for m in hist["messages"]] == [1]
    finally:
        await v2.close()


async def test_resume_replays_exactly_the_missing_messages(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    ag = await agent(gateway.url, nt.admin_token)
    v = await visitor(gateway.url, nt.tenant.widget_key)
    try:
        started = await v.call("conversation:start")
        conv_id, epoch = started["conversation"]["id"], started["conversation"]["epoch"]
        await v.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": "one"})
        await v.wait_for(lambda: v.messages(conv_id))
        last_seq = v.messages(conv_id)[-1]["seq"]
        token = v.session["visitor_token"]
        await v.close()

        for i in range(5):
            r = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                "text": f"agent {i}"})
            assert r["ok"]

        v = await visitor(gateway.url, nt.tenant.widget_key, visitor_token=token)
        assert [c["id"] for c in v.session["conversations"]] == [conv_id]
        res = await v.call("resume", {"conversations": [{"conversation_id": conv_id, "epoch": epoch,
                                                          "seq": last_seq}]})
        assert res["ok"] and res["results"][0]["ok"] and res["results"][0]["replayed"] == 5
        await v.wait_for(lambda: len(v.messages(conv_id)) >= 5)
        # nothing more arrives: a message sent now comes after anything the resume could
        # still deliver (a conversation's messages arrive in order)
        r = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                            "text": "agent 5"})
        assert r["ok"]
        await v.wait_for(lambda: any(m["text"] == "agent 5" for m in v.messages(conv_id)))
        got = v.messages(conv_id)
        assert [m["text"] for m in got] == [f"agent {i}" for i in range(6)]
        assert [m["seq"] for m in got] == [2, 3, 4, 5, 6, 7]

        stale = await v.call("resume", {"conversations": [{"conversation_id": conv_id, "epoch": "other",
                                                            "seq": 1}]})
        assert stale["results"][0]["error"]["code"] == "reload_required"
    finally:
        await v.close()
        await ag.close()


async def test_two_tabs_of_one_visitor_stay_in_sync(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    tab1 = await visitor(gateway.url, nt.tenant.widget_key)
    tab2 = await visitor(gateway.url, nt.tenant.widget_key, visitor_token=tab1.session["visitor_token"])
    try:
        assert tab1.session["contact_id"] == tab2.session["contact_id"]
        conv_id = (await tab1.call("conversation:start"))["conversation"]["id"]
        await tab2.wait_for(lambda: tab2.of("conversation:created"))
        assert tab2.of("conversation:created")[0]["id"] == conv_id
        assert (await tab2.call("conversation:watch", {"conversation_id": conv_id, "after_seq": 0}))["ok"]
        await tab1.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": "x"})
        await tab2.wait_for(lambda: tab2.messages(conv_id))
        await tab1.wait_for(lambda: tab1.messages(conv_id))
        assert tab2.messages(conv_id)[0]["text"] == "x"
    finally:
        await tab1.close()
        await tab2.close()


async def test_queue_when_no_agent_online_then_assigned(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    v = await visitor(gateway.url, nt.tenant.widget_key)
    try:
        started = await v.call("conversation:start")
        assert started["agents_available"] is False
        assert started["conversation"]["assigned"] is False
        conv_id = started["conversation"]["id"]
        await v.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                      "text": "leave a message"})
        ag = await agent(gateway.url, nt.admin_token)  # coming online takes the queue
        try:
            conv = (await ag.call("conversation:get", {"conversation_id": conv_id}))["conversation"]
            assert conv["assignee_id"] == nt.admin.id
            await v.wait_for(lambda: any(c.get("assigned") for c in v.of("conversation:updated")))
        finally:
            await ag.close()
    finally:
        await v.close()


async def test_round_robin_and_capacity(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    a1_id, a1_token = await gateway.agent_token(nt.tenant.id, "A1", capacity=1)
    a2_id, a2_token = await gateway.agent_token(nt.tenant.id, "A2", capacity=1)
    admin = await agent(gateway.url, nt.admin_token)
    await admin.call("presence:set", {"status": "away"})
    a1 = await agent(gateway.url, a1_token)
    a2 = await agent(gateway.url, a2_token)
    visitors = []
    try:
        assignees = []
        for _ in range(3):
            v = await visitor(gateway.url, nt.tenant.widget_key)
            visitors.append(v)
            started = await v.call("conversation:start")
            conv = (await admin.call("conversation:get", {"conversation_id": started["conversation"]["id"]}))
            assignees.append(conv["conversation"]["assignee_id"])
        assert sorted(assignees[:2], key=str) == sorted([a1_id, a2_id])
        assert assignees[2] is None  # both at capacity → queued
    finally:
        for c in [*visitors, a1, a2, admin]:
            await c.close()
