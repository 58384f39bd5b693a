"""IMAP IDLE (RFC 2177): one asyncio connection per inbox that waits for the server to
announce new mail, so that a mail is read within seconds instead of at the next poll.

The connection only listens: it logs in, selects the inbox's mailbox (read-only, `EXAMINE`)
and repeats `IDLE` … `DONE` every `period` seconds (servers end an IDLE after 30 minutes,
NAT boxes forget quiet connections sooner). Each `* n EXISTS` the server sends calls
`new_mail()`; the mails are then read by an ordinary poll (`ImapPoller.poll`), so this
module never fetches, flags or parses a mail. `new_mail()` is also called once when the
first IDLE begins: a mail that arrived between the last poll and the IDLE is not left for
the next periodic poll.

A protocol of lines: a response line ending in a literal (`{n}`) is followed by its n bytes
and the rest of the line, which are read and ignored here. Login as the poller does: `AUTHENTICATE
XOAUTH2` with an OAuth 2.0 access token, else `LOGIN` with quoted strings for ASCII
credentials, else `AUTHENTICATE PLAIN` (UTF-8, RFC 4616).
Everything a server answers is bounded (`MAX_LINE`, `MAX_LITERAL`) and waited for at most
`timeout` seconds (an IDLE at most `period + timeout`); any failure raises `ImapError`.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Callable

from connectors.email.imap import ImapAccount, ImapError, quoted_mailbox

MAX_LINE = 64 * 1024  # bytes of one response line
MAX_LITERAL = 1024 * 1024  # bytes of one literal in a response (none is expected while idling)
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* \d+ EXISTS\r\n$", re.IGNORECASE)


def _quoted(s: str) -> bytes:
    return b'"' + s.encode("ascii").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class IdleConnection:
    """One IDLE connection to `account` (see the module's doc)."""

    def __init__(self, account: ImapAccount, *, timeout: float = 30.0) -> None:
        self.account = account
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tags = 0
        self.idles = 0  # IDLE commands the server accepted on this connection

    async def run(self, new_mail: Callable[[], None], *, period: float) -> bool:
        """Connect, log in, then IDLE until cancelled or the connection fails (`ImapError`).
        False at once when the server does not offer IDLE (the periodic poll is then all)."""
        try:
            await self._open()
            if not await self._capable("IDLE"):
                return False
            await self._command(b"EXAMINE " + quoted_mailbox(self.account.mailbox).encode("ascii"))
            while True:
                await self._idle(new_mail, period)
        except TimeoutError:  # before OSError, of which it is one
            raise ImapError("IDLE: the server did not answer in time") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise ImapError(f"IDLE: {type(exc).__name__}: {exc}") from None
        finally:
            self.close()

    def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    # --- the protocol ---------------------------------------------------------------
    async def _open(self) -> None:
        a = self.account
        tls = ssl.create_default_context() if a.security == "tls" else None
        async with asyncio.timeout(self.timeout):
            self._reader, self._writer = await asyncio.open_connection(a.host, a.port, ssl=tls, limit=MAX_LINE)
        greeting = await self._line()
        if not greeting.upper().startswith((b"* OK", b"* PREAUTH")):
            raise ImapError(f"IDLE: greeting {greeting[:200]!r}")
        if a.security == "starttls":
            await self._command(b"STARTTLS")
            writer = self._writer
            assert writer is not None
            async with asyncio.timeout(self.timeout):
                await writer.start_tls(ssl.create_default_context(), server_hostname=a.host)
        if greeting.upper().startswith(b"* PREAUTH"):
            return
        if a.bearer is not None:
            await self._command(b"AUTHENTICATE XOAUTH2", continuation=base64.b64encode(a.xoauth2()))
        elif (a.username + a.password).isascii():
            await self._command(b"LOGIN " + _quoted(a.username) + b" " + _quoted(a.password))
        else:
            plain = base64.b64encode(f"\0{a.username}\0{a.password}".encode())
            await self._command(b"AUTHENTICATE PLAIN", continuation=plain)

    async def _capable(self, name: str) -> bool:
        caps: list[bytes] = []
        await self._command(b"CAPABILITY", untagged=caps)
        return any(name.encode() in line.upper().split() for line in caps if line.upper().startswith(b"* CAPABILITY"))

    async def _idle(self, new_mail: Callable[[], None], period: float) -> None:
        """One IDLE … DONE: `new_mail()` at each EXISTS, DONE after `period` seconds."""
        tag = self._send(b"IDLE")
        while not (line := await self._line()).startswith(b"+"):
            if line.startswith(tag + b" "):  # refused, or over before it began: not IDLE as we know it
                self._check_tagged(tag, line)
                raise ImapError("IDLE: the server ended it at once")
        self.idles += 1
        if self.idles == 1:
            new_mail()
        loop = asyncio.get_running_loop()
        done_at = loop.time() + period
        while (left := done_at - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    line = await self._line(wait=False)
            except TimeoutError:
                break
            if _EXISTS.match(line):
                new_mail()
            elif line.startswith(tag + b" "):
                self._check_tagged(tag, line)
                return  # the server ended the IDLE itself
        assert self._writer is not None
        self._writer.write(b"DONE\r\n")
        while not (line := await self._line()).startswith(tag + b" "):
            if _EXISTS.match(line):
                new_mail()
        self._check_tagged(tag, line)

    async def _command(self, command: bytes, *, continuation: bytes | None = None,
                       untagged: list[bytes] | None = None) -> None:
        tag = self._send(command)
        while True:
            line = await self._line()
            if line.startswith(b"+"):  # the continuation once; a second challenge (an error) answered empty
                assert self._writer is not None
                self._writer.write((continuation or b"") + b"\r\n")
                continuation = None
            elif line.startswith(tag + b" "):
                self._check_tagged(tag, line)
                return
            elif untagged is not None:
                untagged.append(line)

    def _send(self, command: bytes) -> bytes:
        assert self._writer is not None
        self._tags += 1
        tag = b"I%d" % self._tags
        self._writer.write(tag + b" " + command + b"\r\n")
        return tag

    @staticmethod
    def _check_tagged(tag: bytes, line: bytes) -> None:
        if line.startswith(tag + b" ") and not line[len(tag) + 1:].upper().startswith(b"OK"):
            raise ImapError(f"IDLE: {line.decode('utf-8', 'replace').strip()[:200]}")

    async def _line(self, *, wait: bool = True) -> bytes:
        """The next response line (CRLF kept), its literals read and left out. `wait`: at
        most `timeout` seconds (False: the caller bounds the wait)."""
        assert self._reader is not None
        async with asyncio.timeout(self.timeout if wait else None):
            line = await self._reader.readuntil(b"\r\n")
        while (m := _LITERAL.search(line)) is not None:
            n = int(m.group(1))
            if n > MAX_LITERAL:
                raise ImapError(f"IDLE: a literal of {n} bytes")
            async with asyncio.timeout(self.timeout):
                await self._reader.readexactly(n)
            async with asyncio.timeout(self.timeout):
                line = line[:m.start()] + await self._reader.readuntil(b"\r\n")
        return line
