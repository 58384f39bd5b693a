from __future__ import annotations

import time

from connectors.zalo import ZaloAccount
from gateway.core.domain import Channel
from tests.connectors.zalo import fake_zalo as fz
from tests.connectors.zalo.conftest import make_account


async def test_signed_text_event(harness_factory) -> None:
    h = await harness_factory(clock=lambda: 1751272409.784 + 5)  # event time + 5 s
    ev = fz.event_text("Xin chào, shop ơi", msg_id="a1b2c3d4e5f6a7b8c9d0", ts="1751272409784")
    raw, headers = fz.signed(ev)
    r = await h.post(raw, headers)
    assert r.status == 200
    [m] = h.sink.received
    assert m.tenant_id == "t1" and m.channel == Channel.ZALO and m.channel_id == "ch1"
    assert m.external_thread_id == f"{fz.OA_ID}:{fz.USER_ID}"
    assert m.external_author_id == fz.USER_ID
    assert m.external_message_id == "a1b2c3d4e5f6a7b8c9d0"
    assert m.text == "Xin chào, shop ơi"
    assert m.sent_at == 1751272409.784
    assert m.attachments == ()
    assert m.meta["user_id_by_app"] == "5000000000000000001"


async def test_signed_image_event(harness_factory) -> None:
    h = await harness_factory()
    raw, headers = fz.signed(fz.event_image("https://cdn.example/p.jpg", caption="ảnh", msg_id="img1"))
    r = await h.post(raw, headers)
    assert r.status == 200
    [m] = h.sink.received
    assert m.external_message_id == "img1" and m.text == "ảnh"
    [a] = m.attachments
    assert a.kind == "image" and a.url == "https://cdn.example/p.jpg"


async def test_bad_or_missing_signature_stores_nothing(harness_factory) -> None:
    h = await harness_factory()
    raw, headers = fz.signed(fz.event_text("hi"))
    for bad in (
        {"Content-Type": "application/json"},  # missing
        {**headers, "X-ZEvent-Signature": "mac=" + "0" * 64},
        {**headers, "X-ZEvent-Signature": fz.sign(raw, "1", oa_secret=fz.OA_SECRET)},  # wrong timestamp
    ):
        assert (await h.post(raw, bad)).status == 401
    _, wrong_secret = fz.signed(fz.event_text("hi"), oa_secret="not-the-secret")
    assert (await h.post(raw, wrong_secret)).status == 401
    # body tampered after signing
    assert (await h.post(raw.replace(b"hi", b"ho"), headers)).status == 401
    # unknown app in the URL
    assert (await h.post(raw, headers, app_id="999")).status == 401
    assert h.sink.received == []


async def test_stale_or_future_timestamp_rejected(harness_factory) -> None:
    h = await harness_factory()
    old = str(int((time.time() - 7 * 3600) * 1000))
    future = str(int((time.time() + 3600) * 1000))
    for ts in (old, future):
        raw, headers = fz.signed(fz.event_text("hi", ts=ts))
        assert (await h.post(raw, headers)).status == 403
    assert h.sink.received == []


async def test_malformed_json_after_valid_signature_is_400(harness_factory) -> None:
    h = await harness_factory()
    ts = fz.now_ms()
    raw = b'{"app_id":"1234567890123456789","timestamp":"' + ts.encode() + b'","event_name":'
    assert (await h.post(raw, {"X-ZEvent-Signature": fz.sign(raw, ts)})).status == 400
    # valid JSON but a message event without msg_id
    ev = fz.event_text("x")
    del ev["message"]["msg_id"]
    raw, headers = fz.signed(ev)
    assert (await h.post(raw, headers)).status == 400
    assert h.sink.received == []


async def test_body_size_limit(harness_factory) -> None:
    h = await harness_factory()
    raw, headers = fz.signed(fz.event_text("x" * 300_000))
    assert (await h.post(raw, headers)).status == 413
    assert h.sink.received == []


async def test_duplicate_msg_id_stored_once(harness_factory) -> None:
    h = await harness_factory()
    raw, headers = fz.signed(fz.event_text("same", msg_id="dup1"))
    for _ in range(3):  # Zalo retries deliver the identical signed body
        assert (await h.post(raw, headers)).status == 200
    assert len(h.sink.stored) == 1


async def test_other_events_acknowledged_and_ignored(harness_factory) -> None:
    h = await harness_factory()
    ts = fz.now_ms()
    others = [
        {
            "app_id": fz.APP_ID,
            "oa_id": fz.OA_ID,
            "user_id_by_app": "5",
            "event_name": "follow",
            "timestamp": ts,
            "source": "oa_profile",
            "follower": {"id": fz.USER_ID},
        },
        {
            "app_id": fz.APP_ID,
            "user_id_by_app": "5",
            "event_name": "oa_send_text",
            "timestamp": ts,
            "sender": {"id": fz.OA_ID},
            "recipient": {"id": fz.USER_ID},
            "message": {"msg_id": "m", "text": "echo"},
        },
        {
            "app_id": fz.APP_ID,
            "user_id_by_app": "5",
            "event_name": "user_seen_message",
            "timestamp": ts,
            "sender": {"id": fz.OA_ID},
            "recipient": {"id": fz.USER_ID},
            "message": {"msg_ids": ["m"]},
        },
        fz.event_text("to another OA", oa="4000000000000000999"),
    ]
    for ev in others:
        raw, headers = fz.signed(ev)
        r = await h.post(raw, headers)
        assert r.status == 200
    assert h.sink.received == []


async def test_two_oas_of_one_app_route_to_their_tenants(fake, harness_factory) -> None:
    other_oa = "4000000000000000002"
    h = await harness_factory()
    h.connector.add_account(make_account(fake, tenant_id="t2", oa_id=other_oa, channel_id="ch2"))
    for oa in (fz.OA_ID, other_oa):
        raw, headers = fz.signed(fz.event_text(f"to {oa}", oa=oa))
        assert (await h.post(raw, headers)).status == 200
    assert [(m.tenant_id, m.channel_id, m.external_thread_id) for m in h.sink.received] == [
        ("t1", "ch1", f"{fz.OA_ID}:{fz.USER_ID}"),
        ("t2", "ch2", f"{other_oa}:{fz.USER_ID}"),
    ]


async def test_inbox_added_later_is_loaded_on_first_miss(fake, harness_factory) -> None:
    accounts: list[ZaloAccount] = []

    async def load():
        return list(accounts)

    h = await harness_factory(load_accounts=load, reload_interval=0.0)
    raw, headers = fz.signed(fz.event_text("early"))
    assert (await h.post(raw, headers)).status == 401  # start() loaded an empty list: app unknown
    accounts.append(make_account(fake))
    assert (await h.post(raw, headers)).status == 200
    assert len(h.sink.received) == 1
