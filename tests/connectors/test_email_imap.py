"""Email by IMAP polling against a real IMAP server on loopback (pymap, in-memory mailboxes):
mails appended to the mailbox land in conversations as SMTP mail does, are flagged seen once
stored, thread, dedupe; failures are logged once and change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import imaplib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import pytest
from pymap.parsing.modutf7 import modutf7_encode

from connectors.channels import ChannelConfig
from connectors.email.connector import EmailConnector
from connectors.email.idle import IdleConnection
from connectors.email.imap import MAX_TRIES, ImapAccount, ImapError, ImapPoller, ImapSession, utf7_mailbox
from connectors.email.parse import reply_address
from connectors.inbound import InboundResult
from connectors.settings import load_connector_settings
from gateway.admin.tenants import NewTenant
from gateway.config import Config, ConfigError
from gateway.core.domain import Channel, ConversationFilter
from tests.connectors.imap_xoauth2 import token_endpoint, xoauth2_imap
from tests.connectors.test_email_flow import PNG, customer_mail, email_connector, from_customer, hub_of
from tests.support.procs import free_port
from tests.support.server import RunningGateway, agent, run_gateway
from tests.support.waits import until

USER, PASSWORD = "support", "mật khẩu"


@pytest.fixture
def imap_port() -> Iterator[int]:
    """pymap serving in-memory mailboxes (user USER) on 127.0.0.1, no TLS."""
    port = free_port()
    pymap = Path(sys.executable).parent / "pymap"
    proc = subprocess.Popen([str(pymap), "--host", "127.0.0.1", "--port", str(port), "--no-tls", "dict",
                             "--demo-user", USER, "--demo-password", PASSWORD],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "pymap did not listen"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _imap(port: int) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    m.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())  # UTF-8: not LOGIN's ASCII
    m.select("INBOX")
    return m


async def deliver_to_mailbox(port: int, mail: EmailMessage | bytes) -> None:
    raw = mail if isinstance(mail, bytes) else mail.as_bytes()

    def _append() -> None:
        m = _imap(port)
        try:
            typ, _ = m.append("INBOX", None, None, raw)
            assert typ == "OK"
        finally:
            m.logout()

    await asyncio.to_thread(_append)


async def unseen(port: int) -> list[bytes]:
    def _search() -> list[bytes]:
        m = _imap(port)
        try:
            typ, data = m.uid("SEARCH", "UNSEEN")
            assert typ == "OK"
            return [u for line in data if line for u in line.split()]
        finally:
            m.logout()

    return await asyncio.to_thread(_search)


async def flagged_seen(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await unseen(port):
        assert time.monotonic() < deadline, "still unseen"
        await asyncio.sleep(0.1)


async def add_imap_inbox(rg: RunningGateway, tenant_id: str, port: int, *, password: str = PASSWORD,
                         address: str = "support@shop.test") -> ChannelConfig:
    return await hub_of(rg).ctx.channels.add(
        tenant_id=tenant_id, kind=Channel.EMAIL, name="Hỗ trợ Shop",
        credentials={"username": USER, "password": password},
        settings={"address": address, "domain": "help.test", "imap_host": "127.0.0.1", "imap_port": port,
                  "imap_security": "none"},
    )


async def stop_polling(rg: RunningGateway) -> None:
    """The node's own IMAP polling stopped, and its IDLE connections closed."""
    await email_connector(rg)._polling.stop()
    await email_connector(rg).imap.close()


async def polled_by_hand(rg: RunningGateway, port: int) -> tuple[NewTenant, ChannelConfig, ImapPoller]:
    """A tenant with an IMAP inbox, and the node's poller, its own polling stopped."""
    nt = await rg.tenant()
    ch = await add_imap_inbox(rg, nt.tenant.id, port)
    await stop_polling(rg)
    return nt, ch, email_connector(rg).imap


@pytest.fixture
async def gateway(cx_sqlite_config: Config, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningGateway]:
    monkeypatch.setenv("EMAIL_IMAP_INTERVAL", "1")
    async with run_gateway(cx_sqlite_config) as rg:
        yield rg


