"""Private notes in a real browser (issue 32): the console's "Note" toggle stores a note,
shown to the agent as a note; the visitor's widget never shows it — live, or after a
reload (history) — and shows the agent's reply written after it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import Demo, start_demo
from tests.browser.test_widget import T, start_chat, visitor_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

NOTE = "Khách quen, ưu tiên giao trước"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("notes")):
        yield d


async def test_a_private_note_is_invisible_to_the_visitor(browser: Any, demo: Demo) -> None:
    agent_ctx = await browser.new_context(locale="en-US")
    visitor_ctx = await browser.new_context(locale="en-US")
    try:
        console = await agent_ctx.new_page()
        errors: list[str] = []
        console.on("pageerror", lambda exc: errors.append(str(exc)))
        await console.goto(f"{demo.url}/console#token={demo.agent_token}")
        await expect(console.locator("#app")).to_be_visible(timeout=T)
        page = await visitor_page(visitor_ctx, demo)
        await start_chat(page, "Trang", "trang@example.vn", "Cho mình hỏi đơn hàng")

        await console.get_by_role("tab", name=re.compile("All")).click()
        await console.locator("#convs button", has_text="Trang").click()
        await expect(console.locator("#messages")).to_contain_text("Cho mình hỏi đơn hàng", timeout=T)

        await console.get_by_label("Note").check()
        reply = console.get_by_label("Reply")
        await reply.fill(NOTE)
        await reply.press("Enter")
        note = console.locator("#messages .msg.note")
        await expect(note).to_have_count(1, timeout=T)
        await expect(note.locator(".bubble")).to_have_text(NOTE)
        await expect(note.locator(".meta")).to_contain_text("Note")

        await console.get_by_label("Note").uncheck()
        await reply.fill("Dạ shop kiểm tra ngay ạ")
        await reply.press("Enter")
        await expect(page.locator(".msg.them .bubble").last).to_have_text("Dạ shop kiểm tra ngay ạ", timeout=T)
        await expect(page.locator(".msg")).to_have_count(2)  # the visitor's and the reply: nothing between
        assert NOTE not in await page.content()

        await page.reload()  # the history path
        await expect(page.locator(".launcher")).to_be_visible(timeout=T)
        await page.locator(".launcher").click()
        await expect(page.locator(".msg.them .bubble").last).to_have_text("Dạ shop kiểm tra ngay ạ", timeout=T)
        await expect(page.locator(".msg")).to_have_count(2)
        assert NOTE not in await page.content()
        await expect(console.locator("#messages .msg.agent")).to_have_count(1)
        assert errors == []
    finally:
        await agent_ctx.close()
        await visitor_ctx.close()
