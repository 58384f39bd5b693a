"""Presence that tells the truth, as the visitor sees it (issue 31, item 2): "all agents are
busy" with their place in the queue while an agent is connected and online but at capacity,
"no agent online" (with the leave-your-email form) only when no agent is; a closed console
does not count; a reload asks again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from gateway.admin.demo import ensure_demo, load_demo
from gateway.admin.tenants import create_agent
from tests.browser.conftest import Demo
from tests.support.server import agent, make_config, run_gateway, visitor
from tests.support.waits import until_async

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

T = 15_000  # expect ceiling (ms): 2 cores shared with other test runs
LABELS = {
    "en": ("en-US", "Your name", "Start chat", "Type a message…",
           "All agents are busy — you are number 1 in the queue.", "No agent online"),
    "vi": ("vi-VN", "Tên của bạn", "Bắt đầu trò chuyện", "Nhập tin nhắn…",
           "Tất cả nhân viên đang bận — bạn đang ở vị trí số 1 trong hàng chờ.",
           "Hiện không có nhân viên trực tuyến"),
}


@pytest_asyncio.fixture(loop_scope="module")
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    """One gateway per test (the queue and presence start empty), PRESENCE_TTL 2 s."""
    config = replace(make_config(tmp_path), presence_ttl=2.0, presence_interval=0.25)
    async with run_gateway(config) as rg:
        await ensure_demo(rg.gw.store, config, now=time.time())
        info = load_demo(tmp_path)
        assert info is not None
        yield Demo(rg, rg.url, info["widget_key"], info["agent_token"], info["tenant_id"])


async def available_until(demo: Demo, want: set[str]) -> None:
    """The tenant's routable agents (connected and online) are `want` (polled: a ceiling)."""
    async def routable() -> bool:
        return await demo.rg.gw.chat.available_agents(demo.tenant_id) == want

    await until_async(routable, timeout=15.0)


async def chat_as(page: Page, url: str, lang: str, name: str, text: str) -> None:
    _, name_label, start, placeholder, _, _ = LABELS[lang]
    await page.goto(f"{url}/demo")
    await page.locator(".launcher").click()
    await page.get_by_label(name_label).fill(name)
    await page.get_by_role("button", name=start).click()
    box = page.get_by_role("textbox", name=placeholder)
    await expect(box).to_be_focused(timeout=T)
    await box.fill(text)
    await box.press("Enter")


@pytest.mark.parametrize("lang", ["en", "vi"])
async def test_busy_with_queue_place_then_no_agent_online(browser: Any, demo: Demo, lang: str) -> None:
    locale, _, _, _, busy, none = LABELS[lang]
    na = await create_agent(demo.rg.gw.store, demo.tenant_id, "Xuân", capacity=1, now=time.time())
    x = await agent(demo.url, na.token)  # connected and online, capacity 1
    v1 = await visitor(demo.url, demo.widget_key)
    ctx = await browser.new_context(locale=locale)
    try:
        first = await v1.call("conversation:start")
        assert first["agents"] == "available" and first["conversation"]["assigned"]  # X is now full
        page = await ctx.new_page()
        await chat_as(page, demo.url, lang, "Hoa", "Xin chào")
        host = page.locator("#izihelp-widget")
        banner = page.locator(".offline")
        await expect(host).to_have_attribute("data-agents", "busy", timeout=T)
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text(busy)
        await expect(banner).not_to_contain_text(none)
        await expect(banner.locator("form")).to_be_hidden()  # busy: no "leave your email"

        # X closes the console: no agent is connected any more; a reload is told so
        await x.close()
        await available_until(demo, set())
        await page.reload()
        await page.locator(".launcher").click()
        await expect(host).to_have_attribute("data-agents", "none", timeout=T)
        await expect(banner).to_contain_text(none)
        await expect(banner.locator("form")).to_be_visible()
    finally:
        await ctx.close()
        await v1.close()
        await x.close()


async def test_a_closed_console_is_not_an_online_agent(browser: Any, demo: Demo) -> None:
    """The demo agent opens /console and closes it: a visitor who starts a chat afterwards is
    told "no agent online" at once (before, the stored status kept them online: the visitor
    waited for an agent who was not there), and the tenant's agents see them offline once
    PRESENCE_TTL has passed."""
    actx = await browser.new_context(locale="en-US")
    vctx = await browser.new_context(locale="en-US")
    watcher_agent = await create_agent(demo.rg.gw.store, demo.tenant_id, "Watcher", now=time.time())
    w = await agent(demo.url, watcher_agent.token)
    try:
        assert (await w.call("presence:set", {"status": "away"}))["ok"]
        console = await actx.new_page()
        await console.goto(f"{demo.url}/console#token={demo.agent_token}")
        await expect(console.locator("#app")).to_be_visible(timeout=T)
        admin_id = next(a.id for a in await demo.rg.gw.store.list_agents(demo.tenant_id) if a.role.value == "admin")
        await available_until(demo, {admin_id})
        await console.close()
        await available_until(demo, set())

        page = await vctx.new_page()
        await chat_as(page, demo.url, "en", "Minh", "Hello?")
        await expect(page.locator("#izihelp-widget")).to_have_attribute("data-agents", "none", timeout=T)
        await expect(page.locator(".offline")).to_contain_text("No agent online")

        # the tenant's agents see them offline once PRESENCE_TTL has passed; their choice is kept
        await w.wait_for(lambda: any(e["id"] == admin_id and e["status"] == "offline"
                                     for e in w.of("agent:presence")), T / 1000)
        admin = next(a for a in (await w.call("agent:list"))["agents"] if a["id"] == admin_id)
        assert (admin["status"], admin["chosen_status"]) == ("offline", "online")
    finally:
        await actx.close()
        await vctx.close()
        await w.close()


