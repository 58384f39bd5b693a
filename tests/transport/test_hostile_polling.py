"""Hostile long-polling before authentication: oversized, malformed and packet-flooded POST
bodies are answered at once (413 or 400) without an ERROR log line, and another client's
ping round trip stays under 100 ms (of this process's CPU: `PROBE_RTT_LIMIT`) meanwhile."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import pytest

from tests.support.server import make_config, run_gateway
from tests.support.waits import until
from tests.transport.test_hostile_frames import MIB, PROBE_RTT_LIMIT, probe, probe_config

pytestmark = pytest.mark.usefixtures("gc_as_served")


async def _session(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as r:
        return str(json.loads((await r.text())[1:])["sid"])


@pytest.mark.parametrize("body", [
    pytest.param(b"\xff\xfe" * (MIB // 2), id="not-utf8"),
    pytest.param(b"\x1e" * MIB, id="separators"),
    pytest.param(b"6\x1e" * (MIB // 2), id="a-flood-of-packets"),
    pytest.param(b"42/visitor," + b"[" * (MIB - 11), id="deep-json-message"),
    pytest.param(b"x" * MIB, id="garbage"),
])
async def test_a_mebibyte_of_hostile_polling_body_is_refused_at_once(
        tmp_path: Path, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async with run_gateway(probe_config(tmp_path)) as rg:
        async with aiohttp.ClientSession() as http, probe(rg.url) as rtts:
            sid = await _session(http, rg.url)
            url = f"{rg.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
            with caplog.at_level(logging.DEBUG):
                async with http.post(url, data=body) as r:
                    status = r.status
                    if status != 200:  # the Engine.IO payload itself is refused
                        assert status in (400, 413) and (await r.json())["code"] == 3, status
                if status == 200:  # the packets were read; the Socket.IO layer closed the session
                    async with http.get(url) as r:
                        assert r.status == 200 and (await r.text()).split("\x1e")[-1] == "1"
                async with http.get(url) as r:  # the session is gone
                    assert r.status == 400 and (await r.json())["code"] == 1
            n = len(rtts)
            await until(lambda: len(rtts) >= n + 3)
        assert max(rtts) < PROBE_RTT_LIMIT, sorted(rtts)[-5:]
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
        assert errors == [], [r.getMessage() for r in errors]


async def test_an_oversized_post_without_expect_is_answered_413_before_its_body(tmp_path: Path) -> None:
    """The declared length is over the limit: 413 at once, the body never read (here it is
    never even sent), and the connection closed."""
    async with run_gateway(make_config(tmp_path)) as rg:
        async with aiohttp.ClientSession() as http:
            sid = await _session(http, rg.url)
        u = urlparse(rg.url)
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        writer.write((f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                      f"Content-Type: text/plain\r\nContent-Length: {10 * 1024**3}\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 413"), head
        writer.close()


async def test_a_chunked_post_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    """No declared length (chunked): the body is read up to the limit, then 413."""
    async with run_gateway(make_config(tmp_path)) as rg:
        limit = rg.gw.realtime.sockets.engine.settings.max_payload

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(limit // 65536 + 4):
                yield b"6\x1e" * 32768

        async with aiohttp.ClientSession() as http:
            sid = await _session(http, rg.url)
            async with http.post(f"{rg.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=chunks()) as r:
                assert r.status == 413
