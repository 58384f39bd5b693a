"""Reading a running gateway's /metrics in tests, and waiting on its counters (a process of
its own has no event a test could wait on: its counters are polled, with a generous
deadline)."""

from __future__ import annotations

import asyncio

import aiohttp

SYNCS = "izh_node_limits_syncs_total"


async def samples(url: str, metric: str) -> dict[str, float]:
    """`metric`'s samples in one scrape of `url`/metrics: labels (the text between the braces,
    "" for none) → value."""
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith((metric + " ", metric + "{")):
            name, value = line.rsplit(" ", 1)
            found[name[len(metric):].strip("{}")] = float(value)
    return found


async def counted_since_now(urls: list[str], metric: str, more: int, timeout: float = 30.0) -> None:
    """Return once every sample of `metric` on every node of `urls` (each node's workers
    labelled apart) has grown by `more` since the call; AssertionError after `timeout`."""
    async def scrape() -> dict[tuple[str, str], float]:
        return {(u, k): v for u in urls for k, v in (await samples(u, metric)).items()}

    base = await scrape()
    assert base, f"no {metric} on {urls}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = await scrape()
        if all(now.get(k, 0.0) >= v + more for k, v in base.items()):
            return
        assert loop.time() < deadline, f"{metric} did not grow by {more}: {base} → {now}"
        await asyncio.sleep(0.1)


async def limits_synced(urls: list[str]) -> None:
    """Every process of `urls` has synced its message limit (`SyncedRateLimiter`) after every
    other one had synced what was let through before the call. Two rounds of two syncs each:
    a sync that was under way at a scrape may have begun before what it must carry."""
    await counted_since_now(urls, SYNCS, 2)
    await counted_since_now(urls, SYNCS, 2)
