"""Database outages at the store boundary: one typed error, one log line per state change.

A backend classifies its driver's errors (`SqliteStore`, `PostgresStore`): those that say
the database cannot serve right now — unreachable, hung past its timeout, read-only, out
of space, locked past the busy timeout — become `StoreUnavailable`, a `GatewayError` with
code `unavailable` and `details.retry_after` (seconds). Clients retry such a request with
the same `client_id` after `retry_after`; the Socket.IO ack and the REST answer (503 +
``Retry-After``) are built from it like any other `GatewayError`, without a traceback.

`Outage` is the store's health state. The first failure of an outage logs one ERROR line
("store unavailable"), the first success after it one WARNING line ("store available
again", with the outage's length and how many operations were refused); the failures in
between are only counted. A store that flaps (an overloaded database answering some
operations and timing out others) would log a pair of lines per flap: an outage that
begins less than `quiet` seconds after the last line is counted, not logged, and the next
line logged says how many such short outages and refusals it stood for.
`retry_after` grows with the outage's age (half of it, between
`min_retry_after` and `max_retry_after`), so clients pace their retries during a long
outage instead of hammering the database the moment it comes back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from gateway.core.errors import Code, GatewayError
from gateway.store.base import StoreError

MIN_RETRY_AFTER = 1.0  # seconds a client waits before retrying, at the start of an outage
MAX_RETRY_AFTER = 10.0  # ... at most, however long the outage
QUIET = 10.0  # seconds after a logged line during which a new outage is counted, not logged


class StoreUnavailable(GatewayError, StoreError):
    """The database cannot serve now (unreachable, hung, read-only, full); retry later.
    `reason` is a short word for logs and metrics ("unreachable", "timeout", "read_only",
    "full", "io_error", "locked")."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(Code.UNAVAILABLE, f"the database is unavailable ({reason}); retry later",
                         retry_after=retry_after)
        self.reason = reason
        self.retry_after = retry_after


class Outage:
    """Whether the store's last operation failed as unavailable, since when, and how often.

    `failed()` is called by the backend for each classified driver error and returns the
    `StoreUnavailable` to raise; `succeeded()` after each operation that went through
    (a no-op unless an outage is open). `on_recover` callbacks run (synchronously) when an
    outage ends."""

    def __init__(self, name: str, *, logger: logging.Logger, clock: Callable[[], float] = time.monotonic,
                 min_retry_after: float = MIN_RETRY_AFTER, max_retry_after: float = MAX_RETRY_AFTER,
                 quiet: float = QUIET) -> None:
        self.name = name
        self._log = logger
        self._clock = clock
        self._min = min_retry_after
        self._max = max_retry_after
        self._quiet = quiet
        self.down_since: float | None = None
        self.reason = ""
        self.refused = 0  # operations refused in the current (or last) outage
        self.outages = 0  # outages begun since start
        self.on_recover: list[Callable[[], None]] = []
        self._logged_at: float | None = None  # when the last line was logged
        self._logging = False  # whether the current outage's beginning was logged
        self._unlogged_outages = 0  # short outages counted, not logged, since the last line
        self._unlogged_refused = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def retry_after(self) -> float:
        """Seconds a client should wait before retrying (whole seconds, as in ``Retry-After``)."""
        age = 0.0 if self.down_since is None else self._clock() - self.down_since
        return float(math.ceil(min(self._max, max(self._min, age / 2))))

    def failed(self, reason: str, exc: BaseException) -> StoreUnavailable:
        if self.down_since is None:
            now = self._clock()
            self.down_since = now
            self.reason = reason
            self.refused = 0
            self.outages += 1
            self._logging = self._logged_at is None or now - self._logged_at >= self._quiet
            if self._logging:
                self._log.error("store %s unavailable (%s): %s: %s; answering 'unavailable' until it is back%s",
                                self.name, reason, type(exc).__name__, exc, self._unlogged())
                self._logged_at = now
            else:
                self._unlogged_outages += 1
        self.refused += 1
        return StoreUnavailable(reason, self.retry_after())

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        now = self._clock()
        lasted = now - self.down_since
        self.down_since = None
        if self._logging:
            self._log.warning("store %s available again after %.1fs (%s; %d operations refused)",
                              self.name, lasted, self.reason, self.refused)
            self._logged_at = now
        else:
            self._unlogged_refused += self.refused
        for callback in self.on_recover:
            callback()

    def _unlogged(self) -> str:
        """The short outages counted since the last line, for the next line (then reset)."""
        if not self._unlogged_outages:
            return ""
        text = (f" (since the last line: {self._unlogged_outages} short outages,"
                f" {self._unlogged_refused} operations refused)")
        self._unlogged_outages = self._unlogged_refused = 0
        return text
