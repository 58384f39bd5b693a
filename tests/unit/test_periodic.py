from __future__ import annotations

import asyncio

from gateway.aio.periodic import Periodic


async def test_runs_repeatedly_survives_errors_and_stops() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    p = Periodic("t", work, 0.01)
    p.start()
    await asyncio.sleep(0.1)
    await p.stop()
    n = len(calls)
    assert n >= 3  # the failure did not end the loop
    await asyncio.sleep(0.05)
    assert len(calls) == n  # stopped


async def test_delay_and_disabled() -> None:
    calls: list[None] = []

    async def work() -> None:
        calls.append(None)

    delayed = Periodic("d", work, 0.01, delay=0.2)
    delayed.start()
    await asyncio.sleep(0.05)
    assert calls == []
    await delayed.stop()
    off = Periodic("off", work, 0)
    off.start()
    await asyncio.sleep(0.03)
    await off.stop()
    assert calls == []
