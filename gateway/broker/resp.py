"""A RESP2 reply reader for the pub/sub connection: many replies per socket read.

redis-py parses each reply with a chain of awaits and a timeout of its own, a cost paid
per envelope on a node receiving thousands a second. Here one `read()` fills hiredis' C
parser (`hiredis.Reader`), and every complete reply in it comes out of one `gets()` call
each, with no await per reply; a timeout is armed only when the parser holds no complete
reply. The parsing is C code of a maintained library, not Python of ours (why:
docs/performance.md, History of decisions).
"""

from __future__ import annotations

import asyncio
from typing import Final

import hiredis
from redis.exceptions import ResponseError

READ_SIZE: Final = 256 * 1024
MAX_BULK: Final = 512 * 1024 * 1024  # Redis' own limit on a string
# unparsed bytes that no reply Redis can send needs: one string at its limit, plus headers
MAX_PENDING = MAX_BULK + 64 * 1024
IDLE: Final = object()  # what `RespReader.next` returns when no reply came in time


class ProtocolError(ValueError):
    """The stream is not RESP2: the connection cannot be trusted any more."""


class RespReader:
    """Replies from `stream`, in order; `next(timeout)` is `IDLE` when none came in time.

    A reply is bytes (bulk and simple strings), an int, None (null), a `ResponseError`
    (an error reply: returned, not raised) or a list of replies; a stream that is not RESP2
    raises `ProtocolError`, and so does a reply still incomplete after `MAX_PENDING` bytes
    (a string over Redis' limit: what the parser buffers stays bounded). hiredis does not
    check that a bulk string ends in CRLF; a stream whose framing is off fails on the
    next reply instead."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._parser = hiredis.Reader(protocolError=ProtocolError, replyError=ResponseError)

    async def next(self, timeout: float) -> object:
        parser = self._parser
        while True:
            reply = parser.gets()
            if reply is not False:  # RESP2 has no booleans: False is "no complete reply yet"
                return reply
            if parser.len() > MAX_PENDING:
                raise ProtocolError(f"a reply of more than {MAX_PENDING} bytes")
            try:
                async with asyncio.timeout(timeout):
                    chunk = await self._stream.read(READ_SIZE)
            except TimeoutError:
                return IDLE
            if not chunk:
                raise ConnectionError("redis closed the connection")
            parser.feed(chunk)
