"""Webhook side of the Facebook connector: handshake, signature, Messenger and feed events → sink."""

from __future__ import annotations

import json

from connectors.base import Attachment
from gateway.core.domain import Channel
from tests.connectors.facebook.conftest import APP_SECRET, OTHER_APP_SECRET, VERIFY_TOKEN
from tests.connectors.facebook.fake_graph import encode_payload, sign, signed_headers
from tests.connectors.facebook.payloads import (
    COMMENT_ID,
    OTHER_PAGE_ID,
    PAGE_ID,
    POST_ID,
    PSID,
    attachment_event,
    comment_value,
    delivery,
    delivery_event,
    echo_event,
    feed_entry,
    messaging_entry,
    read_event,
    text_event,
)

PATH = "/webhooks/facebook"


# -- GET verification handshake ------------------------------------------------------------------


async def test_handshake_echoes_challenge(client):
    r = await client.get(PATH, params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                       "hub.verify_token": VERIFY_TOKEN})
    assert r.status == 200
    assert await r.text() == "1158201444"
    assert r.content_type == "text/plain"


async def test_handshake_rejects_wrong_token_mode_or_missing_challenge(client):
    bad = [
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "nope"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ]
    for params in bad:
        r = await client.get(PATH, params=params)
        assert r.status == 403, params
        assert "1" not in await r.text()


# -- signature -------------------------------------------------------------------------------------


async def test_bad_or_missing_signature_is_401_and_nothing_stored(client, sink):
    body = encode_payload(delivery(messaging_entry(text_event("m_1", "hi"))))
    cases = [
        {},  # missing
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": sign("wrong-secret", body)},
        {"X-Hub-Signature-256": sign(APP_SECRET, body)[len("sha256="):]},  # no prefix
        {"X-Hub-Signature": signed_headers(APP_SECRET, body)["X-Hub-Signature"]},  # legacy SHA1 only
    ]
    for headers in cases:
        r = await client.post(PATH, data=body, headers={"Content-Type": "application/json", **headers})
        assert r.status == 401, headers
    # signature over the body, then the body tampered with
    tampered = body.replace(b"hi", b"ho")
    r = await client.post(PATH, data=tampered, headers=signed_headers(APP_SECRET, body))
    assert r.status == 401
    assert sink.calls == []


async def test_signature_is_over_raw_escaped_bytes(client, sink):
    """Meta sends non-ASCII as \\u escapes and signs those bytes: we must verify the raw body, not a
    re-serialisation, and still decode the Vietnamese text correctly."""
    payload = delivery(messaging_entry(text_event("m_vi", "Xin chào, đơn hàng #42 ở đâu? https://x.vn/a")))
    body = encode_payload(payload)
    assert b"\\u00e0" in body and b"\\/" in body
    r = await client.post(PATH, data=body, headers=signed_headers(APP_SECRET, body))
    assert r.status == 200
    assert sink.messages[0].text == "Xin chào, đơn hàng #42 ở đâu? https://x.vn/a"
    # the same JSON signed in its decoded UTF-8 form does not validate against the escaped body
    utf8 = json.dumps(payload, ensure_ascii=False).encode()
    r = await client.post(PATH, data=body, headers={"X-Hub-Signature-256": sign(APP_SECRET, utf8)})
    assert r.status == 401


async def test_malformed_json_after_valid_signature_is_400(client, sink):
    for body in (b'{"object":"page","entry":[', b"[1,2]", b'{"object":"page","entry":{}}', b"\xff\xfe"):
        r = await client.post(PATH, data=body, headers=signed_headers(APP_SECRET, body))
        assert r.status == 400, body
    assert sink.calls == []


async def test_oversized_body_is_413(client, sink):
    body = encode_payload(delivery(messaging_entry(text_event("m_big", "x" * 70_000))))
    r = await client.post(PATH, data=body, headers=signed_headers(APP_SECRET, body))
    assert r.status == 413
    assert sink.calls == []


async def test_sink_failure_answers_500_so_meta_retries(client, sink, post_signed):
    sink.fail = True
    r = await post_signed(delivery(messaging_entry(text_event("m_1", "hi"))))
    assert r.status == 500
    sink.fail = False
    r = await post_signed(delivery(messaging_entry(text_event("m_1", "hi"))))
    assert r.status == 200
    assert len(sink.messages) == 1


async def test_app_can_only_speak_for_its_own_pages(client, sink, post_signed):
    """Tenant B's own app secret must not be able to inject events for tenant A's Page."""
    r = await post_signed(delivery(messaging_entry(text_event("m_forged", "hi"), page_id=PAGE_ID)),
                          secret=OTHER_APP_SECRET)
    assert r.status == 200
    assert sink.calls == []
    r = await post_signed(delivery(messaging_entry(text_event("m_b", "hi", page_id=OTHER_PAGE_ID),
                                                   page_id=OTHER_PAGE_ID)), secret=OTHER_APP_SECRET)
    assert r.status == 200
    assert [(m.tenant_id, m.channel_id) for m in sink.calls] == [("t2", "ch2")]


# -- Messenger -------------------------------------------------------------------------------------


