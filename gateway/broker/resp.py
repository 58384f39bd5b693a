"""A RESP2 reply reader for the pub/sub connection: many replies per socket read.

redis-py parses each reply with a chain of awaits and a timeout of its own; on a node
receiving thousands of envelopes a second that was a fifth of its time (py-spy). Here one
`read()` fills a buffer, and every complete reply in it is parsed by plain indexing; a
timeout is armed only when the buffer holds no complete reply.
"""

from __future__ import annotations

import asyncio
from typing import Final

from redis.exceptions import ResponseError

READ_SIZE: Final = 256 * 1024
MAX_BULK: Final = 512 * 1024 * 1024  # Redis' own limit on a string
_INCOMPLETE: Final = object()
IDLE: Final = object()  # what `RespReader.next` returns when no reply came in time

class ProtocolError(ValueError):
    """The stream is not RESP2: the connection cannot be trusted any more."""


def parse(buf: bytes | bytearray, pos: int) -> tuple[object, int]:
    """One reply starting at `pos`: (reply, position after it), or (`_INCOMPLETE`, pos).
    A reply is bytes, an int, None (null), a `ResponseError`, or a list of replies."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind = buf[pos:pos + 1]
    head = bytes(buf[pos + 1:end])
    nxt = end + 2
    if kind == b"$":
        n = _int(head)
        if n < 0:
            return None, nxt
        if n > MAX_BULK:
            raise ProtocolError(f"bulk string of {n} bytes")
        if len(buf) < nxt + n + 2:
            return _INCOMPLETE, pos
        if buf[nxt + n:nxt + n + 2] != b"\r\n":
            raise ProtocolError("bulk string not terminated by CRLF")
        return bytes(buf[nxt:nxt + n]), nxt + n + 2
    if kind == b"*":
        n = _int(head)
        if n < 0:
            return None, nxt
        items: list[object] = []
        for _ in range(n):
            item, nxt = parse(buf, nxt)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, nxt
    if kind == b":":
        return _int(head), nxt
    if kind == b"+":
        return head, nxt
    if kind == b"-":
        return ResponseError(head.decode("utf-8", "replace")), nxt
    raise ProtocolError(f"unknown RESP type {kind!r}")


def _int(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ProtocolError(f"bad RESP length or integer {raw[:20]!r}") from None


class RespReader:
    """Replies from `stream`, in order; `next(timeout)` is `IDLE` when none came in time."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._pos = 0

    async def next(self, timeout: float) -> object:
        while True:
            reply, pos = parse(self._buf, self._pos)
            if reply is not _INCOMPLETE:
                self._pos = pos
                if pos > READ_SIZE:  # drop what was consumed, now and then
                    del self._buf[:pos]
                    self._pos = 0
                return reply
            try:
                async with asyncio.timeout(timeout):
                    chunk = await self._stream.read(READ_SIZE)
            except TimeoutError:
                return IDLE
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buf += chunk
