"""`email_message_ids`: every Message-ID we received or sent, per tenant and conversation;
`email_imap_polls`: which node polls an IMAP inbox.

`EmailThreadRepository` and `ImapClaimRepository` are the contracts
(tests/contract/test_email_thread_repository.py, tests/contract/test_imap_claim_repository.py,
on SQLite and PostgreSQL); `EmailIdStore` and `ImapPollClaims` implement them over
`gateway.store.db.Database`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.store.db import Database
from gateway.store.sql import Conflict

MAX_THREAD_IDS = 50


@dataclass(frozen=True, slots=True)
class ThreadId:
    message_id: str
    direction: str  # "in" | "out"
    subject: str | None
    created_at: float


class EmailThreadRepository(Protocol):
    """The Message-IDs of each tenant's email conversations (threading replies)."""

    async def record(self, tenant_id: str, message_id: str, conversation_id: str, direction: str,
                     subject: str | None) -> None:
        """Remember `message_id` (truncated to 998 characters, RFC 5322's line limit) as the
        tenant's, in `conversation_id`; `direction` is "in" or "out". Idempotent: a
        Message-ID the tenant already has keeps its first conversation, direction and subject."""
        ...

    async def find_conversation(self, tenant_id: str, ids: list[str]) -> str | None:
        """The conversation of the first of `ids` (only the first 50 are looked at) that the
        tenant has recorded; None when it has none of them (another tenant's do not count)."""
        ...

    async def thread(self, tenant_id: str, conversation_id: str) -> list[ThreadId]:
        """The conversation's Message-IDs, oldest first (by recording time, then id); of a
        thread longer than 50, the first and the 49 latest."""
        ...


class ImapClaimRepository(Protocol):
    """Which node polls an IMAP inbox (a lease per inbox)."""

    async def claim(self, tenant_id: str, channel_id: str, node_id: str, now: float, hold: float) -> bool:
        """Whether `node_id` may poll the inbox now: True when the inbox is this node's
        already, or no other node's claim is running (none yet, or the last one ran out by
        `now`); the inbox is then this node's until `now + hold`. False leaves the other
        node's claim as it was."""
        ...


class EmailIdStore:
    """`EmailThreadRepository` on the `email_message_ids` table."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def record(self, tenant_id: str, message_id: str, conversation_id: str, direction: str,
                     subject: str | None) -> None:
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO email_message_ids (tenant_id, message_id, conversation_id, direction, subject,"
                    " created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, message_id) DO NOTHING",
                    tenant_id, message_id[:998], conversation_id, direction, (subject or "")[:998] or None,
                    self._clock(),
                )
        except Conflict:
            pass

    async def find_conversation(self, tenant_id: str, ids: list[str]) -> str | None:
        """The conversation of the first of `ids` we know (In-Reply-To, then References)."""
        async with self._db.reader() as conn:
            for mid in ids[:MAX_THREAD_IDS]:
                row = await conn.fetchrow(
                    "SELECT conversation_id FROM email_message_ids WHERE tenant_id = $1 AND message_id = $2",
                    tenant_id, mid,
                )
                if row is not None:
                    return str(row["conversation_id"])
        return None

    async def thread(self, tenant_id: str, conversation_id: str) -> list[ThreadId]:
        """Oldest first (the first few and the latest ones when the thread is long)."""
        async with self._db.reader() as conn:
            rows = await conn.fetch(
                "SELECT message_id, direction, subject, created_at FROM email_message_ids"
                " WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY created_at, message_id",
                tenant_id, conversation_id,
            )
        out = [ThreadId(str(r["message_id"]), str(r["direction"]), r["subject"], float(r["created_at"])) for r in rows]
        if len(out) > MAX_THREAD_IDS:
            out = out[:1] + out[-(MAX_THREAD_IDS - 1):]
        return out


class ImapPollClaims:
    """`ImapClaimRepository` on the `email_imap_polls` table (migration 0009)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, tenant_id: str, channel_id: str, node_id: str, now: float, hold: float) -> bool:
        """Whether `node_id` may poll the inbox now: True when the inbox is this node's
        already, or no other node's claim is running (none yet, or the last one ran out by
        `now`); the inbox is then this node's until `now + hold`."""
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO email_imap_polls (channel_id, tenant_id, node_id, held_until) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (channel_id) DO UPDATE SET node_id = excluded.node_id, held_until = excluded.held_until"
                " WHERE email_imap_polls.held_until <= $5 OR email_imap_polls.node_id = excluded.node_id"
                " RETURNING channel_id",
                channel_id, tenant_id, node_id, now + hold, now,
            )
        return row is not None
