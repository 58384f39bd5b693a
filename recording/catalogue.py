"""The recordings catalogue (table `recordings`): one row per recorded call; the
`RecordingCatalogue` protocol and its SQL implementation `Catalogue` (contract suite:
tests/contract/test_recordings_repository.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.store.db import Database
from gateway.store.rows import Row


@dataclass(frozen=True, slots=True)
class RecordingRow:
    id: str
    tenant_id: str
    call_id: str
    key_id: str
    blob_key: str
    state: str  # recording | complete | failed | truncated (cut by a crash)
    size: int
    duration: float
    sha256: str | None
    created_at: float


def _row(r: Row) -> RecordingRow:
    return RecordingRow(r["id"], r["tenant_id"], r["call_id"], r["key_id"], r["blob_key"], r["state"],
                        int(r["size"]), float(r["duration"]), r["sha256"], float(r["created_at"]))


_COLS = "id, tenant_id, call_id, key_id, blob_key, state, size, duration, sha256, created_at"


class RecordingCatalogue(Protocol):
    """Where recordings are listed. Scoped to the tenant, except `get_any_tenant`."""

    async def insert(self, row: RecordingRow) -> None:
        """Add a recording as given (its key must be one of its tenant's keys);
        `gateway.store.sql.Conflict` when its id is taken."""

    async def finish(self, tenant_id: str, rec_id: str, *, state: str, size: int, duration: float,
                     sha256: str | None) -> None:
        """Record how the recording ended (`complete` or `failed`), its size, duration and
        digest. No effect on another tenant's or an unknown recording."""

    async def get(self, tenant_id: str, rec_id: str) -> RecordingRow | None:
        """The tenant's recording, or None (unknown, or another tenant's)."""

    async def get_any_tenant(self, rec_id: str) -> RecordingRow | None:
        """The recording of that id in whichever tenant (the admin CLI only), or None."""


class Catalogue:
    """`RecordingCatalogue` on the SQL `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, row: RecordingRow) -> None:
        async with self.db.transaction() as c:
            await c.execute(
                f"INSERT INTO recordings ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                row.id, row.tenant_id, row.call_id, row.key_id, row.blob_key, row.state, row.size,
                row.duration, row.sha256, row.created_at)

    async def finish(self, tenant_id: str, rec_id: str, *, state: str, size: int, duration: float,
                     sha256: str | None) -> None:
        async with self.db.transaction() as c:
            await c.execute(
                "UPDATE recordings SET state = $3, size = $4, duration = $5, sha256 = $6 "
                "WHERE tenant_id = $1 AND id = $2", tenant_id, rec_id, state, size, duration, sha256)

    async def get(self, tenant_id: str, rec_id: str) -> RecordingRow | None:
        async with self.db.reader() as c:
            r = await c.fetchrow(f"SELECT {_COLS} FROM recordings WHERE tenant_id = $1 AND id = $2",
                                 tenant_id, rec_id)
        return None if r is None else _row(r)

    async def get_any_tenant(self, rec_id: str) -> RecordingRow | None:
        """Admin CLI only (no tenant scope)."""
        async with self.db.reader() as c:
            r = await c.fetchrow(f"SELECT {_COLS} FROM recordings WHERE id = $1", rec_id)
        return None if r is None else _row(r)
