from __future__ import annotations

import asyncio

import pytest

from connectors.base import Attachment, OutboundMessage, PermanentError, TransientError
from connectors.zalo import ZaloTokens
from connectors.zalo.api import RefreshError
from gateway.core.domain import Channel
from tests.connectors.zalo import fake_zalo as fz
from tests.connectors.zalo.conftest import make_account


def out(text: str = "Chào bạn, shop có thể giúp gì?", user: str = fz.USER_ID, **kw) -> OutboundMessage:
    return OutboundMessage(
        tenant_id=kw.pop("tenant_id", "t1"),
        channel=Channel.ZALO,
        conversation_id="c1",
        message_id="m1",
        external_thread_id=f"{fz.OA_ID}:{user}",
        recipient_id=user,
        text=text,
        **kw,
    )


async def test_send_text_success(fake, harness_factory) -> None:
    h = await harness_factory()
    res = await h.connector.send(out(meta={"quote_message_id": "a1b2"}))
    [sent] = fake.sent
    assert res.external_message_id == sent["message_id"]
    assert sent["recipient"] == {"user_id": fz.USER_ID}
    assert sent["message"] == {"text": "Chào bạn, shop có thể giúp gì?", "quote_message_id": "a1b2"}
    assert h.saved.pairs == []  # no refresh needed


@pytest.mark.parametrize("code", [-216, -220])
async def test_expired_token_refresh_then_retry(fake, harness_factory, code) -> None:
    at, rt, exp = fake.issue()
    if code == -220:
        fake.expire(at)  # the fake answers -220 for an expired token, -216 for an unknown one
    else:
        fake.access_tokens.pop(at)
    h = await harness_factory(make_account(fake, ZaloTokens(at, rt, exp)), background_refresh=False)
    res = await h.connector.send(out())
    assert res.external_message_id == fake.sent[0]["message_id"]
    assert fake.refresh_calls == 1 and fake.send_calls == 2
    [pair] = h.saved.pairs
    assert pair.refresh_token != rt and pair.refresh_token in fake.refresh_tokens
    assert pair.access_token in fake.access_tokens and rt in fake.spent_refresh_tokens
    assert h.connector.token_manager(fz.OA_ID).tokens == pair


async def test_token_still_rejected_after_refresh_is_permanent(fake, harness_factory) -> None:
    h = await harness_factory(background_refresh=False)
    fake.fail_next(2, code=-216)
    with pytest.raises(PermanentError):
        await h.connector.send(out())
    assert fake.refresh_calls == 1


async def test_concurrent_sends_refresh_once(fake, harness_factory) -> None:
    at, rt, exp = fake.issue()
    fake.expire(at)
    h = await harness_factory(make_account(fake, ZaloTokens(at, rt, exp + 10**6)), background_refresh=False)
    results = await asyncio.gather(*(h.connector.send(out(f"msg {i}")) for i in range(5)))
    assert len({r.external_message_id for r in results}) == 5
    assert fake.refresh_calls == 1 and len(h.saved.pairs) == 1
    assert fake.refresh_errors == []  # the spent refresh token was never re-sent


async def test_locally_expired_token_refreshed_before_sending(fake, harness_factory) -> None:
    at, rt, _ = fake.issue()
    h = await harness_factory(make_account(fake, ZaloTokens(at, rt, 0.0)), background_refresh=False)
    await h.connector.send(out())
    assert fake.refresh_calls == 1 and fake.send_calls == 1
    assert fake.sent and len(h.saved.pairs) == 1


async def test_new_tokens_persisted_before_use(fake, harness_factory) -> None:
    at, rt, _ = fake.issue()
    h = await harness_factory(make_account(fake, ZaloTokens(at, rt, 0.0)), background_refresh=False)
    h.saved.fail = 1  # the credential store is down for the first write
    with pytest.raises(TransientError):
        await h.connector.send(out())
    assert fake.refresh_calls == 1 and fake.send_calls == 0  # not used while unsaved
    await h.connector.send(out())  # store is back: the pair is saved, then used; no second refresh
    assert fake.refresh_calls == 1 and fake.send_calls == 1 and len(h.saved.pairs) == 1
    assert h.saved.pairs[0].refresh_token in fake.refresh_tokens


async def test_reused_refresh_token_is_refused(fake, harness_factory) -> None:
    at, rt, _ = fake.issue()
    fake.refresh_tokens.discard(rt)
    fake.spent_refresh_tokens.add(rt)
    h = await harness_factory(make_account(fake, ZaloTokens(at, rt, 0.0)), background_refresh=False)
    with pytest.raises(RefreshError) as ei:
        await h.connector.send(out())
    assert isinstance(ei.value, PermanentError) and ei.value.code == -14014
    assert fake.send_calls == 0 and h.saved.pairs == []


