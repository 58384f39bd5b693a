"""The stall watch names the code that blocked the event loop."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.ops.stallwatch import StallWatch


def _blocking_work(seconds: float) -> None:
    time.sleep(seconds)  # stands for a long synchronous call on the loop


async def test_a_blocked_loop_is_reported_with_the_blocking_code(caplog: pytest.LogCaptureFixture) -> None:
    watch = StallWatch(threshold=0.05, interval=0.01)
    caplog.set_level(logging.WARNING, logger="gateway.ops.stallwatch")
    watch.start()
    try:
        await asyncio.sleep(0.2)  # a turning loop: nothing to report
        assert watch.stalls == 0
        _blocking_work(0.3)
        await asyncio.sleep(0.1)  # the watch sees the loop turn again
    finally:
        watch.stop()
    assert watch.stalls == 1 and 0.25 <= watch.longest < 1.0
    text = caplog.text
    assert "_blocking_work" in text and "event loop stall ended after" in text
