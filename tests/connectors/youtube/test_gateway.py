"""Through the real gateway in-process: polled comments reach a live agent; replies go out once."""

from __future__ import annotations

import time

from connectors.feature import CONNECTORS_KEY
from connectors.youtube.service import YouTubeChannelConnector
from gateway.core.domain import Channel
from tests.connectors.youtube.fake_youtube import OWNER_CHANNEL, FakeYouTube
from tests.support.server import agent, new_client_id, run_gateway
from tests.support.waits import until


async def test_polled_comments_reach_agent_and_reply_is_sent_once(fake: FakeYouTube, cx_sqlite_config):
    tid = fake.add_thread("vid00000001", "Đơn hàng của tôi chưa tới?", author="UCbuyer", name="@buyer",
                          published=time.time() - 30)
    async with run_gateway(cx_sqlite_config) as rg:
        hub = rg.gw.app[CONNECTORS_KEY]
        yt = hub.connectors[Channel.YOUTUBE]
        assert isinstance(yt, YouTubeChannelConnector)
        tenant = await rg.tenant()
        _, token = await rg.agent_token(tenant.tenant.id)
        ag = await agent(rg.url, token)
        try:
            inbox = await hub.ctx.channels.add(
                tenant_id=tenant.tenant.id, kind=Channel.YOUTUBE, name="Shop YouTube",
                credentials={"client_id": fake.client_id, "client_secret": fake.client_secret,
                             "refresh_token": fake.refresh_token},
                settings={"address": OWNER_CHANNEL, "api_base": fake.api_base, "token_url": fake.token_url,
                          "poll_interval": 0.1, "reply_sweep_every": 1},
            )
            await yt.refresh()  # pick up the new inbox now instead of at the next refresh

            await ag.wait_for(lambda: ag.of("conversation:created"))
            conv = ag.of("conversation:created")[0]
            assert conv["channel"] == "youtube"
            ack = await ag.call("conversation:watch", {"conversation_id": conv["id"]})
            assert ack["ok"], ack
            await ag.wait_for(lambda: ag.messages(conv["id"]))
            assert ag.messages(conv["id"])[0]["text"] == "Đơn hàng của tôi chưa tới?"

            # a reply in the same thread arrives live in the same conversation
            fake.add_reply(tid, "Mã đơn 12345", author="UCbuyer", name="@buyer")
            await ag.wait_for(lambda: any(m["text"] == "Mã đơn 12345" for m in ag.messages(conv["id"])))

            sent = await ag.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                  "text": "Chào bạn, shop kiểm tra ngay."})
            assert sent["ok"], sent
            mid = sent["message"]["id"]

            def delivered() -> bool:
                return any(m["id"] == mid and (m.get("delivery") or {}).get("state") == "sent"
                           for m in ag.of("message:updated"))

            await ag.wait_for(delivered, timeout=10)
            assert fake.inserts == [{"snippet": {"parentId": tid, "textOriginal": "Chào bạn, shop kiểm tra ngay."}}]
            poller = yt.poller(inbox.id)
            assert poller is not None
            polls = poller.stats.polls
            await until(lambda: poller.stats.polls >= polls + 3)  # two more whole polls:
            texts = [m["text"] for m in ag.messages(conv["id"])]  # our own reply is not imported back
            assert texts.count("Chào bạn, shop kiểm tra ngay.") == 1
            assert len(fake.inserts) == 1
            assert poller.stats.errors == 0

            await hub.ctx.channels.set_enabled(tenant.tenant.id, inbox.id, False)
            await yt.refresh()  # a disabled inbox stops polling
            assert yt.poller(inbox.id) is None
        finally:
            await ag.close()
