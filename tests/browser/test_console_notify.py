"""The console's notifications while its tab is hidden (headless Debian chromium, a real
gateway): a desktop notification and a sound for a new conversation, an assignment and a
message in "Mine", each switchable off (kept in localStorage), permission asked on the
agent's click; the title counts the messages. `window.Notification` and `AudioContext`
are stubbed in the page (the browser API boundary) to observe what is raised."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import Demo, start_demo
from tests.browser.test_console import HIDE, T, open_console
from tests.support.server import agent, new_client_id, visitor

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

STUBS = """
window.__notes = []; window.__asked = 0; window.__beeps = 0;
class FakeNotification {
  constructor(title, opts) { window.__notes.push({ title, body: opts.body, tag: opts.tag }); }
  close() {}
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = () => {
  window.__asked++; FakeNotification.permission = "granted"; return Promise.resolve("granted");
};
window.Notification = FakeNotification;
class FakeAudio {
  constructor() { this.state = "running"; this.currentTime = 0; this.destination = {}; }
  resume() {}
  createOscillator() { return { frequency: {}, connect() {}, start() { window.__beeps++; }, stop() {} }; }
  createGain() { return { gain: {}, connect() {} }; }
}
window.AudioContext = FakeAudio;
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    async for d in start_demo(tmp_path_factory.mktemp("console-notify")):
        yield d


async def test_notifications_while_hidden(browser: Any, demo: Demo) -> None:
    bot = await agent(demo.url, demo.agent_token)
    s = await bot.call("session:get")
    me = s["agent"]["id"] if "agent" in s else s["agent_id"]
    ctx = await browser.new_context(locale="en-US")
    await ctx.add_init_script(STUBS)
    visitors = []
    try:
        w = await open_console(ctx, demo)
        page = w.page

        async def notes() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = await page.evaluate("window.__notes")
            return got

        async def wait_notes(n: int) -> list[dict[str, Any]]:
            await page.wait_for_function("n => window.__notes.length >= n", arg=n, timeout=T)
            return await notes()

        await page.get_by_label("Notification settings").click()
        desktop = page.get_by_label("Desktop notifications")
        await expect(desktop).not_to_be_checked()
        await desktop.check()  # the agent's click asks for the permission
        await expect(desktop).to_be_checked()
        assert await page.evaluate("window.__asked") == 1
        await page.get_by_label("Notification settings").click()
        await page.evaluate(HIDE)

        # a new conversation (assigned to me: I am the only agent online), then its message
        v = await visitor(demo.url, demo.widget_key, name="Linh")
        visitors.append(v)
        cid = (await v.call("conversation:start"))["conversation"]["id"]
        got = await wait_notes(1)
        assert got[0]["title"] == "New conversation" and got[0]["body"] == "Linh"
        assert (await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(),
                                              "text": "Cho mình hỏi giá"}))["ok"]
        got = await wait_notes(2)
        assert (got[1]["title"], got[1]["body"]) == ("Linh", "Cho mình hỏi giá")
        await expect(page).to_have_title("(1) IZIHelp console", timeout=T)

        # an assignment: a conversation taken from me and given back
        v2 = await visitor(demo.url, demo.widget_key, name="Sơn")
        visitors.append(v2)
        cid2 = (await v2.call("conversation:start"))["conversation"]["id"]
        await wait_notes(3)
        assert (await bot.call("conversation:assign", {"conversation_id": cid2, "agent_id": None}))["ok"]
        await expect(page.locator(f"#convs button[data-conversation='{cid2}'] .tag")).to_contain_text(
            "unassigned", timeout=T)
        assert (await bot.call("conversation:assign", {"conversation_id": cid2, "agent_id": me}))["ok"]
        got = await wait_notes(4)
        assert (got[3]["title"], got[3]["body"]) == ("Assigned to you", "Sơn")

        # messages in Mine switched off: the title still counts, nothing is raised
        await page.get_by_label("Notification settings").click()
        await page.get_by_label("Messages in Mine").uncheck()
        await page.get_by_label("Notification settings").click()
        assert (await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(),
                                              "text": "Còn đó không?"}))["ok"]
        await expect(page).to_have_title("(2) IZIHelp console", timeout=T)
        assert len(await notes()) == 4
        assert await page.evaluate("window.__beeps") == 4  # one sound per notification
        # sound off: the next notification is silent
        await page.get_by_label("Notification settings").click()
        await page.get_by_label("Sound").uncheck()
        await page.get_by_label("Notification settings").click()
        v3 = await visitor(demo.url, demo.widget_key, name="Quyên")
        visitors.append(v3)
        await v3.call("conversation:start")
        await wait_notes(5)
        assert await page.evaluate("window.__beeps") == 4

        # nothing while the tab is shown
        await page.evaluate("() => { delete document.hidden; delete document.visibilityState; }")
        await page.get_by_role("tab", name=re.compile("Mine")).click()
        assert (await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(),
                                              "text": "Alo"}))["ok"]
        await expect(page.locator(f"#convs button[data-conversation='{cid}'] .preview")).to_have_text("Alo",
                                                                                                   timeout=T)
        assert len(await notes()) == 5

        # the choices are kept across a reload
        await page.reload()
        await expect(page.locator("#app")).to_be_visible(timeout=T)
        await page.get_by_label("Notification settings").click()
        await expect(page.get_by_label("Messages in Mine")).not_to_be_checked()
        await expect(page.get_by_label("Sound")).not_to_be_checked()
        await expect(page.get_by_label("New conversations")).to_be_checked()
        await expect(page.get_by_label("Assigned to me")).to_be_checked()
        assert w.errors == []
    finally:
        await ctx.close()
        await bot.close()
        for x in visitors:
            await x.close()
