"""Threads of this process as the kernel sees them."""

from __future__ import annotations

import os
import time


def task_ids() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def wait_for_policy(tid: int, policy: int, timeout: float = 5.0) -> None:
    """Until thread `tid` runs under scheduling `policy` (it sets its own as it starts)."""
    deadline = time.monotonic() + timeout
    while os.sched_getscheduler(tid) != policy:
        assert time.monotonic() < deadline, f"thread {tid} never ran under policy {policy}"
        time.sleep(0.01)
