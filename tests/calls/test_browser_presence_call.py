"""Calls and honest presence in headless Chromium (issue 31, items 2 and 3): a console that
was opened and closed does not keep a call ringing, and accepting a call gives the agent
its conversation (the widget no longer shows "Connected" and "No agent online" at once)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from gateway.admin.tenants import create_agent
from tests.calls.support import calls_of
from tests.calls.test_browser_call import ARGS, CHROMIUM, STATS, T, _chromium, _console, _demo, _visitor
from tests.support.server import RunningGateway, make_config, run_gateway, visitor
from tests.support.waits import until_async

pytestmark = pytest.mark.browser


@pytest.fixture
async def ringing_gateway(tmp_path: Path, loopback_ice: None, monkeypatch: pytest.MonkeyPatch
                          ) -> AsyncIterator[RunningGateway]:
    monkeypatch.setenv("CALL_RING_TIMEOUT", "60")  # a call nobody ends would ring for a minute
    async with run_gateway(make_config(tmp_path)) as rg:
        yield rg


async def available_until(rg: RunningGateway, tenant_id: str, want: set[str]) -> None:
    """The tenant's routable agents (connected and online) are `want` (polled: a ceiling)."""
    async def routable() -> bool:
        return await rg.gw.chat.available_agents(tenant_id) == want

    await until_async(routable, timeout=20.0)


async def test_decline_ends_the_call_when_the_other_console_was_closed(ringing_gateway: RunningGateway) -> None:
    """Item 3: agent B opens /console and closes it; agent A declines the call: it ends
    `declined` within 1 s (before: the visitor rang for the whole ring timeout, then 'missed')."""
    from playwright.async_api import async_playwright

    _chromium()
    rg = ringing_gateway
    info = await _demo(rg)
    tenant_id = info["tenant_id"]
    b = await create_agent(rg.gw.store, tenant_id, "Bình", now=time.time())
    admin_id = next(a.id for a in await rg.gw.store.list_agents(tenant_id) if a.role.value == "admin")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            bctx = await browser.new_context(permissions=["microphone"], locale="en-US")
            actx = await browser.new_context(permissions=["microphone"], locale="en-US")
            vctx = await browser.new_context(permissions=["microphone"], locale="en-US")
            b_console = await _console(bctx, rg.url, b.token)
            console = await _console(actx, rg.url, info["agent_token"])
            await available_until(rg, tenant_id, {admin_id, b.agent.id})
            await b_console.close()
            await available_until(rg, tenant_id, {admin_id})

            page = await _visitor(vctx, rg.url)
            await page.get_by_role("button", name="Call", exact=True).click()
            bar = page.locator(".callbar")
            await expect(bar).to_have_attribute("data-call", "ringing", timeout=T)
            ring = console.locator("#call-banner [data-call=ringing]")
            await expect(ring).to_contain_text("Incoming call from Minh", timeout=T)
            call_id = await ring.get_attribute("data-call-id")
            assert call_id
            declined_at = time.time()
            await ring.get_by_role("button", name="Decline").click()
            await expect(bar).to_have_attribute("data-call", "ended", timeout=T)
            await expect(bar).to_contain_text("No agent can take the call right now")  # callDeclined
            assert (await page.evaluate(STATS))["call"]["end_reason"] == "declined"
        finally:
            await browser.close()
    row = await calls_of(rg).store.get(tenant_id, call_id)
    assert row is not None and row.end_reason == "declined" and row.ended_at is not None
    took = row.ended_at - declined_at
    print(f"declined: the call ended {took:.3f} s after the Decline click")
    assert took < 1.0, took


async def test_accepting_a_call_assigns_the_conversation(ringing_gateway: RunningGateway) -> None:
    """Items 2 and 4: the only agent is online but full, so the visitor is told agents are
    busy; the agent accepts the visitor's call: the conversation becomes theirs and the widget
    shows "Connected" with no "no agent online" / "busy" banner."""
    from playwright.async_api import async_playwright

    _chromium()
    rg = ringing_gateway
    info = await _demo(rg)
    tenant_id = info["tenant_id"]
    a = await create_agent(rg.gw.store, tenant_id, "An", capacity=1, now=time.time())
    v1 = await visitor(rg.url, info["widget_key"])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            actx = await browser.new_context(permissions=["microphone"], locale="en-US")
            vctx = await browser.new_context(permissions=["microphone"], locale="en-US")
            console = await _console(actx, rg.url, a.token)
            await available_until(rg, tenant_id, {a.agent.id})
            assert (await v1.call("conversation:start"))["conversation"]["assigned"]  # An is now full

            page = await _visitor(vctx, rg.url)
            box = page.get_by_role("textbox", name="Type a message…")
            await box.fill("Alô?")
            await box.press("Enter")
            host = page.locator("#izihelp-widget")
            banner = page.locator(".offline")
            await expect(host).to_have_attribute("data-agents", "busy", timeout=T)
            await expect(banner).to_contain_text("All agents are busy")

            await page.get_by_role("button", name="Call", exact=True).click()
            ring = console.locator("#call-banner [data-call=ringing]")
            await expect(ring).to_contain_text("Incoming call from Minh", timeout=T)
            await ring.get_by_role("button", name="Accept").click()
            bar = page.locator(".callbar")
            await expect(bar).to_have_attribute("data-call", "answered", timeout=T)
            await expect(bar).to_contain_text("Connected")
            await expect(host).to_have_attribute("data-agents", "available", timeout=T)
            await expect(banner).to_be_hidden()
            cid = await page.evaluate(f"localStorage.getItem('izh.{info['widget_key']}.conv')")
            conv = await rg.gw.store.get_conversation(tenant_id, cid)
            assert conv.assignee_id == a.agent.id
            await bar.get_by_role("button", name="Hang up").click()
            await expect(bar).to_have_attribute("data-call", "ended", timeout=T)
        finally:
            await browser.close()
            await v1.close()
