"""Call rows (table `calls`), node heartbeats (`node_heartbeats`) and the per-tenant
recording switch (`call_settings`): the `CallRepository` protocol and its SQL
implementation `CallStore` (contract suite: tests/contract/test_calls_repository.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.db import Database
from gateway.store.rows import Row

_COLS = ("id, tenant_id, conversation_id, contact_id, agent_id, node_id, state, started_at, answered_at, "
         "ended_at, end_reason, duration, recording_id")


@dataclass(frozen=True, slots=True)
class CallRow:
    id: str
    tenant_id: str
    conversation_id: str
    contact_id: str
    agent_id: str | None
    node_id: str
    state: str  # ringing | answered | ended
    started_at: float
    answered_at: float | None
    ended_at: float | None
    end_reason: str | None
    duration: float | None
    recording_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "conversation_id": self.conversation_id, "agent_id": self.agent_id,
                "state": self.state, "started_at": self.started_at, "answered_at": self.answered_at,
                "ended_at": self.ended_at, "end_reason": self.end_reason, "duration": self.duration,
                "recording_id": self.recording_id}


def _row(r: Row) -> CallRow:
    def f(v: Any) -> float | None:
        return None if v is None else float(v)

    return CallRow(r["id"], r["tenant_id"], r["conversation_id"], r["contact_id"], r["agent_id"], r["node_id"],
                   r["state"], float(r["started_at"]), f(r["answered_at"]), f(r["ended_at"]), r["end_reason"],
                   f(r["duration"]), r["recording_id"])


class CallRepository(Protocol):
    """Where the calls feature keeps its calls. Every call is scoped to its tenant: a read
    or a transition naming another tenant's call finds nothing and changes nothing."""

    async def create(self, row: CallRow) -> None:
        """Store a new call as given (its conversation must exist in its tenant)."""

    async def get(self, tenant_id: str, call_id: str) -> CallRow | None:
        """The call, or None when the tenant has no call of that id."""

    async def active_for_conversation(self, tenant_id: str, conversation_id: str) -> CallRow | None:
        """The latest-started call of the conversation that has not ended, or None."""

    async def list_for_conversation(self, tenant_id: str, conversation_id: str) -> list[CallRow]:
        """Every call of the conversation, oldest start first."""

    async def answer(self, tenant_id: str, call_id: str, agent_id: str, now: float) -> bool:
        """ringing → answered by `agent_id` at `now`. False (nothing changed) when the call is
        not ringing: answered by someone else first, ended, or unknown."""

    async def end(self, tenant_id: str, call_id: str, *, reason: str, now: float, duration: float) -> bool:
        """→ ended (`reason`, `ended_at`, `duration`). False (nothing changed) when it already
        ended or is unknown: the first end wins."""

    async def set_recording(self, tenant_id: str, call_id: str, recording_id: str) -> None:
        """Link the call to its recording (no effect on an unknown call)."""

    async def heartbeat(self, node_id: str, now: float) -> None:
        """This node is alive at `now` (an upsert: the latest time is kept)."""

    async def forget_node(self, node_id: str) -> None:
        """A clean shutdown: the node's heartbeat is removed, it needs no sweeping."""

    async def end_orphaned(self, own_node: str, now: float, stale_before: float) -> list[CallRow]:
        """End, as `node_lost` at `now`, the unfinished calls of other nodes that are gone:
        whose heartbeat is older than `stale_before`, or that never wrote one and started
        before it. Their duration is the answered time up to `now` (0 if never answered);
        their recordings still `recording` become `truncated`; the gone nodes' heartbeats
        are removed. Returns the calls ended (each once: a second sweep returns none)."""

    async def end_unfinished_of(self, node_id: str, now: float) -> list[CallRow]:
        """End, as `gateway_restart`, the unfinished calls of `node_id` (a node restarted
        under its id); their recordings become `truncated`. Returns the calls ended."""

    async def end_all_unfinished(self, now: float) -> int:
        """Single-node start-up: end every unfinished call as `gateway_restart` and mark
        every recording still `recording` `truncated`. Returns how many calls ended."""

    async def recording_enabled(self, tenant_id: str, default: bool) -> bool:
        """The tenant's recording switch, `default` until it was set."""

    async def set_recording_enabled(self, tenant_id: str, enabled: bool) -> None:
        """Set the tenant's recording switch (idempotent; the last value wins)."""


