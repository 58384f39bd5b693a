"""Email end to end: smtplib → gateway SMTP → agent; agent reply → SMTP sink; threading."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors.email.connector import EmailConnector
from connectors.feature import CONNECTORS_KEY, ConnectorHub
from gateway.config import Config
from gateway.core.domain import Channel
from tests.connectors.imap_xoauth2 import token_endpoint
from tests.connectors.smtp_sink import SmtpSink, XOAuth2Relay, smtp_sink
from tests.support.server import RunningGateway, agent, new_client_id, run_gateway
from tests.support.waits import until

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def hub_of(rg: RunningGateway) -> ConnectorHub:
    return rg.gw.app[CONNECTORS_KEY]


def email_connector(rg: RunningGateway) -> EmailConnector:
    c = hub_of(rg).connectors[Channel.EMAIL]
    assert isinstance(c, EmailConnector)
    return c


async def smtp_send(port: int, msg: EmailMessage) -> None:
    def _send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.send_message(msg)

    await asyncio.to_thread(_send)


def customer_mail(to: str, subject: str, body: str, msg_id: str, **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Nguyễn Văn A <khach@example.vn>"
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = msg_id
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


async def add_inbox(rg: RunningGateway, tenant_id: str, sink: SmtpSink) -> None:
    await hub_of(rg).ctx.channels.add(
        tenant_id=tenant_id, kind=Channel.EMAIL, name="Hỗ trợ Shop", credentials={"username": "", "password": ""},
        settings={"address": "support@shop.test", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
                  "smtp_security": "none", "domain": "help.test"},
    )


def from_customer(ag, conv_id: str) -> list[dict[str, Any]]:
    return [m for m in ag.messages(conv_id) if m["author"]["type"] == "contact"]


async def test_email_round_trip_threads_into_one_conversation(cx_config: Config) -> None:
    async with smtp_sink() as sink, run_gateway(cx_config) as rg:
        port = email_connector(rg).smtp_port
        assert port
        nt = await rg.tenant()
        await add_inbox(rg, nt.tenant.id, sink)
        ag = await agent(rg.url, nt.admin_token)
        try:
            first = customer_mail("Support <support@shop.test>", "Hỏi về đơn hàng #123",
                                  "Chào shop,\nĐơn hàng của tôi chưa tới.\n", "<m1@example.vn>")
            first.add_attachment(PNG, maintype="image", subtype="png", filename="hoá đơn.png")
            await smtp_send(port, first)

            await ag.wait_for(lambda: ag.of("conversation:created"), timeout=20)
            conv = ag.of("conversation:created")[0]
            assert conv["channel"] == "email" and conv["assignee_id"] == nt.admin.id
            assert conv["subject"] == "Hỏi về đơn hàng #123"  # issue 32: the subject, for the console
            conv_id = conv["id"]
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
            hist = await ag.call("messages:history", {"conversation_id": conv_id})
            [m1] = hist["messages"]
            assert m1["text"] == "Chào shop,\nĐơn hàng của tôi chưa tới."
            [att] = m1["attachments"]
            assert att["kind"] == "image" and att["name"] == "hoá đơn.png" and att["size"] == len(PNG)
            # issue 30: a stored file with an id, served by the authenticated download route
            assert att["url"] == f"/api/v1/uploads/{att['id']}" and att["mime_type"] == "image/png"
            async with aiohttp.ClientSession() as http:
                auth = {"Authorization": f"Bearer {nt.admin_token}"}
                async with http.get(f"{rg.url}/api/v1/uploads/{att['id']}", headers=auth) as r:
                    assert r.status == 200 and await r.read() == PNG
                async with http.get(f"{rg.url}/api/v1/uploads/{att['id']}/link", headers=auth) as r:
                    assert r.status == 200 and "sig=" in (await r.json())["url"]

            # the agent answers: it reaches the customer's mailbox, threaded
            r = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                "text": "Chào anh, đơn hàng sẽ tới vào thứ Hai."})
            mid = r["message"]["id"]
            await until(lambda: len(sink.received) == 1, timeout=20.0)
            rcpts, out = sink.received[0]
            assert rcpts == ["khach@example.vn"]
            assert out["In-Reply-To"] == "<m1@example.vn>"
            assert "<m1@example.vn>" in out["References"]
            assert out["Subject"] == "Re: Hỏi về đơn hàng #123"
            assert out["Message-ID"] == f"<{mid}.{conv_id[:8]}@help.test>"
            assert str(out["Reply-To"]).startswith(f"reply+{conv_id}.")
            assert "support@shop.test" in str(out["From"])
            # multipart/alternative: the agent's text, and the same text as HTML
            assert out.get_content_type() == "multipart/alternative"
            plain = out.get_body(preferencelist=("plain",))
            assert plain is not None and plain.get_content().strip() == "Chào anh, đơn hàng sẽ tới vào thứ Hai."
            rich = out.get_body(preferencelist=("html",))
            assert rich is not None and rich.get_content_charset() == "utf-8"
            assert "<p" in rich.get_content() and "Chào anh, đơn hàng sẽ tới vào thứ Hai." in rich.get_content()
            await ag.wait_for(lambda: any(e["id"] == mid and e["delivery"]["state"] == "sent"
                                          for e in ag.of("message:updated")), timeout=20)

            # the customer's answer to that reply lands in the same conversation, live, unquoted
            answer = customer_mail(
                "support@shop.test", "Re: Hỏi về đơn hàng #123",
                "Cảm ơn shop!\n\nVào Th 2, 1 thg 1, 2024 lúc 10:00 Hỗ trợ Shop <support@shop.test> đã viết:\n"
                "> Chào anh, đơn hàng sẽ tới vào thứ Hai.\n",
                "<m2@example.vn>", In_Reply_To=out["Message-ID"], References=f"<m1@example.vn> {out['Message-ID']}")
            await smtp_send(port, answer)
            await ag.wait_for(lambda: any(m["seq"] == 3 for m in from_customer(ag, conv_id)), timeout=20)
            assert from_customer(ag, conv_id)[-1]["text"] == "Cảm ơn shop!"

            # a reply sent straight to the per-conversation Reply-To address, no threading headers
            third = customer_mail(str(out["Reply-To"]), "khác", "Thêm một câu hỏi", "<m3@example.vn>")
            await smtp_send(port, third)
            await ag.wait_for(lambda: any(m["seq"] == 4 for m in from_customer(ag, conv_id)), timeout=20)
            assert from_customer(ag, conv_id)[-1]["text"] == "Thêm một câu hỏi"

            # the same mail again (SMTP retry) stores nothing new
            await smtp_send(port, third)  # answered 250 once the mail was handled (stored or not)
            listed = await ag.call("conversation:list", {})
            assert [c["id"] for c in listed["conversations"]] == [conv_id]
            # the thread's first subject, not a later one's ("khác", "Re: …")
            assert listed["conversations"][0]["subject"] == "Hỏi về đơn hàng #123"
            got = await ag.call("conversation:get", {"conversation_id": conv_id})
            assert got["conversation"]["subject"] == "Hỏi về đơn hàng #123"
            hist = await ag.call("messages:history", {"conversation_id": conv_id})
            assert [m["seq"] for m in hist["messages"]] == [1, 2, 3, 4]
        finally:
            await ag.close()


async def test_unknown_recipient_is_refused_and_forged_reply_address_too(cx_sqlite_config: Config) -> None:
    async with smtp_sink() as sink, run_gateway(cx_sqlite_config) as rg:
        port = email_connector(rg).smtp_port
        assert port
        nt = await rg.tenant()
        await add_inbox(rg, nt.tenant.id, sink)
        for rcpt in ("nobody@shop.test", f"reply+{'a' * 32}.{'0' * 16}@help.test"):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                await smtp_send(port, customer_mail(rcpt, "x", "y", "<x@example.vn>"))


@contextlib.asynccontextmanager
async def email_conversation(config: Config, msg_id: str
                             ) -> AsyncIterator[tuple[SmtpSink, RunningGateway, Any, Any, str]]:
    """A gateway with an email inbox whose SMTP server is `sink`, an agent, and the
    conversation a customer's first mail opened, watched by the agent."""
    async with smtp_sink() as sink, run_gateway(config) as rg:
        port = email_connector(rg).smtp_port
        assert port
        nt = await rg.tenant()
        await add_inbox(rg, nt.tenant.id, sink)
        ag = await agent(rg.url, nt.admin_token)
        try:
            await smtp_send(port, customer_mail("support@shop.test", "Hỏi", "Chào shop", msg_id))
            await ag.wait_for(lambda: ag.of("conversation:created"), timeout=20)
            conv_id = ag.of("conversation:created")[0]["id"]
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
            yield sink, rg, nt, ag, conv_id
        finally:
            await ag.close()


