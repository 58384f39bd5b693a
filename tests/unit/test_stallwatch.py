"""The stall watch names the code that blocked the event loop, and does not wake an idle one."""

from __future__ import annotations

import logging
import select
import sys
import threading
import time
from collections.abc import Callable

import pytest

from gateway.ops.stallwatch import PollerState, StallWatch
from tests.support.waits import until


def _proc_readable() -> bool:
    state = PollerState.of_current_thread()
    if state is None:
        return False
    state.close()
    return True


LINUX_PROC = _proc_readable()
needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task/<tid>/syscall")


def _blocking_work(seconds: float) -> None:
    time.sleep(seconds)  # stands for a long synchronous call on the loop


def _busy_work(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # stands for a long computation on the loop
        pass


@pytest.mark.parametrize("use_proc", [True, False], ids=["proc", "timer"])
@pytest.mark.parametrize("work", [_blocking_work, _busy_work], ids=["blocked", "busy"])
async def test_a_stalled_loop_is_reported_with_the_stalling_code(
        caplog: pytest.LogCaptureFixture, use_proc: bool, work: Callable[[float], None]) -> None:
    """A stall is what the watch measures, so the loop is stalled for real: 1 s against a
    0.1 s threshold, long enough that a loaded machine's own delays cannot hide it; asleep
    in a system call (blocked) or running Python (busy). Nothing asserts that a turning
    loop reports no stall: on a shared machine a loop starved of the CPU does stall."""
    watch = StallWatch(threshold=0.1, interval=0.02, use_proc=use_proc)
    caplog.set_level(logging.WARNING, logger="gateway.ops.stallwatch")
    watch.start()
    try:
        assert watch.wakes_loop is not (use_proc and LINUX_PROC)
        work(1.0)
        await until(lambda: watch.longest > 0)  # the watch saw the loop turn again
    finally:
        watch.stop()
    assert watch.stalls >= 1 and watch.longest > watch.threshold
    text = caplog.text
    assert work.__name__ in text and "event loop stall ended after" in text


@needs_proc
async def test_an_idle_loop_is_seen_parked_and_not_woken() -> None:
    """Where /proc tells, the watch runs no timer on the loop, and sees an idle loop parked
    in its poller (it stamps the time itself rather than asking the loop)."""
    watch = StallWatch(threshold=0.1, interval=0.01)
    watch.start()
    try:
        assert not watch.wakes_loop
        await until(lambda: watch.seen_parked >= 5)
    finally:
        watch.stop()
    assert watch.stalls == 0 or watch.longest > 0  # a stall seen on a loaded machine also ended


@needs_proc
def test_poller_state_tells_a_thread_in_epoll_from_one_that_runs() -> None:
    ep = select.epoll()
    states: list[PollerState] = []
    ready, release = threading.Event(), threading.Event()

    def parked() -> None:
        state = PollerState.of_current_thread()
        assert state is not None
        states.append(state)
        ready.set()
        while not release.is_set():
            ep.poll(0.05)

    t = threading.Thread(target=parked)
    t.start()
    try:
        assert ready.wait(10)
        deadline = time.monotonic() + 10
        while not states[0].parked():  # between two polls the thread runs Python briefly
            assert time.monotonic() < deadline, "the thread was never seen in epoll"
    finally:
        release.set()
        t.join()
        ep.close()
    states[0].close()
    me = PollerState.of_current_thread()
    assert me is not None
    try:
        assert not me.parked()  # this thread is reading its own state: in pread, not epoll
    finally:
        me.close()
