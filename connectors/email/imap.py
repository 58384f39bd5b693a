"""IMAP polling of email inboxes: for a mailbox the gateway cannot be the SMTP server of
(a hosted mailbox: Google Workspace, Microsoft 365, a provider's IMAP).

An email inbox whose settings name an `imap_host` is polled every `EMAIL_IMAP_INTERVAL`
seconds (0: never on this node, see docs/operations.md), by one node of the cluster at a
time: before each poll a node claims the inbox (`claim`, `email_imap_polls`: the holder
renews its claim, another node wins it only once it has run out), and the nodes whose
claim loses leave the inbox to the holder. The holder also keeps an IDLE connection to the
inbox (`idle`, connectors/email/idle.py) and polls it as soon as the server announces a
mail: mail arrives within seconds, and the periodic poll is the safety net. The unseen
mails of `imap_mailbox` (INBOX) are fetched without marking them (`BODY.PEEK[]`), handed to
the same inbound path as a mail received over SMTP (`EmailConnector.receive`: routing,
threading, loop guard, attachments, stored once per Message-ID), and only then flagged
`\\Seen`. A mail that failed to be stored stays unseen and is tried again at the next
poll (after `MAX_TRIES` failed polls it is flagged seen and given up, logged); one read
twice (a crash between storing and flagging, or a poll that outlasted its claim) is
stored once, by its Message-ID. A mail over `SMTP_MAX_MESSAGE_BYTES` is flagged seen
without being fetched, and logged. At most `batch` mails per inbox and poll, oldest first.

Settings of the inbox: `imap_host`, `imap_port` (993, or 143 without TLS), `imap_security`
("tls" | "starttls" | "none"), `imap_mailbox` ("INBOX"). Credentials: `imap_username` and
`imap_password`, else the inbox's `username` and `password` (those of its SMTP relay).
The recipients a mail is routed by are the inbox's own address, after any of our
per-conversation reply addresses in its `Delivered-To`, `To` or `Cc` headers.

`imaplib` is blocking: each IMAP session runs in a worker thread, with a socket timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import logging
import re
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any, Protocol

from connectors.channels import ChannelConfig
from connectors.inbound import InboundResult
from connectors.oauth import AuthError
from gateway.aio.tasks import TaskSet

log = logging.getLogger(__name__)

SECURITY = ("tls", "starttls", "none")
OAUTH2_KEYS = ("oauth2_token_url", "oauth2_client_id", "oauth2_client_secret", "oauth2_refresh_token")
MAX_TRIES = 5  # polls that may fail to store one mail before it is flagged seen and given up
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


class ImapError(Exception):
    """The mailbox could not be read (connection, login, a refused command)."""


@dataclass(frozen=True, slots=True)
class OAuth2Client:
    """Where and how an inbox gets OAuth 2.0 access tokens (refresh-token grant)."""

    token_url: str
    client_id: str
    client_secret: str
    refresh_token: str


def oauth2_client(creds: dict[str, Any]) -> OAuth2Client | None:
    """The inbox's OAuth 2.0 client (IMAP and SMTP log in with XOAUTH2), None when its
    credentials have none; ValueError when they have only part of one."""
    if not any(creds.get(k) for k in OAUTH2_KEYS):
        return None
    missing = [k for k in OAUTH2_KEYS if not creds.get(k)]
    if missing:
        raise ValueError(f"OAuth 2.0 login needs the credentials {', '.join(missing)}")
    url = str(creds["oauth2_token_url"])
    parsed = urllib.parse.urlsplit(url)
    if not ((parsed.scheme == "https" and parsed.hostname)
            or (parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "::1", "localhost"))):
        raise ValueError("oauth2_token_url must be https:// (or http:// on loopback)")
    return OAuth2Client(url, *(str(creds[k]) for k in OAUTH2_KEYS[1:]))


@dataclass(frozen=True, slots=True)
class ImapAccount:
    host: str
    port: int
    security: str
    mailbox: str
    username: str
    password: str
    oauth2: OAuth2Client | None = None  # log in with XOAUTH2 (tokens from here), not the password
    bearer: str | None = None  # the access token for that login (`MailTokens.authorized`)

    @classmethod
    def of(cls, ch: ChannelConfig, creds: dict[str, Any]) -> ImapAccount | None:
        """The inbox's IMAP account; None when it has no `imap_host`. Raises ValueError
        for settings that cannot work."""
        s = ch.settings
        host = str(s.get("imap_host") or "")
        if not host:
            return None
        security = str(s.get("imap_security") or "tls")
        if security not in SECURITY:
            raise ValueError(f"imap_security must be one of {', '.join(SECURITY)}")
        port = int(s.get("imap_port") or (993 if security == "tls" else 143))
        if not 0 < port < 65536:
            raise ValueError("imap_port must be between 1 and 65535")
        username = str(creds.get("imap_username") or creds.get("username") or "")
        password = str(creds.get("imap_password") or creds.get("password") or "")
        if not username:
            raise ValueError("no IMAP username (credentials imap_username or username)")
        return cls(host, port, security, str(s.get("imap_mailbox") or "INBOX"), username, password,
                   oauth2_client(creds))

    def xoauth2(self) -> bytes:
        """The SASL XOAUTH2 initial response (Google's and Microsoft's IMAP), unencoded."""
        assert self.bearer is not None
        return f"user={self.username}\x01auth=Bearer {self.bearer}\x01\x01".encode()


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: bytes
    raw: bytes | None  # None: over the size limit, not fetched


Receive = Callable[[bytes, list[str]], Awaitable[list[InboundResult]]]


class ImapSession:
    """One blocking IMAP session (to run in a thread): login, select, then the calls."""

    def __init__(self, account: ImapAccount, timeout: float) -> None:
        self.account = account
        self.timeout = timeout
        self._imap: imaplib.IMAP4 | None = None

    def __enter__(self) -> ImapSession:
        a = self.account
        try:
            if a.security == "tls":
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(a.host, a.port, ssl_context=ssl.create_default_context(),
                                                        timeout=self.timeout)
            else:
                imap = imaplib.IMAP4(a.host, a.port, timeout=self.timeout)
                if a.security == "starttls":
                    imap.starttls(ssl.create_default_context())
            self._imap = imap
            if a.bearer is not None:  # an error comes as a second challenge: answered empty, then NO
                sasl = a.xoauth2()
                imap.authenticate("XOAUTH2", lambda challenge: b"" if challenge else sasl)
            elif (a.username + a.password).isascii():
                imap.login(a.username, a.password)
            else:  # LOGIN's arguments are ASCII strings: SASL PLAIN carries UTF-8 (RFC 4616)
                imap.authenticate("PLAIN", lambda _: f"\0{a.username}\0{a.password}".encode())
            typ, data = imap.select(quoted_mailbox(a.mailbox))
            if typ != "OK":
                raise ImapError(f"cannot select {a.mailbox!r}: {_text(data)}")
        except (imaplib.IMAP4.error, OSError, ssl.SSLError) as exc:
            self.__exit__()
            raise ImapError(f"{type(exc).__name__}: {exc}") from None
        except ImapError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def _uid(self, *args: str) -> list[Any]:
        assert self._imap is not None
        try:
            typ, data = self._imap.uid(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"UID {args[0]}: {type(exc).__name__}: {exc}") from None
        if typ != "OK":
            raise ImapError(f"UID {args[0]}: {typ} {_text(data)}")
        return list(data)

    def unseen(self, limit: int, max_bytes: int) -> list[Fetched]:
        """The first `limit` unseen mails, oldest first: each one's raw bytes, or None for
        one over `max_bytes` (not fetched)."""
        found = self._uid("SEARCH", "UNSEEN")
        uids = sorted((u for line in found if line for u in line.split()), key=int)[:limit]
        if not uids:
            return []
        sizes: dict[bytes, int] = {}
        for item in self._uid("FETCH", b",".join(uids).decode(), "(RFC822.SIZE)"):
            head = item[0] if isinstance(item, tuple) else item
            if isinstance(head, bytes) and (u := _UID.search(head)) and (n := _SIZE.search(head)):
                sizes[u.group(1)] = int(n.group(1))
        out: list[Fetched] = []
        for uid in uids:
            if sizes.get(uid, 0) > max_bytes:
                out.append(Fetched(uid, None))
                continue
            raw = next((item[1] for item in self._uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes)), None)
            if raw is not None:  # a mail expunged meanwhile has nothing
                out.append(Fetched(uid, raw))
        return out

    def mark_seen(self, uids: Sequence[bytes]) -> None:
        if uids:
            self._uid("STORE", b",".join(uids).decode(), "+FLAGS.SILENT", r"(\Seen)")


class Tokens(Protocol):
    """Access tokens for XOAUTH2 logins (`connectors.email.oauth2.MailTokens`)."""

    async def authorized(self, ch: ChannelConfig, account: ImapAccount) -> ImapAccount:
        """`account` with a valid `bearer` when it has `oauth2`, else as it is."""

    def refused(self, ch: ChannelConfig, account: ImapAccount) -> None:
        """The server refused `account`'s login."""

    async def close(self) -> None: ...