async def test_mails_in_the_mailbox_become_a_conversation_and_are_flagged_seen(
        gateway: RunningGateway, imap_port: int) -> None:
    rg = gateway
    nt = await rg.tenant()
    await add_imap_inbox(rg, nt.tenant.id, imap_port)
    ag = await agent(rg.url, nt.admin_token)
    try:
        first = customer_mail("Support <support@shop.test>", "Hỏi về đơn hàng #123",
                              "Chào shop,\nĐơn hàng của tôi chưa tới.\n", "<i1@example.vn>")
        first.add_attachment(PNG, maintype="image", subtype="png", filename="hoá đơn.png")
        await deliver_to_mailbox(imap_port, first)
        # the node's own poll (EMAIL_IMAP_INTERVAL=1) finds it
        await ag.wait_for(lambda: ag.of("conversation:created"), timeout=20)
        conv = ag.of("conversation:created")[0]
        assert conv["channel"] == "email"
        conv_id = conv["id"]
        assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
        [m1] = (await ag.call("messages:history", {"conversation_id": conv_id}))["messages"]
        assert m1["text"] == "Chào shop,\nĐơn hàng của tôi chưa tới."
        assert [a["name"] for a in m1["attachments"]] == ["hoá đơn.png"]
        await flagged_seen(imap_port)  # once stored


        poller = email_connector(rg).imap
        # an answer threaded by In-Reply-To, and one to the per-conversation reply address
        # without threading headers: both in the same conversation
        await deliver_to_mailbox(imap_port, customer_mail(
            "support@shop.test", "Re: Hỏi về đơn hàng #123", "Cảm ơn shop!", "<i2@example.vn>",
            In_Reply_To="<i1@example.vn>"))
        ours = reply_address(email_connector(rg)._reply_key, conv_id, "help.test")
        await deliver_to_mailbox(imap_port, customer_mail(ours, "khác", "Thêm một câu hỏi", "<i3@example.vn>"))
        # the first mail again (delivered twice to the mailbox): stored once
        await deliver_to_mailbox(imap_port, first)
        await poller.poll_all()
        await ag.wait_for(lambda: len(from_customer(ag, conv_id)) == 3, timeout=20)
        assert [m["text"] for m in from_customer(ag, conv_id)][1:] == ["Cảm ơn shop!", "Thêm một câu hỏi"]
        assert await unseen(imap_port) == []
        history = (await ag.call("messages:history", {"conversation_id": conv_id}))["messages"]
        assert [m["seq"] for m in history] == [1, 2, 3]
        assert len(ag.of("conversation:created")) == 1
        async with aiohttp.ClientSession() as http, http.get(rg.url + "/metrics") as resp:
            metrics = {line.split()[0]: float(line.split()[1]) for line in (await resp.text()).splitlines()
                       if line.startswith("izh_email_imap_")}
        assert metrics["izh_email_imap_polls_total"] >= 2 and metrics["izh_email_imap_failures_total"] == 0
        assert metrics["izh_email_imap_mails_total"] >= 4  # each mail flagged seen by one poll or another
    finally:
        await ag.close()


async def test_an_oversized_mail_is_flagged_seen_and_not_stored(
        gateway: RunningGateway, imap_port: int, caplog: pytest.LogCaptureFixture) -> None:
    rg = gateway
    nt, ch, poller = await polled_by_hand(rg, imap_port)
    poller.max_bytes = 4000
    big = customer_mail("support@shop.test", "big", "x" * 10_000, "<big@example.vn>")
    await deliver_to_mailbox(imap_port, big)
    await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "small", "nhỏ", "<small@example.vn>"))
    with caplog.at_level(logging.WARNING):
        assert await poller.poll(ch) == 2
    assert any("over 4000 bytes" in r.getMessage() for r in caplog.records)
    assert await unseen(imap_port) == []
    convs = await rg.gw.store.list_conversations(nt.tenant.id, _all())
    assert len(convs) == 1
    [msg] = await rg.gw.store.get_messages(nt.tenant.id, convs[0].id)
    assert msg.text == "nhỏ"


