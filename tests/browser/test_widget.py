"""IZIMessage widget and agent console in a real browser (headless chromium)."""

from __future__ import annotations

import asyncio
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Page, expect

from tests.browser.conftest import Demo, start_demo
from tests.support.server import agent, new_client_id

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

LIMIT = 200_000  # MAX_UPLOAD_BYTES for this module
T = 15_000  # generous expect timeout (ms): 2 cores shared with other test runs


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("widget"), max_upload_bytes=LIMIT):
        yield d


async def visitor_page(ctx: Any, demo: Demo) -> Page:
    page: Page = await ctx.new_page()
    await page.goto(f"{demo.url}/demo")
    await expect(page.locator(".launcher")).to_be_visible(timeout=T)
    return page


async def start_chat(page: Page, name: str, email: str, text: str) -> None:
    await page.locator(".launcher").click()
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Email").first.fill(email)
    await page.get_by_role("button", name="Start chat").click()
    box = page.get_by_role("textbox", name="Type a message…")
    await expect(box).to_be_focused(timeout=T)
    await box.fill(text)
    await box.press("Enter")
    await expect(page.locator(".msg.me").last).to_have_attribute("data-state", re.compile("sent|delivered|read"),
                                                                 timeout=T)


async def conversation_id(page: Page, demo: Demo) -> str:
    cid = await page.evaluate(f"localStorage.getItem('izh.{demo.widget_key}.conv')")
    assert isinstance(cid, str) and len(cid) == 32
    return cid


async def loaded_image(img: Any) -> None:
    """The <img> has loaded the 8x8 test PNG (through its signed URL)."""
    for _ in range(100):
        if await img.evaluate("i => i.complete && i.naturalWidth") == 8:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("image did not load")


@dataclass
class Shop:
    url: str
    runner: web.AppRunner


async def serve_page(html: str) -> Shop:
    """A customer's site: one static page on its own loopback port."""

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return Shop(f"http://127.0.0.1:{runner.addresses[0][1]}/", runner)


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def test_visitor_and_agent_chat_live(browser: Any, demo: Demo) -> None:
    agent_ctx = await browser.new_context(locale="en-US")
    visitor_ctx = await browser.new_context(locale="en-US")
    try:
        console = await agent_ctx.new_page()
        await console.goto(f"{demo.url}/console#token={demo.agent_token}")
        await expect(console.locator("#app")).to_be_visible(timeout=T)

        page = await visitor_page(visitor_ctx, demo)
        await start_chat(page, "Lan", "lan@example.vn", "Xin chào, áo dài còn size M không?")

        await console.get_by_role("tab", name=re.compile("All")).click()
        item = console.locator("#convs button", has_text="Lan")
        await expect(item).to_be_visible(timeout=T)
        await expect(item.locator(".unread")).to_have_text("1", timeout=T)
        await item.click()
        await expect(console.locator("#messages")).to_contain_text("áo dài còn size M", timeout=T)
        # the agent opened it: the visitor's message shows as read
        await expect(page.locator(".msg.me").last).to_have_attribute("data-state", "read", timeout=T)

        reply = console.get_by_label("Reply")
        await reply.press_sequentially("Dạ còn ạ", delay=30)
        await expect(page.locator(".typing")).to_be_visible(timeout=T)
        await reply.press("Enter")
        await expect(page.locator(".msg.them .bubble").last).to_have_text("Dạ còn ạ", timeout=T)

        # visitor typing shows in the console; Esc closes the panel and focus returns to the launcher
        await page.get_by_role("textbox", name="Type a message…").press_sequentially("ok", delay=30)
        await expect(console.locator("#typing")).to_have_text("Visitor is typing…", timeout=T)
        await page.keyboard.press("Escape")
        await expect(page.locator(".panel")).to_be_hidden()
        await expect(page.locator(".launcher")).to_be_focused()

        # a reply while the panel is closed: unread badge on the launcher, cleared on opening
        await reply.fill("Chị cần thêm gì không ạ?")
        await reply.press("Enter")
        await expect(page.locator(".badge")).to_have_text("1", timeout=T)
        await page.keyboard.press("Enter")  # the focused launcher opens the panel
        await expect(page.locator(".panel")).to_be_visible()
        await expect(page.locator(".badge")).to_be_hidden(timeout=T)
    finally:
        await agent_ctx.close()
        await visitor_ctx.close()


