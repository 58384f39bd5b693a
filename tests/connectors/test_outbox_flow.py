"""The durable outbox over a real gateway: retries, permanent failures, restarts."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from connectors.base import InboundMessage
from connectors.feature import CONNECTORS_KEY, ConnectorHub
from gateway.config import Config
from gateway.core.domain import Channel, DeliveryState
from tests.connectors.fakes import FakeChannelApi, FakeHttpConnector, fake_channel_api
from tests.support.server import Client, RunningGateway, agent, new_client_id, run_gateway
from tests.support.waits import until


def hub_of(rg: RunningGateway) -> ConnectorHub:
    return rg.gw.app[CONNECTORS_KEY]


async def inbound_conversation(rg: RunningGateway, tenant_id: str, text: str = "Xin chào") -> str:
    res = await hub_of(rg).ctx.inbound.deliver(InboundMessage(
        tenant_id=tenant_id, channel=Channel.YOUTUBE, external_thread_id="video-1/comment-1",
        external_author_id="UC-viewer-1", external_message_id=f"c-{time.time_ns()}", text=text,
        sent_at=time.time(), author_name="Viewer"))
    return res.conversation.id


def states(ag: Client, message_id: str) -> list[str]:
    return [e["delivery"]["state"] for e in ag.of("message:updated") if e["id"] == message_id]


async def test_transient_failures_are_retried_then_delivered_once(cx_config: Config) -> None:
    async with fake_channel_api(FakeChannelApi(script=[500, 500])) as api, run_gateway(cx_config) as rg:
        await hub_of(rg).use(FakeHttpConnector(api.url))
        nt = await rg.tenant()
        ag = await agent(rg.url, nt.admin_token)
        try:
            conv_id = await inbound_conversation(rg, nt.tenant.id)
            await ag.wait_for(lambda: ag.of("conversation:created"))
            assert ag.of("conversation:created")[0]["channel"] == "youtube"
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
            sent = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                   "text": "Cảm ơn bạn!"})
            mid = sent["message"]["id"]
            assert sent["message"]["delivery"] == {"state": "pending", "error": None}  # issue 33 item 3: the ack
            await ag.wait_for(lambda: "sent" in states(ag, mid), timeout=20)
            assert states(ag, mid)[-1] == "sent"
            assert "failed" not in states(ag, mid)
            assert api.accepted == [mid] and len(api.requests) == 3
            row = await hub_of(rg).outbox.get(mid)
            assert row is not None and row.state == "sent" and row.attempts == 3
            assert row.external_id == f"ext-{mid}" and row.last_error is None
            # the stored message says so too
            hist = await ag.call("messages:history", {"conversation_id": conv_id})
            assert hist["messages"][-1]["delivery"] == {"state": "sent", "error": None}
        finally:
            await ag.close()


async def test_permanent_error_fails_with_reason(cx_config: Config) -> None:
    async with fake_channel_api(FakeChannelApi(script=[400])) as api, run_gateway(cx_config) as rg:
        await hub_of(rg).use(FakeHttpConnector(api.url))
        nt = await rg.tenant()
        ag = await agent(rg.url, nt.admin_token)
        try:
            conv_id = await inbound_conversation(rg, nt.tenant.id)
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
            sent = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                   "text": "reply"})
            mid = sent["message"]["id"]
            await ag.wait_for(lambda: "failed" in states(ag, mid), timeout=20)
            failed = [e for e in ag.of("message:updated") if e["id"] == mid][-1]
            assert failed["delivery"] == {"state": "failed", "error": "scripted 400"}
            assert len(api.requests) == 1 and api.accepted == []
        finally:
            await ag.close()


async def test_gives_up_after_max_attempts(cx_sqlite_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_MAX_ATTEMPTS", "3")
    async with fake_channel_api(FakeChannelApi(script=[503] * 10)) as api, run_gateway(cx_sqlite_config) as rg:
        await hub_of(rg).use(FakeHttpConnector(api.url))
        nt = await rg.tenant()
        ag = await agent(rg.url, nt.admin_token)
        try:
            conv_id = await inbound_conversation(rg, nt.tenant.id)
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
            mid = (await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                   "text": "reply"}))["message"]["id"]
            await ag.wait_for(lambda: "failed" in states(ag, mid), timeout=20)
            err = [e for e in ag.of("message:updated") if e["id"] == mid][-1]["delivery"]["error"]
            assert err.startswith("gave up after 3 attempts") and "scripted 503" in err
            assert len(api.requests) == 3
        finally:
            await ag.close()


async def test_widget_and_contact_messages_never_enter_the_outbox(cx_sqlite_config: Config) -> None:
    async with run_gateway(cx_sqlite_config) as rg:
        nt = await rg.tenant()
        conv_id = await inbound_conversation(rg, nt.tenant.id)
        msgs = await rg.gw.store.get_messages(nt.tenant.id, conv_id)
        assert msgs[0].delivery_state == DeliveryState.NONE
        assert await hub_of(rg).outbox.get(msgs[0].id) is None


async def test_stored_but_unsent_reply_is_delivered_once_after_restart(
    cx_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTBOX_AUTOSTART", "0")  # the node "dies" before its worker runs
    async with fake_channel_api(FakeChannelApi()) as api:
        async with run_gateway(cx_config) as rg:
            nt = await rg.tenant()
            ag = await agent(rg.url, nt.admin_token)
            try:
                conv_id = await inbound_conversation(rg, nt.tenant.id)
                mid = (await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                       "text": "sẽ gửi sau"}))["message"]["id"]
            finally:
                await ag.close()
            row = await hub_of(rg).outbox.get(mid)
            assert row is not None and row.state == "queued"
        assert api.requests == []
        async with run_gateway(cx_config) as rg2:
            hub = hub_of(rg2)
            await hub.use(FakeHttpConnector(api.url))
            hub.outbox.start()
            await until(lambda: api.accepted == [mid], timeout=20.0)
            row = await wait_state(hub, mid, "sent")
            assert row.attempts == 1 and len(api.requests) == 1
            # the message's own delivery state is written after the outbox row's, apart
            last: list[DeliveryState] = []

            async def sent() -> bool:
                last[:] = [(await rg2.gw.store.get_messages(nt.tenant.id, conv_id))[-1].delivery_state]
                return last[0] == DeliveryState.SENT

            deadline = time.monotonic() + 20
            while not await sent():
                assert time.monotonic() < deadline, f"the message stayed {last}"
                await asyncio.sleep(0.05)


async def _delivered_after_a_crash_mid_send(config: Config, text: str) -> None:
    """A node claims a reply and dies mid-send (the platform never answers it); the next
    node on the same database delivers it, once, on its second attempt."""
    hang = asyncio.Event()
    api = FakeChannelApi(hang=hang)  # the first attempt does not complete while its node lives
    async with fake_channel_api(api):
        try:
            async with run_gateway(config) as rg:
                hub = hub_of(rg)
                await hub.use(FakeHttpConnector(api.url))
                hub.outbox.start()
                nt = await rg.tenant()
                conv_id = await inbound_conversation(rg, nt.tenant.id)
                ag = await agent(rg.url, nt.admin_token)
                try:
                    mid = (await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                           "text": text}))["message"]["id"]
                finally:
                    await ag.close()
                await until(lambda: len(api.requests) == 1, timeout=20.0)
                assert (await hub.outbox.get(mid)).state == "sending"  # type: ignore[union-attr]
            api.hang = None
            async with run_gateway(config) as rg2:
                hub2 = hub_of(rg2)
                await hub2.use(FakeHttpConnector(api.url))
                hub2.outbox.start()
                row = await wait_state(hub2, mid, "sent", timeout=20)
                assert api.accepted == [mid] and row.attempts == 2
        finally:
            hang.set()  # let the orphaned request finish so the fake server can shut down


async def test_claimed_row_of_a_dead_node_is_retaken_after_its_lease(
    cx_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTBOX_AUTOSTART", "0")
    monkeypatch.setenv("OUTBOX_LEASE", "1.0")
    await _delivered_after_a_crash_mid_send(cx_config, "lease")


async def wait_state(hub: ConnectorHub, mid: str, state: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        row = await hub.outbox.get(mid)
        if row is not None and row.state == state:
            return row
        assert time.monotonic() < deadline, f"outbox row stayed {row}"
        await asyncio.sleep(0.05)


async def test_an_embedded_node_restarted_after_a_crash_sends_at_once(
    cx_sqlite_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On embedded SQLite one node owns the outbox: a reply its previous incarnation left
    `sending` (it died mid-send) is due again at the restart, not after OUTBOX_LEASE
    (default 120 s, within which `wait_state` gives up)."""
    monkeypatch.setenv("OUTBOX_AUTOSTART", "0")
    monkeypatch.delenv("OUTBOX_LEASE", raising=False)
    await _delivered_after_a_crash_mid_send(cx_sqlite_config, "sau sự cố")


