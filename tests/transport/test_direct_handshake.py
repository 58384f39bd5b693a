"""A new websocket session's handshake is answered by the edge without aiohttp
(gateway/edge/listen.py `DirectRequest`, gateway/edge/engine.py `EngineServer.offer`);
everything unusual about one goes to aiohttp and is answered as it always was; hostile
heads on that path leave another client's ping round trip under `PROBE_RTT_LIMIT`.

Real gateway on loopback, raw sockets (the stock clients cannot send a malformed head)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest

from gateway.edge import EngineSettings, SocketServer
from gateway.edge.listen import HEAD_LIMIT
from gateway.realtime.drain import DRAINER_KEY
from tests.support.server import make_config, run_gateway
from tests.support.waits import until
from tests.transport.rawws import serve_sockets
from tests.transport.test_hostile_frames import MIB, PROBE_RTT_LIMIT, attack, frame, probe, probe_config

READ_TIMEOUT = 30.0
HEAD = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"

# heads the edge parses itself before aiohttp: a mebibyte each, sent by another process
HOSTILE_HEADS = {
    "endless-request-line": HEAD[:16] + b"a" * (MIB - 16),
    "endless-headers": HEAD + b"X-A: b\r\n" * ((MIB - len(HEAD)) // 8),
    "endless-header-value": HEAD + b"X-A: " + b"b" * (MIB - len(HEAD) - 5),
    "binary-after-prefix": HEAD[:16] + os.urandom(MIB - 16),
}

pytestmark = pytest.mark.usefixtures("gc_as_served")


def handshake(netloc: str, *, query: str = "EIO=4&transport=websocket", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /socket.io/?{query} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


async def exchange(url: str, *chunks: bytes, then_read: int = 0, until: bytes = b"") -> tuple[bytes, bytes]:
    """Write `chunks` (one write each, drained), read the answer's head and then at least
    `then_read` bytes, or until `until` has come; an error answer to its end."""
    u = urlparse(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        for c in chunks:
            writer.write(c)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        body = b""
        if then_read or until:
            while len(body) < then_read or until not in body:
                more = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
                if not more:
                    break
                body += more
        elif not head.startswith(b"HTTP/1.1 101"):  # an error answer: its body (the connection may stay open)
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
        return head, body
    finally:
        writer.close()


def json_body(body: bytes) -> dict[str, Any]:
    start = body.index(b"{")
    return json.loads(body[start:body.rindex(b"}") + 1])  # type: ignore[no-any-return]


async def test_a_new_websocket_session_is_answered_without_aiohttp(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        netloc = urlparse(rg.url).netloc
        before = rg.runner.server.requests_count if rg.runner.server else 0
        for _ in range(3):
            head, body = await exchange(rg.url, handshake(netloc), then_read=2)
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols"), head
            assert body[2:3] == b"0" and b'"sid"' in body  # the OPEN packet in the same write
        assert rg.runner.server is not None
        assert rg.runner.server.requests_count == before  # no aiohttp request was made
        # a polling handshake is aiohttp's
        head, _ = await exchange(rg.url, f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {netloc}\r\n"
                                          "Connection: close\r\n\r\n".encode())
        assert head.startswith(b"HTTP/1.1 200"), head
        assert rg.runner.server.requests_count == before + 1


async def test_a_head_in_single_bytes_and_a_frame_right_behind_it(tmp_path: Path) -> None:
    """The head is parsed as it comes; bytes sent behind it, before the 101 (a client that
    does not wait), are the session's: here a CONNECT to a namespace that does not exist."""
    async with run_gateway(make_config(tmp_path)) as rg:
        netloc = urlparse(rg.url).netloc
        raw = handshake(netloc)
        head, body = await exchange(rg.url, *[raw[i:i + 1] for i in range(len(raw))], then_read=2)
        assert head.startswith(b"HTTP/1.1 101"), head
        answer = b'44/nowhere,{"message":"Invalid namespace"}'
        head, body = await exchange(rg.url, handshake(netloc) + frame(0x1, b"40/nowhere,"), until=answer)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert answer in body, body


