"""The agent console (/console) in a real browser (headless Debian chromium), against a
real gateway: empty state, list previews and contacts, filters, email subject, title count."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from gateway.core.domain import AuthorType, Channel, NewMessage
from tests.browser.conftest import Demo, start_demo
from tests.support.server import Client, agent, new_client_id, visitor

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

T = 15_000  # generous expect timeout (ms): 2 cores shared with other test runs


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("console")):
        yield d


@dataclass
class Watched:
    """A console page with its JS errors and the Socket.IO events it sent."""

    page: Page
    errors: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def sent_events(self, event: str) -> int:
        return sum(1 for f in self.sent if f'"{event}"' in f)


async def open_console(ctx: Any, demo: Demo) -> Watched:
    page: Page = await ctx.new_page()
    w = Watched(page)
    page.on("pageerror", lambda exc: w.errors.append(str(exc)))
    page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: w.sent.append(str(payload))))
    await page.goto(f"{demo.url}/console#token={demo.agent_token}")
    await expect(page.locator("#app")).to_be_visible(timeout=T)
    return w


async def visitor_conversation(demo: Demo, name: str, text: str) -> tuple[Client, str]:
    v = await visitor(demo.url, demo.widget_key, name=name)
    started = await v.call("conversation:start")
    assert started["ok"], started
    cid = started["conversation"]["id"]
    sent = await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": text})
    assert sent["ok"], sent
    return v, cid


async def test_empty_state_before_a_conversation_is_selected(browser: Any, demo: Demo) -> None:
    """No conversation selected: an empty-state message; no reply box, assignee list or
    Resolve button; nothing thrown (issue 32: Resolve threw on `undefined.id`)."""
    v, _ = await visitor_conversation(demo, "Hoa", "Chào shop")
    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_console(ctx, demo)
        page = w.page
        await page.get_by_role("tab", name=re.compile("All")).click()
        await expect(page.locator("#convs button", has_text="Hoa")).to_be_visible(timeout=T)
        await expect(page.locator("#none")).to_be_visible()
        await expect(page.locator("#none")).to_contain_text("No conversation selected")
        for sel in ("#reply-text", "#assign", "#resolve", "#conv"):
            await expect(page.locator(sel)).to_be_hidden()
        # even a scripted click on the hidden Resolve throws nothing
        await page.evaluate("document.getElementById('resolve').click()")
        await page.evaluate("document.getElementById('assign').dispatchEvent(new Event('change'))")
        await page.locator("#convs button", has_text="Hoa").click()
        await expect(page.locator("#messages")).to_contain_text("Chào shop", timeout=T)
        await expect(page.locator("#none")).to_be_hidden()
        for sel in ("#reply-text", "#assign", "#resolve"):
            await expect(page.locator(sel)).to_be_visible()
        assert w.errors == []
    finally:
        await ctx.close()
        await v.close()


async def test_previews_and_contacts_come_with_the_list(browser: Any, demo: Demo) -> None:
    """The list shows each conversation's contact and last message at once and after a
    reload, from one `conversation:list`: no `conversation:get` per row (issue 32)."""
    rows = (("Quân", "Áo sơ mi còn size L không?"), ("Thảo", "Giao hàng mất mấy ngày?"),
            ("Bình", "Cho mình xin bảng giá"))
    seeded = [await visitor_conversation(demo, name, text) for name, text in rows]
    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_console(ctx, demo)
        page = w.page
        await page.get_by_role("tab", name=re.compile("All")).click()
        for name, text in rows:
            row = page.locator("#convs button", has_text=name)
            await expect(row.locator(".preview")).to_have_text(text, timeout=T)
        assert w.sent_events("conversation:list") == 1
        assert w.sent_events("conversation:get") == 0

        w.sent.clear()
        await page.reload()
        await expect(page.locator("#app")).to_be_visible(timeout=T)
        await page.get_by_role("tab", name=re.compile("All")).click()
        row = page.locator("#convs button", has_text="Thảo")
        await expect(row.locator(".preview")).to_have_text("Giao hàng mất mấy ngày?", timeout=T)
        assert await page.locator("#convs button").count() >= 3
        assert w.sent_events("conversation:list") == 1
        assert w.sent_events("conversation:get") == 0
        assert w.errors == []
    finally:
        await ctx.close()
        for v, _ in seeded:
            await v.close()


async def test_pending_filter(browser: Any, demo: Demo) -> None:
    v, cid = await visitor_conversation(demo, "Ngọc", "Mình sẽ gửi ảnh sau nhé")
    bot = await agent(demo.url, demo.agent_token)
    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_console(ctx, demo)
        page = w.page
        pending_tab = page.get_by_role("tab", name=re.compile("Pending"))
        await pending_tab.click()
        await expect(page.locator("#convs button", has_text="Ngọc")).to_have_count(0)
        ack = await bot.call("conversation:status", {"conversation_id": cid, "status": "pending"})
        assert ack["ok"], ack
        row = page.locator("#convs button", has_text="Ngọc")
        await expect(row).to_be_visible(timeout=T)
        await expect(row.locator(".tag")).to_contain_text("pending")
        await expect(page.locator("#count-pending")).to_have_text(re.compile(r"\(\d+\)"))
        for b in await page.locator("#convs .tag").all_text_contents():
            assert "pending" in b
        await page.get_by_role("tab", name=re.compile("Queue")).click()
        await expect(page.locator("#convs button", has_text="Ngọc")).to_have_count(0)
        # after a reload the list request itself carries it
        await page.reload()
        await expect(page.locator("#app")).to_be_visible(timeout=T)
        await page.get_by_role("tab", name=re.compile("Pending")).click()
        await expect(page.locator("#convs button", has_text="Ngọc")).to_be_visible(timeout=T)
        assert w.errors == []
    finally:
        await ctx.close()
        await bot.close()
        await v.close()


async def test_email_subject_shown(browser: Any, demo: Demo) -> None:
    store = demo.rg.gw.store
    now = time.time()
    contact = await store.create_contact(tenant_id=demo.tenant_id, name="Phạm Hùng", email="hung@example.vn", now=now)
    conv = await store.create_conversation(tenant_id=demo.tenant_id, channel=Channel.EMAIL, contact_id=contact.id,
                                           now=now, external_thread_id="hung-1@example.vn",
                                           subject="Đổi trả đơn hàng #2048")
    await store.append_message(demo.tenant_id, conv.id, NewMessage(
        author_type=AuthorType.CONTACT, author_id=contact.id, text="Tôi muốn đổi size."), now=now)
    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_console(ctx, demo)
        page = w.page
        await page.get_by_role("tab", name=re.compile("All")).click()
        row = page.locator("#convs button", has_text="Phạm Hùng")
        await expect(row.locator(".subject")).to_have_text("Đổi trả đơn hàng #2048", timeout=T)
        await expect(row.locator(".preview")).to_have_text("Tôi muốn đổi size.")
        await row.click()
        await expect(page.locator("#conv-subject")).to_have_text("Đổi trả đơn hàng #2048", timeout=T)
        await expect(page.locator("#conv-subject")).to_be_visible()
        # a widget conversation has none: the subject line is hidden again
        await page.locator("#convs button", has_text="Hoa").first.click()
        await expect(page.locator("#conv-subject")).to_be_hidden(timeout=T)
        assert w.errors == []
    finally:
        await ctx.close()


HIDE = """() => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  delete document.hidden; delete document.visibilityState;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def test_unread_count_in_the_title_while_hidden(browser: Any, demo: Demo) -> None:
    """Messages in "Mine" while the tab is hidden count in the title ("(2) IZIHelp
    console"); another's or an unassigned conversation's do not; shown again: reset."""
    bot = await agent(demo.url, demo.agent_token)
    s = await bot.call("session:get")
    me = s["agent"]["id"] if "agent" in s else s["agent_id"]
    mine_v, mine = await visitor_conversation(demo, "Trang", "Chào shop")
    other_v, other = await visitor_conversation(demo, "Khoa", "Chào")
    ctx = await browser.new_context(locale="en-US")
    try:
        assert (await bot.call("conversation:assign", {"conversation_id": mine, "agent_id": me}))["ok"]
        assert (await bot.call("conversation:assign", {"conversation_id": other, "agent_id": None}))["ok"]
        w = await open_console(ctx, demo)
        page = w.page
        await expect(page).to_have_title("IZIHelp console")
        await page.get_by_role("tab", name=re.compile("Mine")).click()
        await expect(page.locator("#convs button", has_text="Trang")).to_be_visible(timeout=T)
        await page.evaluate(HIDE)
        for text in ("Shop ơi", "Còn ở đó không?"):
            ack = await mine_v.call("message:send", {"conversation_id": mine, "client_id": new_client_id(),
                                                     "text": text})
            assert ack["ok"], ack
            await expect(page.locator("#convs button", has_text="Trang").locator(".preview")).to_have_text(
                text, timeout=T)
        await expect(page).to_have_title("(2) IZIHelp console", timeout=T)
        # a message in a conversation that is not the agent's, and the agent's own reply: no count
        assert (await other_v.call("message:send", {"conversation_id": other, "client_id": new_client_id(),
                                                    "text": "Có ai không?"}))["ok"]
        assert (await bot.call("message:send", {"conversation_id": mine, "client_id": new_client_id(),
                                                "text": "Dạ em đây"}))["ok"]
        await page.get_by_role("tab", name=re.compile("All")).click()
        await expect(page.locator("#convs button", has_text="Khoa").locator(".preview")).to_have_text(
            "Có ai không?", timeout=T)
        await expect(page.locator("#convs button", has_text="Trang").locator(".preview")).to_have_text(
            "Dạ em đây", timeout=T)
        await expect(page).to_have_title("(2) IZIHelp console")
        assert (await mine_v.call("message:send", {"conversation_id": mine, "client_id": new_client_id(),
                                                   "text": "Cảm ơn"}))["ok"]
        await expect(page).to_have_title("(3) IZIHelp console", timeout=T)
        await page.evaluate(SHOW)
        await expect(page).to_have_title("IZIHelp console", timeout=T)
        # while shown, nothing counts
        assert (await mine_v.call("message:send", {"conversation_id": mine, "client_id": new_client_id(),
                                                   "text": "Tạm biệt"}))["ok"]
        await expect(page.locator("#convs button", has_text="Trang").locator(".preview")).to_have_text(
            "Tạm biệt", timeout=T)
        await expect(page).to_have_title("IZIHelp console")
        assert w.errors == []
    finally:
        await ctx.close()
        await bot.close()
        await mine_v.close()
        await other_v.close()
