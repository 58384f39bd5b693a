"""GcTuning: thresholds, freeze and pause accounting, undone by remove()."""

from __future__ import annotations

import gc

from gateway.ops.gctune import GcTuning
from gateway.ops.metrics import Metrics


def test_apply_sets_threshold_freezes_and_counts_collections() -> None:
    before = gc.get_threshold()
    tuning = GcTuning(gen0_threshold=12_345, freeze=True)
    tuning.apply()
    try:
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 0
        gc.collect(0)
        gc.collect(2)
        assert tuning.collections[0] >= 1 and tuning.collections[2] >= 1
        assert tuning.pause_total > 0 and tuning.pause_max > 0
        metrics = Metrics()
        tuning.export(metrics)
        text = metrics.render().decode()
        assert "izh_gc_pause_seconds_total" in text and "izh_gc_collections_gen2_total" in text
    finally:
        tuning.remove()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert tuning._callback not in gc.callbacks


def test_zero_threshold_keeps_python_defaults() -> None:
    before = gc.get_threshold()
    tuning = GcTuning(gen0_threshold=0, freeze=False)
    tuning.apply()
    try:
        assert gc.get_threshold() == before
    finally:
        tuning.remove()