async def test_unusual_handshakes_are_answered_by_aiohttp_as_before(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        netloc = urlparse(rg.url).netloc
        server = rg.runner.server
        assert server is not None
        cases: list[tuple[bytes, bytes]] = [
            (handshake(netloc, query="EIO=3&transport=websocket"), b"400"),  # protocol version
            (handshake(netloc, query="EIO=4&transport=websocket&sid=nope"), b"400"),  # unknown session
            (handshake(netloc).replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"), b"400"),
            (handshake(netloc).replace(b"Upgrade: websocket\r\n", b""), b"400"),  # not an upgrade
            (handshake(netloc, extra="Bad Header: x\r\n"), b"400"),  # malformed: aiohttp's parser says so
            # a head longer than the edge parses: aiohttp's limits answer it
            (handshake(netloc, extra=f"X-Long: {'a' * (HEAD_LIMIT + 100)}\r\n"), b"4"),
        ]
        for raw, status in cases:
            before = server.requests_count
            head, _ = await exchange(rg.url, raw)
            assert head.split(b" ")[1].startswith(status), (raw[:80], head)
            assert server.requests_count == before + 1, raw[:80]  # aiohttp answered it


async def test_refusals_are_declined_to_aiohttp(tmp_path: Path) -> None:
    """Over the sessions per address, and while draining: the edge's own path declines the
    connection and aiohttp's answers it, with the bodies it always had."""
    async with run_gateway(make_config(tmp_path, max_connections_per_ip=2)) as rg:
        netloc = urlparse(rg.url).netloc
        u = urlparse(rg.url)
        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection(u.hostname, u.port)
            writer.write(handshake(netloc))
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)).startswith(b"HTTP/1.1 101")
            held.append(writer)
        head, body = await exchange(rg.url, handshake(netloc))
        assert head.startswith(b"HTTP/1.1 429") and b"Retry-After:" in head, head
        assert json_body(body)["context"]["code"] == "rate_limited"
        for w in held:
            w.close()

    async with run_gateway(make_config(tmp_path / "drain")) as rg:
        netloc = urlparse(rg.url).netloc
        drainer = rg.gw.app[DRAINER_KEY]
        drainer.state.draining = True
        try:
            head, body = await exchange(rg.url, handshake(netloc))
        finally:
            drainer.resume()
        assert head.startswith(b"HTTP/1.1 503"), head
        assert json_body(body)["error"]["code"] == "unavailable"
        head, _ = await exchange(rg.url, handshake(netloc), then_read=2)
        assert head.startswith(b"HTTP/1.1 101"), head


class BrokenCheck:
    """An admission check whose backend fails (not a refusal)."""

    def __init__(self) -> None:
        self.tries = 0

    async def acquire(self, remote: str) -> None:
        self.tries += 1
        raise RuntimeError("the check's backend is down")

    def release(self, remote: str) -> None:
        raise AssertionError("nothing was acquired")


async def test_an_admission_check_that_fails_is_declined_to_aiohttp() -> None:
    """Not a refusal but an error: the direct path declines, aiohttp's asks again and its
    error handling answers (500 here, on a bare application), as before."""
    check = BrokenCheck()
    sockets = SocketServer(EngineSettings(), admission=[check])
    async with serve_sockets(sockets) as url:
        head, _ = await exchange(url, handshake(urlparse(url).netloc))
    assert head.split(b" ")[1] == b"500", head
    assert check.tries == 2  # the direct path's try, then aiohttp's


@pytest.mark.parametrize("name", list(HOSTILE_HEADS))
async def test_a_mebibyte_of_hostile_head_does_not_stall_other_clients(tmp_path: Path, name: str) -> None:
    """Each byte is parsed once by the edge, at most `HEAD_LIMIT` of them, then the
    connection is aiohttp's, whose own limits refuse it; another client is served all along."""
    async with run_gateway(probe_config(tmp_path)) as rg:
        async with probe(rg.url) as rtts:
            await attack(rg.url, HOSTILE_HEADS[name], 64 * 1024, raw=True)
            n = len(rtts)
            await until(lambda: len(rtts) >= n + 3)
        assert len(rtts) >= 3 and max(rtts) < PROBE_RTT_LIMIT, (name, sorted(rtts)[-5:])
        assert len(rg.gw.realtime.sockets.engine.sessions) == 0  # the attacker opened no session
        async with aiohttp.ClientSession() as http, http.get(f"{rg.url}/healthz") as r:
            assert r.status == 200


async def test_a_head_one_byte_per_write_does_not_stall_other_clients(tmp_path: Path) -> None:
    """A head trickled a byte at a time up to past `HEAD_LIMIT`: parsed as it comes."""
    data = HEAD + b"X-A: b\r\n" * ((2 * HEAD_LIMIT) // 8)
    async with run_gateway(probe_config(tmp_path)) as rg:
        async with probe(rg.url) as rtts:
            await attack(rg.url, data, 1, raw=True)
            n = len(rtts)
            await until(lambda: len(rtts) >= n + 3)
        assert max(rtts) < PROBE_RTT_LIMIT, sorted(rtts)[-5:]
