"""Event-loop stall reports: what the loop was running when it stopped turning.

A timer on the loop stamps the time every `interval`; a daemon thread checks the stamp.
When it is older than `threshold` the loop is stuck in one callback (or starved of CPU),
and the thread logs the loop thread's Python stack once for that stall, with its length
when it ends. Every stall is counted (`izh_loop_stalls_total`) and the longest kept
(`izh_loop_stall_max_seconds`). A stall is reported once the stamp is older than
`threshold + interval`, so every one reported held the loop for more than `threshold`.
The stamp and the thread each wake `1 / interval` times a second (10 with the default
200 ms threshold: on an idle node they are most of its wake-ups, so not more often), and
the thread holds the GIL only to read a float (and, during a stall, to format one stack).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)


class StallWatch:
    def __init__(self, threshold: float = 0.2, interval: float | None = None) -> None:
        self.threshold = threshold
        self.interval = interval if interval is not None else max(0.01, threshold / 2)
        self.stalls = 0
        self.longest = 0.0
        self._last = time.monotonic()
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last = time.monotonic()
        self._handle = loop.call_later(self.interval, self._tick, loop)
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(1.0)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last = time.monotonic()
        self._handle = loop.call_later(self.interval, self._tick, loop)

    def _watch(self) -> None:
        began: float | None = None  # the stamp of the stall being reported
        worst = 0.0
        while not self._stop.wait(self.interval):
            last = self._last
            lag = time.monotonic() - last
            if lag > self.threshold + self.interval:
                worst = max(worst, lag)
                if began != last:
                    began = last
                    self.stalls += 1
                    frame = sys._current_frames().get(self._loop_thread)
                    stack = "".join(traceback.format_stack(frame)[-14:]) if frame is not None else "(no frame)\n"
                    log.warning("event loop stalled for more than %.0f ms, in:\n%s", lag * 1000, stack.rstrip())
            elif began is not None:
                self.longest = max(self.longest, worst)
                log.warning("event loop stall ended after %.0f ms", worst * 1000)
                began, worst = None, 0.0
