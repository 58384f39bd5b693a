"""Outbound: Send API and comment replies against the fake Graph API; error mapping."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.base import Attachment, OutboundMessage, PermanentError, SendResult, TransientError
from connectors.facebook import FacebookConnector, FacebookOptions, StaticDirectory
from gateway.core.domain import Channel
from tests.connectors.facebook.conftest import OTHER_PAGE_TOKEN, PAGE_TOKEN, pages
from tests.connectors.facebook.payloads import COMMENT_ID, OTHER_PAGE_ID, PAGE_ID, PSID


def out(thread: str, text: str = "Chào anh, đơn #42 đã gửi hôm nay.", *, tenant: str = "t1",
        channel_id: str | None = "ch1", attachments: tuple[Attachment, ...] = ()) -> OutboundMessage:
    return OutboundMessage(tenant_id=tenant, channel=Channel.FACEBOOK, conversation_id="c1", message_id="msg1",
                           external_thread_id=thread, recipient_id=PSID, text=text, attachments=attachments,
                           channel_id=channel_id)


MESSENGER = f"{PAGE_ID}:{PSID}"
COMMENTS = f"{PAGE_ID}:comment:{COMMENT_ID}"


async def test_send_api_success(connector, graph):
    res = await connector.send(out(MESSENGER))
    assert isinstance(res, SendResult)
    (call,) = graph.calls
    assert call.method == "POST" and call.path == "/v23.0/me/messages"
    assert call.query == {"access_token": PAGE_TOKEN}
    assert call.headers["Content-Type"].startswith("application/json")
    assert call.body == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                         "message": {"text": "Chào anh, đơn #42 đã gửi hôm nay."}}
    assert res.external_message_id == call.response["message_id"]
    assert call.response["recipient_id"] == PSID


async def test_send_with_attachment_makes_one_call_each(connector, graph):
    res = await connector.send(out(MESSENGER, "See invoice", attachments=(
        Attachment(kind="file", url="https://files.example.vn/invoice.pdf"),)))
    text_call, att_call = graph.sends()
    assert text_call.body["message"] == {"text": "See invoice"}
    assert att_call.body["message"] == {"attachment": {"type": "file", "payload": {
        "url": "https://files.example.vn/invoice.pdf", "is_reusable": False}}}
    assert res.meta["message_ids"] == [text_call.response["message_id"], att_call.response["message_id"]]


async def test_an_attachment_meta_cannot_download_fails_before_any_call(connector, graph):
    # without PUBLIC_URL an upload's link is relative to the gateway: Meta could not fetch it
    with pytest.raises(PermanentError, match="PUBLIC_URL"):
        await connector.send(out(MESSENGER, "See invoice", attachments=(
            Attachment(kind="file", url="/api/v1/uploads/abc?sig=x", path="/tmp/x"),)))
    assert graph.sends() == []


async def test_comment_reply(connector, graph):
    res = await connector.send(out(COMMENTS, "Cảm ơn chị, shop đã nhắn tin riêng."))
    (call,) = graph.calls
    assert call.path == f"/v23.0/{COMMENT_ID}/comments"
    assert call.query == {"access_token": PAGE_TOKEN}
    assert call.body == {"message": "Cảm ơn chị, shop đã nhắn tin riêng."}
    assert res.external_message_id == call.response["id"]
    assert res.external_message_id.startswith("712750021053074_")


@pytest.mark.parametrize("kind", ["rate_limit", "app_rate_limit"])
async def test_rate_limit_is_transient_with_hint(connector, graph, kind):
    graph.fail_next(1, kind, retry_minutes=3)
    with pytest.raises(TransientError) as ei:
        await connector.send(out(MESSENGER))
    expected = 180.0 if kind == "rate_limit" else 60.0  # BUC header estimate (min) vs configured default
    assert ei.value.retry_after == expected
    assert "613" in str(ei.value) or "code 4" in str(ei.value)
    assert PAGE_TOKEN not in str(ei.value)
    # next attempt goes through
    assert (await connector.send(out(MESSENGER))).external_message_id


@pytest.mark.parametrize("kind", ["server", "bad_gateway", "temporary"])
async def test_server_errors_are_transient(connector, graph, kind):
    graph.fail_next(1, kind)
    with pytest.raises(TransientError) as ei:
        await connector.send(out(MESSENGER))
    assert ei.value.retry_after == 5.0
    assert graph.sends() == []


async def test_fail_n_times_then_succeed(connector, graph):
    graph.fail_next(2, "server")
    for _ in range(2):
        with pytest.raises(TransientError):
            await connector.send(out(MESSENGER))
    await connector.send(out(MESSENGER))
    assert [c.status for c in graph.calls] == [500, 500, 200]
    assert len(graph.sends()) == 1


async def test_timeout_is_transient(graph, sink):
    c = FacebookConnector(directory=StaticDirectory(pages(graph.url)), options=FacebookOptions(total_timeout=0.3))
    await c.start(sink)
    try:
        graph.fail_next(1, "timeout", delay=1.0)
        with pytest.raises(TransientError) as ei:
            await c.send(out(MESSENGER))
        assert PAGE_TOKEN not in str(ei.value)
    finally:
        await c.stop()


async def test_unreachable_graph_is_transient(sink):
    c = FacebookConnector(directory=StaticDirectory(pages("http://127.0.0.1:9")))
    await c.start(sink)
    try:
        with pytest.raises(TransientError):
            await c.send(out(MESSENGER))
    finally:
        await c.stop()


async def test_expired_token_190_is_permanent(connector, graph):
    graph.expired.add(PAGE_TOKEN)
    with pytest.raises(PermanentError) as ei:
        await connector.send(out(MESSENGER))
    assert "190/463" in str(ei.value)
    assert PAGE_TOKEN not in str(ei.value)


async def test_invalid_token_is_permanent(connector, graph):
    del graph.tokens[PAGE_TOKEN]
    with pytest.raises(PermanentError, match="code 190"):
        await connector.send(out(COMMENTS))


async def test_permission_and_recipient_errors_are_permanent(connector, graph):
    graph.psids = {"someone-else"}
    with pytest.raises(PermanentError, match="100/2018001"):
        await connector.send(out(MESSENGER))
    graph.psids = None
    graph.unavailable.add(PSID)
    with pytest.raises(PermanentError, match="551/1545041"):
        await connector.send(out(MESSENGER))
    graph.unavailable.clear()
    graph.window_closed.add(PSID)
    with pytest.raises(PermanentError, match="10/2018278"):
        await connector.send(out(MESSENGER))
    graph.comments = set()
    with pytest.raises(PermanentError, match="100/33"):
        await connector.send(out(COMMENTS))
    assert graph.sends() == [] and graph.comment_replies() == []


async def test_local_validation_is_permanent_without_calling_graph(connector, graph):
    with pytest.raises(PermanentError):
        await connector.send(out(MESSENGER, "x" * 2000))
    with pytest.raises(PermanentError):
        await connector.send(out(MESSENGER, ""))
    with pytest.raises(PermanentError):
        await connector.send(out("not-a-thread"))
    with pytest.raises(PermanentError):  # tenant t1 does not own the other Page
        await connector.send(out(f"{OTHER_PAGE_ID}:{PSID}", channel_id=None))
    with pytest.raises(PermanentError):
        await connector.send(out(COMMENTS, attachments=(Attachment(kind="image", url="https://x/y.png"),)))
    assert graph.calls == []


async def test_other_tenant_page_uses_its_own_token(connector, graph):
    await connector.send(out(f"{OTHER_PAGE_ID}:{PSID}", tenant="t2", channel_id="ch2"))
    (call,) = graph.calls
    assert call.query == {"access_token": OTHER_PAGE_TOKEN}


async def test_send_before_start_is_transient(graph):
    c = FacebookConnector(directory=StaticDirectory(pages(graph.url)))
    with pytest.raises(TransientError):
        await c.send(out(MESSENGER))
    await c.stop()  # stop without start is fine


async def test_a_retry_after_a_failed_file_sends_only_the_file(connector, graph):
    """Item 4 of issue 33: the text was accepted, the file's send failed: each accepted part was
    recorded, so the retry sends the file alone and the customer gets the text once."""
    recorded: dict[str, str] = {}

    async def on_part(part: str, mid: str) -> None:
        recorded[part] = mid
        if part == "text":
            graph.fail_next(1, "server")  # the next call, the file's, fails

    msg = dataclasses.replace(out(MESSENGER, "See invoice", attachments=(
        Attachment(kind="file", url="https://files.example.vn/invoice.pdf"),)), on_part=on_part)
    with pytest.raises(TransientError):
        await connector.send(msg)
    assert list(recorded) == ["text"]
    res = await connector.send(dataclasses.replace(msg, attempt=2, delivered=dict(recorded)))
    text_call, att_call = graph.sends()
    assert "text" in text_call.body["message"] and "attachment" in att_call.body["message"]
    assert res.meta["message_ids"] == [recorded["text"], att_call.response["message_id"]]
    assert recorded == {"text": text_call.response["message_id"], "attachment:0": att_call.response["message_id"]}