@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [({"code": -32}, 60.0), ({"code": -211}, 3600.0), ({"status": 503}, None), ({"status": 429}, None)],
)
async def test_rate_limit_quota_and_5xx_are_transient(fake, harness_factory, failure, retry_after) -> None:
    h = await harness_factory(background_refresh=False)
    fake.fail_next(1, **failure)
    with pytest.raises(TransientError) as ei:
        await h.connector.send(out())
    assert ei.value.retry_after == retry_after
    assert (await h.connector.send(out())).external_message_id  # next attempt goes through


async def test_network_failure_is_transient(fake, harness_factory) -> None:
    h = await harness_factory(make_account(fake, api_base="http://127.0.0.1:9"), background_refresh=False)
    with pytest.raises(TransientError):
        await h.connector.send(out())


@pytest.mark.parametrize("code", [-213, -217, -230, -201])
async def test_permanent_recipient_errors(fake, harness_factory, code) -> None:
    h = await harness_factory(background_refresh=False)
    fake.user_errors[fz.USER_ID] = code
    with pytest.raises(PermanentError) as ei:
        await h.connector.send(out())
    assert str(code) in str(ei.value)
    assert fake.refresh_calls == 0


async def test_invalid_user_id_and_bad_messages_are_permanent(fake, harness_factory) -> None:
    h = await harness_factory(background_refresh=False)
    with pytest.raises(PermanentError, match="-201"):
        await h.connector.send(out(user="not-a-user"))
    for bad in (out(""), out("x" * 2001)):
        with pytest.raises(PermanentError):
            await h.connector.send(bad)
    with pytest.raises(PermanentError, match="not connected"):
        await h.connector.send(out(tenant_id="other-tenant"))
    assert fake.sent == []


async def test_an_image_and_a_file_are_uploaded_then_sent_after_the_text(fake, harness_factory, tmp_path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.pdf").write_bytes(pdf)
    h = await harness_factory()
    res = await h.connector.send(out("Ảnh và hoá đơn đây ạ", attachments=(
        Attachment(kind="image", url="/u/a", name="ảnh.png", mime_type="image/png", size=len(png),
                   path=str(tmp_path / "a.png")),
        Attachment(kind="file", url="/u/b", name="hoá đơn.pdf", mime_type="application/pdf", size=len(pdf),
                   path=str(tmp_path / "b.pdf")),
    )))
    text, image, file = fake.sent
    assert text["message"] == {"text": "Ảnh và hoá đơn đây ạ"}
    [element] = image["message"]["attachment"]["payload"]["elements"]
    assert image["message"]["attachment"]["payload"]["template_type"] == "media"
    assert fake.uploads[element["attachment_id"]] == ("image", "ảnh.png", "image/png", png)
    assert fake.uploads[file["message"]["attachment"]["payload"]["token"]] == (
        "file", "hoá đơn.pdf", "application/pdf", pdf)
    assert res.external_message_id == text["message_id"]
    assert res.meta["message_ids"] == [text["message_id"], image["message_id"], file["message_id"]]


async def test_a_file_alone_is_one_message_and_a_missing_file_sends_nothing(fake, harness_factory, tmp_path) -> None:
    (tmp_path / "c.pdf").write_bytes(b"%PDF-1.4\n")
    h = await harness_factory()
    pdf = Attachment(kind="file", name="c.pdf", mime_type="application/pdf", path=str(tmp_path / "c.pdf"))
    res = await h.connector.send(out("", attachments=(pdf,)))
    [sent] = fake.sent
    assert sent["message"]["attachment"]["type"] == "file" and res.external_message_id == sent["message_id"]
    gone = Attachment(kind="file", name="gone.pdf", mime_type="application/pdf", path=str(tmp_path / "gone.pdf"))
    with pytest.raises(PermanentError, match="cannot be read"):
        await h.connector.send(out("có kèm file", attachments=(gone,)))
    assert len(fake.sent) == 1 and len(fake.uploads) == 1  # the text did not go out without its file


async def test_what_zalo_does_not_take_fails_before_any_call(fake, harness_factory, tmp_path) -> None:
    (tmp_path / "z").write_bytes(b"x")
    h = await harness_factory()
    for att in (Attachment(kind="file", name="a.zip", mime_type="application/zip", size=1, path=str(tmp_path / "z")),
                Attachment(kind="image", name="big.png", mime_type="image/png", size=2 * 1024 * 1024,
                           path=str(tmp_path / "z"))):
        with pytest.raises(PermanentError, match="zalo"):
            await h.connector.send(out("kèm file", attachments=(att,)))
    assert fake.sent == [] and fake.uploads == {}
