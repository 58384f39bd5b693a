"""Accessibility of the widget and the console in a real browser: axe-core (npm `axe-core`,
installed by tests/node, injected into the page) finds no serious or critical violation;
both are usable with the keyboard alone; new messages are announced to screen readers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from tests.browser.conftest import ROOT, Demo, start_demo
from tests.browser.test_widget import conversation_id, start_chat, visitor_page
from tests.browser.test_widget_polish import PHONE
from tests.browser.test_widget_rating import chat
from tests.support.server import agent, new_client_id, visitor

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

T = 15_000  # generous expect timeout (ms): 2 cores shared with other test runs
AXE = ROOT / "tests" / "node" / "node_modules" / "axe-core" / "axe.min.js"
RUN_AXE = """async (include) => {
  const r = await axe.run(include ? {include: [[include]]} : document, {resultTypes: ["violations"]});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                  targets: v.nodes.map(n => JSON.stringify(n.target))}));
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    if not AXE.is_file():
        pytest.fail(f"{AXE} missing: run `npm ci` in tests/node")
    async for d in start_demo(tmp_path_factory.mktemp("a11y")):
        yield d


async def serious_violations(page: Page, include: str | None = None) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (or inside `include`, shadow
    roots included). The gateway's CSP forbids inline scripts: contexts are made with
    `bypass_csp` so that the test can inject axe."""
    await page.add_script_tag(path=str(Path(AXE)))
    found = await page.evaluate(RUN_AXE, include)
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def resolved_chat(page: Page, demo: Demo, bot: Any) -> str:
    """A conversation with the visitor's message, an agent's reply, resolved (rating form shown)."""
    await start_chat(page, "Lan", "lan@example.vn", "Xin chào")
    cid = await conversation_id(page, demo)
    ack = await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "Chào chị"})
    assert ack["ok"], ack
    await expect(page.locator(".msg.them .meta")).to_have_text("Demo agent", timeout=T)
    assert (await bot.call("conversation:status", {"conversation_id": cid, "status": "resolved"}))["ok"]
    await expect(page.locator(".resolved form")).to_be_visible(timeout=T)
    return cid


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_widget_has_no_serious_axe_violation(browser: Any, demo: Demo, device: str) -> None:
    ctx = await browser.new_context(locale="vi-VN" if device == "phone" else "en-US", bypass_csp=True,
                                    **(PHONE if device == "phone" else {}))
    bot = await agent(demo.url, demo.agent_token)
    try:
        page = await visitor_page(ctx, demo)
        assert await serious_violations(page, "#izihelp-widget") == []  # the launcher
        await page.locator(".launcher").click()
        await expect(page.locator(".prechat")).to_be_visible()
        assert await serious_violations(page, "#izihelp-widget") == []  # the pre-chat form
        await page.keyboard.press("Escape")  # closed again (on a phone the open panel hides the launcher)
        await expect(page.locator(".panel")).to_be_hidden()
        if device == "phone":  # Vietnamese labels
            await chat(page, "vi", "Xin chào")
            cid = await conversation_id(page, demo)
            await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "Chào chị"})
            assert (await bot.call("conversation:status", {"conversation_id": cid, "status": "resolved"}))["ok"]
            await expect(page.locator(".resolved form")).to_be_visible(timeout=T)
        else:
            await resolved_chat(page, demo, bot)
        assert await serious_violations(page, "#izihelp-widget") == []  # messages, notice, rating form
    finally:
        await bot.close()
        await ctx.close()


async def test_console_has_no_serious_axe_violation(browser: Any, demo: Demo) -> None:
    ctx = await browser.new_context(locale="en-US", bypass_csp=True)
    v = await visitor(demo.url, demo.widget_key, name="Minh")
    try:
        cid = (await v.call("conversation:start"))["conversation"]["id"]
        await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "Hello"})
        page = await ctx.new_page()
        await page.goto(f"{demo.url}/console")
        await expect(page.locator("#login")).to_be_visible(timeout=T)
        assert await serious_violations(page) == []  # sign-in
        page = await ctx.new_page()
        await page.goto(f"{demo.url}/console#token={demo.agent_token}")
        await expect(page.locator("#app")).to_be_visible(timeout=T)
        await page.get_by_role("tab", name=re.compile("All")).click()
        await page.locator(f'#convs button[data-conversation="{cid}"]').click()
        await expect(page.locator("#messages")).to_contain_text("Hello", timeout=T)
        assert await serious_violations(page) == []  # list and conversation
    finally:
        await v.close()
        await ctx.close()


async def test_widget_keyboard_only_with_announcements(browser: Any, demo: Demo) -> None:
    """Open with Tab and Enter, fill the pre-chat form, send, close with Escape, hear a reply
    while closed (a live region), reopen, and rate the resolved conversation: keys only."""
    ctx = await browser.new_context(locale="en-US")
    bot = await agent(demo.url, demo.agent_token)
    try:
        page = await visitor_page(ctx, demo)
        launcher = page.locator(".launcher")
        for _ in range(30):  # Tab through the host page to the launcher
            await page.keyboard.press("Tab")
            if await launcher.evaluate("b => b.getRootNode().activeElement === b"):
                break
        await expect(launcher).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_label("Your name")).to_be_focused()
        await page.keyboard.type("Lan")
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Email").first).to_be_focused()
        await page.keyboard.type("lan@example.vn")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Start chat")).to_be_focused()
        await page.keyboard.press("Enter")
        box = page.get_by_role("textbox", name="Type a message…")
        await expect(box).to_be_focused(timeout=T)
        await page.keyboard.type("Do you ship to Huế?")
        await page.keyboard.press("Enter")
        await expect(page.locator(".msg.me").last).to_have_attribute("data-state", re.compile("sent|delivered|read"),
                                                                     timeout=T)
        cid = await conversation_id(page, demo)
        # open: replies land in the panel's live log, with who wrote them
        log = page.locator('.body[role="log"][aria-live="polite"]')
        await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "Yes we do"})
        await expect(log.locator(".msg.them").last).to_contain_text("Demo agent:", timeout=T)
        await page.keyboard.press("Escape")
        await expect(page.locator(".panel")).to_be_hidden()
        await expect(launcher).to_be_focused()
        # closed: the reply is read out from a live region outside the panel
        await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "In 2 days"})
        await expect(page.locator('[role="status"][aria-live="polite"]', has_text="Demo agent: In 2 days")
                     ).to_have_count(1, timeout=T)
        await page.keyboard.press("Enter")
        await expect(box).to_be_focused()
        # resolved: the rating form by keyboard (radio group: arrows choose, Tab moves on)
        assert (await bot.call("conversation:status", {"conversation_id": cid, "status": "resolved"}))["ok"]
        await expect(page.locator(".resolved form")).to_be_visible(timeout=T)
        await page.keyboard.press("Shift+Tab")  # composer → attach button, then back into the log
        for _ in range(15):
            if await page.evaluate("() => document.querySelector('#izihelp-widget').shadowRoot.activeElement?.name")\
                    == "izh-score":
                break
            await page.keyboard.press("Shift+Tab")
        await page.keyboard.press("Space")  # back into an unchecked group: on its last star
        await expect(page.get_by_label("5 of 5 stars")).to_be_checked()
        for _ in range(2):
            await page.keyboard.press("ArrowLeft")
        await expect(page.get_by_label("3 of 5 stars")).to_be_checked()
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("textbox", name="Add a comment (optional)")).to_be_focused()
        await page.keyboard.type("Good")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Send rating")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator(".resolved .thanks")).to_be_visible(timeout=T)
    finally:
        await bot.close()
        await ctx.close()


async def test_console_keyboard_only(browser: Any, demo: Demo) -> None:
    """Filter tabs with the arrow keys, the conversation list with Up/Down/Home/End, Enter
    opens one (focus in the reply box), Enter sends."""
    ctx = await browser.new_context(locale="en-US")
    clients = []
    try:
        ids = []
        for name in ("Kbd A", "Kbd B", "Kbd C"):
            v = await visitor(demo.url, demo.widget_key, name=name)
            clients.append(v)
            cid = (await v.call("conversation:start"))["conversation"]["id"]
            await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": name})
            ids.append(cid)
        page = await ctx.new_page()
        await page.goto(f"{demo.url}/console#token={demo.agent_token}")
        await expect(page.locator("#app")).to_be_visible(timeout=T)
        await page.get_by_role("tab", name=re.compile("Queue")).focus()
        for _ in range(3):
            await page.keyboard.press("ArrowRight")
        all_tab = page.get_by_role("tab", name=re.compile("All"))
        await expect(all_tab).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(all_tab).to_have_attribute("aria-selected", "true")
        rows = page.locator("#convs button")
        await expect(rows.filter(has_text="Kbd A")).to_have_count(1, timeout=T)
        await rows.first.focus()
        await page.keyboard.press("ArrowDown")
        await expect(rows.nth(1)).to_be_focused()
        await page.keyboard.press("End")
        await expect(rows.last).to_be_focused()
        await page.keyboard.press("Home")
        await expect(rows.first).to_be_focused()
        await page.keyboard.press("ArrowUp")  # wraps
        await expect(rows.last).to_be_focused()
        await page.keyboard.press("Home")
        await page.keyboard.press("Enter")
        reply = page.get_by_label("Reply")
        await expect(reply).to_be_focused(timeout=T)
        await page.keyboard.type("On my way")
        await page.keyboard.press("Enter")
        await expect(page.locator("#messages")).to_contain_text("On my way", timeout=T)
    finally:
        for c in clients:
            await c.close()
        await ctx.close()
