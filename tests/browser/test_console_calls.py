"""Calls in the console's timeline (headless Debian chromium, a real gateway, aiortc
endpoints for the caller and the agent): an answered call's entry with its duration and an
inline <audio> player that loads the recording; a declined call's entry, live."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import Demo, start_demo
from tests.browser.test_console import T, open_console, visitor_conversation
from tests.calls.support import endpoint
from tests.support.server import Client, agent
from tests.support.waits import until

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    with pytest.MonkeyPatch.context() as mp:  # media on loopback only (as tests/calls/conftest.py)
        mp.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
        mp.setenv("CALL_HOST_ADDRESSES", "127.0.0.1")
        mp.delenv("MASTER_KEY", raising=False)
        mp.delenv("ICE_SERVERS", raising=False)
        async for d in start_demo(tmp_path_factory.mktemp("console-calls")):
            yield d


async def ring(v: Client, cid: str) -> tuple[str, Any]:
    caller = endpoint(440)
    ack = await v.call("call:start", {"conversation_id": cid, "sdp": await caller.offer()}, timeout=10)
    assert ack["ok"], ack
    await caller.answer(ack["sdp"])
    return ack["call"]["id"], caller


async def test_call_entries_with_playback(browser: Any, demo: Demo) -> None:
    v, cid = await visitor_conversation(demo, "Phúc", "Cho mình gọi nhé")
    ag = await agent(demo.url, demo.agent_token)
    await ag.call("presence:set", {"status": "online"})
    ctx = await browser.new_context(locale="en-US")
    try:
        call_id, caller = await ring(v, cid)
        callee = endpoint(660)
        acc = await ag.call("call:accept", {"call_id": call_id, "sdp": await callee.offer()}, timeout=10)
        assert acc["ok"], acc
        await callee.answer(acc["sdp"])
        await until(lambda: caller.frames > 50 and callee.frames > 50, timeout=60)  # ~1 s of audio each way
        assert (await v.call("call:hangup", {"call_id": call_id}))["ok"]
        await caller.close()
        await callee.close()

        w = await open_console(ctx, demo)
        page = w.page
        await page.get_by_role("tab", name=re.compile("All")).click()
        await page.locator("#convs button", has_text="Phúc").click()
        entry = page.locator(f"#messages .msg.call[data-call='{call_id}']")
        await expect(entry).to_have_attribute("data-outcome", "answered", timeout=T)
        await expect(entry).to_contain_text(re.compile(r"Call answered · 0:0\d"))
        audio = entry.locator("audio")
        await expect(audio).to_have_attribute("src", re.compile("^blob:"), timeout=T)
        # the recording plays: the browser decodes it and knows its duration
        await page.wait_for_function("a => a.readyState >= 1 && a.duration > 0.5", arg=await audio.element_handle(),
                                     timeout=T)

        # a declined call shows up live, after the answered one
        declined, caller = await ring(v, cid)
        assert (await ag.call("call:decline", {"call_id": declined}))["ok"]
        await caller.close()
        entry2 = page.locator(f"#messages .msg.call[data-call='{declined}']")
        await expect(entry2).to_have_attribute("data-outcome", "declined", timeout=T)
        await expect(entry2).to_contain_text("Call declined")
        assert await entry2.locator("audio").count() == 0
        seqs = await page.locator("#messages .msg.call").evaluate_all("ns => ns.map(n => Number(n.dataset.seq))")
        assert seqs == sorted(seqs) and len(seqs) == 2
        assert w.errors == []
    finally:
        await ctx.close()
        await ag.close()
        await v.close()
