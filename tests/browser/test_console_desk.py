"""The console's desk tools in a real browser (headless Debian chromium) against a real
gateway: canned responses ("/shortcut" in the composer), labels (add, remove, the list's
label filter, live), read receipts of the agent's replies, an attachment from the composer,
the contact panel."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import FilePayload, expect

from gateway.core.domain import AuthorType, Channel, Conversation, NewMessage
from tests.browser.conftest import Demo, start_demo
from tests.browser.test_console import T, Watched, open_console, visitor_conversation
from tests.support.server import Client, agent

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("console-desk")):
        yield d


async def open_conversation(ctx: Any, demo: Demo, name: str) -> Watched:
    w = await open_console(ctx, demo)
    await w.page.get_by_role("tab", name=re.compile("All")).click()
    await w.page.locator("#convs button", has_text=name).click()
    return w


@contextlib.asynccontextmanager
async def console_on(browser: Any, demo: Demo, name: str, text: str) -> AsyncIterator[tuple[Client, str, Watched]]:
    """A visitor `name` who wrote `text` (and watches the conversation), and a console with
    that conversation open and its message shown; both closed afterwards."""
    v, cid = await visitor_conversation(demo, name, text)
    await v.call("conversation:watch", {"conversation_id": cid, "after_seq": 0})
    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_conversation(ctx, demo, name)
        await expect(w.page.locator("#messages")).to_contain_text(text, timeout=T)
        yield v, cid, w
    finally:
        await ctx.close()
        await v.close()


async def test_canned_response_completion(browser: Any, demo: Demo) -> None:
    """An admin's canned response (REST) is offered when the agent types "/ca"; Enter
    takes it into the composer, Enter again sends it."""
    async with aiohttp.ClientSession(base_url=demo.url,
                                     headers={"Authorization": f"Bearer {demo.agent_token}"}) as http:
        for shortcut, text in (("cam-on", "Cảm ơn anh/chị đã liên hệ IZIHelp!"), ("gia", "Bảng giá: izihelp.vn/gia")):
            async with http.post("/api/v1/canned-responses", json={"shortcut": shortcut, "text": text}) as r:
                assert r.status == 201, await r.text()
    async with console_on(browser, demo, "Mai", "Chào shop") as (v, cid, w):
        page = w.page
        box = page.locator("#reply-text")
        await box.press_sequentially("/ca")
        options = page.locator("#canned [role=option]")
        await expect(options).to_have_count(1, timeout=T)
        await expect(options.first).to_contain_text("/cam-on")
        await box.press("Enter")
        await expect(box).to_have_value("Cảm ơn anh/chị đã liên hệ IZIHelp!")
        await expect(page.locator("#canned")).to_be_hidden()
        await box.press("Enter")
        await expect(page.locator("#messages .msg.agent")).to_contain_text("Cảm ơn anh/chị đã liên hệ IZIHelp!",
                                                                          timeout=T)
        await v.wait_for(lambda: any(m["text"].startswith("Cảm ơn anh/chị") for m in v.messages(cid)), timeout=15)
        # "/" alone offers every one; a shortcut that matches none offers nothing
        await box.fill("")
        await box.press_sequentially("/")
        await expect(options).to_have_count(2, timeout=T)
        await box.press_sequentially("zz")
        await expect(page.locator("#canned")).to_be_hidden()
        assert w.errors == []


async def test_labels_and_the_label_filter(browser: Any, demo: Demo) -> None:
    """An agent labels a conversation in the console; its row shows the label; the label
    filter lists only labelled conversations, kept live when another agent labels one or
    the label is removed."""
    va, a = await visitor_conversation(demo, "Long", "Đơn hàng bị lỗi")
    vb, b = await visitor_conversation(demo, "Nhung", "Đổi size giúp mình")
    other = await agent(demo.url, demo.agent_token)
    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_conversation(ctx, demo, "Long")
        page = w.page
        await expect(page.locator("#messages")).to_contain_text("Đơn hàng bị lỗi", timeout=T)
        await page.get_by_label("Add a label").fill("hoàn tiền")
        await page.get_by_label("Add a label").press("Enter")
        await expect(page.locator("#labels .chip", has_text="hoàn tiền")).to_be_visible(timeout=T)
        row_a = page.locator("#convs button", has_text="Long")
        await expect(row_a.locator(".rowlabels")).to_contain_text("hoàn tiền", timeout=T)
        await page.get_by_label("Filter by label").select_option("hoàn tiền")
        await expect(page.locator("#convs button")).to_have_count(1, timeout=T)
        await expect(row_a).to_be_visible()
        # another agent labels B: it joins the filtered list live
        assert (await other.call("label:add", {"conversation_id": b, "label": "hoàn tiền"}))["ok"]
        await expect(page.locator("#convs button", has_text="Nhung")).to_be_visible(timeout=T)
        await expect(page.locator("#convs button")).to_have_count(2)
        # removing it from A takes A out of the filter
        await page.get_by_label("Remove label hoàn tiền").click()
        await expect(page.locator("#convs button", has_text="Long")).to_have_count(0, timeout=T)
        await expect(page.locator("#labels .chip")).to_have_count(0)
        await page.get_by_label("Filter by label").select_option("")
        await expect(page.locator("#convs button", has_text="Long")).to_be_visible(timeout=T)
        # after a reload the list's labels come with one label:list
        w.sent.clear()
        await page.reload()
        await expect(page.locator("#app")).to_be_visible(timeout=T)
        await page.get_by_role("tab", name=re.compile("All")).click()
        await expect(page.locator("#convs button", has_text="Nhung").locator(".rowlabels")).to_contain_text(
            "hoàn tiền", timeout=T)
        assert w.sent_events("label:list") == 1
        assert w.errors == []
    finally:
        await ctx.close()
        for c in (va, vb, other):
            await c.close()


async def test_read_receipt_of_the_agents_reply(browser: Any, demo: Demo) -> None:
    """The agent's reply says "Sent" until the visitor has read it, then "Read" — live, and
    after a reload (from conversation:reads)."""
    async with console_on(browser, demo, "Tâm", "Còn hàng không shop?") as (v, cid, w):
        page = w.page
        await page.locator("#reply-text").fill("Dạ còn ạ")
        await page.locator("#reply-text").press("Enter")
        mine = page.locator("#messages .msg.agent", has_text="Dạ còn ạ")
        await expect(mine.locator(".receipt")).to_have_text("· Sent", timeout=T)
        await v.wait_for(lambda: any(m["text"] == "Dạ còn ạ" for m in v.messages(cid)), timeout=15)
        seq = next(m["seq"] for m in v.messages(cid) if m["text"] == "Dạ còn ạ")
        assert (await v.call("read", {"conversation_id": cid, "seq": seq}))["ok"]
        await expect(mine.locator(".receipt")).to_have_text("· Read", timeout=T)
        await expect(mine.locator(".receipt")).to_have_attribute("data-read", "true")
        await page.reload()
        await expect(page.locator("#app")).to_be_visible(timeout=T)
        await page.get_by_role("tab", name=re.compile("All")).click()
        await page.locator("#convs button", has_text="Tâm").click()
        await expect(page.locator("#messages .msg.agent", has_text="Dạ còn ạ").locator(".receipt")).to_have_text(
            "· Read", timeout=T)
        assert w.errors == []


async def test_agent_attachment_from_the_composer(browser: Any, demo: Demo) -> None:
    """The agent picks a file in the composer: it is uploaded (the uploads route) and sent
    with the composer's text; the console shows it, the visitor gets it."""
    async with console_on(browser, demo, "Hương", "Gửi mình ảnh mẫu nhé") as (v, cid, w):
        page = w.page
        await page.locator("#reply-text").fill("Ảnh mẫu đây ạ")
        await page.locator("#attach-file").set_input_files(
            files=[FilePayload(name="mẫu áo.png", mimeType="image/png", buffer=PNG)])
        mine = page.locator("#messages .msg.agent", has_text="Ảnh mẫu đây ạ")
        await expect(mine.locator("img[alt='mẫu áo.png']")).to_be_visible(timeout=T)
        await v.wait_for(lambda: any(m["attachments"] for m in v.messages(cid)), timeout=15)
        got = next(m for m in v.messages(cid) if m["attachments"])
        assert got["text"] == "Ảnh mẫu đây ạ" and got["author"]["type"] == "agent"
        assert got["attachments"][0]["name"] == "mẫu áo.png" and got["attachments"][0]["size"] == len(PNG)
        await expect(page.locator("#reply-text")).to_have_value("")
        assert w.errors == []


