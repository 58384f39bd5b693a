"""A minimal IMAP4rev1 server on loopback that logs in with XOAUTH2 only, as Gmail and
Microsoft 365 do: `AUTHENTICATE XOAUTH2`, the client's SASL string (`user=…^Aauth=Bearer
<token>^A^A`, base64) after a `+`; a token it does not take is answered with a second `+`
carrying a base64 JSON error (`{"status":"401","schemes":"Bearer","scope":…}`) and, after the
client's empty line, `NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)`. One mailbox
(INBOX) of mails, and the commands the poller sends: CAPABILITY (no IDLE), SELECT/EXAMINE,
UID SEARCH UNSEEN, UID FETCH (RFC822.SIZE) / (BODY.PEEK[]), UID STORE +FLAGS.SILENT
(\\Seen), NOOP, LOGOUT. And an OAuth 2.0 token endpoint (refresh-token grant) beside it."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.server import serve_app

_ERROR = base64.b64encode(json.dumps({"status": "401", "schemes": "Bearer",
                                      "scope": "https://mail.google.com/"}).encode())


@dataclass
class Mail:
    uid: int
    raw: bytes
    seen: bool = False


@dataclass
class XOAuth2Imap:
    user: str
    tokens: set[str] = field(default_factory=set)  # access tokens it takes
    mails: list[Mail] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)  # tokens of every login, in order
    port: int = 0
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def deliver(self, raw: bytes) -> None:
        self.mails.append(Mail(next(self._uids), raw))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] ready\r\n")
        authed = False
        while line := await reader.readline():
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            command, _, args = rest.partition(b" ")
            command = command.upper()
            if command == b"AUTHENTICATE" and args.upper().startswith(b"XOAUTH2"):
                writer.write(b"+ \r\n")
                sasl = base64.b64decode((await reader.readline()).strip()).decode()
                m = re.fullmatch(r"user=(.*)\x01auth=Bearer (.*)\x01\x01", sasl)
                self.tried.append(m.group(2) if m else "")
                if m and m.group(1) == self.user and m.group(2) in self.tokens:
                    authed = True
                    writer.write(tag + b" OK Success\r\n")
                else:
                    writer.write(b"+ " + _ERROR + b"\r\n")
                    await reader.readline()  # the client's empty answer
                    writer.write(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
            elif command == b"CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR UIDPLUS\r\n" + tag + b" OK done\r\n")
            elif command in (b"NOOP", b"LOGOUT"):
                writer.write((b"* BYE\r\n" if command == b"LOGOUT" else b"") + tag + b" OK done\r\n")
            elif not authed:
                writer.write(tag + b" BAD not authenticated\r\n")
            elif command in (b"SELECT", b"EXAMINE"):
                writer.write(b"* %d EXISTS\r\n" % len(self.mails) + tag + b" OK [READ-WRITE] done\r\n")
            elif command == b"UID":
                writer.write(self._uid(args) + tag + b" OK done\r\n")
            else:
                writer.write(tag + b" BAD unknown command\r\n")
            await writer.drain()
        writer.close()

    def _uid(self, args: bytes) -> bytes:
        sub, _, rest = args.partition(b" ")
        if sub.upper() == b"SEARCH":
            return b"* SEARCH" + b"".join(b" %d" % m.uid for m in self.mails if not m.seen) + b"\r\n"
        uids, _, items = rest.partition(b" ")
        wanted = {int(u) for u in uids.split(b",")}
        out = b""
        for n, m in enumerate(self.mails, 1):
            if m.uid not in wanted:
                continue
            if sub.upper() == b"STORE":
                m.seen = True
            elif b"RFC822.SIZE" in items.upper():
                out += b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (n, m.uid, len(m.raw))
            else:
                out += b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (n, m.uid, len(m.raw)) + m.raw + b")\r\n"
        return out


@asynccontextmanager
async def xoauth2_imap(user: str) -> AsyncIterator[XOAuth2Imap]:
    imap = XOAuth2Imap(user)
    server = await asyncio.start_server(imap.serve, "127.0.0.1", 0)
    imap.port = server.sockets[0].getsockname()[1]
    try:
        yield imap
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class TokenEndpoint:
    """`POST /token` (form, refresh-token grant) → `{"access_token", "expires_in",
    "token_type"}` (and a new `refresh_token` when it rotates them, as Microsoft's does); a
    refresh token or client it does not know → 400 `invalid_grant` / 401 `invalid_client`,
    as Google's and Microsoft's endpoints answer."""

    client_id: str
    client_secret: str
    refresh_token: str
    rotate: bool = False  # answer each refresh with a new refresh token, and take only the newest
    issued: list[str] = field(default_factory=list)
    url: str = ""

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("refresh_token") != self.refresh_token:
            return web.json_response({"error": "invalid_grant", "error_description": "Token has been expired or "
                                      "revoked."}, status=400)
        self.issued.append(f"ya29.token-{len(self.issued) + 1}")
        body = {"access_token": self.issued[-1], "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://mail.google.com/"}
        if self.rotate:
            self.refresh_token = body["refresh_token"] = f"1//refresh-{len(self.issued)}"
        return web.json_response(body)


@asynccontextmanager
async def token_endpoint(client_id: str, client_secret: str, refresh_token: str) -> AsyncIterator[TokenEndpoint]:
    ep = TokenEndpoint(client_id, client_secret, refresh_token)
    app = web.Application()
    app.router.add_post("/token", ep.token)
    async with serve_app(app) as url:
        ep.url = url + "/token"
        yield ep
