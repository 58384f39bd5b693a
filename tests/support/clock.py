"""A clock a test moves by hand: `time()`, `call_at()` (the `Timers` protocol) and an async
`sleep()`, none of which waits for real time. `advance(dt)` moves it and runs, in order,
every timer that came due and wakes every sleeper whose time has come."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable


class _Handle:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._due: list[tuple[float, int, _Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def __call__(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> _Handle:
        handle = _Handle(callback)
        heapq.heappush(self._due, (when, next(self._order), handle))
        return handle

    def pending(self) -> int:
        """Timers and sleepers not yet run nor cancelled."""
        return sum(1 for _, _, h in self._due if not h.cancelled)

    async def sleep(self, delay: float) -> None:
        """Returns once the clock has been advanced by `delay` (at once for `delay <= 0`,
        after one turn of the loop, as `asyncio.sleep(0)`)."""
        if delay <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        handle = self.call_at(self.now + delay, wake)
        try:
            await woken
        finally:
            handle.cancel()

    def advance(self, dt: float) -> None:
        """Move the clock by `dt`, running what came due in deadline order (each at its own
        deadline's time, so a timer that re-arms itself sees the clock where it fired)."""
        end = self.now + dt
        while self._due and self._due[0][0] <= end:
            when, _, handle = heapq.heappop(self._due)
            if handle.cancelled:
                continue
            self.now = max(self.now, when)
            handle.callback()
        self.now = end
