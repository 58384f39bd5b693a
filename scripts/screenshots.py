"""Screenshots of the widget (closed, open, offline, on a phone, resolved with the rating
form) and the agent console (with the visitor's rating; and with its desk: labels, a canned
response offered, read receipts, the contact panel) → docs/images/.

    .venv/bin/python scripts/screenshots.py

Starts a gateway in this process on a free loopback port with a temporary DATA_DIR and
the demo tenant, drives headless Debian chromium (/usr/bin/chromium) with Playwright.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from playwright.async_api import Page, async_playwright, expect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.admin.demo import ensure_demo, load_demo  # noqa: E402
from gateway.app import build_gateway  # noqa: E402
from gateway.composition import default_features  # noqa: E402
from gateway.config import Config, ServerConfig, StorageConfig  # noqa: E402
from gateway.edge.listen import EdgeSite  # noqa: E402

OUT = ROOT / "docs" / "images"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
T = 15_000


async def shot(page: Page, name: str) -> None:
    await page.wait_for_timeout(300)
    await page.screenshot(path=str(OUT / name))
    print("wrote", OUT / name)


async def main() -> None:
    await asyncio.to_thread(subprocess.run, ["bash", str(ROOT / "scripts" / "build-widget.sh")], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(server=ServerConfig(host="127.0.0.1", port=0), storage=StorageConfig(data_dir=tmp))
        gw = await build_gateway(config, default_features())
        runner = web.AppRunner(gw.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = EdgeSite(runner, "127.0.0.1", 0)  # the gateway's own listener (websockets)
        await site.start()
        url = site.url
        await ensure_demo(gw.store, config, now=time.time())
        info = load_demo(tmp)
        assert info is not None
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                vctx = await browser.new_context(locale="vi-VN", viewport={"width": 1200, "height": 760})
                page = await vctx.new_page()
                await page.goto(f"{url}/demo")
                await expect(page.locator(".launcher")).to_be_visible(timeout=T)
                await shot(page, "widget-closed.png")

                # nobody online yet: the offline state
                await page.locator(".launcher").click()
                await page.get_by_label("Tên của bạn").fill("Nguyễn Thị Lan")
                await page.get_by_role("button", name="Bắt đầu trò chuyện").click()
                box = page.get_by_role("textbox", name="Nhập tin nhắn…")
                await box.fill("Xin chào, áo dài lụa còn size M không ạ?")
                await box.press("Enter")
                await expect(page.locator(".offline")).to_be_visible(timeout=T)
                await shot(page, "widget-offline.png")

                # the agent signs in: the conversation is assigned, the agent answers
                actx = await browser.new_context(locale="vi-VN", viewport={"width": 1200, "height": 700})
                console = await actx.new_page()
                await console.goto(f"{url}/console#token={info['agent_token']}")
                await console.get_by_role("tab", name="All").click()
                await console.locator("#convs button", has_text="Lan").click()
                reply = console.get_by_label("Reply")
                await reply.fill("Dạ còn ạ! Chị muốn màu đỏ hay màu xanh ngọc?")
                await reply.press("Enter")
                await expect(page.locator(".msg.them")).to_have_count(1, timeout=T)
                await box.fill("Màu đỏ nhé, giao về Hà Nội mất mấy ngày?")
                await box.press("Enter")
                await expect(page.locator(".offline")).to_be_hidden(timeout=T)
                await reply.press_sequentially("Dạ 2-3 ngày", delay=20)
                await expect(page.locator(".typing")).to_be_visible(timeout=T)
                await shot(page, "widget-open.png")
                await reply.press_sequentially(" ạ, chị nhận hàng trước thứ Sáu.", delay=5)
                await reply.press("Enter")
                await expect(page.locator(".msg.them")).to_have_count(2, timeout=T)

                # a phone: the panel is the whole screen
                await page.set_viewport_size({"width": 375, "height": 667})
                await shot(page, "widget-phone.png")
                await page.set_viewport_size({"width": 1200, "height": 760})

                # resolved: the visitor is told and may rate; the console shows the rating
                await console.get_by_role("button", name="Resolve").click()
                await expect(page.locator(".resolved form")).to_be_visible(timeout=T)
                await page.locator(".resolved label.star").nth(4).click()
                await page.get_by_role("textbox", name="Thêm nhận xét (không bắt buộc)").fill("Tư vấn rất nhiệt tình!")
                await shot(page, "widget-rating.png")
                await page.get_by_role("button", name="Gửi đánh giá").click()
                await expect(console.locator("#ratings")).to_contain_text("Rated 5/5", timeout=T)
                await expect(console.locator("#messages .msg")).to_have_count(4, timeout=T)
                await shot(console, "console.png")

                async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {info['agent_token']}"}) as http:
                    for shortcut, text in (("giao-hang", "Dạ, đơn nội thành Hà Nội giao trong 1-2 ngày ạ."),
                                           ("gia", "Bảng giá chi tiết: izihelp.vn/bang-gia")):
                        await http.post(f"{url}/api/v1/canned-responses", json={"shortcut": shortcut, "text": text})
                await console.reload()
                await console.get_by_role("tab", name="All").click()
                await console.locator("#convs button", has_text="Lan").click()
                for label in ("áo dài", "VIP"):
                    await console.get_by_label("Add a label").fill(label)
                    await console.get_by_label("Add a label").press("Enter")
                    await expect(console.locator("#labels .chip", has_text=label)).to_be_visible(timeout=T)
                await page.locator(".input textarea, textarea").first.focus()  # the visitor reads the replies
                await expect(console.locator("#messages .receipt[data-read=true]").first).to_be_visible(timeout=T)
                await console.get_by_label("Reply").fill("")
                await console.get_by_label("Reply").press_sequentially("/g")
                await expect(console.locator("#canned [role=option]")).to_have_count(2, timeout=T)
                await shot(console, "console-desk.png")
                await browser.close()
        finally:
            await site.stop()
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
