"""The stall watch names the code that blocked the event loop."""

from __future__ import annotations

import logging
import time

import pytest

from gateway.ops.stallwatch import StallWatch
from tests.support.waits import until


def _blocking_work(seconds: float) -> None:
    time.sleep(seconds)  # stands for a long synchronous call on the loop


async def test_a_blocked_loop_is_reported_with_the_blocking_code(caplog: pytest.LogCaptureFixture) -> None:
    """A stall is what the watch measures, so the loop is blocked for real: 1 s against a
    0.1 s threshold, long enough that a loaded machine's own delays cannot hide it. Nothing
    asserts that a turning loop reports no stall: on a shared machine a loop starved of the
    CPU does stall."""
    watch = StallWatch(threshold=0.1, interval=0.02)
    caplog.set_level(logging.WARNING, logger="gateway.ops.stallwatch")
    watch.start()
    try:
        _blocking_work(1.0)
        await until(lambda: watch.longest > 0)  # the watch saw the loop turn again
    finally:
        watch.stop()
    assert watch.stalls >= 1 and watch.longest > watch.threshold
    text = caplog.text
    assert "_blocking_work" in text and "event loop stall ended after" in text
