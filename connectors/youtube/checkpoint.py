"""Per-source polling checkpoint: high-water mark, recently seen comment ids, tracked threads.

`CheckpointRepository` is the contract (tests/contract/test_checkpoint_repository.py runs it
on SQLite, PostgreSQL and in memory); `SqlCheckpointStore` keeps one JSON row per (tenant,
source) in ``youtube_checkpoints`` (migration 0006_youtube.sql) through
`gateway.store.db.Database`; `MemoryCheckpointStore` is for tests and embedding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.store.db import Database


@dataclass
class Checkpoint:
    high_water: float | None = None  # newest top-level publishedAt fully processed
    floor: float | None = None  # comments older than this are never emitted (first-run lookback)
    seen: list[str] = field(default_factory=list)  # emitted / skipped comment ids, oldest first
    threads: dict[str, int] = field(default_factory=dict)  # tracked thread id → known reply count
    _index: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = set(self.seen)

    def has_seen(self, comment_id: str) -> bool:
        return comment_id in self._index

    def mark_seen(self, comment_id: str, cap: int) -> None:
        if comment_id in self._index:
            return
        self.seen.append(comment_id)
        self._index.add(comment_id)
        if len(self.seen) > cap:
            for old in self.seen[: len(self.seen) - cap]:
                self._index.discard(old)
            del self.seen[: len(self.seen) - cap]

    def track(self, thread_id: str, reply_count: int, cap: int) -> None:
        self.threads.pop(thread_id, None)
        self.threads[thread_id] = reply_count  # most recently touched last
        while len(self.threads) > cap:
            del self.threads[next(iter(self.threads))]

    def to_json(self) -> str:
        return json.dumps(
            {"v": 1, "high_water": self.high_water, "floor": self.floor, "seen": self.seen, "threads": self.threads},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            return cls()
        hw = data.get("high_water")
        fl = data.get("floor")
        seen = data.get("seen")
        threads = data.get("threads")
        return cls(
            high_water=float(hw) if isinstance(hw, int | float) else None,
            floor=float(fl) if isinstance(fl, int | float) else None,
            seen=[s for s in seen if isinstance(s, str)] if isinstance(seen, list) else [],
            threads={k: int(v) for k, v in threads.items() if isinstance(v, int)} if isinstance(threads, dict) else {},
        )

    def copy(self) -> Checkpoint:
        return Checkpoint(self.high_water, self.floor, list(self.seen), dict(self.threads))


class CheckpointRepository(Protocol):
    """One checkpoint per (tenant, source); a source of one tenant is unrelated to the same
    source of another."""

    async def load(self, tenant_id: str, source: str) -> Checkpoint | None:
        """The checkpoint last saved for the tenant's source (a copy: changing it changes
        nothing stored), or None when none was saved."""
        ...

    async def save(self, tenant_id: str, source: str, checkpoint: Checkpoint) -> None:
        """Store `checkpoint` as the source's, replacing any saved before."""
        ...

    async def delete_tenant(self, tenant_id: str) -> None:
        """Forget every checkpoint of the tenant (other tenants' stay)."""
        ...


class MemoryCheckpointStore:
    """`CheckpointRepository` in a dict (tests, embedding)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], str] = {}

    async def load(self, tenant_id: str, source: str) -> Checkpoint | None:
        text = self._rows.get((tenant_id, source))
        return Checkpoint.from_json(text) if text is not None else None

    async def save(self, tenant_id: str, source: str, checkpoint: Checkpoint) -> None:
        self._rows[(tenant_id, source)] = checkpoint.to_json()

    async def delete_tenant(self, tenant_id: str) -> None:
        for key in [k for k in self._rows if k[0] == tenant_id]:
            del self._rows[key]


class SqlCheckpointStore:
    """`CheckpointRepository` on the `youtube_checkpoints` table."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def load(self, tenant_id: str, source: str) -> Checkpoint | None:
        async with self._db.reader() as conn:
            row = await conn.fetchrow(
                "SELECT state FROM youtube_checkpoints WHERE tenant_id = $1 AND source = $2", tenant_id, source
            )
        return Checkpoint.from_json(str(row["state"])) if row is not None else None

    async def save(self, tenant_id: str, source: str, checkpoint: Checkpoint) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO youtube_checkpoints (tenant_id, source, state, updated_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, source) DO UPDATE SET state = excluded.state,"
                " updated_at = excluded.updated_at",
                tenant_id,
                source,
                checkpoint.to_json(),
                self._clock(),
            )

    async def delete_tenant(self, tenant_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM youtube_checkpoints WHERE tenant_id = $1", tenant_id)