class CallStore:
    """`CallRepository` on the SQL `Database` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, row: CallRow) -> None:
        async with self.db.transaction() as c:
            await c.execute(
                f"INSERT INTO calls ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                row.id, row.tenant_id, row.conversation_id, row.contact_id, row.agent_id, row.node_id, row.state,
                row.started_at, row.answered_at, row.ended_at, row.end_reason, row.duration, row.recording_id)

    async def get(self, tenant_id: str, call_id: str) -> CallRow | None:
        async with self.db.reader() as c:
            r = await c.fetchrow(f"SELECT {_COLS} FROM calls WHERE tenant_id = $1 AND id = $2", tenant_id, call_id)
        return None if r is None else _row(r)

    async def active_for_conversation(self, tenant_id: str, conversation_id: str) -> CallRow | None:
        async with self.db.reader() as c:
            r = await c.fetchrow(
                f"SELECT {_COLS} FROM calls WHERE tenant_id = $1 AND conversation_id = $2 AND state <> 'ended' "
                "ORDER BY started_at DESC LIMIT 1", tenant_id, conversation_id)
        return None if r is None else _row(r)

    async def list_for_conversation(self, tenant_id: str, conversation_id: str) -> list[CallRow]:
        async with self.db.reader() as c:
            rows = await c.fetch(
                f"SELECT {_COLS} FROM calls WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY started_at",
                tenant_id, conversation_id)
        return [_row(r) for r in rows]

    async def answer(self, tenant_id: str, call_id: str, agent_id: str, now: float) -> bool:
        """ringing → answered; False if someone else got there first or it ended."""
        async with self.db.transaction() as c:
            r = await c.fetchrow(
                "UPDATE calls SET state = 'answered', agent_id = $3, answered_at = $4 "
                "WHERE tenant_id = $1 AND id = $2 AND state = 'ringing' RETURNING id",
                tenant_id, call_id, agent_id, now)
        return r is not None

    async def end(self, tenant_id: str, call_id: str, *, reason: str, now: float, duration: float) -> bool:
        async with self.db.transaction() as c:
            r = await c.fetchrow(
                "UPDATE calls SET state = 'ended', ended_at = $3, end_reason = $4, duration = $5 "
                "WHERE tenant_id = $1 AND id = $2 AND state <> 'ended' RETURNING id",
                tenant_id, call_id, now, reason, duration)
        return r is not None

    async def set_recording(self, tenant_id: str, call_id: str, recording_id: str) -> None:
        async with self.db.transaction() as c:
            await c.execute("UPDATE calls SET recording_id = $3 WHERE tenant_id = $1 AND id = $2",
                            tenant_id, call_id, recording_id)

    async def heartbeat(self, node_id: str, now: float) -> None:
        """This node is alive (`node_heartbeats`)."""
        async with self.db.transaction() as c:
            await c.execute("INSERT INTO node_heartbeats (node_id, updated_at) VALUES ($1, $2) "
                            "ON CONFLICT (node_id) DO UPDATE SET updated_at = excluded.updated_at", node_id, now)

    async def forget_node(self, node_id: str) -> None:
        """A clean shutdown: the node's calls have ended, it needs no sweeping."""
        async with self.db.transaction() as c:
            await c.execute("DELETE FROM node_heartbeats WHERE node_id = $1", node_id)

    async def end_orphaned(self, own_node: str, now: float, stale_before: float) -> list[CallRow]:
        """End the unfinished calls of other nodes that are gone: whose heartbeat is older
        than `stale_before`, or that never wrote one and started before it (a node of an
        older version). Reason `node_lost`; their recordings are marked `truncated`."""
        ended = await self._end_where(
            "node_id <> $3 AND (node_id IN (SELECT node_id FROM node_heartbeats WHERE updated_at < $4)"
            " OR (started_at < $4 AND node_id NOT IN (SELECT node_id FROM node_heartbeats)))",
            now, "node_lost", own_node, stale_before)
        async with self.db.transaction() as c:  # the gone nodes' rows: nothing of theirs is left to end
            await c.execute("DELETE FROM node_heartbeats WHERE updated_at < $1 AND node_id <> $2",
                            stale_before, own_node)
        return ended

    async def end_unfinished_of(self, node_id: str, now: float) -> list[CallRow]:
        """Start-up of a node that reuses its id (a restarted worker): what its previous
        process left unfinished ends as `gateway_restart`."""
        return await self._end_where("node_id = $3", now, "gateway_restart", node_id)

    async def _end_where(self, where: str, now: float, reason: str, *args: Any) -> list[CallRow]:
        """`where` takes its arguments from $3 on ($1 is `now`, $2 the reason)."""
        # duration: the answered time up to now (the media may have stopped earlier; nobody knows when)
        async with self.db.transaction() as c:
            rows = await c.fetch(
                "UPDATE calls SET state = 'ended', ended_at = $1, end_reason = $2, "
                "duration = CASE WHEN answered_at IS NULL THEN 0.0 ELSE $1 - answered_at END "
                f"WHERE state <> 'ended' AND {where} RETURNING {_COLS}", now, reason, *args)
            ended = [_row(r) for r in rows]
            for call in ended:
                await c.execute("UPDATE recordings SET state = 'truncated' "
                                "WHERE tenant_id = $1 AND call_id = $2 AND state = 'recording'",
                                call.tenant_id, call.id)
        return ended

    async def end_all_unfinished(self, now: float) -> int:
        """Single-node (embedded) start-up: calls cut by a crash end as `gateway_restart`, and
        their recordings are marked `truncated` (they decrypt to the prefix written)."""
        async with self.db.transaction() as c:
            rows = await c.fetch(
                "UPDATE calls SET state = 'ended', ended_at = $1, end_reason = 'gateway_restart' "
                "WHERE state <> 'ended' RETURNING id", now)
            await c.execute("UPDATE recordings SET state = 'truncated' WHERE state = 'recording'")
        return len(rows)

    async def recording_enabled(self, tenant_id: str, default: bool) -> bool:
        async with self.db.reader() as c:
            r = await c.fetchrow("SELECT recording_enabled FROM call_settings WHERE tenant_id = $1", tenant_id)
        return default if r is None else bool(r["recording_enabled"])

    async def set_recording_enabled(self, tenant_id: str, enabled: bool) -> None:
        async with self.db.transaction() as c:
            await c.execute(
                "INSERT INTO call_settings (tenant_id, recording_enabled) VALUES ($1, $2) "
                "ON CONFLICT (tenant_id) DO UPDATE SET recording_enabled = excluded.recording_enabled",
                tenant_id, enabled)
