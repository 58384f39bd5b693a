"""Work spread over turns of the event loop: a per-turn budget and a backlog for the rest.

Both reach their loop through `loop`, a getter (the engine passes its timer wheel's, which
looks the loop up once: `asyncio.get_running_loop()` is a `getpid()` system call per call on
Python 3.11, and a budget is taken for every read).

A storm (10,000 clients leaving at once after a network blip) makes one poll phase of the
loop hand over thousands of reads and disconnects; handled in that one turn they stall
every other connection. `TurnBudget` admits a bounded number per turn; `TurnBacklog`
holds the rest and runs them a bounded number per later turn, in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TurnBudget:
    """At most `size` admissions per turn of the event loop: the count starts over once the
    turn's callbacks have run (a `call_soon` scheduled by the turn's first admission)."""

    __slots__ = ("_loop", "size", "used")

    def __init__(self, size: int, loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.get_running_loop) -> None:
        self.size = max(1, size)
        self.used = 0
        self._loop = loop

    def take(self) -> bool:
        """Count one admission in this turn; False when the turn's budget is spent."""
        n = self.used
        if n >= self.size:
            return False
        if not n:
            self._loop().call_soon(self._start_over)
        self.used = n + 1
        return True

    def _start_over(self) -> None:
        self.used = 0


class TurnBacklog(Generic[T]):
    """What waits for later turns of the event loop: `run` takes `size` items per turn, in
    arrival order, beginning with the turn after the first one waited."""

    def __init__(self, size: int, run: Callable[[T], None],
                 loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.get_running_loop) -> None:
        self.size = max(1, size)
        self._run = run
        self._items: deque[T] = deque()
        self._handle: asyncio.Handle | None = None
        self._loop = loop
        self.deferred = 0  # items that waited
        self.longest = 0  # the most that waited at once

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        q = self._items
        q.append(item)
        self.deferred += 1
        if len(q) > self.longest:
            self.longest = len(q)
        if self._handle is None:
            self._handle = self._loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._handle = None
        q = self._items
        run = self._run
        for _ in range(min(len(q), self.size)):
            run(q.popleft())
        if q and self._handle is None:
            self._handle = self._loop().call_soon(self._drain)

    def clear(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._items.clear()
