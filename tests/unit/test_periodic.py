"""`Periodic` on a clock moved by hand: each call waits for the clock, not for real time."""

from __future__ import annotations

import asyncio

from gateway.aio.periodic import Periodic
from tests.support.clock import ManualClock
from tests.support.waits import until


async def test_runs_repeatedly_survives_errors_and_stops() -> None:
    clock = ManualClock()
    calls: list[float] = []
    ran = asyncio.Event()

    async def work() -> None:
        calls.append(clock.time())
        ran.set()
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    p = Periodic("t", work, 1.0, sleep=clock.sleep)
    p.start()
    for n in (1, 2, 3):
        await asyncio.wait_for(ran.wait(), 10)  # generous: only a stuck loop takes long
        ran.clear()
        assert len(calls) == n
        await until(lambda: clock.pending() == 1)  # waiting for the next interval
        clock.advance(0.999)
        assert len(calls) == n  # not before the interval has passed
        clock.advance(0.001)
    await asyncio.wait_for(ran.wait(), 10)
    assert calls == [1000.0, 1001.0, 1002.0, 1003.0]  # the failure did not end the loop
    await p.stop()
    assert clock.pending() == 0  # stopped: nothing waits for the clock any more
    clock.advance(10.0)
    await asyncio.sleep(0)
    assert len(calls) == 4


async def test_delay_and_disabled() -> None:
    clock = ManualClock()
    calls: list[float] = []
    ran = asyncio.Event()

    async def work() -> None:
        calls.append(clock.time())
        ran.set()

    delayed = Periodic("d", work, 1.0, delay=5.0, sleep=clock.sleep)
    delayed.start()
    await until(lambda: clock.pending() == 1)  # waiting out the delay
    clock.advance(4.9)
    assert calls == []
    clock.advance(0.1)
    await asyncio.wait_for(ran.wait(), 10)
    assert calls == [1005.0]
    await delayed.stop()
    off = Periodic("off", work, 0, sleep=clock.sleep)
    off.start()
    await asyncio.sleep(0)
    assert clock.pending() == 0  # nothing started
    await off.stop()
    assert calls == [1005.0]