async def test_a_mail_that_fails_to_be_stored_is_tried_again_then_given_up(
        gateway: RunningGateway, imap_port: int, caplog: pytest.LogCaptureFixture) -> None:
    rg = gateway
    nt, ch, poller = await polled_by_hand(rg, imap_port)
    receive = poller._receive
    calls: list[bytes] = []

    async def failing(raw: bytes, rcpts: list[str]) -> list[InboundResult]:
        calls.append(raw)
        if b"poison" in raw:
            raise RuntimeError("a bug")
        return await receive(raw, rcpts)

    poller._receive = failing
    await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "a", "poison", "<p1@example.vn>"))
    await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "b", "fine", "<p2@example.vn>"))
    with caplog.at_level(logging.ERROR):
        assert await poller.poll(ch) == 1  # the good one stored and flagged; the bad one stays
        assert len(await unseen(imap_port)) == 1
        for _ in range(MAX_TRIES - 2):
            assert await poller.poll(ch) == 0
        assert len(await unseen(imap_port)) == 1
        assert await poller.poll(ch) == 1  # the last try: given up, flagged seen
    assert await unseen(imap_port) == [] and poller._tries == {}
    assert sum(b"poison" in c for c in calls) == MAX_TRIES
    assert any("failed 5 times; flagged seen" in r.getMessage() for r in caplog.records)
    [conv] = await rg.gw.store.list_conversations(nt.tenant.id, _all())
    assert [m.text for m in await rg.gw.store.get_messages(nt.tenant.id, conv.id)] == ["fine"]


async def test_a_failing_mailbox_is_logged_once_and_changes_nothing(
        gateway: RunningGateway, imap_port: int, caplog: pytest.LogCaptureFixture) -> None:
    rg = gateway
    nt = await rg.tenant()
    poller = email_connector(rg).imap
    await stop_polling(rg)
    wrong = await add_imap_inbox(rg, nt.tenant.id, imap_port, password="sai")
    await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "hi", "xin chào", "<w1@example.vn>"))
    with caplog.at_level(logging.WARNING):
        assert await poller.poll(wrong) == 0
        assert await poller.poll(wrong) == 0
    assert sum("polling IMAP inbox" in r.getMessage() for r in caplog.records) == 1
    assert poller.failures == 2
    assert len(await unseen(imap_port)) == 1  # still there for a poll that works
    assert await rg.gw.store.list_conversations(nt.tenant.id, _all()) == []
    gone = await add_imap_inbox(rg, nt.tenant.id, free_port(), address="other@shop.test")
    assert await poller.poll(gone) == 0 and poller.failures == 3


async def test_one_inbox_that_cannot_be_polled_does_not_stop_the_others(
        gateway: RunningGateway, imap_port: int) -> None:
    rg = gateway
    nt = await rg.tenant()
    poller = email_connector(rg).imap
    await stop_polling(rg)
    broken = await add_imap_inbox(rg, nt.tenant.id, imap_port, address="broken@shop.test")
    await add_imap_inbox(rg, nt.tenant.id, imap_port)
    credentials = poller._credentials

    async def sealed_elsewhere(ch: ChannelConfig) -> dict[str, object]:
        if ch.id == broken.id:
            raise RuntimeError("credentials sealed under another MASTER_KEY")
        return await credentials(ch)

    poller._credentials = sealed_elsewhere
    await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "hi", "xin chào", "<o1@example.vn>"))
    await poller.poll_all()
    assert poller.failures == 1 and await unseen(imap_port) == []
    [conv] = await rg.gw.store.list_conversations(nt.tenant.id, _all())
    assert [m.text for m in await rg.gw.store.get_messages(nt.tenant.id, conv.id)] == ["xin chào"]


def other_node(rg: RunningGateway, node_id: str, now: list[float]) -> ImapPoller:
    """The IMAP poller of another node on the gateway's database, its clock the test's,
    without IDLE (each of its polls is one the test asked for)."""
    ctx = email_connector(rg)._ctx
    settings = replace(ctx.settings, email=replace(ctx.settings.email, imap_idle=0.0))
    return EmailConnector(replace(ctx, node_id=node_id, clock=lambda: now[0], settings=settings)).imap


