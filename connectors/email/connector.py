"""Email connector: inbound SMTP listener (aiosmtpd) and IMAP polling (`imap.py`),
outbound SMTP (aiosmtplib).

Inbound routing, per recipient (RCPT TO), first match wins:
1. `reply+<conversation_id>.<hmac>@<domain>`: the per-conversation Reply-To we send;
2. an email inbox's `settings.address`: then threading by In-Reply-To / References
   against `email_message_ids` of that tenant; unknown → a new conversation whose
   external thread id is the thread root (first References id, else the Message-ID).
Any other recipient is refused at RCPT time (550), so the listener is no open relay.

Channel settings: `address` (inbox address, required), `smtp_host`, `smtp_port` (587),
`smtp_security` ("starttls" | "tls" | "none"), `from_name`, `domain` (right side of our
Message-IDs; default the address's domain), `reply_domain` (of reply+ addresses; default
the same), and for IMAP polling `imap_host`, `imap_port`, `imap_security`, `imap_mailbox`
(`imap.py`). Credentials: `{"username": ..., "password": ...}` (optional; also
`imap_username`, `imap_password`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, formatdate
from typing import Any

import aiosmtplib
from aiohttp import web
from aiosmtpd.smtp import SMTP

from connectors.attachments import AttachmentStore, read_outbound
from connectors.base import (
    Attachment,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
)
from connectors.channels import ChannelConfig
from connectors.context import ConnectorContext
from connectors.email.compose import text_to_html
from connectors.email.idle import IdleConnection
from connectors.email.imap import ImapPoller, oauth2_client
from connectors.email.listener import GatewayLoop, SmtpListener
from connectors.email.oauth2 import MailTokens
from connectors.email.parse import (
    body_text,
    first_address,
    is_automatic,
    message_ids,
    normalize_subject,
    parse_reply_address,
    reply_address,
    reply_subject,
    root_id,
    strip_quotes,
    thread_ids,
)
from connectors.email.store import EmailIdStore, EmailThreadRepository, ImapClaimRepository, ImapPollClaims
from connectors.inbound import MAX_INBOUND_TEXT, InboundResult
from connectors.oauth import AuthError
from gateway.aio.periodic import Periodic
from gateway.core.domain import Channel
from gateway.store import NotFound

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 20
# EMAIL_IMAP_INTERVALs a node's claim of an inbox holds it: the node renews it at each of
# its polls (and keeps the inbox's IDLE connection), another node takes the inbox over
# when the claim runs out (its holder stopped polling: it died, or was set to 0)
IMAP_CLAIM_INTERVALS = 2.0
# Commands one SMTP connection may send (aiosmtpd answers `421 4.7.0 <command> sent too many
# times` and hangs up): a pipelined flood of valid commands ends after a bounded amount of work
# instead of being answered line after line; a sender with more mail reconnects.
SMTP_CALL_LIMITS = {"*": 20, "MAIL": 100, "RCPT": 1000, "DATA": 100, "RSET": 100}
BODY_SCAN_CHARS = 4 * MAX_INBOUND_TEXT  # quoted lines and markup dropped from it leave room
MAX_OUTBOUND_BYTES = 20 * 1024 * 1024  # in all, per mail: what common SMTP relays take (25 MB) after base64


class EmailConnector:
    channel = Channel.EMAIL

    def __init__(self, ctx: ConnectorContext) -> None:
        self._ctx = ctx
        self._settings = ctx.settings.email
        self.ids: EmailThreadRepository = EmailIdStore(ctx.db, ctx.clock)
        self._files = AttachmentStore(ctx.chat, self._settings.max_attachment_bytes)
        self._reply_key = ctx.box.derive("email-reply-address")
        self._listener: SmtpListener | None = None
        self.smtp_port: int | None = None  # the bound port once listening
        self._tokens = MailTokens(ctx.clock, self._store_refresh_token)  # XOAUTH2 logins, IMAP and SMTP
        claims: ImapClaimRepository = ImapPollClaims(ctx.db)
        hold = IMAP_CLAIM_INTERVALS * self._settings.imap_interval

        async def claim(ch: ChannelConfig) -> bool:
            return await claims.claim(ch.tenant_id, ch.id, ctx.node_id, ctx.clock(), hold)

        self.imap = ImapPoller(lambda: ctx.channels.list_enabled(Channel.EMAIL), ctx.channels.credentials,
                               self.receive, lambda a: parse_reply_address(self._reply_key, a) is not None,
                               claim, max_bytes=self._settings.max_message_bytes,
                               idle=IdleConnection if self._settings.imap_idle > 0 else None,
                               idle_period=self._settings.imap_idle,
                               tokens=self._tokens)
        self._polling = Periodic("email-imap", self.imap.poll_claimed, self._settings.imap_interval, delay=1.0)

    async def _store_refresh_token(self, ch: ChannelConfig, refresh_token: str) -> None:
        await self._ctx.channels.update_credentials(ch.tenant_id, ch.id, {"oauth2_refresh_token": refresh_token})

    # --- lifecycle -------------------------------------------------------
    async def start(self, sink: InboundSink) -> None:
        self._polling.start()
        if self._settings.smtp_port is None:
            return
        handler = _Handler(self, GatewayLoop(asyncio.get_running_loop()))
        self._listener = SmtpListener(
            lambda: SMTP(handler, data_size_limit=self._settings.max_message_bytes, enable_SMTPUTF8=True,
                         hostname="izihelp", ident="IZIHelp gateway", command_call_limit=SMTP_CALL_LIMITS),
            self._settings.smtp_host, self._settings.smtp_port,
        )
        self.smtp_port = await self._listener.start()
        log.info("email: SMTP listener on %s:%s", self._settings.smtp_host, self.smtp_port)

    async def stop(self) -> None:
        await self._polling.stop()
        await self.imap.close()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()

    def routes(self) -> list[web.RouteDef]:
        return []

    # --- inbound ---------------------------------------------------------
    async def accepts(self, rcpt: str) -> bool:
        if parse_reply_address(self._reply_key, rcpt) is not None:
            return True
        return await self._ctx.channels.find_by_address(Channel.EMAIL, rcpt) is not None

    async def receive(self, raw: bytes, rcpt_tos: list[str]) -> list[InboundResult]:
        """Route one mail to every tenant it is addressed to; at most once per tenant."""
        # off the loop: a mail may be up to SMTP_MAX_MESSAGE_BYTES of hostile MIME
        msg, text = await asyncio.to_thread(_parse_mail, raw)
        sender = first_address(msg.get("From"))
        if sender is None:
            log.info("email: dropping a mail without a From address")
            return []
        if await self._ctx.channels.find_by_address(Channel.EMAIL, sender[1]) is not None:
            log.info("email: dropping a mail from our own inbox %s (loop guard)", sender[1])
            return []
        own_ids = message_ids(msg.get("Message-ID"))
        external_id = own_ids[0] if own_ids else "sha256:" + hashlib.sha256(raw).hexdigest()
        results: list[InboundResult] = []
        done: set[str] = set()
        for rcpt in rcpt_tos:
            routed = await self._route(rcpt, msg)
            if routed is None or routed[0].tenant_id in done:
                continue
            ch, thread = routed
            done.add(ch.tenant_id)
            results.append(await self._deliver(ch, thread, msg, text, sender, external_id))
        return results

    async def _route(self, rcpt: str, msg: EmailMessage) -> tuple[ChannelConfig, str] | None:
        conv_id = parse_reply_address(self._reply_key, rcpt)
        if conv_id is not None:
            link = await self._ctx.links.find(conv_id)
            if link is not None:
                ch = await self._ctx.channels.for_tenant(link.tenant_id, Channel.EMAIL, link.channel_id)
                try:
                    conv = await self._ctx.store.get_conversation(link.tenant_id, conv_id)
                except NotFound:
                    conv = None
                if ch is not None and conv is not None and conv.external_thread_id:
                    return ch, conv.external_thread_id
            return None
        ch = await self._ctx.channels.find_by_address(Channel.EMAIL, rcpt)
        if ch is None:
            return None
        known = await self.ids.find_conversation(ch.tenant_id, thread_ids(msg))
        if known is not None:
            try:
                conv = await self._ctx.store.get_conversation(ch.tenant_id, known)
                if conv.external_thread_id:
                    return ch, conv.external_thread_id
            except NotFound:
                pass
        own = message_ids(msg.get("Message-ID"))
        thread = root_id(msg) or (own[0] if own else None)
        if thread is None:
            thread = "sha256:" + hashlib.sha256(msg.as_bytes()).hexdigest()
        return ch, thread

    async def _deliver(self, ch: ChannelConfig, thread: str, msg: EmailMessage, text: str,
                       sender: tuple[str, str], external_id: str) -> InboundResult:
        subject = str(msg.get("Subject") or "")
        attachments, dropped = await self._attachments(ch.tenant_id, f"email:{ch.id}", msg)
        if dropped:
            text += "\n\n[" + ", ".join(dropped) + ": attachment over the size limit, not kept]"
        if not text.strip():
            text = normalize_subject(subject) or "(empty message)"
        inbound = InboundMessage(
            tenant_id=ch.tenant_id, channel=Channel.EMAIL, external_thread_id=thread,
            external_author_id=sender[1], external_message_id=external_id, text=text.strip(),
            sent_at=time.time(), attachments=tuple(attachments), author_name=sender[0] or None,
            author_email=sender[1], channel_id=ch.id, subject=subject.strip() or None,
            meta={"subject": subject, "automatic": is_automatic(msg)},
        )
        res = await self._ctx.inbound.deliver(inbound)
        await self.ids.record(ch.tenant_id, external_id, res.conversation.id, "in", subject)
        return res

    async def _attachments(self, tenant_id: str, source: str, msg: EmailMessage) -> tuple[list[Attachment], list[str]]:
        kept: list[Attachment] = []
        dropped: list[str] = []
        for i, part in enumerate(msg.iter_attachments()):
            if i >= MAX_ATTACHMENTS:
                dropped.append("more attachments")
                break
            if not isinstance(part, EmailMessage):
                continue
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                continue
            name = part.get_filename()
            saved = await self._files.save(tenant_id, source, name, part.get_content_type(), data)
            if saved is None:
                dropped.append(name or "attachment")
            else:
                kept.append(saved)
        return kept, dropped

    # --- outbound --------------------------------------------------------
    async def send(self, msg: OutboundMessage) -> SendResult:
        ch = await self._ctx.channels.for_tenant(msg.tenant_id, Channel.EMAIL, msg.channel_id)
        if ch is None:
            raise PermanentError("the conversation's email inbox is gone or disabled")
        if not msg.recipient_id or "@" not in msg.recipient_id:
            raise PermanentError("no recipient email address")
        creds = await self._ctx.channels.credentials(ch)
        em, our_id = await self.build_reply(ch, msg)
        s = ch.settings
        security = str(s.get("smtp_security", "starttls"))
        login, token = await self._smtp_login(ch, creds)
        try:
            await aiosmtplib.send(
                em, hostname=str(s.get("smtp_host", "localhost")), port=int(s.get("smtp_port", 587)),
                use_tls=security == "tls", start_tls=security == "starttls",
                timeout=self._settings.send_timeout, **login,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            if token is not None:  # expired or revoked early: a new one at the next try
                self._tokens.refused_token(ch, token)
                raise TransientError(f"SMTP {exc.code}: the relay refused the OAuth 2.0 token: {exc.message}"
                                     ) from None
            kind = PermanentError if exc.code >= 500 else TransientError
            raise kind(f"SMTP {exc.code}: {exc.message}") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            if codes and all(c >= 500 for c in codes):
                raise PermanentError(f"recipient refused: {exc.recipients[0].message}") from None
            raise TransientError(f"recipient temporarily refused: {exc}") from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentError(f"SMTP {exc.code}: {exc.message}") from None
            raise TransientError(f"SMTP {exc.code}: {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientError(f"SMTP: {type(exc).__name__}: {exc}") from None
        await self.ids.record(msg.tenant_id, our_id, msg.conversation_id, "out", str(em["Subject"]))
        return SendResult(external_message_id=our_id)

    async def _smtp_login(self, ch: ChannelConfig, creds: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """aiosmtplib's login arguments for the inbox's relay, and the OAuth 2.0 access token
        they carry (XOAUTH2, when the credentials have an OAuth client) or None."""
        username = creds.get("username") or None
        try:
            client = oauth2_client(creds)
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        if client is None:
            return {"username": username, "password": creds.get("password") or None}, None
        try:
            token = await self._tokens.token(ch, client)
        except AuthError as exc:
            if exc.permanent:
                raise PermanentError(f"OAuth 2.0: {exc}") from None
            raise TransientError(f"OAuth 2.0: {exc}") from None

        async def bearer() -> str:
            return token

        return {"username": username, "oauth_token_generator": bearer}, token

    async def build_reply(self, ch: ChannelConfig, msg: OutboundMessage) -> tuple[EmailMessage, str]:
        """The reply mail; its Message-ID derives from our message id, so a retry after an
        unrecorded success carries the same id and mail clients show it once."""
        s = ch.settings
        address = str(s.get("address") or "")
        domain = str(s.get("domain") or address.rpartition("@")[2] or "localhost")
        reply_domain = str(s.get("reply_domain") or domain)
        thread = await self.ids.thread(msg.tenant_id, msg.conversation_id)
        inbound = [t for t in thread if t.direction == "in"]
        parent = inbound[-1] if inbound else (thread[-1] if thread else None)
        first_subject = next((t.subject for t in thread if t.subject), None)
        our_id = f"{msg.message_id}.{msg.conversation_id[:8]}@{domain}"
        em = EmailMessage()
        em["From"] = formataddr((str(s.get("from_name") or ch.name), address))
        em["To"] = msg.recipient_id
        em["Subject"] = reply_subject(first_subject)
        em["Date"] = formatdate(localtime=False, usegmt=True)
        em["Message-ID"] = f"<{our_id}>"
        em["Reply-To"] = reply_address(self._reply_key, msg.conversation_id, reply_domain)
        if parent is not None:
            em["In-Reply-To"] = f"<{parent.message_id}>"
            chain = [t for t in thread if t is not parent] + [parent]  # the parent's id comes last
            em["References"] = " ".join(f"<{t.message_id}>" for t in chain)
        em.set_content(msg.text)
        if msg.text.strip():  # a file sent without words: the text part alone
            em.add_alternative(text_to_html(msg.text), subtype="html")
        await self._attach(em, msg)
        return em, our_id

    async def _attach(self, em: EmailMessage, msg: OutboundMessage) -> None:
        """The agent's files as MIME parts (a mail carries its files; the links in a
        message's attachments expire). Over MAX_OUTBOUND_BYTES in all, or a file gone from
        this node's disk, fails the send (`PermanentError`): the agent sees it failed."""
        total = sum(a.size or 0 for a in msg.attachments)
        if total > MAX_OUTBOUND_BYTES:
            raise PermanentError(f"attachments of {total} bytes exceed {MAX_OUTBOUND_BYTES} for email")
        for a in msg.attachments:
            data = await read_outbound(a)
            maintype, _, subtype = (a.mime_type or "application/octet-stream").partition("/")
            em.add_attachment(data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                              filename=a.name or "attachment")


def _parse_mail(raw: bytes) -> tuple[EmailMessage, str]:
    """The parsed mail and its new text (quotes stripped), read from the body's first
    `BODY_SCAN_CHARS` only: the stored text is cut at `MAX_INBOUND_TEXT` anyway."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg, strip_quotes(body_text(msg, BODY_SCAN_CHARS))


class _Handler:
    """aiosmtpd hooks: refuse unknown recipients, hand accepted mail to the connector."""

    def __init__(self, connector: EmailConnector, gateway: GatewayLoop) -> None:
        self._c = connector
        self._gateway = gateway  # the hooks run on the SMTP listener's loop; the stores live on this one

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        try:
            ok = await self._gateway.run(self._c.accepts(address))
        except Exception:
            log.exception("email: RCPT check failed")
            return "451 4.3.0 temporary failure, try again later"
        if not ok:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", errors="replace")
        try:
            await self._gateway.run(self._c.receive(raw, list(envelope.rcpt_tos)))
        except Exception:
            log.exception("email: storing an inbound mail failed")
            return "451 4.3.0 temporary failure, try again later"
        return "250 2.0.0 Message accepted"
