"""Bounded work per byte on the pre-authentication webhook, visitor-token and SMTP paths:
about 1 MiB of hostile input per path (deep JSON, bodies near and far over the limit, forged
signatures with many candidate timestamps, a byte-at-a-time sender, forged and malformed
visitor tokens of the largest length taken, a 1 MiB SMTP line, a flood of junk SMTP
commands) while another client's `GET /healthz` round trip stays under 100 ms (the
bound issue 29 sets; the largest of the probes made during the attack), on this process's
CPU clock: the gateway, its SMTP listener, the attacker and the probe all run here, and the
wall clock would also count the time the OS gave other processes of a shared machine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from connectors.feature import CONNECTORS_KEY
from gateway.core.domain import Channel
from tests.connectors.facebook.fake_graph import signed_headers
from tests.connectors.zalo import fake_zalo as fz
from tests.integration.edge_setup import FB_SECRET, Edge, edge_gateway
from tests.integration.test_http_edge import exchange
from tests.support.gc import served_gc as tuned_gc

MIB = 1024 * 1024
INBOX = "support@shop.test"
PING_BOUND = 0.100  # CPU seconds of this process: issue 29's "another client's ping round trip < 100 ms"


@pytest.fixture
async def edge_smtp(tmp_path, monkeypatch) -> AsyncIterator[Edge]:
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", "0")
    async with edge_gateway(tmp_path) as e:
        tenant = (await e.rg.gw.store.get_tenant_by_widget_key(e.widget_key)).id
        await e.rg.gw.app[CONNECTORS_KEY].ctx.channels.add(
            tenant_id=tenant, kind=Channel.EMAIL, name="Shop", credentials={"username": "", "password": ""},
            settings={"address": INBOX, "smtp_host": "127.0.0.1", "smtp_port": 9, "smtp_security": "none",
                      "domain": "help.test"})
        yield e


def _smtp_port(e: Edge) -> int:
    port = getattr(e.rg.gw.app[CONNECTORS_KEY].connectors[Channel.EMAIL], "smtp_port", None)
    assert isinstance(port, int) and port > 0
    return port


async def _probe(url: str, done: asyncio.Event) -> list[float]:
    """`GET /healthz` round trips, one after another on one connection, until `done`: the
    CPU time this process spent during each (`time.process_time`, every thread)."""
    rtts: list[float] = []
    async with aiohttp.ClientSession() as http:
        while not done.is_set() or len(rtts) < 3:
            t0 = time.process_time()
            async with http.get(url + "/healthz") as r:
                await r.read()
                assert r.status == 200
            rtts.append(time.process_time() - t0)
            await asyncio.sleep(0)
    return rtts


async def _post(e: Edge, path: str, body: bytes, headers: dict[str, str]) -> int:
    async with e.http.post(e.rg.url + path, data=body, headers=headers) as r:
        await r.read()
        return r.status


async def _byte_at_a_time(url: str, head: bytes, body: bytes) -> bytes:
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        writer.write(head)
        for i in range(len(body)):
            writer.write(body[i:i + 1])
            await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
    finally:
        writer.close()


async def _smtp(port: int, payload: bytes) -> bytes:
    """Send `payload` after the greeting; everything the server answered until it closed or
    went quiet after QUIT."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(reader.readline(), 10)
        writer.write(payload + b"QUIT\r\n")
        await writer.drain()
        out = bytearray()
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                out += chunk
        return bytes(out)
    finally:
        writer.close()


