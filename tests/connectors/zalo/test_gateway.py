"""The Zalo connector inside a real in-process gateway: signed webhook → store → agent live
(python-socketio); agent reply → outbox → fake Zalo OA API → delivery `sent`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from connectors.channels import ChannelConfig
from connectors.feature import CONNECTORS_KEY, ConnectorHub
from connectors.manage import ChannelAdmin
from connectors.zalo.config import ZaloTokens
from connectors.zalo.gateway import ZaloCredentialWriter, ZaloGatewayConnector
from gateway.core.domain import Channel
from tests.connectors.test_email_flow import agent_upload
from tests.connectors.zalo import fake_zalo as fz
from tests.support.server import Client, RunningGateway, agent, make_config, new_client_id, run_gateway
from tests.support.waits import until


@dataclass
class Setup:
    rg: RunningGateway
    fake: fz.FakeZalo
    http: aiohttp.ClientSession
    agent: Client
    tenant_id: str
    inbox: ChannelConfig
    token: str

    @property
    def hub(self) -> ConnectorHub:
        return self.rg.gw.app[CONNECTORS_KEY]

    async def post(self, event: dict[str, Any], **kw: str) -> int:
        raw, headers = fz.signed(event, **kw)
        async with self.http.post(f"{self.rg.url}/webhooks/zalo/{fz.APP_ID}", data=raw, headers=headers) as r:
            await r.read()
            return r.status

    async def conversation(self) -> dict[str, Any]:
        await self.agent.wait_for(lambda: self.agent.of("conversation:created"))
        conv: dict[str, Any] = self.agent.of("conversation:created")[0]
        assert conv["channel"] == "zalo"
        assert (await self.agent.call("conversation:watch", {"conversation_id": conv["id"]}))["ok"]
        return conv

    async def reply(self, conv_id: str, text: str) -> str:
        sent = await self.agent.call(
            "message:send", {"conversation_id": conv_id, "client_id": new_client_id(), "text": text}
        )
        assert sent["ok"], sent
        mid: str = sent["message"]["id"]
        return mid

    def states(self, message_id: str) -> list[str]:
        return [e["delivery"]["state"] for e in self.agent.of("message:updated") if e["id"] == message_id]


@pytest.fixture
async def zalo(tmp_path, monkeypatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv("OUTBOX_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("OUTBOX_BASE_DELAY", "0.05")
    async with fz.run_fake_zalo() as fake, run_gateway(make_config(tmp_path)) as rg:
        hub = rg.gw.app[CONNECTORS_KEY]
        connector = hub.connectors.get(Channel.ZALO)
        assert isinstance(connector, ZaloGatewayConnector), "zalo connector not registered"
        nt = await rg.tenant()
        at, rt, exp = fake.issue()
        inbox = await hub.ctx.channels.add(
            tenant_id=nt.tenant.id,
            kind=Channel.ZALO,
            name="Shop OA",
            credentials={
                "oa_secret_key": fz.OA_SECRET,
                "app_secret_key": fz.APP_SECRET,
                "access_token": at,
                "refresh_token": rt,
                "expires_at": exp,
            },
            settings={"address": fz.OA_ID, "app_id": fz.APP_ID, "api_base": fake.url, "oauth_base": fake.url},
        )
        await connector.reload_accounts(force=True)
        _, token = await rg.agent_token(nt.tenant.id)
        ag = await agent(rg.url, token)
        async with aiohttp.ClientSession() as http:
            try:
                yield Setup(rg, fake, http, ag, nt.tenant.id, inbox, token)
            finally:
                await ag.close()


async def test_inbound_live_once_and_reply_delivered_once(zalo: Setup) -> None:
    ev = fz.event_text("Shop ơi, còn hàng không?", msg_id="live-1")
    assert await zalo.post(ev) == 200
    assert await zalo.post(ev) == 200  # Zalo retry: same msg_id
    conv = await zalo.conversation()
    await zalo.agent.wait_for(lambda: zalo.agent.messages(conv["id"]))
    hist = await zalo.agent.call("messages:history", {"conversation_id": conv["id"]})
    assert [(m["author"]["type"], m["text"]) for m in hist["messages"]] == [("contact", "Shop ơi, còn hàng không?")]

    # forged: nothing stored
    assert await zalo.post(fz.event_text("forged", msg_id="forged-1"), oa_secret="nope") == 401

    mid = await zalo.reply(conv["id"], "Dạ còn ạ!")
    await zalo.agent.wait_for(lambda: "sent" in zalo.states(mid), timeout=10)
    [sent] = zalo.fake.sent
    assert sent["recipient"] == {"user_id": fz.USER_ID} and sent["message"] == {"text": "Dạ còn ạ!"}
    row = await zalo.hub.outbox.get(mid)
    assert row is not None and row.state == "sent" and row.external_id == sent["message_id"]
    hist = await zalo.agent.call("messages:history", {"conversation_id": conv["id"]})
    assert [m["text"] for m in hist["messages"]] == ["Shop ơi, còn hàng không?", "Dạ còn ạ!"]
    assert await zalo.hub.outbox.run_once() == 0  # nothing left due: no second send can come
    assert len(zalo.fake.sent) == 1 and zalo.fake.send_calls == 1


async def test_expired_token_refreshed_and_rotated_pair_stored_encrypted(zalo: Setup) -> None:
    old = await zalo.hub.ctx.channels.credentials(zalo.inbox)
    zalo.fake.expire(old["access_token"])
    assert await zalo.post(fz.event_text("hello", msg_id="rt-1")) == 200
    conv = await zalo.conversation()
    mid = await zalo.reply(conv["id"], "reply after refresh")
    await zalo.agent.wait_for(lambda: "sent" in zalo.states(mid), timeout=10)
    assert zalo.fake.refresh_calls == 1 and zalo.fake.send_calls == 2 and len(zalo.fake.sent) == 1
    new = await zalo.hub.ctx.channels.credentials(zalo.inbox)
    assert new["refresh_token"] != old["refresh_token"] and new["refresh_token"] in zalo.fake.refresh_tokens
    assert new["access_token"] in zalo.fake.access_tokens and old["refresh_token"] in zalo.fake.spent_refresh_tokens
    assert new["oa_secret_key"] == fz.OA_SECRET  # the rest of the credentials is kept
    async with zalo.hub.ctx.db.reader() as conn:
        row = await conn.fetchrow("SELECT credentials FROM connector_channels WHERE id = $1", zalo.inbox.id)
    assert row is not None and new["refresh_token"] not in row["credentials"]  # sealed at rest


async def test_tokens_rotated_by_another_node_are_adopted(zalo: Setup) -> None:
    """Node B rotated the pair (and stored it); our node's refresh token is spent. A -216 makes us adopt B's."""
    connector = zalo.hub.connectors[Channel.ZALO]
    assert isinstance(connector, ZaloGatewayConnector)
    creds = await zalo.hub.ctx.channels.credentials(zalo.inbox)
    zalo.fake.access_tokens.pop(creds["access_token"])  # B's refresh invalidated our access token
    zalo.fake.refresh_tokens.discard(creds["refresh_token"])
    at, rt, exp = zalo.fake.issue()
    await ZaloCredentialWriter(zalo.hub.ctx.channels).save(
        zalo.tenant_id, zalo.inbox.id, ZaloTokens(at, rt, exp)
    )
    assert await zalo.post(fz.event_text("hi", msg_id="adopt-1")) == 200
    conv = await zalo.conversation()
    mid = await zalo.reply(conv["id"], "sent with the adopted token")
    await zalo.agent.wait_for(lambda: "sent" in zalo.states(mid), timeout=10)
    assert zalo.fake.refresh_calls == 0 and zalo.fake.refresh_errors == []
    assert connector.token_manager(fz.OA_ID).tokens.refresh_token == rt


async def test_user_not_following_fails_with_reason(zalo: Setup) -> None:
    zalo.fake.user_errors[fz.USER_ID] = -213
    assert await zalo.post(fz.event_text("hi", msg_id="perm-1")) == 200
    conv = await zalo.conversation()
    mid = await zalo.reply(conv["id"], "will fail")
    await zalo.agent.wait_for(lambda: "failed" in zalo.states(mid), timeout=10)
    failed = [e for e in zalo.agent.of("message:updated") if e["id"] == mid][-1]
    assert "-213" in failed["delivery"]["error"]
    assert zalo.fake.send_calls == 1


async def test_disabled_and_rotated_inboxes_reach_a_running_connector(zalo: Setup) -> None:
    """Without any webhook or send, a running Zalo connector drops a disabled inbox and loads
    an enabled or rotated one at its periodic reload (here every 0.05 s; 60 s by default)."""
    def loaded(c: ZaloGatewayConnector) -> bool:
        try:
            c.token_manager(fz.OA_ID)
        except KeyError:
            return False
        return True

    async def sink(msg: object) -> None:
        return None

    other = ZaloGatewayConnector(zalo.hub.ctx, refresh_interval=0.05)
    await other.start(sink)
    try:
        assert loaded(other)
        admin = ChannelAdmin(zalo.hub.ctx.channels)
        await admin.set_enabled(zalo.tenant_id, zalo.inbox.id, False, actor="test")
        await until(lambda: not loaded(other), timeout=30)
        await admin.set_enabled(zalo.tenant_id, zalo.inbox.id, True, actor="test")
        await until(lambda: loaded(other), timeout=30)
        before = other.token_manager(fz.OA_ID)
        await admin.rotate(zalo.tenant_id, zalo.inbox.id, {"oa_secret_key": "rotated-oa-secret"}, actor="test")
        await until(lambda: other.token_manager(fz.OA_ID) is not before, timeout=30)  # the account was replaced
    finally:
        await other.stop()


async def reply_with_file(zalo: Setup, conv_id: str) -> str:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    upload_id = await agent_upload(zalo.rg.url, zalo.token, "hoá đơn.pdf", "application/pdf", pdf)
    sent = await zalo.agent.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                  "text": "Hoá đơn đây ạ", "attachments": [upload_id]})
    assert sent["ok"], sent
    mid: str = sent["message"]["id"]
    return mid


async def test_a_retry_after_a_failed_file_sends_only_the_file(zalo: Setup) -> None:
    """Item 4 of issue 33: the text went out, the file's upload failed (503): the retry sends the
    file, not the text again; the customer gets each once."""
    assert await zalo.post(fz.event_text("cho xin hoá đơn", msg_id="parts-1")) == 200
    conv = await zalo.conversation()
    zalo.fake.upload_failures.append(fz.Failure(status=503))
    mid = await reply_with_file(zalo, conv["id"])
    await zalo.agent.wait_for(lambda: "sent" in zalo.states(mid), timeout=20)
    assert [("text" if "text" in s["message"] else s["message"]["attachment"]["type"]) for s in zalo.fake.sent] == [
        "text", "file"]
    row = await zalo.hub.outbox.get(mid)
    assert row is not None and row.attempts == 2
    assert row.parts == {"text": zalo.fake.sent[0]["message_id"], "attachment:0": zalo.fake.sent[1]["message_id"]}
    assert row.external_id == zalo.fake.sent[0]["message_id"]


async def test_a_file_that_fails_for_good_says_the_text_reached_the_customer(zalo: Setup) -> None:
    assert await zalo.post(fz.event_text("cho xin hoá đơn", msg_id="parts-2")) == 200
    conv = await zalo.conversation()
    zalo.fake.upload_failures.append(fz.Failure(code=-201))
    mid = await reply_with_file(zalo, conv["id"])
    await zalo.agent.wait_for(lambda: "failed" in zalo.states(mid), timeout=20)
    failed = [e for e in zalo.agent.of("message:updated") if e["id"] == mid][-1]
    assert failed["delivery"]["error"].startswith(
        "partly delivered: the text reached the customer; not delivered: file 'hoá đơn.pdf': zalo upload file"), failed
    assert len(zalo.fake.sent) == 1 and "text" in zalo.fake.sent[0]["message"]