class Idler(Protocol):
    """An IDLE connection (`connectors.email.idle.IdleConnection`)."""

    idles: int  # IDLE commands the server accepted

    async def run(self, new_mail: Callable[[], None], *, period: float) -> bool:
        """IDLE until cancelled (raises `ImapError` when the connection fails); False at once
        when the server offers no IDLE."""


class ImapPoller:
    """Polls every enabled email inbox that has IMAP settings (see the module's doc)."""

    def __init__(self, list_inboxes: Callable[[], Awaitable[list[ChannelConfig]]],
                 credentials: Callable[[ChannelConfig], Awaitable[dict[str, Any]]], receive: Receive,
                 is_reply_address: Callable[[str], bool], claim: Callable[[ChannelConfig], Awaitable[bool]],
                 *, max_bytes: int, batch: int = 50, timeout: float = 30.0,
                 idle: Callable[[ImapAccount], Idler] | None = None, idle_period: float = 300.0,
                 tokens: Tokens) -> None:
        self._list = list_inboxes
        self._tokens = tokens  # access tokens of the inboxes that log in with XOAUTH2 (oauth2.py)
        self._idle = idle  # an IDLE connection to an account (connectors/email/idle.py); None: no IDLE
        self.idle_period = idle_period  # seconds of each IDLE
        self._watchers: dict[str, asyncio.Task[None]] = {}  # inbox → its IDLE connection's task
        self._no_idle: set[str] = set()  # inboxes whose server offers no IDLE
        self._idle_failing: set[str] = set()  # inboxes whose last IDLE connection failed (logged once)
        self._woken = TaskSet()  # polls started by IDLE
        self._pending: set[str] = set()  # inboxes with such a poll waiting for the inbox's lock
        self._locks: dict[str, asyncio.Lock] = {}  # one poll of an inbox at a time
        self._claim = claim  # may this node poll the inbox now (no other node's claim is running)?
        self._credentials = credentials
        self._receive = receive
        self._is_reply_address = is_reply_address  # one of our per-conversation reply addresses?
        self.max_bytes = max_bytes
        self.batch = batch
        self.timeout = timeout
        # inboxes whose last poll failed → the kind of failure logged (once per run and kind)
        self._failing: dict[str, type[Exception]] = {}
        self._tries: dict[tuple[str, bytes], int] = {}  # (inbox, uid) → failed attempts to store it
        self.polls = 0  # polls of an inbox
        self.failures = 0  # of them failed (and inboxes that could not be polled)
        self.mails = 0  # mails flagged seen: stored, or over the size limit, or given up
        self.left_to_others = 0  # inboxes not polled by the periodic poll: another node's claim ran
        self.idle_wakes = 0  # polls started by a server's announcement of new mail (IDLE)

    async def poll_claimed(self) -> None:
        """The periodic poll: every inbox this node can claim for this interval."""
        await self._poll_each(True)

    async def poll_all(self) -> None:
        """Every inbox now, claimed by another node or not (a poll by hand)."""
        await self._poll_each(False)

    @property
    def watching(self) -> int:
        """Inboxes with an IDLE connection open (or opening)."""
        return len(self._watchers)

    async def close(self) -> None:
        """End the IDLE connections and the polls they started."""
        watchers = list(self._watchers.values())
        for t in watchers:
            t.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await self._woken.close()
        await self._tokens.close()

    async def _poll_each(self, claiming: bool) -> None:
        listed: set[str] = set()
        for ch in await self._list():
            if ch.settings.get("imap_host"):
                listed.add(ch.id)
                try:
                    if claiming and not await self._claim(ch):
                        self.left_to_others += 1
                        self._unwatch(ch.id)
                        continue
                    await self.poll(ch)
                    if claiming and ch.id not in self._failing:  # IDLE once the inbox answers
                        await self._watch(ch)
                except Exception as exc:  # e.g. credentials sealed under another MASTER_KEY
                    self._failed(ch, exc)  # the other inboxes are still polled
        if claiming:
            for gone in set(self._watchers) - listed:  # disabled, or no longer on IMAP
                self._unwatch(gone)

    # --- IDLE: the server says when a mail arrives ---------------------------------------
    async def _watch(self, ch: ChannelConfig) -> None:
        """Keep an IDLE connection to `ch` (this node holds its claim): opened when there is
        none, e.g. after the last one failed."""
        if self._idle is None or ch.id in self._watchers or ch.id in self._no_idle:
            return
        account = ImapAccount.of(ch, await self._credentials(ch))
        if account is not None:
            account = await self._tokens.authorized(ch, account)
            self._watchers[ch.id] = asyncio.create_task(self._watching(ch, self._idle(account)),
                                                        name=f"imap-idle-{ch.id}")

    def _unwatch(self, channel_id: str) -> None:
        task = self._watchers.pop(channel_id, None)
        if task is not None:
            task.cancel()

    async def _watching(self, ch: ChannelConfig, conn: Idler) -> None:
        try:
            if not await conn.run(lambda: self._wake(ch), period=self.idle_period):
                self._no_idle.add(ch.id)
                log.info("email: IMAP inbox %s offers no IDLE; it is polled every interval", ch.id)
        except ImapError as exc:
            if ch.id not in self._idle_failing:
                self._idle_failing.add(ch.id)
                log.warning("email: IMAP IDLE on inbox %s failed (%s); polled meanwhile, IDLE tried again at the"
                            " next poll", ch.id, exc)
        finally:
            if self._watchers.get(ch.id) is asyncio.current_task():
                del self._watchers[ch.id]
        if conn.idles:
            self._idle_failing.discard(ch.id)

    def _wake(self, ch: ChannelConfig) -> None:
        """New mail in `ch`: poll it now (one poll waiting at most: later news joins it)."""
        if ch.id in self._pending:
            return
        self._pending.add(ch.id)
        self.idle_wakes += 1
        self._woken.spawn(self._poll_woken(ch))

    async def _poll_woken(self, ch: ChannelConfig) -> None:
        try:
            await self.poll(ch, woken=True)
        except Exception as exc:
            self._failed(ch, exc)

    # --- one poll ----------------------------------------------------------------------
    async def poll(self, ch: ChannelConfig, *, woken: bool = False) -> int:
        """One poll of `ch`'s mailbox: the number of mails handed on (0 when it failed).
        One at a time per inbox; `woken`: started by IDLE (counted in `_pending` until it runs)."""
        lock = self._locks.setdefault(ch.id, asyncio.Lock())
        async with lock:
            if woken:
                self._pending.discard(ch.id)
            return await self._poll(ch)

    async def _poll(self, ch: ChannelConfig) -> int:
        self.polls += 1
        account = None
        try:
            account = ImapAccount.of(ch, await self._credentials(ch))
            if account is None:
                return 0
            account = await self._tokens.authorized(ch, account)
            fetched = await asyncio.to_thread(self._fetch, account)
        except (ImapError, ValueError, AuthError) as exc:
            if isinstance(exc, ImapError) and account is not None:
                self._tokens.refused(ch, account)  # an XOAUTH2 token: a new one next time
            self._failed(ch, exc)
            return 0
        done: list[bytes] = []
        for mail in fetched:
            if mail.raw is None:
                log.warning("email: IMAP inbox %s: mail uid %s is over %d bytes; flagged seen, not stored",
                            ch.id, mail.uid.decode(), self.max_bytes)
                done.append(mail.uid)
                continue
            key = (ch.id, mail.uid)
            try:
                await self._receive(mail.raw, self._recipients(ch, mail.raw))
            except Exception:
                tries = self._tries[key] = self._tries.get(key, 0) + 1
                if tries < MAX_TRIES:
                    log.exception("email: IMAP inbox %s: storing mail uid %s failed (%d of %d); tried again"
                                  " next poll", ch.id, mail.uid.decode(), tries, MAX_TRIES)
                    continue
                log.exception("email: IMAP inbox %s: storing mail uid %s failed %d times; flagged seen, not"
                              " stored", ch.id, mail.uid.decode(), tries)
            self._tries.pop(key, None)
            done.append(mail.uid)
        if done:
            try:
                await asyncio.to_thread(self._mark_seen, account, done)
            except ImapError as exc:  # stored already: the next poll finds them stored (Message-ID)
                self._failed(ch, exc)
                return len(done)
            self.mails += len(done)
        if ch.id in self._failing:
            del self._failing[ch.id]
            log.info("email: IMAP inbox %s (%s) answers again", ch.id, account.host)
        return len(done)

    def _fetch(self, account: ImapAccount) -> list[Fetched]:
        with ImapSession(account, self.timeout) as s:
            return s.unseen(self.batch, self.max_bytes)

    def _mark_seen(self, account: ImapAccount, uids: list[bytes]) -> None:
        with ImapSession(account, self.timeout) as s:
            s.mark_seen(uids)

    def _failed(self, ch: ChannelConfig, exc: Exception) -> None:
        self.failures += 1
        if self._failing.get(ch.id) is not type(exc):  # a new run of failures, or another kind (a token refused)
            self._failing[ch.id] = type(exc)
            log.warning("email: polling IMAP inbox %s failed (%s); trying again every poll", ch.id, exc)

    def _recipients(self, ch: ChannelConfig, raw: bytes) -> list[str]:
        """Our reply addresses among the mail's recipients, then the inbox's address."""
        head = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
        found = [addr for _, addr in getaddresses([str(v) for k in ("Delivered-To", "To", "Cc")
                                                   for v in head.get_all(k, [])])
                 if addr and self._is_reply_address(addr)]
        return [*dict.fromkeys(found), ch.address or str(ch.settings.get("address") or "")]


def quoted_mailbox(mailbox: str) -> str:
    """A mailbox name as an IMAP quoted string, in modified UTF-7 (RFC 3501 5.1.3)."""
    return '"' + utf7_mailbox(mailbox).replace("\\", "\\\\").replace('"', '\\"') + '"'


def utf7_mailbox(name: str) -> str:
    """IMAP's modified UTF-7: printable ASCII as is ("&" as "&-"), any other run as "&",
    its UTF-16BE in base64 with "," for "/" and no padding, "-"."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            b64 = base64.b64encode("".join(run).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            run.clear()

    for c in name:
        if 0x20 <= ord(c) <= 0x7E:
            flush()
            out.append("&-" if c == "&" else c)
        else:
            run.append(c)
    flush()
    return "".join(out)


def _text(data: Any) -> str:
    return " ".join(x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in (data or []))[:200]
