"""Garbage-collector settings for a long-running server, and its pause metrics.

A gateway holds many long-lived objects (a few dozen per connection, the imported
code, caches). CPython's default thresholds (700, 10, 10) run a young collection every
700 net allocations and, as survivors accumulate, full collections that walk every
tracked object: with thousands of connections those pauses reach tens of milliseconds
and show up as latency spikes. `GcTuning.apply` (called once by `gateway serve`):

* freezes what exists after start-up (modules, config, the app) into the permanent
  generation, so no collection walks it again (`gc.freeze`);
* raises the young threshold (`GC_GEN0_THRESHOLD`, default 50,000): the same garbage
  is found with far fewer, still short, collections, and fewer short-lived objects
  are promoted into the older generations that make full collections long.

Pauses are measured with `gc.callbacks` and exported as metrics. `GC_GEN0_THRESHOLD=0`
keeps Python's defaults.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.ops.metrics import Metrics


@dataclass
class GcTuning:
    gen0_threshold: int = 50_000
    freeze: bool = True
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    pause_total: float = 0.0
    pause_max: float = 0.0
    _started: float | None = None
    _previous: tuple[int, int, int] | None = None

    def apply(self) -> None:
        """Set the thresholds, freeze the start-up heap and start measuring pauses."""
        if self.gen0_threshold > 0:
            self._previous = gc.get_threshold()
            _, t1, t2 = self._previous
            gc.set_threshold(self.gen0_threshold, t1, t2)
        if self.freeze:
            gc.collect()
            gc.freeze()
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        """Undo `apply` (for tests and a clean shutdown)."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        if self._previous is not None:
            gc.set_threshold(*self._previous)
            self._previous = None
        if self.freeze:
            gc.unfreeze()

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        pause = time.perf_counter() - self._started
        self._started = None
        gen = int(info.get("generation", 0))
        if 0 <= gen <= 2:
            self.collections[gen] += 1
        self.pause_total += pause
        self.pause_max = max(self.pause_max, pause)

    def export(self, metrics: Metrics) -> None:
        metrics.counter_fn("izh_gc_pause_seconds_total", "Time spent in garbage collections",
                           lambda: self.pause_total)
        metrics.gauge("izh_gc_pause_max_seconds", "Longest garbage-collection pause since start",
                      lambda: self.pause_max)
        for gen in range(3):
            metrics.counter_fn(f"izh_gc_collections_gen{gen}_total", f"Garbage collections of generation {gen}",
                               lambda gen=gen: float(self.collections[gen]))  # type: ignore[misc]
