"""The ratings feature's table (migration 0014_ratings.sql): the `RatingRepository` protocol
and its SQL implementation `RatingStore` (contract suite:
tests/contract/test_ratings_repository.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.db import Database

MAX_LIST = 500


@dataclass(frozen=True, slots=True)
class Rating:
    tenant_id: str
    conversation_id: str
    seq: int  # the resolution rated: the conversation's last_seq when it was rated
    contact_id: str
    agent_id: str | None  # the conversation's assignee then
    score: int  # 1..5
    comment: str | None
    created_at: float


def _rating(row: Any) -> Rating:
    return Rating(tenant_id=row["tenant_id"], conversation_id=row["conversation_id"], seq=int(row["seq"]),
                  contact_id=row["contact_id"], agent_id=row["agent_id"], score=int(row["score"]),
                  comment=row["comment"], created_at=float(row["created_at"]))


class RatingRepository(Protocol):
    """Ratings, one per (tenant, conversation, resolution). Scoped to the tenant: another
    tenant's ratings are never listed."""

    async def add(self, r: Rating) -> bool:
        """Store `r`; False (nothing changed) when that resolution of the conversation is
        already rated: the first rating stays."""

    async def for_conversation(self, tenant_id: str, conversation_id: str) -> list[Rating]:
        """The conversation's ratings, oldest resolution first."""

    async def recent(self, tenant_id: str, limit: int) -> list[Rating]:
        """The tenant's latest ratings (at most `limit`, capped at `MAX_LIST`), newest first."""


SELECT = "SELECT tenant_id, conversation_id, seq, contact_id, agent_id, score, comment, created_at" \
         " FROM conversation_ratings"


class RatingStore:
    """`RatingRepository` on the SQL `Database` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, r: Rating) -> bool:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO conversation_ratings (tenant_id, conversation_id, seq, contact_id, agent_id, score,"
                " comment, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (tenant_id, conversation_id, seq) DO NOTHING RETURNING seq",
                r.tenant_id, r.conversation_id, r.seq, r.contact_id, r.agent_id, r.score, r.comment, r.created_at)
        return row is not None

    async def for_conversation(self, tenant_id: str, conversation_id: str) -> list[Rating]:
        async with self.db.reader() as conn:
            rows = await conn.fetch(f"{SELECT} WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq",
                                    tenant_id, conversation_id)
        return [_rating(r) for r in rows]

    async def recent(self, tenant_id: str, limit: int) -> list[Rating]:
        async with self.db.reader() as conn:
            rows = await conn.fetch(f"{SELECT} WHERE tenant_id = $1 ORDER BY created_at DESC, conversation_id, seq"
                                    " LIMIT $2", tenant_id, max(0, min(limit, MAX_LIST)))
        return [_rating(r) for r in rows]
