"""IZIComment public REST and the inbound pipeline's dedup / reopen rules."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp

from connectors.base import Attachment, InboundMessage
from connectors.feature import CONNECTORS_KEY, ConnectorHub
from gateway.config import Config
from gateway.core.domain import Channel, ConversationStatus
from tests.support.server import RunningGateway, agent, new_client_id, run_gateway

URL = "/api/v1/public/comments"


def hub_of(rg: RunningGateway) -> ConnectorHub:
    return rg.gw.app[CONNECTORS_KEY]


async def test_comment_thread_public_rest_and_agent_reply(cx_config: Config) -> None:
    async with run_gateway(cx_config) as rg, aiohttp.ClientSession() as http:
        nt = await rg.tenant()
        wk = nt.tenant.widget_key
        body = {"widget_key": wk, "thread": "product-42", "author_name": "Lan", "author_email": "Lan@Example.vn",
                "text": "Áo này còn size M không?", "client_id": new_client_id()}
        async with http.post(rg.url + URL, json=body) as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"  # not enabled yet
        await hub_of(rg).ctx.channels.add(tenant_id=nt.tenant.id, kind=Channel.COMMENTS, name="Shop comments",
                                          credentials={}, settings={})
        ag = await agent(rg.url, nt.admin_token)
        try:
            async with http.post(rg.url + URL, json=body) as r:
                assert r.status == 201, await r.text()
                first = await r.json()
            assert first["duplicate"] is False and first["comment"]["author"] == {"type": "contact", "name": "Lan"}
            async with http.post(rg.url + URL, json=body) as r:  # same client_id: nothing new
                assert r.status == 200 and (await r.json())["comment"]["id"] == first["comment"]["id"]
            other = {**body, "author_name": "Minh", "author_email": None, "text": "Mình cũng hỏi", "client_id":
                     new_client_id()}
            async with http.post(rg.url + URL, json=other, headers={"X-Widget-Key": wk}) as r:
                assert r.status == 201

            await ag.wait_for(lambda: ag.of("conversation:created"))
            conv = ag.of("conversation:created")[0]
            assert conv["channel"] == "comments"
            assert (await ag.call("conversation:watch", {"conversation_id": conv["id"]}))["ok"]
            mid = (await ag.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                   "text": "Còn ạ!"}))["message"]["id"]
            await ag.wait_for(lambda: any(e["id"] == mid and e["delivery"]["state"] == "sent"
                                          for e in ag.of("message:updated")), timeout=20)

            async with http.get(rg.url + URL, params={"widget_key": wk, "thread": "product-42"}) as r:
                listed = await r.json()
                assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
            assert [(c["author"]["name"], c["text"]) for c in listed["comments"]] == [
                ("Lan", "Áo này còn size M không?"), ("Minh", "Mình cũng hỏi"), ("Admin", "Còn ạ!")]
            assert "email" not in str(listed).lower()
            async with http.get(rg.url + URL, params={"widget_key": wk, "thread": "nothing-here"}) as r:
                assert (await r.json())["comments"] == []
        finally:
            await ag.close()


async def test_comment_validation(cx_sqlite_config: Config) -> None:
    async with run_gateway(cx_sqlite_config) as rg, aiohttp.ClientSession() as http:
        nt = await rg.tenant()
        await hub_of(rg).ctx.channels.add(tenant_id=nt.tenant.id, kind=Channel.COMMENTS, name="c", credentials={},
                                          settings={})
        good = {"widget_key": nt.tenant.widget_key, "thread": "p1", "author_name": "A", "text": "hi",
                "client_id": new_client_id()}
        cases = [
            ({**good, "widget_key": "nope"}, 401, "unauthorized"),
            ({**good, "thread": "bad thread!"}, 400, "bad_request"),
            ({**good, "thread": "x" * 201}, 400, "bad_request"),
            ({**good, "author_name": ""}, 400, "bad_request"),
            ({**good, "author_email": "not-an-email"}, 400, "bad_request"),
            ({**good, "text": "   "}, 400, "bad_request"),
            ({**good, "text": "x" * 2001}, 400, "text_too_long"),
            ({**good, "client_id": "123"}, 400, "bad_request"),
            ({**good, "text": "x" * 20000}, 413, "payload_too_large"),
        ]
        for payload, status, code in cases:
            async with http.post(rg.url + URL, json=payload) as r:
                data = await r.json()
                assert (r.status, data["error"]["code"]) == (status, code), payload
        async with http.post(rg.url + URL, data=b"{not json", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
        async with http.get(rg.url + URL, params={"widget_key": nt.tenant.widget_key, "thread": "p1",
                                                  "limit": "x"}) as r:
            assert r.status == 400
        # nothing was stored by the refused requests
        assert await rg.gw.store.list_contacts(nt.tenant.id, limit=10, offset=0) == []


async def test_inbound_dedup_and_reopen(cx_config: Config) -> None:
    async with run_gateway(cx_config) as rg:
        nt = await rg.tenant()
        inbound = hub_of(rg).ctx.inbound
        ag = await agent(rg.url, nt.admin_token)
        try:
            def msg(ext: str, text: str) -> InboundMessage:
                return InboundMessage(tenant_id=nt.tenant.id, channel=Channel.ZALO, external_thread_id="user-1",
                                      external_author_id="zalo-user-1", external_message_id=ext, text=text,
                                      sent_at=time.time(), author_name="Hoa",
                                      attachments=(Attachment(kind="image", url="https://x/y.png"),))

            results = await asyncio.gather(*(inbound.deliver(msg("m1", "xin chào")) for _ in range(4)))
            assert sum(r.created for r in results) == 1 and sum(r.new_conversation for r in results) == 1
            assert len({r.message.id for r in results}) == 1
            conv = results[0].conversation
            assert results[0].message.attachments == ({"kind": "image", "url": "https://x/y.png"},)
            await ag.wait_for(lambda: len(ag.of("conversation:created")) == 1)
            assert ag.of("conversation:created")[0]["assignee_id"] == nt.admin.id
            await rg.gw.store.update_conversation(nt.tenant.id, conv.id, now=time.time(),
                                                  status=ConversationStatus.RESOLVED)
            again = await inbound.deliver(msg("m1", "xin chào"))  # a retried webhook
            assert not again.created
            assert (await rg.gw.store.get_conversation(nt.tenant.id, conv.id)).status == ConversationStatus.RESOLVED
            new = await inbound.deliver(msg("m2", "còn đó không?"))
            assert new.created and not new.new_conversation and new.conversation.id == conv.id
            assert new.conversation.status == ConversationStatus.OPEN and new.message.seq == 2
            contacts = await rg.gw.store.list_contacts(nt.tenant.id, limit=10, offset=0)
            assert len(contacts) == 1 and contacts[0].name == "Hoa"
            assert str(uuid.UUID(conv.id))  # ids stay opaque hex
        finally:
            await ag.close()