async def test_one_node_polls_an_inbox_until_it_stops(gateway: RunningGateway, imap_port: int) -> None:
    """Two nodes poll one inbox: the one holding its claim polls and renews the claim (two
    intervals of EMAIL_IMAP_INTERVAL=1 s), the other leaves the inbox alone until the holder
    stops renewing, then takes it over."""
    rg = gateway
    nt, _, _ = await polled_by_hand(rg, imap_port)
    now = [time.time() + 100]  # past any claim the gateway's own polling took
    a, b = other_node(rg, "node-a", now), other_node(rg, "node-b", now)
    await a.poll_claimed()
    assert (a.polls, a.left_to_others) == (1, 0)
    now[0] += 1.0
    await a.poll_claimed()  # renewed: A's until +3.0
    now[0] += 1.5
    await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "hi", "xin chào", "<t1@example.vn>"))
    await b.poll_claimed()
    assert (b.polls, b.left_to_others) == (0, 1) and len(await unseen(imap_port)) == 1  # still A's
    now[0] += 0.5  # A has stopped polling: its claim runs out
    await b.poll_claimed()
    assert (b.polls, b.mails) == (1, 1) and await unseen(imap_port) == []
    await a.poll_claimed()
    assert (a.polls, a.left_to_others) == (2, 1)  # now B's
    [conv] = await rg.gw.store.list_conversations(nt.tenant.id, _all())
    assert [m.text for m in await rg.gw.store.get_messages(nt.tenant.id, conv.id)] == ["xin chào"]
    async with aiohttp.ClientSession() as http, http.get(rg.url + "/metrics") as resp:
        assert "izh_email_imap_left_to_others_total" in await resp.text()  # the gateway's own poller's


async def test_an_idle_connection_renews_its_idle_and_reports_new_mail(imap_port: int) -> None:
    conn = IdleConnection(ImapAccount("127.0.0.1", imap_port, "none", "INBOX", USER, PASSWORD), timeout=10)
    news: list[float] = []
    task = asyncio.create_task(conn.run(lambda: news.append(time.monotonic()), period=0.3))
    try:
        await until(lambda: conn.idles >= 3)  # DONE and IDLE again every 0.3 s
        assert len(news) == 1  # once, as the first IDLE began (a mail may have come before it)
        await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "hi", "xin chào", "<d1@example.vn>"))
        await until(lambda: len(news) == 2)
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert conn._writer is None  # closed


