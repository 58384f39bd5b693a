"""`Timers`: the clock and the timer callbacks a component schedules on.

The running asyncio event loop is one (`loop.time()`, `loop.call_at()`); a component that
takes `timers` uses the running loop when given none, and a test passes a clock it moves
by hand instead, so that what happens when a timer fires is checked without waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None:
        """The callback will not run (no effect once it has)."""


class Timers(Protocol):
    def time(self) -> float:
        """Now, in seconds, on the clock `call_at` reads."""

    def call_at(self, when: float, callback: Callable[[], object], /) -> Cancellable:
        """Run `callback` once, at `when` or later (never before)."""
