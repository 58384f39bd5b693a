"""Backoff arithmetic: next Pacific midnight (daily quota reset) and capped exponential delays."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


def seconds_until_pacific_midnight(now: float) -> float:
    """Seconds from UNIX time `now` to the next midnight in America/Los_Angeles (DST aware)."""
    local = datetime.fromtimestamp(now, PACIFIC)
    next_day = (local + timedelta(days=1)).date()
    midnight = datetime(next_day.year, next_day.month, next_day.day, tzinfo=PACIFIC)
    return max(1.0, midnight.timestamp() - now)


class ExponentialBackoff:
    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._max = maximum
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def next_delay(self, hint: float | None = None) -> float:
        """Register one failure and return the pause before the next attempt."""
        delay = min(self._max, self._initial * 2.0**self._failures)
        self._failures += 1
        if hint is not None:
            delay = min(self._max, max(delay, hint))
        return delay

    def reset(self) -> None:
        self._failures = 0