async def test_an_idle_connection_that_cannot_log_in_raises(imap_port: int) -> None:
    conn = IdleConnection(ImapAccount("127.0.0.1", imap_port, "none", "INBOX", USER, "sai"), timeout=10)
    with pytest.raises(ImapError, match="IDLE"):
        await conn.run(lambda: None, period=1.0)
    closed = IdleConnection(ImapAccount("127.0.0.1", free_port(), "none", "INBOX", USER, PASSWORD), timeout=10)
    with pytest.raises(ImapError, match="ConnectionRefused"):
        await closed.run(lambda: None, period=1.0)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        mute = IdleConnection(ImapAccount("127.0.0.1", server.sockets[0].getsockname()[1], "none", "INBOX", USER,
                                          PASSWORD), timeout=0.2)
        with pytest.raises(ImapError, match="did not answer in time"):
            await mute.run(lambda: None, period=1.0)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_server_without_idle_is_left_to_the_periodic_poll() -> None:
    """A server whose CAPABILITY has no IDLE (a minimal IMAP server on loopback): the
    connection logs in, asks, and ends at once with False."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        while line := await reader.readline():
            seen.append(line)
            tag, command = line.split(b" ", 2)[:2]
            if command.upper() == b"CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
            writer.write(tag + b" OK done\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        conn = IdleConnection(ImapAccount("127.0.0.1", port, "none", "INBOX", "u", 'p"w\\'), timeout=5)
        assert await conn.run(lambda: None, period=1.0) is False
        assert seen[0] == b'I1 LOGIN "u" "p\\"w\\\\"\r\n'  # quoted, its quote and backslash escaped
        assert [line.split()[1] for line in seen] == [b"LOGIN", b"CAPABILITY"]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_cancelled_idle_connection_ends_even_while_news_pours_in() -> None:
    """The poller cancels a connection when it loses the inbox or stops: the cancel must end
    it even when it lands in the turn that completes a read (with `asyncio.wait_for` on
    Python 3.11 such a cancel was lost, and the connection went on idling for ever). A
    minimal loopback server that, once IDLE began, sends EXISTS without pause."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK ready\r\n")
        try:
            while line := await reader.readline():
                tag, command = line.split(b" ", 2)[:2]
                if command.upper() == b"CAPABILITY\r\n":
                    writer.write(b"* CAPABILITY IMAP4rev1 IDLE\r\n")
                elif command.upper() == b"IDLE\r\n":
                    writer.write(b"+ idling\r\n")
                    while True:
                        writer.write(b"* 1 EXISTS\r\n")
                        await writer.drain()
                        await asyncio.sleep(0)
                writer.write(tag + b" OK done\r\n")
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lost = 0
    try:
        for _ in range(50):
            conn = IdleConnection(ImapAccount("127.0.0.1", port, "none", "INBOX", "u", "p"), timeout=5)
            news: list[int] = []
            task = asyncio.create_task(conn.run(functools.partial(news.append, 1), period=30))
            await until(functools.partial(lambda n: len(n) >= 3, news))
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=2)
            if not done:
                lost += 1
                conn.close()
                task.cancel()
            else:
                assert task.cancelled() and conn._writer is None
    finally:
        server.close()
    assert lost == 0, f"{lost} of 50 cancels lost"


async def test_a_mail_announced_by_idle_is_read_at_once(cx_sqlite_config: Config, monkeypatch: pytest.MonkeyPatch,
                                                        imap_port: int) -> None:
    """EMAIL_IMAP_INTERVAL=60: after its first poll the node IDLEs on the inbox, and a mail
    is stored within seconds of its arrival, not at the next poll a minute later."""
    monkeypatch.setenv("EMAIL_IMAP_INTERVAL", "60")
    monkeypatch.setenv("EMAIL_IMAP_IDLE", "10")
    async with run_gateway(cx_sqlite_config) as rg:
        nt = await rg.tenant()
        ch = await add_imap_inbox(rg, nt.tenant.id, imap_port)
        poller = email_connector(rg).imap
        await until(lambda: poller.idle_wakes == 1 and poller.polls == 2 and not poller._pending)  # IDLE began
        assert poller.watching == 1
        await deliver_to_mailbox(imap_port, customer_mail("support@shop.test", "hi", "xin chào", "<i9@example.vn>"))
        started = time.monotonic()
        await flagged_seen(imap_port)
        assert time.monotonic() - started < 10
        assert poller.idle_wakes >= 2 and poller.polls >= 3
        [conv] = await rg.gw.store.list_conversations(nt.tenant.id, _all())
        assert [m.text for m in await rg.gw.store.get_messages(nt.tenant.id, conv.id)] == ["xin chào"]
        async with aiohttp.ClientSession() as http, http.get(rg.url + "/metrics") as resp:
            text = await resp.text()
        assert "izh_email_imap_idle_connections 1.0" in text and "izh_email_imap_idle_wakes_total" in text
        # the inbox is switched off: its IDLE connection ends at the next poll
        await hub_of(rg).ctx.channels.set_enabled(nt.tenant.id, ch.id, False)
        await poller.poll_claimed()
        await until(lambda: poller.watching == 0)