async def test_network_cut_resumes_exactly_missing_messages(browser: Any, demo: Demo) -> None:
    ctx = await browser.new_context(locale="en-US")
    bot = await agent(demo.url, demo.agent_token)
    try:
        page = await visitor_page(ctx, demo)
        await start_chat(page, "Minh", "minh@example.vn", "Đơn hàng của tôi đâu rồi?")
        cid = await conversation_id(page, demo)
        host = page.locator("#izihelp-widget")
        await expect(host).to_have_attribute("data-connection", "connected", timeout=T)

        await ctx.set_offline(True)
        await expect(host).to_have_attribute("data-connection", "offline", timeout=T)
        texts = [f"Cập nhật {i}: đơn hàng đang giao" for i in (1, 2, 3)]
        for text in texts:
            ack = await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": text})
            assert ack["ok"], ack
        assert await page.locator(".msg.them").count() == 0  # offline: nothing can have come

        await ctx.set_offline(False)
        await expect(host).to_have_attribute("data-connection", "connected", timeout=T)
        them = page.locator(".msg.them .bubble")
        await expect(them).to_have_text(texts, timeout=T)
        # nothing arrives twice: a message sent now comes after anything the resume could
        # still deliver (one conversation's messages arrive in order), so once it is shown
        # every duplicate would be too
        marker = "Đã giao xong"
        ack = await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": marker})
        assert ack["ok"], ack
        await expect(them).to_have_text([*texts, marker], timeout=T)
        seqs = await page.locator(".msg[data-seq]").evaluate_all("ns => ns.map(n => +n.dataset.seq)")
        assert seqs == sorted(set(seqs)) and len(seqs) == 5
    finally:
        await bot.close()
        await ctx.close()


async def test_tabs_stay_in_sync_and_reload_keeps_conversation(browser: Any, demo: Demo) -> None:
    ctx = await browser.new_context(locale="en-US")
    bot = await agent(demo.url, demo.agent_token)
    try:
        tab1 = await visitor_page(ctx, demo)
        tab2 = await visitor_page(ctx, demo)
        await start_chat(tab1, "Hoa", "hoa@example.vn", "Tab một")
        cid = await conversation_id(tab1, demo)

        await tab2.locator(".launcher").click()
        await expect(tab2.locator(".msg.me .bubble")).to_have_text(["Tab một"], timeout=T)
        box2 = tab2.get_by_role("textbox", name="Type a message…")
        await box2.fill("Tab hai")
        await box2.press("Enter")
        await expect(tab1.locator(".msg.me .bubble")).to_have_text(["Tab một", "Tab hai"], timeout=T)

        ack = await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": "Chào Hoa"})
        assert ack["ok"]
        for tab in (tab1, tab2):
            await expect(tab.locator(".msg.them .bubble")).to_have_text(["Chào Hoa"], timeout=T)

        await tab1.reload()
        await tab1.locator(".launcher").click()
        await expect(tab1.locator(".bubble")).to_have_text(["Tab một", "Tab hai", "Chào Hoa"], timeout=T)
        assert await conversation_id(tab1, demo) == cid
    finally:
        await bot.close()
        await ctx.close()


async def test_attachments_limit_and_delivery(browser: Any, demo: Demo) -> None:
    agent_ctx = await browser.new_context(locale="en-US")
    ctx = await browser.new_context(locale="en-US")
    try:
        page = await visitor_page(ctx, demo)
        await start_chat(page, "Tuấn", "tuan@example.vn", "Gửi ảnh sản phẩm")
        file_input = page.locator("input[type=file]")

        await file_input.set_input_files({"name": "big.bin", "mimeType": "application/octet-stream",
                                          "buffer": b"x" * (LIMIT + 1)})
        await expect(page.get_by_role("alert")).to_contain_text("too large", timeout=T)

        await file_input.set_input_files({"name": "ao-dai.png", "mimeType": "image/png", "buffer": tiny_png()})
        img = page.locator(".msg.me img[alt='ao-dai.png']")
        await expect(img).to_be_visible(timeout=T)
        await loaded_image(img)

        console = await agent_ctx.new_page()
        await console.goto(f"{demo.url}/console#token={demo.agent_token}")
        await console.get_by_role("tab", name=re.compile("All")).click()
        await console.locator("#convs button", has_text="Tuấn").click()
        agent_img = console.locator("#messages img[alt='ao-dai.png']")
        await expect(agent_img).to_be_visible(timeout=T)
        await loaded_image(agent_img)
    finally:
        await agent_ctx.close()
        await ctx.close()


