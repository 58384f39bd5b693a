"""One timer for many deadlines: a hashed wheel of fixed-length ticks.

Tens of thousands of idle connections each have a heartbeat deadline; a timer handle
each would cost memory and heap work per connection. Here an item is filed under the tick
its deadline falls in, and one loop timer runs every due tick while anything is filed.
An item fires within one tick after its deadline (plus the loop's own delay), never
before. Re-filing an item under another tick leaves its old entry behind; the item's
`tick` field holds the bucket (a list shared by every item of that tick) of its current
entry, and stale ones are skipped. `when` gives one shared float per tick, so that many
items' deadlines cost one object rather than one each.

A wheel belongs to the event loop it first runs on (its timer handle does): it looks the
loop up once, since `asyncio.get_running_loop()` costs a `getpid()` system call per call on
CPython 3.11, and the heartbeat asks the time once per ping and once per pong.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import Protocol


class Timed(Protocol):
    """What the wheel files: `tick` is the bucket of its current entry (None: none)."""

    tick: object

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
        self._whens: dict[int, float] = {}  # tick → its shared deadline float
        self._when_ticks: list[int] = []  # heap of `_whens`' ticks
        self._last = 0  # the last tick run
        self._handle: asyncio.TimerHandle | None = None
        self._armed = math.inf  # the tick the loop timer is set for
        self._carry: list[tuple[list[Timed], Timed]] = []  # (bucket, item) due beyond a run's bound
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on, once known

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The loop this wheel runs on (looked up at the first call after construction or
        `close`; call it from that loop)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def now(self) -> float:
        return self._clock() if self._clock is not None else self.running_loop().time()

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values()) + len(self._carry)

    def when(self, deadline: float) -> float:
        """`deadline` rounded up to the end of its tick, as one float shared by every caller
        of that tick (a deadline is never brought forward)."""
        tick = math.ceil(deadline / self.resolution)
        w = self._whens.get(tick)
        if w is None:
            w = self._whens[tick] = max(tick * self.resolution, deadline)
            heapq.heappush(self._when_ticks, tick)
        return w

    def file(self, item: Timed, deadline: float) -> None:
        """Fire `item.on_time` at the end of the tick holding `deadline` (loop time)."""
        if not self._buckets and not self._carry:  # idle until now: no tick to catch up on
            self._last = max(self._last, math.floor(self.now() / self.resolution))
        tick = max(math.ceil(deadline / self.resolution), self._last + 1)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = []
            heapq.heappush(self._ticks, tick)
        elif item.tick is bucket:
            return
        item.tick = bucket
        bucket.append(item)
        if tick < self._armed:
            self._arm(tick)

    def cancel(self, item: Timed) -> None:
        """Forget `item`'s entry (its stale entry is skipped when its tick comes)."""
        item.tick = None

    def _arm(self, tick: int) -> None:
        loop = self.running_loop()
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
        due = [(bucket, item) for bucket, item in self._carry if item.tick is bucket]
        self._carry = []
        buckets, ticks = self._buckets, self._ticks
        while ticks and ticks[0] <= current:
            bucket = buckets.pop(heapq.heappop(ticks))
            due += [(bucket, item) for item in bucket if item.tick is bucket]
        whens, when_ticks = self._whens, self._when_ticks
        while when_ticks and when_ticks[0] <= current:
            del whens[heapq.heappop(when_ticks)]
        self._last = max(self._last, current)
        bound = self._per_tick
        if bound and len(due) > bound:
            due, self._carry = due[:bound], due[bound:]
        for _, item in due:
            item.tick = None
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
        self._loop = None
        self._buckets.clear()
        self._ticks.clear()
        self._whens.clear()
        self._when_ticks.clear()
        self._carry.clear()
