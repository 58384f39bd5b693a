"""One timer for many deadlines: a hashed wheel of fixed-length ticks.

Tens of thousands of idle connections each have a heartbeat deadline; a timer handle
each would cost memory and heap work per connection. Here an item is filed under the tick
its deadline falls in, and one loop timer runs every due tick while anything is filed.
An item fires within one tick after its deadline (plus the loop's own delay), never
before. Re-filing an item under another tick leaves its old entry behind; the item's
`tick` field says which entry is current, and stale ones are skipped.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import Protocol


class Timed(Protocol):
    """What the wheel files: `tick` is the tick of its current entry (-1: none)."""

    tick: int

    def on_time(self, now: float) -> None:
        """Its deadline has come; it may file itself again (`TimerWheel.file`)."""


class TimerWheel:
    def __init__(self, resolution: float, clock: Callable[[], float] | None = None,
                 per_tick: int = 0) -> None:
        """`resolution`: seconds per tick. `per_tick`: at most this many items fire per run
        of the timer (0: no bound); the rest fire in the next runs, in order."""
        self.resolution = resolution
        self._clock = clock
        self._per_tick = per_tick
        self._buckets: dict[int, list[Timed]] = {}
        self._ticks: list[int] = []  # heap of the buckets' ticks
        self._last = 0  # the last tick run
        self._handle: asyncio.TimerHandle | None = None
        self._armed = math.inf  # the tick the loop timer is set for
        self._carry: list[tuple[int, Timed]] = []  # (tick, item) past their deadline beyond a run's bound

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values()) + len(self._carry)

    def file(self, item: Timed, deadline: float) -> None:
        """Fire `item.on_time` at the end of the tick holding `deadline` (loop time)."""
        if not self._buckets and not self._carry:  # idle until now: no tick to catch up on
            self._last = max(self._last, math.floor(self.now() / self.resolution))
        tick = max(math.ceil(deadline / self.resolution), self._last + 1)
        if item.tick == tick:
            return
        item.tick = tick
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [item]
            heapq.heappush(self._ticks, tick)
        else:
            bucket.append(item)
        if tick < self._armed:
            self._arm(tick)

    def cancel(self, item: Timed) -> None:
        """Forget `item`'s entry (its stale entry is skipped when its tick comes)."""
        item.tick = -1

    def _arm(self, tick: int) -> None:
        loop = asyncio.get_running_loop()
        if self._handle is not None:
            self._handle.cancel()
        self._armed = tick
        self._handle = loop.call_at(max(tick * self.resolution, loop.time()), self.run_due)

    def run_due(self) -> None:
        """Fire what is due by the clock (the loop timer calls this)."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed = math.inf
        now = self.now()
        current = math.floor(now / self.resolution)
        due = [(tick, item) for tick, item in self._carry if item.tick == tick]
        self._carry = []
        buckets, ticks = self._buckets, self._ticks
        while ticks and ticks[0] <= current:
            tick = heapq.heappop(ticks)
            due += [(tick, item) for item in buckets.pop(tick) if item.tick == tick]
        self._last = max(self._last, current)
        bound = self._per_tick
        if bound and len(due) > bound:
            due, self._carry = due[:bound], due[bound:]
        for _, item in due:
            item.tick = -1
        for _, item in due:
            item.on_time(now)
        if self._carry:
            self._arm(current)
        elif ticks and ticks[0] < self._armed:
            self._arm(ticks[0])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed = math.inf
        self._buckets.clear()
        self._ticks.clear()
        self._carry.clear()