async def test_agent_reply_is_pending_from_the_start(cx_config: Config) -> None:
    """Issue 33 item 3: an agent message in a connector conversation is stored `pending`: its
    ack, its REST 201 and its `message:new` say so (no later `message:updated` needed)."""
    async with fake_channel_api(FakeChannelApi(script=[])) as api, run_gateway(cx_config) as rg:
        hub = hub_of(rg)
        await hub.use(FakeHttpConnector(api.url))
        nt = await rg.tenant()
        ag = await agent(rg.url, nt.admin_token)
        try:
            conv_id = await inbound_conversation(rg, nt.tenant.id)
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
            ack = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                  "text": "qua socket"})
            assert ack["message"]["delivery"]["state"] == "pending", ack
            mid = ack["message"]["id"]
            await ag.wait_for(lambda: any(m["id"] == mid for m in ag.of("message:new")))
            [new] = [m for m in ag.of("message:new") if m["id"] == mid]
            assert new["delivery"]["state"] == "pending"
            async with aiohttp.ClientSession() as http, http.post(
                    f"{rg.url}/api/v1/conversations/{conv_id}/messages",
                    json={"client_id": new_client_id(), "text": "qua REST"},
                    headers={"Authorization": f"Bearer {nt.admin_token}"}) as r:
                body = await r.json()
            assert r.status == 201 and body["message"]["delivery"]["state"] == "pending", body
            rest_mid = body["message"]["id"]
            await until(lambda: set(api.accepted) == {mid, rest_mid}, timeout=20)
            await ag.wait_for(lambda: "sent" in states(ag, mid) and "sent" in states(ag, rest_mid), timeout=20)
            assert "pending" not in states(ag, mid)  # stored pending: no update repeats it
        finally:
            await ag.close()
