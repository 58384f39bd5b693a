"""The `CheckpointRepository` contract (connectors/youtube/checkpoint.py) on SQLite,
PostgreSQL, and the in-memory one tests use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.youtube.checkpoint import (
    Checkpoint,
    CheckpointRepository,
    MemoryCheckpointStore,
    SqlCheckpointStore,
)
from tests.contract.repository_backends import BACKENDS, open_nodes


@pytest.fixture(params=[*BACKENDS, pytest.param("memory")])
async def repos(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[CheckpointRepository]]:
    """Two repositories on one storage (two nodes; one object in memory)."""
    if request.param == "memory":
        mem = MemoryCheckpointStore()
        yield [mem, mem]
        return
    async with open_nodes(request.param, tmp_path) as n:
        yield [SqlCheckpointStore(s, clock=lambda: 1.0) for s in n.stores]


def sample() -> Checkpoint:
    return Checkpoint(high_water=1_700_000_000.5, floor=1_699_000_000.0, seen=["c1", "c2"], threads={"t1": 3})


async def test_save_then_load_round_trips(repos: list[CheckpointRepository]) -> None:
    a, b = repos
    await a.save("t1", "video:abc", sample())
    got = await b.load("t1", "video:abc")
    assert got == sample() and got is not None and got.has_seen("c2") and not got.has_seen("c3")


async def test_save_replaces_and_load_is_a_copy(repos: list[CheckpointRepository]) -> None:
    a, b = repos
    await a.save("t1", "video:abc", sample())
    newer = sample()
    newer.high_water = 1_800_000_000.0
    newer.mark_seen("c3", 10)
    newer.track("t2", 0, 10)
    await b.save("t1", "video:abc", newer)
    loaded = await a.load("t1", "video:abc")
    assert loaded == newer
    assert loaded is not None
    loaded.mark_seen("c4", 10)  # changing what was loaded changes nothing stored
    assert await a.load("t1", "video:abc") == newer


async def test_empty_checkpoint_round_trips(repos: list[CheckpointRepository]) -> None:
    a, _ = repos
    await a.save("t1", "channel:UC1", Checkpoint())
    assert await a.load("t1", "channel:UC1") == Checkpoint()


async def test_not_found_and_tenant_scoped(repos: list[CheckpointRepository]) -> None:
    a, _ = repos
    assert await a.load("t1", "video:abc") is None
    await a.save("t1", "video:abc", sample())
    assert await a.load("t2", "video:abc") is None
    assert await a.load("t1", "video:other") is None
    other = Checkpoint(high_water=5.0)
    await a.save("t2", "video:abc", other)  # the same source of another tenant is its own
    assert await a.load("t1", "video:abc") == sample()
    assert await a.load("t2", "video:abc") == other


async def test_delete_tenant_forgets_only_that_tenant(repos: list[CheckpointRepository]) -> None:
    a, b = repos
    await a.save("t1", "video:abc", sample())
    await a.save("t1", "channel:UC1", sample())
    await a.save("t2", "video:abc", Checkpoint(high_water=5.0))
    await b.delete_tenant("t1")
    assert await a.load("t1", "video:abc") is None
    assert await a.load("t1", "channel:UC1") is None
    assert await a.load("t2", "video:abc") == Checkpoint(high_water=5.0)
    await b.delete_tenant("t1")  # nothing left: no error