async def test_messenger_text_and_attachments(client, sink, post_signed):
    payload = delivery(
        messaging_entry(text_event("m_AbC123", "Hi, order #42 hasn't arrived", reply_to={"mid": "m_Prev99"},
                                   quick_reply={"payload": "ORDER_HELP"})),
        messaging_entry(attachment_event("m_AbC124", ("image", "https://scontent.xx.fbcdn.net/v/abc.jpg?oh=1"),
                                         ("file", "https://cdn.fbsbx.com/v/invoice.pdf"))),
    )
    r = await post_signed(payload)
    assert r.status == 200
    assert (await r.json())["received"] == 2
    text, media = sink.messages
    assert text.tenant_id == "t1" and text.channel == Channel.FACEBOOK and text.channel_id == "ch1"
    assert text.external_thread_id == f"{PAGE_ID}:{PSID}"
    assert text.external_author_id == PSID
    assert text.external_message_id == "m_AbC123"
    assert text.text == "Hi, order #42 hasn't arrived"
    assert text.sent_at == 1718000000.123
    assert text.attachments == ()
    assert text.meta["reply_to_mid"] == "m_Prev99" and text.meta["quick_reply_payload"] == "ORDER_HELP"
    assert media.external_message_id == "m_AbC124"
    assert media.external_thread_id == text.external_thread_id
    assert media.text == ""
    assert media.attachments == (
        Attachment(kind="image", url="https://scontent.xx.fbcdn.net/v/abc.jpg?oh=1"),
        Attachment(kind="file", url="https://cdn.fbsbx.com/v/invoice.pdf"),
    )


async def test_other_attachment_types_become_text(client, sink, post_signed):
    ev = {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1718000000300,
          "message": {"mid": "m_fb", "attachments": [{"type": "fallback", "title": "Shop sale",
                                                      "url": "https://l.facebook.com/x", "payload": None}]}}
    await post_signed(delivery(messaging_entry(ev)))
    (m,) = sink.messages
    assert m.text == "[fallback] Shop sale"
    assert m.attachments == ()


async def test_retried_webhook_same_mid_is_stored_once(client, sink, post_signed):
    payload = delivery(messaging_entry(text_event("m_dup", "are you there?")))
    for _ in range(3):
        assert (await post_signed(payload)).status == 200
    assert len(sink.calls) == 3  # each retry is handed over with the same dedup key...
    assert len(sink.messages) == 1  # ...so the store keeps one
    assert {m.external_message_id for m in sink.calls} == {"m_dup"}


async def test_echo_delivery_read_and_unknown_page_ignored(client, sink, post_signed):
    payload = delivery(
        messaging_entry(echo_event("m_Echo1", "We're on it"), delivery_event("m_AbC123"), read_event()),
        messaging_entry(text_event("m_other", "hi", page_id="999"), page_id="999"),
        {"id": PAGE_ID, "time": 1, "standby": [text_event("m_standby", "handed over")]},
    )
    r = await post_signed(payload)
    assert r.status == 200
    assert sink.calls == []


async def test_non_page_object_is_acknowledged_and_ignored(client, sink, post_signed):
    r = await post_signed({"object": "instagram", "entry": [{"id": PAGE_ID, "messaging": []}]})
    assert r.status == 200
    assert sink.calls == []


async def test_postback_becomes_message(client, sink, post_signed):
    ev = {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1718000000700,
          "postback": {"mid": "m_pb1", "title": "Get Started", "payload": "GET_STARTED"}}
    await post_signed(delivery(messaging_entry(ev)))
    (m,) = sink.messages
    assert (m.external_message_id, m.text, m.meta["postback_payload"]) == ("m_pb1", "Get Started", "GET_STARTED")


# -- Page feed comments ------------------------------------------------------------------------------


async def test_comment_add_edit_remove(client, sink, post_signed):
    thread = f"{PAGE_ID}:comment:{COMMENT_ID}"
    await post_signed(delivery(feed_entry(comment_value("add"))))
    await post_signed(delivery(feed_entry(comment_value("edited", message="Đơn #42 của tôi đâu?"))))
    await post_signed(delivery(feed_entry(comment_value("edited", message="Đơn #42 của tôi đâu?"))))  # retry
    await post_signed(delivery(feed_entry(comment_value("remove", message=None))))
    add, edit, remove = sink.messages
    assert add.external_thread_id == thread
    assert add.external_message_id == COMMENT_ID
    assert add.external_author_id == PSID and add.author_name == "Nguyễn Văn An"
    assert add.text == "Đơn hàng của tôi đâu?"
    assert add.sent_at == 1707211876.0
    assert add.meta["post_id"] == POST_ID and add.meta["fb_kind"] == "comment"
    assert add.meta["post_permalink_url"] == "https://www.facebook.com/shop/posts/pfbid0abc"
    assert edit.external_thread_id == thread
    assert edit.external_message_id.startswith(f"{COMMENT_ID}:edited:")
    assert edit.text == "[edited] Đơn #42 của tôi đâu?"
    assert edit.meta["edit_of"] == COMMENT_ID
    assert remove.external_thread_id == thread
    assert remove.external_message_id == f"{COMMENT_ID}:removed"
    assert remove.text == "[comment removed]" and remove.meta["system"] is True


async def test_reply_chain_lands_in_top_level_comment_thread(client, sink, post_signed):
    reply_id = "712750021053074_1063825000000077"
    value = comment_value("add", comment_id=reply_id, parent_id=COMMENT_ID, message="+1, mine too",
                          created_time="2024-02-06T09:31:16+0000")
    await post_signed(delivery(feed_entry(value)))
    (m,) = sink.messages
    assert m.external_thread_id == f"{PAGE_ID}:comment:{COMMENT_ID}"
    assert m.external_message_id == reply_id
    assert m.sent_at == 1707211876.0


async def test_page_own_comments_and_other_feed_items_ignored(client, sink, post_signed):
    await post_signed(delivery(feed_entry(
        comment_value("add", from_id=PAGE_ID, name="Shop"),  # our own reply echoing back
        {"item": "reaction", "verb": "add", "post_id": POST_ID, "from": {"id": PSID}, "reaction_type": "like"},
        {"item": "status", "verb": "add", "post_id": POST_ID, "message": "new post"},
        comment_value("hide"),
    )))
    assert sink.calls == []
