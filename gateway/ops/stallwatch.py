"""Event-loop stall reports: what the loop was running when it stopped turning.

A daemon thread looks at the loop every `interval`. A loop parked in its poller (waiting
in epoll for something to do) is turning, and the thread stamps the time itself; a loop
doing anything else is asked to answer (`call_soon_threadsafe`), and its answer stamps
the time. When the stamp is older than `threshold` the loop is stuck in one callback (or
starved of CPU), and the thread logs the loop thread's Python stack once for that stall,
with its length when it ends. Every stall is counted (`izh_loop_stalls_total`) and the
longest kept (`izh_loop_stall_max_seconds`). A stall is reported once the stamp is older
than `threshold + interval`, so every one reported held the loop for more than `threshold`.

An idle loop is never woken by the watch: only the thread wakes, `1 / interval` times a
second (10 with the default 200 ms threshold), to read one line of
`/proc/self/task/<loop thread>/syscall` (`PollerState`). On this project's 2-core VM
every wake-up of an idle process costs 70 to 90 µs of CPU whatever it does; an idle process
with the watch costs 0.0014 cores this way, against 0.0023 to 0.0026 for a timer on the loop
and a thread waiting on an `Event` (docs/performance.md). Where that file does not tell
(not Linux, an architecture whose epoll system call numbers are not listed here), a timer
on the loop stamps the time every `interval` instead, which wakes the loop as often.

What the watch cannot see: a loop thread blocked in an epoll wait of its own, outside the
loop's poller (a synchronous library waiting on a selector), looks idle.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)

# system call numbers of epoll_wait, epoll_pwait and epoll_pwait2 (the loop's poller), by
# `platform.machine()` (the kernel's arch/*/syscall tables; aarch64 has no epoll_wait)
EPOLL_WAITS: dict[str, frozenset[int]] = {
    "x86_64": frozenset({232, 281, 441}),
    "aarch64": frozenset({22, 441}),
}


class PollerState:
    """Whether one thread of this process is blocked in epoll, read from the kernel's
    `/proc/self/task/<native id>/syscall` (the system call a thread is blocked in, as a
    number, or `running`). One open file, read with `pread` at each look."""

    def __init__(self, native_id: int, waits: frozenset[int]) -> None:
        self._fd = os.open(f"/proc/self/task/{native_id}/syscall", os.O_RDONLY)
        self._waits = waits

    @classmethod
    def of_current_thread(cls) -> PollerState | None:
        """The calling thread's, or None where it cannot be read."""
        waits = EPOLL_WAITS.get(platform.machine())
        if waits is None or not sys.platform.startswith("linux"):
            return None
        try:
            state = cls(threading.get_native_id(), waits)
            state.parked()  # readable here (a sandbox may refuse it)
        except OSError:
            return None
        return state

    def parked(self) -> bool:
        """The thread is blocked in epoll now (False while it runs or waits on anything else)."""
        head = os.pread(self._fd, 16, 0).split(b" ", 1)[0]
        return head.isdigit() and int(head) in self._waits

    def close(self) -> None:
        os.close(self._fd)


class StallWatch:
    def __init__(self, threshold: float = 0.2, interval: float | None = None, *, use_proc: bool = True) -> None:
        """`use_proc=False`: stamp with a timer on the loop even where `/proc` tells."""
        self.threshold = threshold
        self.interval = interval if interval is not None else max(0.01, threshold / 2)
        self.use_proc = use_proc
        self.stalls = 0
        self.longest = 0.0
        self.seen_parked = 0  # looks that found the loop parked in its poller
        self._last = time.monotonic()
        self._asking = False  # a question to the loop is waiting for its answer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._poller: PollerState | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def wakes_loop(self) -> bool:
        """Whether the watch runs a timer on the loop (no `/proc` to read)."""
        return self._poller is None

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last = time.monotonic()
        self._poller = PollerState.of_current_thread() if self.use_proc else None
        if self._poller is None:
            self._handle = loop.call_later(self.interval, self._tick, loop)
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the thread ends within one `interval`."""
        self._stopping = True
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(max(1.0, 3 * self.interval))
        if self._poller is not None and (self._thread is None or not self._thread.is_alive()):
            self._poller.close()
            self._poller = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last = time.monotonic()
        self._handle = loop.call_later(self.interval, self._tick, loop)

    def _answer(self) -> None:
        """On the loop: it turned."""
        self._last = time.monotonic()
        self._asking = False

    def _look(self, now: float) -> bool:
        """From the thread: stamp `now` if the loop is parked, else ask it to answer.
        False once the loop is closed."""
        poller, loop = self._poller, self._loop
        if poller is None or loop is None:
            return True
        if poller.parked():
            self.seen_parked += 1
            self._last = now
        elif not self._asking:
            self._asking = True
            try:
                loop.call_soon_threadsafe(self._answer)
            except RuntimeError:  # the loop is closed
                return False
        return True

    def _watch(self) -> None:
        began: float | None = None  # the stamp of the stall being reported
        worst = 0.0
        while True:
            # a plain sleep: `threading.Event.wait` with a timeout costs twice the CPU per
            # wake-up (its condition variable's lock), and wake-ups are the watch's whole cost
            time.sleep(self.interval)
            if self._stopping:
                return
            now = time.monotonic()
            if not self._look(now):
                return
            last = self._last
            lag = now - last
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
