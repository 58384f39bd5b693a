"""Bad input gets a typed error in the ack; the connection and stored data are unharmed."""

from __future__ import annotations

import pytest

from tests.support.server import Refused, RunningGateway, agent, connect, new_client_id, visitor


async def _setup(gateway: RunningGateway):
    nt = await gateway.tenant()
    v = await visitor(gateway.url, nt.tenant.widget_key)
    conv_id = (await v.call("conversation:start"))["conversation"]["id"]
    ok = await v.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": "ok"})
    assert ok["ok"]
    return nt, v, conv_id


BAD_SENDS = [
    ("unknown event", "no:such:event", {}, "unknown_event"),
    ("payload not an object", "message:send", ["a", "list"], "bad_request"),
    ("payload a string", "message:send", "text", "bad_request"),
    ("missing conversation", "message:send", {"client_id": "x", "text": "t"}, "bad_request"),
    ("bad id shape", "message:send", {"conversation_id": "../../etc", "client_id": new_client_id(),
                                       "text": "t"}, "bad_request"),
    ("unknown id", "message:send", {"conversation_id": "0" * 32, "client_id": new_client_id(), "text": "t"},
     "not_found"),
    ("client_id not uuid", "message:send", {"conversation_id": None, "client_id": "nope", "text": "t"},
     "bad_request"),
    ("text not a string", "message:send", {"conversation_id": None, "client_id": new_client_id(), "text": 5},
     "bad_request"),
    ("empty text", "message:send", {"conversation_id": None, "client_id": new_client_id(), "text": "  "},
     "bad_request"),
    ("NUL in text", "message:send", {"conversation_id": None, "client_id": new_client_id(), "text": "a\x00"},
     "bad_request"),
    ("oversized text", "message:send", {"conversation_id": None, "client_id": new_client_id(),
                                         "text": "x" * 5000}, "text_too_long"),
    ("seq negative", "read", {"conversation_id": None, "seq": -1}, "bad_request"),
    ("seq bool", "read", {"conversation_id": None, "seq": True}, "bad_request"),
    ("resume not list", "resume", {"conversations": "x"}, "bad_request"),
    ("resume item bad", "resume", {"conversations": [{"conversation_id": None, "seq": "1"}]}, "bad_request"),
    ("history limit huge", "messages:history", {"conversation_id": None, "limit": 10**9}, "bad_request"),
    ("agent-only event", "conversation:assign", {"conversation_id": None, "agent_id": None}, "unknown_event"),
]


@pytest.mark.parametrize(("name", "event", "payload", "code"), BAD_SENDS, ids=[b[0] for b in BAD_SENDS])
async def test_bad_visitor_events(gateway: RunningGateway, name: str, event: str, payload, code: str) -> None:
    _, v, conv_id = await _setup(gateway)
    try:
        if isinstance(payload, dict) and "conversation_id" in payload and payload["conversation_id"] is None:
            payload = {**payload, "conversation_id": conv_id}
        if event == "resume" and isinstance(payload.get("conversations"), list):
            payload = {"conversations": [{**payload["conversations"][0], "conversation_id": conv_id}]}
        ack = await v.call(event, payload)
        assert ack["ok"] is False, ack
        assert ack["error"]["code"] == code, ack
        assert ack["error"]["message"]
        # the connection still works and nothing was stored
        hist = await v.call("messages:history", {"conversation_id": conv_id})
        assert [m["text"] for m in hist["messages"]] == ["ok"]
    finally:
        await v.close()


async def test_extra_arguments_rejected(gateway: RunningGateway) -> None:
    _, v, conv_id = await _setup(gateway)
    try:
        ack = await v.sio.call("message:send", ({"conversation_id": conv_id}, "extra"), namespace="/visitor")
        assert ack["error"]["code"] == "bad_request"
    finally:
        await v.close()


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "unauthorized"),
        ({}, "unauthorized"),
        ({"widget_key": "wk_nope"}, "unauthorized"),
        ({"widget_key": 42}, "unauthorized"),
    ],
)
async def test_visitor_handshake_refused(gateway: RunningGateway, auth, code: str) -> None:
    with pytest.raises(Refused) as info:
        await connect(gateway.url, "/visitor", auth)
    assert info.value.code == code


async def test_agent_handshake_refused(gateway: RunningGateway) -> None:
    for auth in (None, {"token": ""}, {"token": "izh_at_forged"}, {"token": ["x"]}):
        with pytest.raises(Refused) as info:
            await connect(gateway.url, "/agent", auth)
        assert info.value.code == "unauthorized"


async def test_forged_visitor_token_gets_a_new_identity(gateway: RunningGateway) -> None:
    nt, v, conv_id = await _setup(gateway)
    token = v.session["visitor_token"]
    await v.close()
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    v2 = await visitor(gateway.url, nt.tenant.widget_key, visitor_token=forged)
    try:
        assert v2.session["contact_id"] != v.session["contact_id"]
        ack = await v2.call("messages:history", {"conversation_id": conv_id})
        assert ack["error"]["code"] == "not_found"
    finally:
        await v2.close()


async def test_identity_verification(gateway: RunningGateway) -> None:
    from gateway.security.auth import identity_hash

    nt = await gateway.tenant(require_identity=True)
    with pytest.raises(Refused) as info:
        await visitor(gateway.url, nt.tenant.widget_key)
    assert info.value.code == "identity_required"
    with pytest.raises(Refused) as info:
        await visitor(gateway.url, nt.tenant.widget_key, identity={"id": "user-1", "hash": "00" * 32})
    assert info.value.code == "invalid_identity"
    good = {"id": "user-1", "hash": identity_hash(nt.tenant.identity_secret, "user-1")}
    a = await visitor(gateway.url, nt.tenant.widget_key, identity=good)
    b = await visitor(gateway.url, nt.tenant.widget_key, identity=good)  # another device
    try:
        assert a.session["identified"] is True
        assert a.session["contact_id"] == b.session["contact_id"]
    finally:
        await a.close()
        await b.close()


async def test_agent_bad_events(gateway: RunningGateway) -> None:
    nt, v, conv_id = await _setup(gateway)
    ag = await agent(gateway.url, nt.admin_token)
    try:
        cases = [
            ("conversation:status", {"conversation_id": conv_id, "status": "deleted"}, "bad_request"),
            ("conversation:assign", {"conversation_id": conv_id}, "bad_request"),
            ("conversation:assign", {"conversation_id": conv_id, "agent_id": "f" * 32}, "not_found"),
            ("presence:set", {"status": "sleeping"}, "bad_request"),
            ("conversation:list", {"limit": 0}, "bad_request"),
            ("conversation:list", {"status": 3}, "bad_request"),
        ]
        for event, payload, code in cases:
            ack = await ag.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload, ack)
        conv = (await ag.call("conversation:get", {"conversation_id": conv_id}))["conversation"]
        assert conv["status"] == "open"
    finally:
        await ag.close()
        await v.close()