async def conversation_with(demo: Demo, contact_id: str, channel: Channel, text: str, *, now: float,
                            **kw: Any) -> Conversation:
    """A conversation of the contact on `channel`, with the contact's message `text`."""
    store = demo.rg.gw.store
    conv = await store.create_conversation(tenant_id=demo.tenant_id, channel=channel, contact_id=contact_id, now=now,
                                           **kw)
    await store.append_message(demo.tenant_id, conv.id, NewMessage(
        author_type=AuthorType.CONTACT, author_id=contact_id, text=text), now=now)
    return conv


async def test_contact_panel(browser: Any, demo: Demo) -> None:
    """The open conversation's contact: details, channel identities, conversations on every
    channel (one opens from there), and an edit saved through PATCH /contacts/{id}."""
    store = demo.rg.gw.store
    now = time.time()
    contact = await store.get_or_create_contact_by_identity(demo.tenant_id, "email", "vy@example.vn", name="Vy",
                                                           email="vy@example.vn", now=now)
    await conversation_with(demo, contact.id, Channel.EMAIL, "Gửi giúp hoá đơn", now=now - 3600,
                            external_thread_id="vy-1@example.vn", subject="Hoá đơn tháng 11")
    chat = await conversation_with(demo, contact.id, Channel.WIDGET, "Mình hỏi tiếp về hoá đơn", now=now)
    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_console(ctx, demo)
        page = w.page
        await page.get_by_role("tab", name=re.compile("All")).click()
        await page.locator(f"#convs button[data-conversation='{chat.id}']").click()
        panel = page.locator("#contact-panel")
        await expect(panel).to_be_visible(timeout=T)
        await expect(panel.locator("dd[data-field=email]")).to_have_text("vy@example.vn", timeout=T)
        await expect(panel.locator("#contact-identities li")).to_have_text(["email: vy@example.vn"], timeout=T)
        convs = panel.locator("#contact-conversations button")
        await expect(convs).to_have_count(2, timeout=T)
        await expect(convs.nth(0)).to_contain_text("widget")
        await expect(convs.nth(1)).to_contain_text("Hoá đơn tháng 11")
        await convs.nth(1).click()
        await expect(page.locator("#conv-subject")).to_have_text("Hoá đơn tháng 11", timeout=T)
        await expect(page.locator("#messages")).to_contain_text("Gửi giúp hoá đơn", timeout=T)
        # edit: name and phone
        await page.locator("#contact-edit").click()
        await page.locator("#contact-name").fill("Trần Thảo Vy")
        await page.locator("#contact-phone").fill("+84 90 123 4567")
        await page.get_by_role("button", name="Save").click()
        await expect(panel.locator("dd[data-field=phone]")).to_have_text("+84 90 123 4567", timeout=T)
        await expect(page.locator("#conv-title")).to_contain_text("Trần Thảo Vy", timeout=T)
        await expect(page.locator(f"#convs button[data-conversation='{chat.id}'] .name")).to_have_text("Trần Thảo Vy")
        got = await store.get_contact(demo.tenant_id, contact.id)
        assert (got.name, got.phone, got.email) == ("Trần Thảo Vy", "+84 90 123 4567", "vy@example.vn")
        assert w.errors == []
    finally:
        await ctx.close()
