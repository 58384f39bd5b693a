"""Playback of recordings against the real server: `Range` at and across age chunk
boundaries, suffix and open-ended ranges, 416, HEAD, a file cut by a crash, a tampered
chunk, and the bytes equal to pyrage's whole-file decryption; a browser's <audio> seeking; the
memory of one playback bounded whatever the length."""

from __future__ import annotations

import asyncio
import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import pyrage
import pytest
from pyrage import x25519

from recording.ageseek import CHUNK, NONCE, SEALED, AgeReader, parse_header
from recording.agestream import decrypt_prefix
from recording.blobs import LocalBlobStore
from recording.catalogue import RecordingRow
from recording.service import Playback
from tests.calls.crash_writer import opus_packets
from tests.calls.support import calls_of
from tests.support.server import RunningGateway

PACKETS = opus_packets(50)


async def record(rg: RunningGateway, tenant_id: str, frames: int) -> RecordingRow:
    rec = await calls_of(rg).recordings.start(tenant_id, "c" * 32, ("caller", "agent"))
    for i in range(frames):
        p = PACKETS[i % len(PACKETS)]
        rec.add(0, p, i * 960)
        rec.add(1, p, i * 960)
    row = await rec.finish()
    assert row.state == "complete"
    return row


async def plain_of(rg: RunningGateway, row: RecordingRow, blob: Path) -> tuple[bytes, bool]:
    identity = await calls_of(rg).recordings.keys.identity(row.tenant_id, row.key_id)
    return decrypt_prefix(await asyncio.to_thread(blob.read_bytes), identity)


async def test_ranges_at_and_across_chunk_boundaries(call_gateway, tmp_path):
    rg = call_gateway
    nt = await rg.tenant()
    _, token = await rg.agent_token(nt.tenant.id)
    row = await record(rg, nt.tenant.id, 1500)
    blob = tmp_path / "recordings" / row.blob_key
    plain, complete = await plain_of(rg, row, blob)
    assert complete and len(plain) > 3 * CHUNK + 1000, len(plain)
    n = len(plain)
    url = f"{rg.url}/api/v1/recordings/{row.id}"
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        r = await http.get(url, headers=auth)
        assert r.status == 200 and r.headers["Accept-Ranges"] == "bytes"
        assert r.headers["X-Recording-Complete"] == "true" and int(r.headers["Content-Length"]) == n
        assert await r.read() == plain
        cases = {
            f"bytes=0-{CHUNK - 1}": (0, CHUNK - 1),  # exactly chunk 0
            f"bytes={CHUNK}-{2 * CHUNK - 1}": (CHUNK, 2 * CHUNK - 1),  # exactly chunk 1
            f"bytes={CHUNK - 10}-{CHUNK + 9}": (CHUNK - 10, CHUNK + 9),  # across a boundary
            f"bytes={CHUNK - 1}-{3 * CHUNK}": (CHUNK - 1, 3 * CHUNK),  # across three chunks
            f"bytes={2 * CHUNK}-": (2 * CHUNK, n - 1),  # open-ended from a boundary
            "bytes=12345-": (12345, n - 1),
            "bytes=-100": (n - 100, n - 1),  # suffix
            f"bytes=-{n + 50}": (0, n - 1),  # suffix longer than the file
            f"bytes={n - 1}-{n + 1000}": (n - 1, n - 1),  # last byte, end clamped
            "bytes=0-0": (0, 0),
        }
        for rng, (a, b) in cases.items():
            r = await http.get(url, headers={**auth, "Range": rng})
            assert r.status == 206, rng
            assert r.headers["Content-Range"] == f"bytes {a}-{b}/{n}", rng
            assert r.headers["Accept-Ranges"] == "bytes"
            assert await r.read() == plain[a:b + 1], rng
        for rng in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0", "bytes=5-3", "bytes=0-1,5-6", "items=0-1",
                    "bytes=x-"):
            r = await http.get(url, headers={**auth, "Range": rng})
            assert r.status == 416, rng
            assert r.headers["Content-Range"] == f"bytes */{n}", rng
        r = await http.head(url, headers={**auth, "Range": "bytes=10-19"})
        assert r.status == 206 and r.headers["Content-Length"] == "10" and await r.read() == b""