async def failed_with(ag: Any, mid: str) -> str:
    await ag.wait_for(lambda: any(e["id"] == mid and e["delivery"]["state"] == "failed"
                                  for e in ag.of("message:updated")), timeout=20)
    error: str = [e for e in ag.of("message:updated") if e["id"] == mid][-1]["delivery"]["error"]
    return error


async def test_refused_recipient_fails_permanently(cx_sqlite_config: Config) -> None:
    async with email_conversation(cx_sqlite_config, "<p1@example.vn>") as (sink, _, _, ag, conv_id):
        sink.refuse_code = "550 5.1.1 no such user"
        mid = (await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                               "text": "reply"}))["message"]["id"]
        err = await failed_with(ag, mid)
        assert "recipient refused" in err and "no such user" in err


async def agent_upload(url: str, token: str, name: str, mime: str, data: bytes) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            f"{url}/api/v1/uploads", params={"name": name}, data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": mime}) as r:
        assert r.status == 201, await r.text()
        upload_id: str = (await r.json())["upload"]["id"]
        return upload_id


async def test_an_agents_file_reaches_the_customer_as_a_mime_part(cx_config: Config) -> None:
    async with email_conversation(cx_config, "<f1@example.vn>") as (sink, rg, nt, ag, conv_id):
        token = nt.admin_token
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
        upload_id = await agent_upload(rg.url, token, "hoá đơn 123.pdf", "application/pdf", pdf)
        res = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                              "text": "Hoá đơn đây ạ.", "attachments": [upload_id]})
        assert res["ok"], res
        await until(lambda: len(sink.received) == 1, timeout=20.0)
        _, mail = sink.received[0]
        # multipart/mixed: the text and its HTML as one alternative part, then the file
        assert mail.get_content_type() == "multipart/mixed"
        assert [p.get_content_type() for p in mail.iter_parts()] == ["multipart/alternative", "application/pdf"]
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None and body.get_content().strip() == "Hoá đơn đây ạ."
        rich = mail.get_body(preferencelist=("html",))
        assert rich is not None and "Hoá đơn đây ạ." in rich.get_content()
        [part] = list(mail.iter_attachments())
        assert part.get_filename() == "hoá đơn 123.pdf"
        assert part.get_content_type() == "application/pdf"
        assert part.get_content() == pdf
        mid = res["message"]["id"]
        await ag.wait_for(lambda: any(e["id"] == mid and e["delivery"]["state"] == "sent"
                                      for e in ag.of("message:updated")), timeout=20)

        # a file sent without words: a text part and the file, no empty HTML alternative
        res = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                              "text": "", "attachments": [upload_id]})
        assert res["ok"], res
        await until(lambda: len(sink.received) == 2, timeout=20.0)
        _, bare = sink.received[1]
        assert [p.get_content_type() for p in bare.iter_parts()] == ["text/plain", "application/pdf"]
        assert bare.get_body(preferencelist=("html",)) is None

        # a file gone from the blob store: the send fails for the agent to see, nothing half-sent
        gone_id = await agent_upload(rg.url, token, "x.png", "image/png", PNG)
        (Path(cx_config.storage.data_dir) / "uploads" / nt.tenant.id / gone_id).unlink()
        res = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                              "text": "", "attachments": [gone_id]})
        assert res["ok"], res
        assert "cannot be read" in await failed_with(ag, res["message"]["id"])
        assert len(sink.received) == 2


