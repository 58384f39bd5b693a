from __future__ import annotations

from dataclasses import replace

import pytest

from connectors.base import Attachment, OutboundMessage, PermanentError, TransientError
from connectors.youtube import YouTubeConfig
from gateway.core.domain import Channel
from tests.connectors.youtube.conftest import Sink
from tests.connectors.youtube.fake_youtube import OWNER_CHANNEL, FakeYouTube


def reply(thread_id: str, text: str = "Cảm ơn bạn, shop kiểm tra ngay!", **meta) -> OutboundMessage:
    return OutboundMessage(
        tenant_id="t1",
        channel=Channel.YOUTUBE,
        conversation_id="conv1",
        message_id="msg1",
        external_thread_id=thread_id,
        recipient_id="UCviewerChannel000000001",
        text=text,
        meta=meta,
    )


async def test_reply_is_comments_insert_with_parent_id(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "Đơn hàng của tôi chưa tới?")
    conn = make_connector()
    res = await conn.send(reply(tid))

    assert fake.inserts == [{"snippet": {"parentId": tid, "textOriginal": "Cảm ơn bạn, shop kiểm tra ngay!"}}]
    posts = fake.calls("comments", "POST")
    assert posts == [{"part": "snippet"}]
    assert res.external_message_id is not None and res.external_message_id.startswith(tid + ".")
    assert res.meta["parent_id"] == tid
    # our reply shows up in the thread but is never imported as a customer message
    sink = Sink()
    conn._sink = sink
    await conn.poll_once()
    assert sink.ids == [tid]
    assert fake.threads[tid].replies[0].author_channel_id == OWNER_CHANNEL


async def test_a_reply_with_a_file_fails_without_calling_youtube(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "Cho xem hoá đơn?")
    conn = make_connector()
    msg = replace(reply(tid), attachments=(Attachment(kind="file", url="/api/v1/uploads/x?sig=y", path="/tmp/x"),))
    with pytest.raises(PermanentError, match="text only"):
        await conn.send(msg)
    assert fake.inserts == []


async def test_reply_to_a_reply_uses_parent_override(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "top")
    conn = make_connector()
    await conn.send(reply(tid, parent_id=tid))
    assert fake.inserts[0]["snippet"]["parentId"] == tid


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, "commentsDisabled"), (403, "forbidden"), (404, "parentCommentNotFound"), (400, "commentTextTooLong"),
     (400, "operationNotSupported"), (403, "ineligibleAccount")],
)
async def test_permanent_errors(fake: FakeYouTube, make_connector, status, reason):
    tid = fake.add_thread("vid00000001", "top")
    fake.fail("comments", status, reason, method="POST")
    conn = make_connector()
    with pytest.raises(PermanentError, match=reason):
        await conn.send(reply(tid))
    assert fake.inserts == []


async def test_unknown_parent_is_permanent(fake: FakeYouTube, make_connector):
    conn = make_connector()
    with pytest.raises(PermanentError, match="parentCommentNotFound"):
        await conn.send(reply("UgxNoSuchThread"))


async def test_comments_disabled_video_is_permanent(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "top")
    fake.comments_disabled.add("vid00000001")
    with pytest.raises(PermanentError, match="commentsDisabled"):
        await make_connector().send(reply(tid))


async def test_quota_on_send_is_transient_until_pacific_midnight(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "top")
    fake.fail("comments", 403, "quotaExceeded", method="POST")
    conn = make_connector(quota_backoff=None)
    with pytest.raises(TransientError) as info:
        await conn.send(reply(tid))
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 25 * 3600
    await conn.send(reply(tid))  # quota back: goes out once
    assert len(fake.inserts) == 1


@pytest.mark.parametrize(("status", "reason"), [(403, "rateLimitExceeded"), (429, ""), (500, "backendError")])
async def test_rate_and_5xx_on_send_are_transient(fake: FakeYouTube, make_connector, status, reason):
    tid = fake.add_thread("vid00000001", "top")
    fake.fail("comments", status, reason, method="POST", headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as info:
        await make_connector().send(reply(tid))
    assert info.value.retry_after == 7.0


async def test_processing_failure_retried_once(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "top")
    fake.fail("comments", 400, "processingFailure", method="POST")
    conn = make_connector()
    await conn.send(reply(tid))
    assert len(fake.inserts) == 1
    fake.fail("comments", 400, "processingFailure", method="POST", times=2)
    with pytest.raises(PermanentError, match="processingFailure"):
        await conn.send(reply(tid))


async def test_send_refreshes_expired_token_once(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "top")
    conn = make_connector()
    await conn.send(reply(tid))
    fake.expire_tokens()
    await conn.send(reply(tid, "lần hai"))
    assert len(fake.inserts) == 2 and conn.tokens.refreshes == 2


async def test_revoked_grant_on_send_is_permanent_and_outage_transient(fake: FakeYouTube, make_connector):
    tid = fake.add_thread("vid00000001", "top")
    fake.revoked = True
    with pytest.raises(PermanentError, match="invalid_grant"):
        await make_connector().send(reply(tid))
    fake.revoked = False
    fake.fail("token", 503, "temporarily_unavailable")
    with pytest.raises(TransientError):
        await make_connector().send(reply(tid))


async def test_unreachable_api_is_transient(make_connector):
    conn = make_connector(api_base="http://127.0.0.1:9/youtube/v3", token_url="http://127.0.0.1:9/token")
    with pytest.raises(TransientError):
        await conn.send(reply("Ugx1"))


async def test_empty_reply_is_permanent(fake: FakeYouTube, make_connector):
    with pytest.raises(PermanentError):
        await make_connector().send(reply("Ugx1", "   "))
    assert fake.requests == []


def test_config_requires_a_source() -> None:
    with pytest.raises(ValueError):
        YouTubeConfig(tenant_id="t", client_id="c", client_secret="s", refresh_token="r")
