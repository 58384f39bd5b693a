"""A local SMTP server (aiosmtpd) that records what it receives: the customer's mailbox."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult


@dataclass
class SmtpSink:
    port: int = 0
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse_code: str | None = None  # e.g. "550 5.1.1 no such user" to refuse every RCPT

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse_code:
            return self.refuse_code
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content)
        assert isinstance(msg, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


class XOAuth2Relay(SmtpSink):
    """A relay that takes mail only after `AUTH XOAUTH2` with one of `tokens`, as Gmail's
    and Microsoft 365's do: a token it does not take gets `334 <base64 JSON error>`, and
    after the client's empty line `535 5.7.8 Username and Password not accepted`."""

    def __init__(self, user: str) -> None:
        super().__init__()
        self.user = user
        self.tokens: set[str] = set()
        self.tried: list[str] = []

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        sasl = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
        m = re.fullmatch(r"user=(.*)\x01auth=Bearer (.*)\x01\x01", sasl)
        self.tried.append(m.group(2) if m else "")
        if m and m.group(1) == self.user and m.group(2) in self.tokens:
            return AuthResult(success=True)
        await server.challenge_auth(base64.b64encode(b'{"status":"401","schemes":"bearer"}').decode(),
                                    encode_to_b64=False)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


class PasswordRelay(SmtpSink):
    """A relay that takes mail only after AUTH PLAIN as `user` with `password`
    (aiosmtpd's own mechanisms; no TLS on loopback): a wrong pair gets `535 5.7.8
    Authentication credentials invalid`."""

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self.user = user
        self.password = password
        self.logins: list[str] = []

    def authenticate(self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        login = data.login.decode() if isinstance(data.login, bytes) else str(data.login)
        password = data.password.decode() if isinstance(data.password, bytes) else str(data.password)
        self.logins.append(login)
        return AuthResult(success=(login, password) == (self.user, self.password), handled=False)


@contextlib.asynccontextmanager
async def smtp_sink(sink: SmtpSink | None = None) -> AsyncIterator[SmtpSink]:
    """`sink` (a plain one by default) served on loopback; an `XOAuth2Relay` requires its AUTH."""
    sink = sink or SmtpSink()
    auth = isinstance(sink, XOAuth2Relay | PasswordRelay)
    authenticator = sink.authenticate if isinstance(sink, PasswordRelay) else None
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink, enable_SMTPUTF8=True, auth_required=auth, auth_require_tls=not auth,
                     authenticator=authenticator, auth_exclude_mechanism=["LOGIN"]), "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
