"""Waiting in tests for a condition that has no event to wait on (a fake server's state, a
counter of the code under test): poll it, and fail when it does not hold in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Return once `predicate()` is true; an AssertionError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(interval)


async def until_async(predicate: Callable[[], Awaitable[object]], timeout: float = 10.0,
                      interval: float = 0.02) -> None:
    """`until` for a predicate that must be awaited (a read of the code under test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(interval)
