"""The garbage collector as `gateway serve` tunes it, for tests that bound a latency."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gateway.ops.gctune import GcTuning


@contextlib.contextmanager
def served_gc() -> Iterator[None]:
    """The heap so far frozen and a high young threshold, as `gateway serve` runs (gateway/
    gctune.py): a full collection then does not walk the whole test runner's heap, which
    stalls the loop for hundreds of milliseconds in a suite's late tests."""
    tuning = GcTuning()
    tuning.apply()
    try:
        yield
    finally:
        tuning.remove()