def _attacks(e: Edge) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """The attacks, their payloads built here (before any probing: the client shares the loop)."""
    deep = b"[" * MIB
    deep_headers = signed_headers(FB_SECRET, deep)
    forged = (b'{"object":"page","entry":[' + b'{"id":"1"},' * (MIB // 11))[:MIB]
    forged_headers = signed_headers("not-the-secret", forged)
    huge = (b"POST /webhooks/facebook HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n"
            b"Content-Type: application/json\r\n\r\n")
    slow = b"[" * 4096
    slow_head = (b"POST /webhooks/facebook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"X-Hub-Signature-256: {signed_headers(FB_SECRET, slow)['X-Hub-Signature-256']}\r\n".encode()
                 + f"Content-Length: {len(slow)}\r\n\r\n".encode())
    # Zalo: every `"timestamp":"…"` in the body is a candidate for the signed timestamp
    zalo_limit = 256 * 1024
    candidates = []
    for distinct in (False, True):
        units = b"".join(b'"timestamp":"%d",' % (i if distinct else 1) for i in range(zalo_limit // 16))
        candidates.append(b"{" + units[:zalo_limit - 16].rpartition(b",")[0] + b',"x":1}')
    ts = fz.now_ms()
    zalo_deep = b'{"timestamp":"' + ts.encode() + b'","x":' + b"[" * (250 * 1024) + b"}"
    zalo_deep_mac = fz.sign(zalo_deep, ts)
    long_line = b"EHLO " + b"a" * MIB + b"\r\n"
    junk = b"XJUNK\r\n" * (MIB // 7)  # unknown commands: aiosmtpd hangs up after a few
    noops = b"NOOP\r\n" * (MIB // 6)  # valid ones: each answered, pipelined
    # mails to the public inbox address: 1 MiB of text lines; 1 MiB of unclosed HTML tags
    html_flood = (b"EHLO x\r\nMAIL FROM:<a@example.vn>\r\nRCPT TO:<" + INBOX.encode() + b">\r\nDATA\r\n"
                  + b"From: a@example.vn\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                  + (b"<div<a <blockquote<script" * 30 + b"\r\n") * (MIB // 752) + b".\r\n")
    data_flood = (b"EHLO x\r\nMAIL FROM:<a@example.vn>\r\nRCPT TO:<" + INBOX.encode() + b">\r\nDATA\r\n"
                  + b"From: a@example.vn\r\nSubject: x\r\n\r\n" + (b"x" * 78 + b"\r\n") * (MIB // 80) + b".\r\n")

    # visitor tokens (`X-Visitor-Token`, checked before anything is read): ~1 MiB of tokens of
    # the largest length taken, half well-formed with a forged signature over a deep JSON
    # payload (never parsed: the signature is checked first), half not even base64
    deep_claims = base64.urlsafe_b64encode(b"[" * 720).rstrip(b"=").decode()
    forged_token = deep_claims + "." + base64.urlsafe_b64encode(b"\0" * 32).rstrip(b"=").decode()
    junk_token = "!" * 500 + "." + "!" * 500
    tokens = [forged_token, junk_token] * (MIB // (2 * 1024))
    assert all(len(t) <= 1024 for t in tokens)  # each reaches the signature check
    async def visitor_token_forgeries() -> None:  # a route that checks the visitor and has no rate limit
        for token in tokens:
            headers = {"X-Widget-Key": e.widget_key, "X-Visitor-Token": token}
            async with e.http.get(f"{e.rg.url}/api/v1/uploads/{'0' * 32}/link", headers=headers) as r:
                await r.read()
                assert r.status == 401, r.status

    async def fb_signed_deep() -> None:
        assert await _post(e, "/webhooks/facebook", deep, deep_headers) == 400

    async def fb_forged() -> None:
        assert await _post(e, "/webhooks/facebook", forged, forged_headers) == 401

    async def fb_huge_declared() -> None:
        assert (await exchange(e.rg.url, huge))[0] == 413

    async def fb_byte_at_a_time() -> None:
        assert b" 400 " in await _byte_at_a_time(e.rg.url, slow_head, slow)

    async def zalo_forged_candidates() -> None:
        for body in candidates:
            assert len(body) <= zalo_limit
            assert await _post(e, f"/webhooks/zalo/{fz.APP_ID}", body, {"X-ZEvent-Signature": "mac=" + "0" * 64}) == 401

    async def zalo_signed_deep() -> None:
        assert await _post(e, f"/webhooks/zalo/{fz.APP_ID}", zalo_deep, {"X-ZEvent-Signature": zalo_deep_mac}) == 400

    async def smtp_long_line() -> None:
        out = await _smtp(_smtp_port(e), long_line)
        assert out.startswith(b"5"), out[:200]

    async def smtp_junk_commands() -> None:
        out = await _smtp(_smtp_port(e), junk)
        # aiosmtpd answers 500 to a few, then 502 and hangs up; the 502 may be lost to the reset
        # that closing with unread input causes, so the bound is on the answers before the hang-up
        assert out.startswith(b"500 ") and 0 < out.count(b"500 ") <= 20, out[:200]

    async def smtp_command_flood() -> None:
        out = await _smtp(_smtp_port(e), noops)
        # aiosmtpd answers 421 after the limit and hangs up (the unread rest may reset the connection)
        assert 0 < out.count(b"250 ") <= 20, (out.count(b"250 "), out[-200:])

    async def smtp_html_flood() -> None:
        out = await _smtp(_smtp_port(e), html_flood)
        assert b"354 " in out and out.rstrip().split(b"\r\n")[-2][:3] in (b"250", b"552"), out[-300:]

    async def smtp_data_flood() -> None:
        out = await _smtp(_smtp_port(e), data_flood)
        assert b"354 " in out and out.rstrip().split(b"\r\n")[-2][:3] in (b"250", b"552"), out[-300:]

    return [(f.__name__, f) for f in (fb_signed_deep, fb_forged, fb_huge_declared, fb_byte_at_a_time,
                                       zalo_forged_candidates, zalo_signed_deep, visitor_token_forgeries,
                                       smtp_long_line, smtp_junk_commands, smtp_command_flood, smtp_data_flood,
                                       smtp_html_flood)]


@pytest.fixture
def served_gc() -> Iterator[None]:
    """The garbage collector tuned as `gateway serve` tunes it (tests/support/gc.py)."""
    with tuned_gc():
        yield


async def test_hostile_preauth_input_keeps_other_clients_responsive(edge_smtp: Edge, served_gc: None) -> None:
    for name, attack in _attacks(edge_smtp):
        done = asyncio.Event()
        probe = asyncio.create_task(_probe(edge_smtp.rg.url, done))
        try:
            await attack()
        finally:
            done.set()
        rtts = await probe
        print(f"{name}: {len(rtts)} /healthz probes, the slowest {max(rtts) * 1000:.1f} ms of CPU")
        assert max(rtts) < PING_BOUND, (f"{name}: /healthz round trip {max(rtts) * 1000:.0f} ms of CPU"
                                        f" over {len(rtts)} probes")
