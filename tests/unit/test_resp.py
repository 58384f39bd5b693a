"""The pub/sub connection's RESP2 reader (gateway/broker/resp.py)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from gateway.broker.resp import IDLE, ProtocolError, RespReader

STREAM = (b"*3\r\n$9\r\nsubscribe\r\n$6\r\nizh:ch\r\n:1\r\n"
          b"*3\r\n$7\r\nmessage\r\n$6\r\nizh:ch\r\n$5\r\n\x00\r\n\xffx\r\n"  # binary payload with CRLF inside
          b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
          b"+PONG\r\n"
          b"-ERR only SUBSCRIBE allowed\r\n"
          b"$-1\r\n*0\r\n")
EXPECTED = [[b"subscribe", b"izh:ch", 1], [b"message", b"izh:ch", b"\x00\r\n\xffx"], [b"pong", b""], b"PONG",
            "ERR only SUBSCRIBE allowed", None, []]


def _plain(x: object) -> object:
    return str(x) if isinstance(x, ResponseError) else x


async def test_replies_split_at_every_byte_come_out_whole_and_in_order() -> None:
    for cut in range(1, len(STREAM)):
        stream = asyncio.StreamReader()
        reader = RespReader(stream)
        stream.feed_data(STREAM[:cut])
        got: list[object] = []
        while len(got) < len(EXPECTED):
            reply = await reader.next(0.001)
            if reply is IDLE:  # the rest arrives in a second read
                assert cut < len(STREAM)
                stream.feed_data(STREAM[cut:])
                cut = len(STREAM)
                continue
            got.append(_plain(reply))
        assert got == EXPECTED


async def test_idle_is_none_and_a_closed_stream_raises() -> None:
    stream = asyncio.StreamReader()
    reader = RespReader(stream)
    assert await reader.next(0.01) is IDLE
    stream.feed_eof()
    with pytest.raises(ConnectionError):
        await reader.next(0.01)


@pytest.mark.parametrize("raw", [b"?what\r\n", b"$abc\r\n", b"*x\r\n", b":12z\r\n"])
async def test_garbage_is_a_protocol_error(raw: bytes) -> None:
    stream = asyncio.StreamReader()
    reader = RespReader(stream)
    stream.feed_data(raw)
    with pytest.raises(ProtocolError):
        await reader.next(0.01)


async def test_a_reply_longer_than_redis_can_send_is_a_protocol_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the parser buffers for one reply stays bounded (MAX_PENDING, lowered here)."""
    from gateway.broker import resp

    monkeypatch.setattr(resp, "MAX_PENDING", 1000)
    stream = asyncio.StreamReader()
    reader = RespReader(stream)
    stream.feed_data(b"$999999999999\r\n" + b"x" * 600)
    assert await reader.next(0.01) is IDLE  # incomplete, within the bound: wait for more
    stream.feed_data(b"x" * 600)
    with pytest.raises(ProtocolError):
        await reader.next(0.01)


async def test_many_replies_of_one_read_come_out_without_another_read() -> None:
    stream = asyncio.StreamReader()
    reader = RespReader(stream)
    one = b"*3\r\n$7\r\nmessage\r\n$6\r\nizh:ch\r\n$3\r\nabc\r\n"
    stream.feed_data(one * 1000)
    stream.feed_eof()  # a second read would raise
    for _ in range(1000):
        assert await reader.next(0.01) == [b"message", b"izh:ch", b"abc"]
    with pytest.raises(ConnectionError):
        await reader.next(0.01)
