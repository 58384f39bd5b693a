"""Checkpoint JSON (the repository contract is tests/contract/test_checkpoint_repository.py)."""

from __future__ import annotations

from connectors.youtube import Checkpoint


def test_checkpoint_json_tolerates_garbage() -> None:
    assert Checkpoint.from_json("[]") == Checkpoint()
    cp = Checkpoint.from_json('{"high_water": "x", "seen": ["a", 1], "threads": {"t": "2", "u": 3}}')
    assert cp.high_water is None and cp.seen == ["a"] and cp.threads == {"u": 3}
