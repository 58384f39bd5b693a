"""Background tasks: kept referenced until they end, and stopped for certain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any


async def stop_task(task: asyncio.Task[Any], log: logging.Logger, what: str) -> None:
    """Cancel `task` and wait until it has ended, cancelling again while it runs on:
    `asyncio.wait_for` on Python 3.11 (used inside redis-py) swallows a cancellation that
    races with the completion of what it waits for. A failure it ended with is logged."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s failed", what, exc_info=exc)


class TaskSet:
    """Fire-and-forget tasks, held here until they end (the event loop keeps only weak
    references to tasks, so an unreferenced one can vanish mid-flight). A set belongs to
    the loop of its first `spawn`: it looks that loop up once (`get_running_loop()` costs a
    `getpid()` system call per call on Python 3.11, and this runs for every Socket.IO event)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def spawn(self, aw: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        # create_task straight for a coroutine: this runs once per Socket.IO event, and
        # ensure_future's type checks add nothing for a coroutine
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        task = loop.create_task(aw) if asyncio.iscoroutine(aw) else asyncio.ensure_future(aw)
        if name is not None:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    async def close(self) -> None:
        """Cancel them all and wait until they have ended."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
