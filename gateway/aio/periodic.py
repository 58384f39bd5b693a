"""`Periodic`: one background task that calls an async function every `interval` seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.aio.tasks import stop_task

log = logging.getLogger(__name__)


class Periodic:
    """Calls `fn` every `interval` s (the first call after `delay`) between `start()` and
    `stop()`: each wait begins when the call before has returned, so calls never overlap.
    An exception is logged and the loop goes on. `interval <= 0` disables it. `sleep` is
    how it waits (`asyncio.sleep` unless given: a test passes a clock it moves by hand)."""

    def __init__(self, name: str, fn: Callable[[], Awaitable[None]], interval: float, *, delay: float = 0.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.name = name
        self._fn = fn
        self.interval = interval
        self.delay = delay
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            # cancels again while it runs on: a call inside `fn` may swallow one (stop_task)
            await stop_task(task, log, f"periodic task {self.name}")

    async def _loop(self) -> None:
        await self._sleep(self.delay)
        while True:
            try:
                await self._fn()
            except Exception:
                log.exception("periodic task %s failed", self.name)
            await self._sleep(self.interval)