async def test_chosen_status_is_kept_for_when_they_come_back(browser: Any, demo: Demo) -> None:
    """An agent who chose "away" closes the console: offline to the others after
    PRESENCE_TTL; when they open it again they are "away" again (select and event)."""
    actx = await browser.new_context(locale="en-US")
    watcher_agent = await create_agent(demo.rg.gw.store, demo.tenant_id, "Watcher", now=time.time())
    w = await agent(demo.url, watcher_agent.token)
    admin_id = next(a.id for a in await demo.rg.gw.store.list_agents(demo.tenant_id) if a.role.value == "admin")

    def statuses() -> list[str]:
        return [e["status"] for e in w.of("agent:presence") if e["id"] == admin_id]

    try:
        console = await actx.new_page()
        await console.goto(f"{demo.url}/console#token={demo.agent_token}")
        await expect(console.locator("#app")).to_be_visible(timeout=T)
        await console.select_option("#presence", "away")
        await w.wait_for(lambda: statuses()[-1:] == ["away"], T / 1000)
        await console.close()
        await w.wait_for(lambda: statuses()[-1:] == ["offline"], T / 1000)

        console = await actx.new_page()
        await console.goto(f"{demo.url}/console#token={demo.agent_token}")
        await expect(console.locator("#app")).to_be_visible(timeout=T)
        await w.wait_for(lambda: statuses()[-1:] == ["away"], T / 1000)
        await expect(console.locator("#presence")).to_have_value("away")
        assert admin_id not in await demo.rg.gw.chat.available_agents(demo.tenant_id)  # away: not routed to
    finally:
        await actx.close()
        await w.close()


def busy_text(n: int) -> str:
    return f"All agents are busy — you are number {n} in the queue."


async def test_the_queue_place_moves_live(browser: Any, demo: Demo) -> None:
    """X (capacity 1) is full and another visitor waits first: the page shows "number 2".
    X resolves their conversation: the first waiting one is assigned to X and the page
    shows "number 1" without a reload (before: only a reload moved it)."""
    na = await create_agent(demo.rg.gw.store, demo.tenant_id, "Xuân", capacity=1, now=time.time())
    x = await agent(demo.url, na.token)
    v0 = await visitor(demo.url, demo.widget_key)
    v1 = await visitor(demo.url, demo.widget_key)
    ctx = await browser.new_context(locale="en-US")
    try:
        first = await v0.call("conversation:start")
        assert first["conversation"]["assigned"]  # X is now full
        second = await v1.call("conversation:start")
        assert (second["agents"], second["queue_position"]) == ("busy", 1)
        page = await ctx.new_page()
        await chat_as(page, demo.url, "en", "Hoa", "Xin chào")
        host = page.locator("#izihelp-widget")
        banner = page.locator(".offline")
        await expect(host).to_have_attribute("data-agents", "busy", timeout=T)
        await expect(banner).to_contain_text(busy_text(2), timeout=T)

        done = await x.call("conversation:status", {"conversation_id": first["conversation"]["id"],
                                                     "status": "resolved"})
        assert done["ok"], done
        await expect(banner).to_contain_text(busy_text(1), timeout=T)
        await expect(host).to_have_attribute("data-agents", "busy")
        await v1.wait_for(lambda: any(u["assigned"] for u in v1.of("conversation:updated")), T / 1000)
    finally:
        await ctx.close()
        for cl in (v0, v1, x):
            await cl.close()


async def test_no_agent_online_turns_busy_when_a_full_agent_connects(browser: Any, demo: Demo) -> None:
    """X (capacity 1) took a conversation and closed the console: the page says "no agent
    online". X connects again, still full: the page says "busy, number 1" at once, and the
    leave-your-email form goes (before: it stayed "no agent online" until a reload)."""
    na = await create_agent(demo.rg.gw.store, demo.tenant_id, "Xuân", capacity=1, now=time.time())
    x = await agent(demo.url, na.token)
    v0 = await visitor(demo.url, demo.widget_key)
    ctx = await browser.new_context(locale="en-US")
    try:
        assert (await v0.call("conversation:start"))["conversation"]["assigned"]  # X is now full
        await x.close()
        await available_until(demo, set())
        page = await ctx.new_page()
        await chat_as(page, demo.url, "en", "Minh", "Hello?")
        host = page.locator("#izihelp-widget")
        banner = page.locator(".offline")
        await expect(host).to_have_attribute("data-agents", "none", timeout=T)
        await expect(banner).to_contain_text("No agent online")

        x = await agent(demo.url, na.token)
        await expect(host).to_have_attribute("data-agents", "busy", timeout=T)
        await expect(banner).to_contain_text(busy_text(1))
        await expect(banner.locator("form")).to_be_hidden()
    finally:
        await ctx.close()
        await v0.close()
        await x.close()
