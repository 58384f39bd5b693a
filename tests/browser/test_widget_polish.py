"""Widget polish (issue 31, items 1, 4, 5, 6 and 8) in a real browser: long words wrap
inside their bubble, the panel is full screen on a phone, a visible "Reconnecting…" while
the socket is down, localized error text, the composer's length limit, Retry / Delete of
a failed message, and the asset cache policy."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from tests.browser.conftest import Demo, start_demo
from tests.browser.test_widget import conversation_id, start_chat, visitor_page
from tests.support.server import agent, new_client_id

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

T = 15_000  # generous expect timeout (ms): 2 cores shared with other test runs
PHONE = {"viewport": {"width": 375, "height": 667}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
# no hyphen nor space: no break opportunity a browser would take without overflow-wrap
LONG_URL = ("https://shop.example.vn/san_pham/ao_dai_lua_to_tam?utm_source=facebook&utm_campaign=tet2027"
            "&fbclid=IwAR3xK9q2LmZpQv7Tn8WsYb4cUe1RdHjFgKoPiLaMsNbVcXzQwErTyUiOp0123456789abcdefABCDEF")
LONG_WORD = "Khôngcókhoảngtrắng" * 10


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("polish")):
        yield d


async def bubbles_fit(page: Page) -> None:
    """Every bubble: no horizontal overflow, wholly inside the viewport."""
    rows = await page.locator(".bubble").evaluate_all(
        """bs => bs.map(b => { const r = b.getBoundingClientRect();
             return {sw: b.scrollWidth, cw: b.clientWidth, left: r.left, right: r.right, vw: innerWidth}; })""")
    assert rows
    for r in rows:
        assert r["sw"] <= r["cw"], r
        assert r["left"] >= 0 and r["right"] <= r["vw"], r


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_long_url_and_word_wrap_inside_the_bubble(browser: Any, demo: Demo, device: str) -> None:
    """Item 1: a 150+ character URL or word wraps inside its bubble (the visitor's own and
    the agent's), nothing overflows and the bubble's start is on screen."""
    assert len(LONG_URL) >= 150 and len(LONG_WORD) >= 150
    ctx = await browser.new_context(locale="en-US", **(PHONE if device == "phone" else {}))
    bot = await agent(demo.url, demo.agent_token)
    try:
        page = await visitor_page(ctx, demo)
        await start_chat(page, "Lan", "lan@example.vn", LONG_URL)
        box = page.get_by_role("textbox", name="Type a message…")
        await box.fill(LONG_WORD)
        await box.press("Enter")
        await expect(page.locator(".msg.me .bubble")).to_have_text([LONG_URL, LONG_WORD], timeout=T)
        cid = await conversation_id(page, demo)
        for text in (LONG_URL, LONG_WORD):
            ack = await bot.call("message:send", {"conversation_id": cid, "client_id": new_client_id(), "text": text})
            assert ack["ok"], ack
        await expect(page.locator(".msg.them .bubble")).to_have_text([LONG_URL, LONG_WORD], timeout=T)
        await bubbles_fit(page)
    finally:
        await bot.close()
        await ctx.close()


async def test_phone_panel_is_full_screen(browser: Any, demo: Demo) -> None:
    """Item 6: on a 375x667 phone the open panel covers the viewport exactly; closing it
    brings the launcher back."""
    ctx = await browser.new_context(locale="en-US", **PHONE)
    try:
        page = await visitor_page(ctx, demo)
        await page.locator(".launcher").click()
        panel = page.locator(".panel")
        await expect(panel).to_be_visible(timeout=T)
        rect = await panel.evaluate("p => { const r = p.getBoundingClientRect();"
                                    " return [r.left, r.top, r.width, r.height, innerWidth, innerHeight]; }")
        assert rect == [0, 0, 375, 667, 375, 667]
        await page.get_by_role("button", name="Close chat").first.click()
        await expect(panel).to_be_hidden()
        await expect(page.locator(".launcher")).to_be_visible()
    finally:
        await ctx.close()


@pytest.mark.parametrize(("locale", "notice"), [("en-US", "Reconnecting…"), ("vi-VN", "Đang kết nối lại…")])
async def test_reconnecting_notice_while_disconnected(browser: Any, demo: Demo, locale: str, notice: str) -> None:
    """Item 5: the network gone, the widget says so (role=status) while a message waits in
    "Sending…"; back online, the notice goes and the message is sent."""
    ctx = await browser.new_context(locale=locale)
    try:
        page = await visitor_page(ctx, demo)
        await page.locator(".launcher").click()
        await page.locator("input[name=name]").fill("Hùng")
        await page.locator("form.prechat button[type=submit]").click()
        box = page.locator("textarea")
        await box.fill("Xin chào")
        await box.press("Enter")
        host = page.locator("#izihelp-widget")
        await expect(page.locator(".msg.me").last).to_have_attribute("data-state", re.compile("sent|delivered|read"),
                                                                     timeout=T)
        status = page.get_by_role("status").filter(has_text=notice)
        await expect(status).to_be_hidden()

        await ctx.set_offline(True)
        await expect(host).to_have_attribute("data-connection", "offline", timeout=T)
        await expect(status).to_be_visible(timeout=T)
        await box.fill("Bạn còn đó không?")
        await box.press("Enter")
        mine = page.locator(".msg.me").last
        await expect(mine).to_have_attribute("data-state", "sending")

        await ctx.set_offline(False)
        await expect(host).to_have_attribute("data-connection", "connected", timeout=T)
        await expect(status).to_be_hidden(timeout=T)
        await expect(mine).to_have_attribute("data-state", re.compile("sent|delivered|read"), timeout=T)
    finally:
        await ctx.close()



@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def strict(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """A gateway whose visitors may send one message per connection, then none for ~1000 s
    (the test refills a connection's bucket by hand to let a retry through)."""
    async for d in start_demo(tmp_path_factory.mktemp("strict"), visitor_messages_burst=1.0,
                              visitor_messages_per_sec=0.001):
        yield d


async def test_refused_message_localized_with_retry_and_delete(browser: Any, strict: Demo) -> None:
    """Item 4: a refused message (here `rate_limited`) shows the Vietnamese sentence for its
    code, not the server's English message; Delete drops it; Retry sends it again with the
    same client_id and it is stored once."""
    from gateway.admission.limits import LIMITS_KEY

    ctx = await browser.new_context(locale="vi-VN")
    try:
        page = await visitor_page(ctx, strict)
        await page.locator(".launcher").click()
        await page.get_by_label("Tên của bạn").fill("Lan")
        await page.get_by_role("button", name="Bắt đầu trò chuyện").click()
        box = page.get_by_role("textbox", name="Nhập tin nhắn…")
        await box.fill("Xin chào")
        await box.press("Enter")
        first = page.locator(".msg.me").last
        await expect(first).to_have_attribute("data-state", re.compile("sent|delivered|read"), timeout=T)

        for text in ("Còn hàng không?", "Tin nhắn thừa"):
            await box.fill(text)
            await box.press("Enter")
        again = page.locator(".msg.me", has_text="Còn hàng không?")
        extra = page.locator(".msg.me", has_text="Tin nhắn thừa")
        for node in (again, extra):
            await expect(node).to_have_attribute("data-state", "failed", timeout=T)
            meta = node.locator(".meta")
            await expect(meta).to_contain_text("Chưa gửi được: Bạn gửi tin nhắn quá nhanh.")
            await expect(meta).not_to_contain_text("too many")

        await extra.get_by_role("button", name="Xoá").click()
        await expect(extra).to_have_count(0)
        await expect(page.locator(".msg.me .bubble")).to_have_text(["Xin chào", "Còn hàng không?"])

        client_id = await again.get_attribute("data-client-id")
        sid = await page.evaluate("window.IZIHelp.widget.getSocket().id")
        strict.rg.gw.app[LIMITS_KEY].messages_per_connection.forget(f"conn:{sid}")  # a token again
        await again.get_by_role("button", name="Thử lại").click()
        await expect(again).to_have_attribute("data-state", re.compile("sent|delivered|read"), timeout=T)
        await expect(again.get_by_role("button")).to_have_count(0)
        cid = await conversation_id(page, strict)
        stored = await strict.rg.gw.store.get_messages(strict.tenant_id, cid, after_seq=0, limit=10)
        mine = [(m.text, m.client_id) for m in stored if m.author_type == "contact"]
        assert mine[1:] == [("Còn hàng không?", client_id)]
    finally:
        await ctx.close()


async def test_composer_stops_at_the_text_limit(browser: Any, demo: Demo) -> None:
    """Item 4: the composer takes at most MAX_TEXT_CHARS (4000) characters, typed or pasted,
    with a counter from 90 % on; the full-length message is sent."""
    ctx = await browser.new_context(locale="en-US")
    try:
        page = await visitor_page(ctx, demo)
        await start_chat(page, "Nam", "nam@example.vn", "Một câu hỏi dài")
        box = page.get_by_role("textbox", name="Type a message…")
        assert await box.get_attribute("maxlength") == "4000"
        counter = page.locator(".count")
        await box.fill("a" * 3000)
        await expect(counter).to_be_hidden()
        await box.fill("a" * 3990)
        await expect(counter).to_have_text("3990 / 4000 characters")
        await box.press_sequentially("b" * 20)  # typed past the limit: the last 10 are refused
        await expect(counter).to_have_text("4000 / 4000 characters")
        assert await box.evaluate("b => b.value.length") == 4000
        await box.press("Enter")
        await expect(page.locator(".msg.me").last).to_have_attribute("data-state", re.compile("sent|delivered|read"),
                                                                     timeout=T)
        await expect(counter).to_be_hidden()
        cid = await conversation_id(page, demo)
        stored = await demo.rg.gw.store.get_messages(demo.tenant_id, cid, after_seq=0, limit=10)
        assert stored[-1].text == "a" * 3990 + "b" * 10
    finally:
        await ctx.close()


async def test_first_load_cache_policy_and_favicon(browser: Any, demo: Demo) -> None:
    """Item 8: a browser's first load of the widget is the short-cached loader and the
    content-hashed bundle (immutable), at most 30 KB on the wire; /favicon.ico is served."""
    ctx = await browser.new_context(locale="en-US")
    try:
        page = await ctx.new_page()
        seen: list[Any] = []
        page.on("requestfinished", lambda r: seen.append(r))
        await page.goto(f"{demo.url}/demo")
        await expect(page.locator(".launcher")).to_be_visible(timeout=T)
        assets = {}
        for req in seen:
            if req.url.startswith(f"{demo.url}/widget/"):
                resp = await req.response()
                assets[req.url.rsplit("/", 1)[1]] = (resp.headers, (await req.sizes())["responseBodySize"])
        bundle = next(n for n in assets if re.fullmatch(r"widget\.[0-9a-f]{10}\.js", n))
        assert sorted(assets) == sorted(["loader.js", bundle])
        assert assets["loader.js"][0]["cache-control"] == "public, max-age=300"
        assert assets[bundle][0]["cache-control"] == "public, max-age=31536000, immutable"
        wire = sum(size for _, size in assets.values())
        print(f"widget first load: {wire} bytes on the wire ({assets[bundle][0].get('content-encoding')})")
        assert wire <= 30 * 1024, wire
        resp = await page.goto(f"{demo.url}/favicon.ico")
        assert resp is not None and resp.status == 200 and resp.headers["content-type"] == "image/png"
    finally:
        await ctx.close()
