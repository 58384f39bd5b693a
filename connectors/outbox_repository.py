"""The outbox's rows (`connector_outbox`): one per agent reply in a connector conversation.

`OutboxRepository` is the contract (tests/contract/test_outbox_repository.py runs it on
SQLite and PostgreSQL); `SqlOutboxRepository` implements it over `gateway.store.db.Database`.

A row is `queued` (due at `next_attempt_at`), `sending` (claimed by one node until
`lease_until`), then `sent` or `failed` for good. A row is due when it is queued and its
time has come, or when it is sending and its lease ran out (its node died mid-send).

Claiming is a conditional ``UPDATE ... WHERE message_id = $x AND <still due> RETURNING``:
under PostgreSQL READ COMMITTED a concurrent claimer re-checks the condition after the
first commits and gets nothing, so several nodes never claim one row at the same time;
SQLite write transactions are exclusive anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from gateway.core.domain import Channel
from gateway.store.db import Database
from gateway.store.rows import Row

MAX_ERROR_CHARS = 500

_DUE = "((state = 'queued' AND next_attempt_at <= $2) OR (state = 'sending' AND lease_until <= $2))"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    message_id: str
    tenant_id: str
    conversation_id: str
    channel: Channel
    state: str  # queued | sending | sent | failed
    attempts: int
    next_attempt_at: float
    last_error: str | None
    external_id: str | None
    created_at: float
    parts: dict[str, str] = field(default_factory=dict)  # part → platform id, accepted by earlier attempts


class OutboxRepository(Protocol):
    """The durable queue of outbound connector replies, shared by every node."""

    async def enqueue(self, *, message_id: str, tenant_id: str, conversation_id: str, channel: Channel,
                      now: float) -> bool:
        """Queue the message (due at `now`, no attempt yet); True when this call queued it,
        False when it already has a row (whatever its state), which is left unchanged."""
        ...

    async def get(self, message_id: str) -> OutboxRow | None:
        """The message's row, or None."""
        ...

    async def claim_due(self, *, now: float, limit: int, lease: float, node_id: str) -> list[OutboxRow]:
        """Claim up to `limit` rows due at `now`, earliest `next_attempt_at` first: each
        becomes `sending` by `node_id` until `now + lease`, its attempts counted one more,
        and is returned as claimed. A row is claimed by one caller only, however many nodes
        claim at once; a row whose lease is still running is never claimed."""
        ...

    async def reclaim_all(self, *, now: float) -> int:
        """Every `sending` row (whoever claimed it, lease running or not) becomes queued and
        due at `now`, its attempts unchanged; how many. For a single node's start-up, where no
        other node can be sending."""
        ...

    async def reschedule(self, message_id: str, *, node_id: str, next_attempt_at: float, error: str,
                         now: float) -> bool:
        """A failed attempt of `node_id`'s claim: the row is queued again, due at
        `next_attempt_at`, with `error` (cut to 500 characters). False, changing nothing,
        when the row is not `sending` by `node_id` any more (its lease ran out and another
        node claimed it, or it was finished)."""
        ...

    async def finish(self, message_id: str, *, node_id: str, state: str, error: str | None,
                     external_id: str | None, now: float) -> bool:
        """End `node_id`'s claim with `state` (`sent` or `failed`), `error` (cut to 500
        characters) and the platform's `external_id`. False, changing nothing, when the row
        is not `sending` by `node_id` any more."""
        ...

    async def record_part(self, message_id: str, *, node_id: str, part: str, external_id: str, now: float) -> bool:
        """The channel accepted `part` of the reply (``text``, ``attachment:<i>``) as
        `external_id`: added to the row's `parts`, kept through retries, lease expiry and
        `reclaim_all`. False, changing nothing, when the row is not `sending` by `node_id`."""
        ...

    async def message_seq(self, tenant_id: str, message_id: str) -> int | None:
        """The stream position of the tenant's stored message (to read it back), None when
        the message is gone."""
        ...


def _row(r: Row) -> OutboxRow:
    return OutboxRow(
        message_id=str(r["message_id"]), tenant_id=str(r["tenant_id"]), conversation_id=str(r["conversation_id"]),
        channel=Channel(r["channel"]), state=str(r["state"]), attempts=int(r["attempts"]),
        next_attempt_at=float(r["next_attempt_at"]), last_error=r["last_error"], external_id=r["external_id"],
        created_at=float(r["created_at"]), parts=json.loads(r["parts"]) if r["parts"] else {},
    )