async def test_cut_recording_plays_its_prefix_and_tampering_is_refused(call_gateway, tmp_path):
    rg = call_gateway
    nt = await rg.tenant()
    _, token = await rg.agent_token(nt.tenant.id)
    auth = {"Authorization": f"Bearer {token}"}
    row = await record(rg, nt.tenant.id, 1500)
    blob = tmp_path / "recordings" / row.blob_key
    full, _ = await plain_of(rg, row, blob)
    data = blob.read_bytes()
    header = parse_header(data)
    assert header is not None
    p0 = header.length + NONCE
    url = f"{rg.url}/api/v1/recordings/{row.id}"
    async with aiohttp.ClientSession() as http:
        # a crash after two whole chunks: the prefix plays, marked incomplete
        blob.write_bytes(data[:p0 + 2 * SEALED])
        assert await plain_of(rg, row, blob) == (full[:2 * CHUNK], False)
        r = await http.get(url, headers=auth)
        assert r.status == 200 and r.headers["X-Recording-Complete"] == "false"
        assert await r.read() == full[:2 * CHUNK]
        r = await http.get(url, headers={**auth, "Range": "bytes=-10"})
        assert r.status == 206 and r.headers["Content-Range"] == f"bytes {2 * CHUNK - 10}-{2 * CHUNK - 1}/{2 * CHUNK}"
        # a flipped byte in the last chunk: refused before any byte is sent
        bad = bytearray(data)
        bad[-3] ^= 1
        blob.write_bytes(bytes(bad))
        r = await http.get(url, headers=auth)
        assert r.status == 500 and (await r.json())["error"]["code"] == "internal"
        # a flipped byte in chunk 1: chunk 0 is served, then the response is cut short
        bad = bytearray(data)
        bad[p0 + SEALED + 100] ^= 1
        blob.write_bytes(bytes(bad))
        r = await http.get(url, headers={**auth, "Range": f"bytes={CHUNK - 5}-{CHUNK + 5}"})
        assert r.status == 206
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
        r = await http.get(url, headers={**auth, "Range": f"bytes=0-{CHUNK - 1}"})
        assert r.status == 206 and await r.read() == full[:CHUNK]  # chunk 0 alone is intact
        # the file gone: 404
        blob.unlink()
        r = await http.get(url, headers=auth)
        assert r.status == 404


@pytest.mark.browser
async def test_browser_audio_element_seeks_with_ranges(call_gateway, tmp_path, caplog):
    """Chromium's <audio> plays a 5-minute recording and seeks to 4:00: it asks for ranges and
    gets 206s, and the element reaches the position (the token is added by the test's route,
    as a console would add it)."""
    from playwright.async_api import async_playwright

    chromium = "/usr/bin/chromium"
    assert Path(chromium).exists(), "chromium is required (apt-get install chromium)"  # noqa: ASYNC240
    rg = call_gateway
    nt = await rg.tenant()
    _, token = await rg.agent_token(nt.tenant.id)
    row = await record(rg, nt.tenant.id, 5 * 60 * 50)
    url = f"{rg.url}/api/v1/recordings/{row.id}"
    seen: list[tuple[str | None, int]] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = await browser.new_page()

            async def add_token(route: Any) -> None:
                await route.continue_(headers={**route.request.headers, "authorization": f"Bearer {token}"})

            await page.route(url, add_token)
            page.on("response", lambda r: seen.append((r.request.headers.get("range"), r.status))
                    if r.url == url else None)
            await page.set_content("<audio id=a preload=auto></audio>")
            state = await page.evaluate("""async (url) => {
                const a = document.getElementById('a');
                const wait = (ev) => new Promise((ok, ko) => {
                    a.addEventListener(ev, ok, {once: true});
                    a.addEventListener('error', () => ko(new Error('media error ' + (a.error && a.error.code))),
                                       {once: true});
                });
                a.src = url;
                await wait('loadedmetadata');
                a.currentTime = 240;
                await wait('seeked');
                return {duration: a.duration, time: a.currentTime};
            }""", url)
        finally:
            await browser.close()
    assert abs(state["time"] - 240) < 1, state
    assert all(status in (200, 206) for _, status in seen), seen
    starts = [int(rng.split("=")[1].split("-")[0]) for rng, status in seen if rng and status == 206]
    assert any(s > 0 for s in starts), seen  # the seek was served by a range, not the whole file
    # the responses the browser abandoned (it asks for `bytes=N-` and moves on) are not errors
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records


async def test_stream_memory_does_not_grow_with_length(tmp_path):
    """Streaming a whole 12 MiB recording from a blob store allocates at most ~one chunk at a time."""
    ident = x25519.Identity.generate()
    store = LocalBlobStore(tmp_path)
    f = store.create("t/big.age")
    f.write(pyrage.encrypt(os.urandom(12 * 2**20 + 123), [ident.to_public()]))
    f.close()
    size = store.size("t/big.age")
    reader = await asyncio.to_thread(
        AgeReader.open, lambda off, n: store.read_range("t/big.age", off, n), size, str(ident))
    row = RecordingRow("r", "t", "c", "k", "t/big.age", "complete", size, 0.0, None, 0.0)
    pb = Playback(row, reader)
    tracemalloc.start()
    try:
        n = 0
        async for piece in pb.stream(0, pb.size):
            n += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 12 * 2**20 + 123
    assert peak < 2 * 2**20, peak