async def test_embedded_on_another_origin_with_identity(browser: Any, demo: Demo) -> None:
    """A customer's site (its own origin, hostile CSS) embeds the one-line snippet with a
    verified identity and data-lang: CORS, the shadow root and the handshake identity work."""
    from gateway.security.auth import identity_hash

    tenant = await demo.rg.gw.store.get_tenant(demo.tenant_id)
    ident = "customer-1042"
    host_html = f"""<!doctype html><html><head><style>
      * {{ font-family: serif !important; color: red !important; }}
      button {{ display: none !important; }} div {{ padding: 40px !important; }}
    </style></head><body><h1>Shop</h1>
    <script src="{demo.url}/widget/loader.js" data-widget-key="{demo.widget_key}" data-lang="vi"
            data-identity-id="{ident}" data-identity-hash="{identity_hash(tenant.identity_secret, ident)}" async>
    </script></body></html>"""
    ctx = await browser.new_context(locale="en-US")
    shop: Shop | None = None
    try:
        page = await ctx.new_page()
        # the shop: another origin, also on loopback (Chromium's local network rules forbid
        # a public page from loading a loopback gateway)
        shop = await serve_page(host_html)
        page.on("console", lambda m: print("console:", m.text))
        await page.goto(shop.url)
        launcher = page.get_by_role("button", name="Mở khung chat")
        await expect(launcher).to_be_visible(timeout=T)
        assert await launcher.evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"
        await launcher.click()
        box = page.get_by_role("textbox", name="Nhập tin nhắn…")  # identified: no pre-chat form
        await expect(box).to_be_focused(timeout=T)
        await box.fill("Tôi là khách hàng quen")
        await box.press("Enter")
        await expect(page.locator(".msg.me").last).to_have_attribute("data-state", re.compile("sent|delivered|read"),
                                                                     timeout=T)
        assert await page.evaluate("window.IZIHelp.widget.getSession().identified") is True
        await page.locator("input[type=file]").set_input_files(
            {"name": "hoa-don.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 test"})
        link = page.locator(".msg.me a.file")
        await expect(link).to_contain_text("hoa-don.pdf", timeout=T)
        await expect(link).to_have_attribute("href", re.compile(r"sig="), timeout=T)
        contact = await demo.rg.gw.store.get_or_create_contact_by_identity(
            demo.tenant_id, "external", ident, name=None, email=None, now=time.time())
        cid = await conversation_id(page, demo)
        conv = await demo.rg.gw.store.get_conversation(demo.tenant_id, cid)
        assert conv.contact_id == contact.id
    finally:
        await ctx.close()
        if shop is not None:
            await shop.runner.cleanup()


async def test_send_retried_while_database_unavailable(browser: Any, demo: Demo) -> None:
    """A message typed while the database cannot write shows "Retrying…" and is delivered,
    once, when the database is back (issue 37, item 2); not "failed"."""
    ctx = await browser.new_context(locale="en-US")
    store = demo.rg.gw.store
    try:
        page = await visitor_page(ctx, demo)
        await start_chat(page, "Lan", "lan@example.vn", "Xin chào")
        cid = await conversation_id(page, demo)
        async with store.reader() as conn:  # type: ignore[attr-defined]
            await conn.execute("PRAGMA query_only = ON")  # the store's connection: writes refused
        try:
            box = page.get_by_role("textbox", name="Type a message…")
            await box.fill("Còn hàng không?")
            await box.press("Enter")
            mine = page.locator(".msg.me").last
            await expect(mine).to_have_attribute("data-state", "retrying", timeout=T)
            await expect(mine.locator(".meta")).to_have_text("Retrying…")
        finally:
            async with store.reader() as conn:  # type: ignore[attr-defined]
                await conn.execute("PRAGMA query_only = OFF")
        await expect(mine).to_have_attribute("data-state", re.compile("sent|delivered|read"), timeout=T)
        messages = await store.get_messages(demo.tenant_id, cid, after_seq=0, limit=10)
        assert [m.text for m in messages].count("Còn hàng không?") == 1
    finally:
        await ctx.close()