class SqlOutboxRepository:
    """`OutboxRepository` on the `connector_outbox` table (and the core's `messages` for `message_seq`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, *, message_id: str, tenant_id: str, conversation_id: str, channel: Channel,
                      now: float) -> bool:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO connector_outbox (message_id, tenant_id, conversation_id, channel, state, attempts,"
                " next_attempt_at, lease_until, claimed_by, last_error, external_id, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, 'queued', 0, $5, NULL, NULL, NULL, NULL, $5, $5)"
                " ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                message_id, tenant_id, conversation_id, Channel(channel).value, now,
            )
        return row is not None

    async def get(self, message_id: str) -> OutboxRow | None:
        async with self._db.reader() as conn:
            r = await conn.fetchrow("SELECT * FROM connector_outbox WHERE message_id = $1", message_id)
        return None if r is None else _row(r)

    async def claim_due(self, *, now: float, limit: int, lease: float, node_id: str) -> list[OutboxRow]:
        async with self._db.reader() as conn:
            candidates = await conn.fetch(
                f"SELECT message_id FROM connector_outbox WHERE {_DUE.replace('$2', '$1')}"
                " ORDER BY next_attempt_at LIMIT $2",
                now, limit,
            )
        claimed: list[OutboxRow] = []
        for c in candidates:
            async with self._db.transaction() as conn:
                r = await conn.fetchrow(
                    "UPDATE connector_outbox SET state = 'sending', attempts = attempts + 1, lease_until = $3,"
                    f" claimed_by = $4, updated_at = $2 WHERE message_id = $1 AND {_DUE} RETURNING *",
                    c["message_id"], now, now + lease, node_id,
                )
            if r is not None:
                claimed.append(_row(r))
        return claimed

    async def reclaim_all(self, *, now: float) -> int:
        async with self._db.transaction() as conn:
            rows = await conn.fetch(
                "UPDATE connector_outbox SET state = 'queued', next_attempt_at = $1, lease_until = NULL,"
                " claimed_by = NULL, updated_at = $1 WHERE state = 'sending' RETURNING message_id", now)
        return len(rows)

    async def reschedule(self, message_id: str, *, node_id: str, next_attempt_at: float, error: str,
                         now: float) -> bool:
        async with self._db.transaction() as conn:
            done = await conn.fetchrow(
                "UPDATE connector_outbox SET state = 'queued', next_attempt_at = $2, lease_until = NULL,"
                " claimed_by = NULL, last_error = $3, updated_at = $4"
                " WHERE message_id = $1 AND state = 'sending' AND claimed_by = $5 RETURNING message_id",
                message_id, next_attempt_at, error[:MAX_ERROR_CHARS], now, node_id,
            )
        return done is not None

    async def finish(self, message_id: str, *, node_id: str, state: str, error: str | None,
                     external_id: str | None, now: float) -> bool:
        async with self._db.transaction() as conn:
            done = await conn.fetchrow(
                "UPDATE connector_outbox SET state = $2, lease_until = NULL, last_error = $3, external_id = $4,"
                " updated_at = $5 WHERE message_id = $1 AND state = 'sending' AND claimed_by = $6"
                " RETURNING message_id",
                message_id, state, None if error is None else error[:MAX_ERROR_CHARS], external_id, now, node_id,
            )
        return done is not None

    async def record_part(self, message_id: str, *, node_id: str, part: str, external_id: str, now: float) -> bool:
        async with self._db.transaction() as conn:
            r = await conn.fetchrow(
                "SELECT parts FROM connector_outbox WHERE message_id = $1 AND state = 'sending' AND claimed_by = $2"
                + self._db.row_lock, message_id, node_id)
            if r is None:
                return False
            parts = {**(json.loads(r["parts"]) if r["parts"] else {}), part: external_id}
            await conn.execute("UPDATE connector_outbox SET parts = $2, updated_at = $3 WHERE message_id = $1",
                               message_id, json.dumps(parts, sort_keys=True), now)
        return True

    async def message_seq(self, tenant_id: str, message_id: str) -> int | None:
        async with self._db.reader() as conn:
            found = await conn.fetchrow(
                "SELECT seq FROM messages WHERE tenant_id = $1 AND id = $2", tenant_id, message_id
            )
        return None if found is None else int(found["seq"])