async def delivered(ag: Any, mid: str) -> None:
    await ag.wait_for(lambda: any(e["id"] == mid and e["delivery"]["state"] == "sent"
                                  for e in ag.of("message:updated")), timeout=20)


async def test_replies_go_through_a_relay_that_takes_xoauth2(cx_sqlite_config: Config) -> None:
    """An inbox whose relay takes only OAuth 2.0 (Google Workspace, Microsoft 365): a reply
    is sent after AUTH XOAUTH2 with a token from the token endpoint; a token the relay stops
    taking fails that try (transient), and the retry asks for a new one."""
    relay = XOAuth2Relay("support@shop.test")
    async with smtp_sink(relay), token_endpoint("cid", "cs", "1//r") as ep, run_gateway(cx_sqlite_config) as rg:
        port = email_connector(rg).smtp_port
        assert port
        nt = await rg.tenant()
        await hub_of(rg).ctx.channels.add(
            tenant_id=nt.tenant.id, kind=Channel.EMAIL, name="Gmail", credentials={
                "username": "support@shop.test", "oauth2_token_url": ep.url, "oauth2_client_id": "cid",
                "oauth2_client_secret": "cs", "oauth2_refresh_token": "1//r"},
            settings={"address": "support@shop.test", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
                      "smtp_security": "none", "domain": "help.test"})
        ag = await agent(rg.url, nt.admin_token)
        try:
            await smtp_send(port, customer_mail("support@shop.test", "Hỏi", "Chào shop", "<o1@example.vn>"))
            await ag.wait_for(lambda: ag.of("conversation:created"), timeout=20)
            conv_id = ag.of("conversation:created")[0]["id"]
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]

            async def reply(text: str) -> str:
                sent = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                      "text": text})
                return str(sent["message"]["id"])

            relay.tokens = {"ya29.token-1"}
            await delivered(ag, await reply("Dạ, shop kiểm tra ngay"))
            assert relay.tried == ["ya29.token-1"] and ep.issued == ["ya29.token-1"]
            relay.tokens = {"ya29.token-2"}  # the first token revoked early
            await delivered(ag, await reply("Đã gửi lại"))
            assert relay.tried == ["ya29.token-1", "ya29.token-1", "ya29.token-2"]
            texts = []
            for _, m in relay.received:
                body = m.get_body(preferencelist=("plain",))
                assert body is not None
                texts.append(body.get_content().strip())
            assert texts == ["Dạ, shop kiểm tra ngay", "Đã gửi lại"]
        finally:
            await ag.close()
