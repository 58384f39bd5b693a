"""The console's search and history paging (issue 32) in a real browser against a real
gateway: a Vietnamese query without diacritics finds the message and its contact, the
snippet is highlighted and escaped, a hit opens the conversation at the message (loading
older pages), and scrolling up loads the messages before the latest 100 of 150."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from gateway.core.domain import AuthorType, NewMessage
from tests.browser.conftest import Demo, start_demo
from tests.browser.test_console import T, open_console, visitor_conversation

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("console-search")):
        yield d


async def _long_conversation(demo: Demo, name: str, n: int, special: dict[int, str]) -> str:
    """A visitor's conversation of `n` messages ("tin nhắn 1" …), `special[i]` as message i."""
    v, cid = await visitor_conversation(demo, name, "tin nhắn 1")
    await v.close()
    store = demo.rg.gw.store
    now = time.time()
    for i in range(2, n + 1):
        text = special.get(i, f"tin nhắn {i}")
        await store.append_message(demo.tenant_id, cid, NewMessage(author_type=AuthorType.CONTACT, author_id=None,
                                                                   text=text), now=now + i * 0.001)
    return cid


async def test_history_pages_load_when_scrolling_up(browser: Any, demo: Demo) -> None:
    cid = await _long_conversation(demo, "Phương", 160, {})
    ctx = await browser.new_context(locale="en-US", viewport={"width": 1200, "height": 700})
    try:
        w = await open_console(ctx, demo)
        page = w.page
        await page.get_by_role("tab", name=re.compile("All")).click()
        await page.locator(f'#convs button[data-conversation="{cid}"]').click()
        msgs = page.locator("#messages .msg")
        await expect(msgs.last).to_contain_text("tin nhắn 160", timeout=T)
        await expect(msgs).to_have_count(100)
        await expect(page.locator('#messages [data-seq="61"]')).to_be_visible()
        await page.locator("#messages").evaluate("b => { b.scrollTop = 0; }")
        await expect(msgs).to_have_count(160, timeout=T)
        seqs = await msgs.evaluate_all("ns => ns.map((n) => Number(n.dataset.seq))")
        assert seqs == list(range(1, 161))
        # the page loaded above kept the messages in view in place: not scrolled to the top
        assert await page.locator("#messages").evaluate("b => b.scrollTop") > 0
        await page.locator("#messages").evaluate("b => { b.scrollTop = 0; }")
        assert w.sent_events("messages:history") == 2  # the first page, then the one older (no more)
        assert w.errors == []
    finally:
        await ctx.close()


async def test_search_finds_vietnamese_without_diacritics_and_opens_the_hit(browser: Any, demo: Demo) -> None:
    await _long_conversation(demo, "Nguyễn Thị Hằng", 150,
                                   {20: "Giao hàng về <Hà Nội> được không?", 140: "Cảm ơn shop"})
    ctx = await browser.new_context(locale="en-US", viewport={"width": 1200, "height": 700})
    try:
        w = await open_console(ctx, demo)
        page = w.page
        await page.locator("#search").fill("ha noi")
        hit = page.locator("#search-results [data-hit]")
        await expect(hit).to_have_count(1, timeout=T)
        await expect(hit.locator(".name")).to_have_text("Nguyễn Thị Hằng")
        assert await hit.locator(".snippet").inner_html() == \
            "Giao hàng về &lt;<mark>Hà</mark> <mark>Nội</mark>&gt; được không?"
        await expect(page.locator("#convs")).to_be_hidden()

        await page.locator("#search").fill("nguyen hang")
        contact = page.locator("#search-results [data-contact]")
        await expect(contact).to_have_count(1, timeout=T)
        await expect(contact.locator("mark")).to_have_text(["Nguyễn", "Hằng"])

        await page.locator("#search").fill("hà nội")
        await expect(hit).to_have_count(1, timeout=T)
        await hit.click()  # message 20: older than the latest 100, loaded to show it
        found = page.locator('#messages [data-seq="20"]')
        await expect(found).to_be_in_viewport(timeout=T)
        await expect(found).to_contain_text("Giao hàng về <Hà Nội> được không?")
        await expect(page.locator("#conv-title")).to_contain_text("Nguyễn Thị Hằng")
        assert await page.locator("#messages .msg").first.get_attribute("data-seq") == "1"  # one older page

        await page.locator("#search").fill("")
        await page.locator("#search").press("Escape")
        await expect(page.locator("#convs")).to_be_visible()
        await expect(page.locator("#search-results")).to_be_hidden()
        assert w.errors == []
    finally:
        await ctx.close()
