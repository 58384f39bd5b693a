"""IZICall end to end in headless Chromium: the visitor calls from the widget's "Call" button
on the gateway's demo page, the agent answers from the console (a second browser context);
audio both ways through the real gateway (in-process), then the recording is checked."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from gateway.admin.demo import ensure_demo, load_demo
from tests.browser.conftest import ensure_built
from tests.calls.support import analyse_ogg, calls_of
from tests.support.server import RunningGateway, make_config, run_gateway

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-quic", "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required"]
T = 20_000  # expect timeout (ms): 2 shared cores
STATS = "window.__izhCallStats()"


async def _demo(rg: RunningGateway) -> dict[str, Any]:
    await ensure_demo(rg.gw.store, rg.gw.config, now=time.time())
    info = load_demo(rg.gw.config.storage.data_dir)
    assert info is not None
    return info


async def _inbound(page: Page, at_least: int, timeout: float = 60.0) -> int:
    """The inbound RTP packets the page's call has counted, once at least `at_least`
    (polled: the browser tells nothing; `timeout` is a generous bound)."""
    s: Any = None
    for _ in range(int(timeout * 10)):
        s = await page.evaluate(STATS)
        if s["inbound"] and s["inbound"]["packets"] >= at_least:
            return int(s["inbound"]["packets"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no inbound RTP: {s}")


async def _console(ctx: Any, url: str, token: str) -> Page:
    page: Page = await ctx.new_page()
    await page.goto(f"{url}/console#token={token}")
    await expect(page.locator("#app")).to_be_visible(timeout=T)
    await page.select_option("#presence", "online")
    return page


async def _visitor(ctx: Any, url: str) -> Page:
    page: Page = await ctx.new_page()
    await page.goto(f"{url}/demo")
    await page.locator(".launcher").click()
    await page.get_by_label("Your name").fill("Minh")
    await page.get_by_role("button", name="Start chat").click()
    await expect(page.get_by_role("textbox", name="Type a message…")).to_be_focused(timeout=T)
    return page


def _chromium() -> None:
    assert os.path.exists(CHROMIUM), "chromium is required (apt-get install chromium)"
    ensure_built()


async def test_widget_call_answered_in_console(call_gateway: RunningGateway) -> None:
    from playwright.async_api import async_playwright

    _chromium()
    rg = call_gateway
    info = await _demo(rg)
    tenant_id, token = info["tenant_id"], info["agent_token"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            actx = await browser.new_context(permissions=["microphone"], locale="en-US")
            vctx = await browser.new_context(permissions=["microphone"], locale="en-US")
            console = await _console(actx, rg.url, token)
            page = await _visitor(vctx, rg.url)
            # keyboard: Tab from the header's Call button is a plain <button>; Enter starts the call
            call_btn = page.get_by_role("button", name="Call", exact=True)
            await call_btn.focus()
            await page.keyboard.press("Enter")
            bar = page.locator(".callbar")
            await expect(bar).to_have_attribute("data-call", "ringing", timeout=T)
            await expect(bar).to_contain_text("waiting for an agent")
            await expect(call_btn).to_be_disabled()

            ring = console.locator("#call-banner [data-call=ringing]")
            await expect(ring).to_contain_text("Incoming call from Minh", timeout=T)
            call_id = await ring.get_attribute("data-call-id")
            assert call_id and call_id == (await page.evaluate(STATS))["call"]["id"]
            await ring.get_by_role("button", name="Accept").click()
            answered = console.locator("#call-banner [data-call=answered]")
            await expect(answered).to_contain_text("On call with Minh", timeout=T)
            await expect(bar).to_have_attribute("data-call", "answered", timeout=T)
            await expect(bar).to_contain_text("Connected")
            # accepting opened the conversation in the console
            await expect(console.locator("#conv-title")).to_contain_text("Minh", timeout=T)

            v0 = await _inbound(page, 20)
            a0 = await _inbound(console, 20)
            # audio flows both ways: 220 more packets each (20 ms each, paced by the senders:
            # at least 4.4 s of the call)
            await _inbound(page, v0 + 220)
            await _inbound(console, a0 + 220)
            # what the gateway wrote (the direct RTP sender, the default) is audio to Chromium:
            # it decoded sound from it, and lost no packet by sequence number on loopback
            for p in (page, console):
                inbound = (await p.evaluate(STATS))["inbound"]
                assert inbound["energy"] > 0 and inbound["lost"] == 0, inbound

            await bar.get_by_role("button", name="Hang up").click()
            await expect(bar).to_have_attribute("data-call", "ended", timeout=T)
            await expect(bar).to_contain_text("Call ended")
            await expect(call_btn).to_be_enabled()
            ended = console.locator("#call-banner [data-call=ended]")
            await expect(ended).to_contain_text("the caller hung up", timeout=T)
            assert (await page.evaluate(STATS))["call"]["end_reason"] == "caller_hangup"
        finally:
            await browser.close()
    row = await calls_of(rg).store.get(tenant_id, call_id)
    assert row and row.recording_id and row.duration and row.duration > 4.4
    assert row.end_reason == "caller_hangup"
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"{rg.url}/api/v1/recordings/{row.recording_id}",
                           headers={"Authorization": f"Bearer {token}"})
        assert r.status == 200
        ogg = await r.read()
    rec = await calls_of(rg).recordings.row(tenant_id, row.recording_id)
    blob = (Path(rg.gw.config.storage.data_dir) / "recordings" / rec.blob_key).read_bytes()
    assert b"OggS" not in blob
    rep = analyse_ogg(ogg)
    assert rep.streams == ["caller", "agent"]
    assert row.ended_at is not None
    total = row.ended_at - row.started_at
    for d in rep.durations:
        assert abs(d - total) < 1.0, (rep, total)
    # Chromium's fake microphone beeps (~400 Hz) a fraction of each second
    assert min(rep.loud_fraction) > 0.08, rep


async def test_widget_call_errors(tmp_path: Path, loopback_ice: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Microphone refused, then a call nobody answers (missed), in Vietnamese."""
    from playwright.async_api import async_playwright

    _chromium()
    monkeypatch.setenv("CALL_RING_TIMEOUT", "2")
    async with run_gateway(make_config(tmp_path)) as rg:
        info = await _demo(rg)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                actx = await browser.new_context(permissions=["microphone"], locale="en-US")
                await _console(actx, rg.url, info["agent_token"])
                vctx = await browser.new_context(permissions=["microphone"], locale="vi-VN")
                page: Page = await vctx.new_page()
                await page.add_init_script("""(() => { const md = navigator.mediaDevices;
                    const real = md.getUserMedia.bind(md);
                    window.__denyMic = true;
                    navigator.mediaDevices.getUserMedia = (c) => window.__denyMic
                      ? Promise.reject(new DOMException("Permission denied", "NotAllowedError")) : real(c); })()""")
                await page.goto(f"{rg.url}/demo")
                await page.locator(".launcher").click()
                await page.get_by_label("Tên của bạn").fill("Hoa")
                await page.get_by_role("button", name="Bắt đầu trò chuyện").click()
                call_btn = page.get_by_role("button", name="Gọi", exact=True)
                bar = page.locator(".callbar")
                await call_btn.click()
                await expect(bar).to_have_attribute("data-call", "ended", timeout=T)
                await expect(bar).to_contain_text("Quyền dùng micro bị từ chối")
                await expect(bar.get_by_role("button")).to_have_count(0)

                await page.evaluate("window.__denyMic = false")
                await call_btn.click()
                await expect(bar).to_have_attribute("data-call", "ringing", timeout=T)
                await expect(bar).to_contain_text("Không có nhân viên trả lời", timeout=T)
                await expect(bar).to_have_attribute("data-call", "ended")
                assert (await page.evaluate(STATS))["call"]["end_reason"] == "missed"
            finally:
                await browser.close()


async def test_pages_run_under_their_csp(call_gateway: RunningGateway) -> None:
    """The demo shop (with the widget open), the console and the call test page work under the
    gateway's Content-Security-Policy: no violation is reported by Chromium."""
    from playwright.async_api import async_playwright

    _chromium()
    rg = call_gateway
    info = await _demo(rg)
    violations: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            ctx = await browser.new_context(permissions=["microphone"], locale="en-US")
            ctx.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await _console(ctx, rg.url, info["agent_token"])
            await _visitor(ctx, rg.url)
            page = await ctx.new_page()
            await page.goto(f"{rg.url}/call-test?role=visitor&key={info['widget_key']}")
            await expect(page.locator("#log")).to_contain_text("ready visitor", timeout=T)
        finally:
            await browser.close()
    assert violations == []
