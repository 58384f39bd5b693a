"""Issue 31 item 7 and the satisfaction rating in a real browser: agent replies carry the
agent's name, initials and time; resolving shows the visitor a localized notice and the
rating form; the rating is stored once and shown live in the agent console."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from tests.browser.conftest import Demo, start_demo
from tests.browser.test_widget import conversation_id, visitor_page
from tests.support.server import agent, new_client_id

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

T = 15_000  # generous expect timeout (ms): 2 cores shared with other test runs
LABELS = {  # (locale, name, email, start, composer)
    "en": ("en-US", "Your name", "Email", "Start chat", "Type a message…"),
    "vi": ("vi-VN", "Tên của bạn", "Email", "Bắt đầu trò chuyện", "Nhập tin nhắn…"),
}
NOTICE = {"en": "This conversation was marked as resolved.", "vi": "Cuộc trò chuyện đã được đánh dấu là đã giải quyết."}
RATE = {"en": ("How was your chat?", "4 of 5 stars", "Add a comment (optional)", "Send rating",
               "Thank you for your feedback!"),
        "vi": ("Bạn thấy cuộc trò chuyện thế nào?", "4 trên 5 sao", "Thêm nhận xét (không bắt buộc)", "Gửi đánh giá",
               "Cảm ơn bạn đã góp ý!")}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("rating")):
        yield d


async def chat(page: Page, lang: str, text: str) -> None:
    _, name, email, start, composer = LABELS[lang]
    await page.locator(".launcher").click()
    await page.get_by_label(name).fill("Lan")
    await page.get_by_label(email).first.fill("lan@example.vn")
    await page.get_by_role("button", name=start).click()
    box = page.get_by_role("textbox", name=composer)
    await expect(box).to_be_focused(timeout=T)
    await box.fill(text)
    await box.press("Enter")
    await expect(page.locator(".msg.me").last).to_have_attribute("data-state", re.compile("sent|delivered|read"),
                                                                 timeout=T)


async def test_agent_replies_show_name_initials_and_time(browser: Any, demo: Demo) -> None:
    """Item 7: an agent's reply is labelled with the agent's display name and initials (for
    screen readers too), and every message has its time."""
    ctx = await browser.new_context(locale="en-US", timezone_id="Asia/Ho_Chi_Minh")
    bot = await agent(demo.url, demo.agent_token)
    try:
        page = await visitor_page(ctx, demo)
        await chat(page, "en", "Hello")
        cid = await conversation_id(page, demo)
        ack = await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "Hi Lan"})
        assert ack["ok"], ack
        them = page.locator(".msg.them").last
        await expect(them.locator(".meta")).to_have_text("Demo agent", timeout=T)
        await expect(them.locator(".avatar")).to_have_text("DA")
        await expect(them.locator(".who")).to_have_text("Demo agent:")
        for msg in (them, page.locator(".msg.me").last):
            stamp = msg.locator("time")
            await expect(stamp).to_have_text(re.compile(r"\d{1,2}:\d{2}"))
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", await stamp.get_attribute("datetime") or "")
    finally:
        await bot.close()
        await ctx.close()


@pytest.mark.parametrize("lang", ["en", "vi"])
async def test_resolution_notice_and_rating(browser: Any, demo: Demo, lang: str) -> None:
    """Resolving shows the visitor a localized notice and the rating form; the rating (4 stars
    and a comment) is stored once, shown live in the agent console, and the form gives way
    to a thank-you that stays after a reload."""
    title, four, comment, send, thanks = RATE[lang]
    ctx = await browser.new_context(locale=LABELS[lang][0])
    agent_ctx = await browser.new_context(locale="en-US")
    bot = await agent(demo.url, demo.agent_token)
    try:
        page = await visitor_page(ctx, demo)
        await chat(page, lang, "Cảm ơn shop")
        cid = await conversation_id(page, demo)
        resolved = page.locator(".resolved")
        await expect(resolved).to_be_hidden()

        console = await agent_ctx.new_page()
        await console.goto(f"{demo.url}/console#token={demo.agent_token}")
        await console.get_by_role("tab", name=re.compile("All")).click()
        await console.locator(f'#convs button[data-conversation="{cid}"]').click()
        await expect(console.locator("#messages")).to_contain_text("Cảm ơn shop", timeout=T)
        await expect(console.locator("#ratings")).to_be_hidden()

        ack = await bot.call("conversation:status", {"conversation_id": cid, "status": "resolved"})
        assert ack["ok"], ack
        await expect(resolved).to_be_visible(timeout=T)
        await expect(resolved).to_contain_text(NOTICE[lang])
        await expect(page.get_by_role("group", name=title)).to_be_visible()
        await page.get_by_role("button", name=send).click()  # no score yet: refused on the page
        await expect(resolved.get_by_role("alert")).to_be_visible()
        await resolved.locator("label.star").nth(3).click()  # the fourth star
        await expect(page.get_by_label(four)).to_be_checked()
        await expect(page.locator(".star.on")).to_have_count(4)
        await page.get_by_role("textbox", name=comment).fill("Tư vấn nhiệt tình")
        # focusing into the log never scrolls the panel itself (its header stays in place)
        assert await page.locator(".panel").evaluate("p => [p.scrollTop, p.scrollHeight - p.clientHeight]") == [0, 0]
        await page.get_by_role("button", name=send).click()
        await expect(resolved.locator(".thanks")).to_have_text(thanks, timeout=T)
        await expect(resolved.locator("form")).to_be_hidden()

        await expect(console.locator("#ratings")).to_contain_text("Rated 4/5", timeout=T)
        await expect(console.locator("#ratings q")).to_have_text("Tư vấn nhiệt tình")
        async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {demo.agent_token}"}) as http,
                    http.get(f"{demo.url}/api/v1/conversations/{cid}/ratings") as r):
            rows = (await r.json())["ratings"]
        assert [(x["score"], x["comment"]) for x in rows] == [(4, "Tư vấn nhiệt tình")]

        await page.reload()
        await page.locator(".launcher").click()
        await expect(page.locator(".resolved .thanks")).to_have_text(thanks, timeout=T)
        await expect(page.locator(".resolved form")).to_be_hidden()
        # the console shows it on opening too
        await console.reload()
        await console.get_by_role("tab", name=re.compile("All")).click()
        await console.locator(f'#convs button[data-conversation="{cid}"]').click()
        await expect(console.locator("#ratings")).to_contain_text("Rated 4/5", timeout=T)
    finally:
        await bot.close()
        await ctx.close()
        await agent_ctx.close()
