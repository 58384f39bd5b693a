"""The Facebook connector inside a real in-process gateway: webhook → store → agent live; agent reply →
outbox → fake Graph Send API → delivery `sent`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from connectors.feature import CONNECTORS_KEY
from gateway.core.domain import Channel
from tests.connectors.facebook.fake_graph import FakeGraph, encode_payload, signed_headers
from tests.connectors.facebook.payloads import (
    COMMENT_ID,
    PAGE_ID,
    PSID,
    comment_value,
    delivery,
    feed_entry,
    messaging_entry,
    text_event,
)
from tests.support.server import Client, RunningGateway, agent, make_config, new_client_id, run_gateway
from tests.support.waits import until

APP_SECRET = "gw-app-secret"
VERIFY = "gw-verify"
TOKEN = "EAAG-gw-page-token"


@dataclass
class Setup:
    rg: RunningGateway
    graph: FakeGraph
    http: aiohttp.ClientSession
    agent: Client
    tenant_id: str

    async def post(self, payload: Any, secret: str = APP_SECRET) -> aiohttp.ClientResponse:
        body = encode_payload(payload)
        async with self.http.post(f"{self.rg.url}/webhooks/facebook", data=body,
                                  headers=signed_headers(secret, body)) as r:
            await r.read()
            return r


@pytest.fixture
async def fb(tmp_path, monkeypatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv("OUTBOX_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("OUTBOX_BASE_DELAY", "0.05")
    async with FakeGraph({TOKEN: PAGE_ID}) as graph, run_gateway(make_config(tmp_path)) as rg:
        hub = rg.gw.app[CONNECTORS_KEY]
        assert Channel.FACEBOOK in hub.connectors, "facebook connector not registered"
        nt = await rg.tenant()
        await hub.ctx.channels.add(
            tenant_id=nt.tenant.id, kind=Channel.FACEBOOK, name="Shop Page",
            credentials={"page_access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY},
            settings={"address": PAGE_ID, "api_base": graph.url, "graph_version": "v23.0"},
        )
        _, token = await rg.agent_token(nt.tenant.id)
        ag = await agent(rg.url, token)
        async with aiohttp.ClientSession() as http:
            try:
                yield Setup(rg, graph, http, ag, nt.tenant.id)
            finally:
                await ag.close()


async def _conversation(ag: Client) -> dict[str, Any]:
    await ag.wait_for(lambda: ag.of("conversation:created"))
    conv: dict[str, Any] = ag.of("conversation:created")[0]
    assert conv["channel"] == "facebook"
    return conv


async def test_handshake_through_gateway(fb):
    url = f"{fb.rg.url}/webhooks/facebook"
    good = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": VERIFY}
    async with fb.http.get(url, params=good) as r:
        assert (r.status, await r.text()) == (200, "42")
    async with fb.http.get(url, params={**good, "hub.verify_token": "x"}) as r:
        assert r.status == 403


async def test_messenger_in_and_reply_out(fb):
    payload = delivery(messaging_entry(text_event("m_live1", "Shop ơi, đơn #42 của mình đâu rồi?")))
    assert (await fb.post(payload)).status == 200
    assert (await fb.post(payload)).status == 200  # Meta retry: same mid
    conv = await _conversation(fb.agent)
    ack = await fb.agent.call("conversation:watch", {"conversation_id": conv["id"]})
    assert ack["ok"], ack
    await fb.agent.wait_for(lambda: fb.agent.messages(conv["id"]))
    hist = await fb.agent.call("messages:history", {"conversation_id": conv["id"]})
    texts = [(m["author"]["type"], m["text"]) for m in hist["messages"]]
    assert texts == [("contact", "Shop ơi, đơn #42 của mình đâu rồi?")]  # stored once
    assert len(fb.agent.of("conversation:created")) == 1

    # bad signature: nothing stored
    body = encode_payload(delivery(messaging_entry(text_event("m_forged", "forged"))))
    async with fb.http.post(f"{fb.rg.url}/webhooks/facebook", data=body,
                            headers=signed_headers("not-the-secret", body)) as r:
        assert r.status == 401

    # agent replies → exactly one Send API call → delivery sent
    sent = await fb.agent.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                 "text": "Dạ, shop gửi hôm nay ạ."})
    assert sent["ok"], sent
    mid = sent["message"]["id"]

    def delivered() -> bool:
        return any(m["id"] == mid and m["delivery"]["state"] == "sent" for m in fb.agent.of("message:updated"))

    await fb.agent.wait_for(delivered, timeout=10)
    (call,) = fb.graph.sends()
    assert call.path == "/v23.0/me/messages" and call.query == {"access_token": TOKEN}
    assert call.body == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                         "message": {"text": "Dạ, shop gửi hôm nay ạ."}}
    hist = await fb.agent.call("messages:history", {"conversation_id": conv["id"]})
    assert [m["text"] for m in hist["messages"]] == ["Shop ơi, đơn #42 của mình đâu rồi?", "Dạ, shop gửi hôm nay ạ."]
    assert await fb.rg.gw.app[CONNECTORS_KEY].outbox.run_once() == 0  # nothing left due: no second send can come
    assert len(fb.graph.calls) == 1
    state = (await fb.rg.gw.app[CONNECTORS_KEY].outbox.get(mid))
    assert state is not None and state.state == "sent" and state.external_id == call.response["message_id"]


async def test_rate_limited_reply_is_retried_then_sent(fb):
    await fb.post(delivery(messaging_entry(text_event("m_rl", "hello"))))
    conv = await _conversation(fb.agent)
    await fb.agent.call("conversation:watch", {"conversation_id": conv["id"]})
    fb.graph.fail_next(1, "server")
    sent = await fb.agent.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                 "text": "retry me"})
    mid = sent["message"]["id"]
    hub = fb.rg.gw.app[CONNECTORS_KEY]
    # the 500 is transient: the outbox retries (retry hint 5 s), we pull the row forward instead of waiting
    await until(lambda: len(fb.graph.calls) == 1, timeout=5.0)
    async with hub.ctx.db.transaction() as conn:
        await conn.execute("UPDATE connector_outbox SET next_attempt_at = 0 WHERE message_id = $1", mid)
    hub.outbox.wake()
    await fb.agent.wait_for(
        lambda: any(m["id"] == mid and m["delivery"]["state"] == "sent" for m in fb.agent.of("message:updated")),
        timeout=10,
    )
    assert [c.status for c in fb.graph.calls] == [500, 200]


async def test_comment_in_and_public_reply_out(fb):
    await fb.post(delivery(feed_entry(comment_value("add"))))
    conv = await _conversation(fb.agent)
    await fb.agent.call("conversation:watch", {"conversation_id": conv["id"]})
    sent = await fb.agent.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                 "text": "Shop đã inbox chị ạ."})
    mid = sent["message"]["id"]
    await fb.agent.wait_for(
        lambda: any(m["id"] == mid and m["delivery"]["state"] == "sent" for m in fb.agent.of("message:updated")),
        timeout=10,
    )
    (call,) = fb.graph.comment_replies()
    assert call.path == f"/v23.0/{COMMENT_ID}/comments" and call.body == {"message": "Shop đã inbox chị ạ."}