async def test_an_inbox_logs_in_with_xoauth2(gateway: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    """An inbox with OAuth 2.0 credentials (as Google Workspace and Microsoft 365 require):
    an access token from the token endpoint (refresh-token grant), the XOAUTH2 login, the
    mail stored and flagged; a token the server stops taking is refreshed after the failed
    poll; a revoked refresh token fails the poll, logged, nothing stored. The server offers
    no IDLE: the node asks once, and leaves the inbox to the polls."""
    rg = gateway
    nt = await rg.tenant()
    await stop_polling(rg)
    poller = email_connector(rg).imap
    async with xoauth2_imap("support@shop.test") as imap, token_endpoint("cid", "csecret", "1//refresh") as ep:
        creds = {"username": "support@shop.test", "oauth2_token_url": ep.url, "oauth2_client_id": "cid",
                 "oauth2_client_secret": "csecret", "oauth2_refresh_token": "1//refresh"}
        ch = await hub_of(rg).ctx.channels.add(
            tenant_id=nt.tenant.id, kind=Channel.EMAIL, name="Gmail", credentials=creds,
            settings={"address": "support@shop.test", "domain": "help.test", "imap_host": "127.0.0.1",
                      "imap_port": imap.port, "imap_security": "none"})
        imap.tokens = {"ya29.token-1"}
        imap.deliver(customer_mail("support@shop.test", "hi", "xin chào", "<x1@example.vn>").as_bytes())
        await poller.poll_claimed()  # this node's claim: it polls, then asks for IDLE
        assert imap.tried[0] == "ya29.token-1" and ep.issued == ["ya29.token-1"]
        assert [m.seen for m in imap.mails] == [True] and poller.failures == 0
        await until(lambda: ch.id in poller._no_idle and poller.watching == 0)
        # the server stops taking the token (revoked early): that poll fails, the next gets a new one
        imap.tokens = {"ya29.token-2"}
        imap.deliver(customer_mail("support@shop.test", "again", "còn nữa", "<x2@example.vn>").as_bytes())
        assert await poller.poll(ch) == 0 and poller.failures == 1
        assert await poller.poll(ch) == 1 and ep.issued == ["ya29.token-1", "ya29.token-2"]
        texts = [m.text for c in await rg.gw.store.list_conversations(nt.tenant.id, _all())
                 for m in await rg.gw.store.get_messages(nt.tenant.id, c.id)]
        assert sorted(texts) == ["còn nữa", "xin chào"]  # two threads: each mail starts its own
        # the endpoint rotates refresh tokens and takes only the newest (Microsoft's rotate):
        # the rotated one is stored, and another node (or this one restarted) logs in with it
        ep.rotate = True
        imap.tokens = {"ya29.token-3", "ya29.token-4"}
        account = ImapAccount.of(ch, creds)
        assert account is not None
        poller._tokens.refused(ch, replace(account, bearer="ya29.token-2"))  # as if the server had refused it
        assert await poller.poll(ch) == 0 and ep.issued[-1] == "ya29.token-3"
        assert (await hub_of(rg).ctx.channels.credentials(ch))["oauth2_refresh_token"] == "1//refresh-3"
        restarted = other_node(rg, rg.gw.node_id, [time.time()])
        assert await restarted.poll(ch) == 0 and ep.issued[-1] == "ya29.token-4" and restarted.failures == 0
        assert (await hub_of(rg).ctx.channels.credentials(ch))["oauth2_refresh_token"] == "1//refresh-4"
        await restarted.close()
        # the refresh token is revoked: the poll fails before any login
        # (this node's provider still has 1//refresh-3, and the stored 1//refresh-4 starts a new one)
        ep.rotate, ep.refresh_token = False, "1//other"
        imap.tokens = set()
        logins = len(imap.tried)
        imap.deliver(customer_mail("support@shop.test", "3", "ba", "<x3@example.vn>").as_bytes())
        with caplog.at_level(logging.WARNING):
            assert await poller.poll(ch) == 0 and await poller.poll(ch) == 0
        assert len(imap.tried) == logins  # no token, no login
        assert any("invalid_grant" in r.getMessage() for r in caplog.records)
        assert not imap.mails[-1].seen
        # an IDLE connection whose token is refused: the error challenge answered, NO raised
        refused = IdleConnection(ImapAccount("127.0.0.1", imap.port, "none", "INBOX", "support@shop.test", "",
                                             bearer="ya29.old"), timeout=5)
        with pytest.raises(ImapError, match="AUTHENTICATIONFAILED"):
            await refused.run(lambda: None, period=1.0)


def test_oauth2_credentials_are_checked() -> None:
    def account(**creds: str) -> ImapAccount | None:
        ch = ChannelConfig(id="c", tenant_id="t", kind=Channel.EMAIL, name="n", address="a@b", enabled=True,
                           created_at=0.0, settings={"imap_host": "imap.gmail.com"})
        return ImapAccount.of(ch, {"username": "a@b", **creds})

    full = {"oauth2_token_url": "https://oauth2.googleapis.com/token", "oauth2_client_id": "i",
            "oauth2_client_secret": "s", "oauth2_refresh_token": "r"}
    a = account(**full)
    assert a is not None and a.oauth2 is not None and a.oauth2.token_url == full["oauth2_token_url"]
    for bad in ({**full, "oauth2_client_secret": ""}, {"oauth2_refresh_token": "r"},
                {**full, "oauth2_token_url": "http://oauth2.example/token"},
                {**full, "oauth2_token_url": "http://localhost.evil.example/token"}):
        with pytest.raises(ValueError):
            account(**bad)
    assert account(**{**full, "oauth2_token_url": "http://127.0.0.1:9/token"}) is not None  # loopback


def test_imap_settings_are_checked() -> None:
    def ch(**settings: object) -> ChannelConfig:
        return ChannelConfig(id="c", tenant_id="t", kind=Channel.EMAIL, name="x", address="a@b.c", enabled=True,
                             created_at=0.0, settings={"address": "a@b.c", **settings})

    assert ImapAccount.of(ch(), {"username": "u"}) is None  # no imap_host: not polled
    a = ImapAccount.of(ch(imap_host="mail.b.c"), {"username": "u", "password": "p", "imap_password": "q"})
    assert a is not None and (a.port, a.security, a.mailbox, a.username, a.password) == (993, "tls", "INBOX", "u", "q")
    b = ImapAccount.of(ch(imap_host="h", imap_security="starttls", imap_mailbox="Hỗ trợ"), {"imap_username": "v"})
    assert b is not None and (b.port, b.username) == (143, "v")
    for bad, creds in (({"imap_security": "ssl"}, {"username": "u"}), ({"imap_port": 70000}, {"username": "u"}),
                       ({}, {})):
        with pytest.raises(ValueError):
            ImapAccount.of(ch(imap_host="h", **bad), creds)


def test_mailbox_names_in_modified_utf7() -> None:
    assert utf7_mailbox("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"  # RFC 3501's example
    for name in ("INBOX", "Hỗ trợ & hộp thư", "a&b", "日本", "Đã gửi/2026", "x\u00e9y"):
        assert utf7_mailbox(name) == modutf7_encode(name).decode()  # pymap's own codec agrees


def test_a_session_refused_at_login_raises_imap_error(imap_port: int) -> None:
    account = ImapAccount("127.0.0.1", imap_port, "none", "INBOX", USER, "sai")
    with pytest.raises(ImapError), ImapSession(account, 5.0):
        pass
    with pytest.raises(ImapError), ImapSession(ImapAccount("127.0.0.1", imap_port, "none", "Không có", USER,
                                                           PASSWORD), 5.0):
        pass


def _all() -> ConversationFilter:
    return ConversationFilter(limit=100)


def test_the_poll_interval_is_checked() -> None:
    assert load_connector_settings({}).email.imap_interval == 60.0
    assert load_connector_settings({"EMAIL_IMAP_INTERVAL": "0"}).email.imap_interval == 0.0
    assert load_connector_settings({"EMAIL_IMAP_INTERVAL": "5"}).email.imap_interval == 5.0
    for bad in ("0.5", "-1", "100000", "soon"):
        with pytest.raises(ConfigError):
            load_connector_settings({"EMAIL_IMAP_INTERVAL": bad})
    assert load_connector_settings({}).email.imap_idle == 300.0
    assert load_connector_settings({"EMAIL_IMAP_IDLE": "0"}).email.imap_idle == 0.0
    for bad in ("5", "1800", "x"):
        with pytest.raises(ConfigError):
            load_connector_settings({"EMAIL_IMAP_IDLE": bad})
