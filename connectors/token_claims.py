"""One OAuth token refresh at a time per inbox, across nodes (`connector_token_refreshes`,
migration 0015).

A node about to refresh an inbox's tokens `claim`s it first; the claim wins when no other
node's claim is running (none yet, or the last one ran out at its `held_until`, so a node
that died mid-refresh does not block the inbox for longer than `hold`), and the node
`release`s it once the new pair is stored. A node whose claim loses waits for the holder's
pair (connectors/zalo/tokens.py). `TokenRefreshClaims` is the contract
(tests/contract/test_token_claim_repository.py on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.store.db import Database


class TokenRefreshClaims(Protocol):
    async def claim(self, tenant_id: str, channel_id: str, node_id: str, now: float, hold: float) -> bool:
        """True when `node_id` may refresh the inbox's tokens now: no other node's claim is
        running at `now` (there is none, it ran out, or it was released); the inbox is then
        `node_id`'s until `now + hold`. False, changing nothing, when another node holds it.
        Of concurrent claims, at most one wins."""
        ...

    async def release(self, tenant_id: str, channel_id: str, node_id: str) -> None:
        """End `node_id`'s claim (nothing happens when the claim is another node's)."""
        ...


class SqlTokenRefreshClaims:
    """`TokenRefreshClaims` on the `connector_token_refreshes` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, tenant_id: str, channel_id: str, node_id: str, now: float, hold: float) -> bool:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO connector_token_refreshes (channel_id, tenant_id, node_id, held_until)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id) DO UPDATE SET node_id = excluded.node_id,"
                " held_until = excluded.held_until WHERE connector_token_refreshes.held_until <= $5"
                " RETURNING channel_id",
                channel_id, tenant_id, node_id, now + hold, now,
            )
        return row is not None

    async def release(self, tenant_id: str, channel_id: str, node_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE connector_token_refreshes SET held_until = 0 WHERE channel_id = $1 AND tenant_id = $2"
                " AND node_id = $3", channel_id, tenant_id, node_id)


REFRESH_HOLD = 60.0  # s a refresh claim holds when its node does not release it (it died mid-refresh)


class InboxRefreshClaim:
    """One inbox's claim for one node (`connectors.zalo.tokens.RefreshClaim`)."""

    def __init__(self, claims: TokenRefreshClaims, tenant_id: str, channel_id: str, node_id: str,
                 clock: Callable[[], float], hold: float = REFRESH_HOLD) -> None:
        self._claims = claims
        self._tenant_id = tenant_id
        self._channel_id = channel_id
        self._node_id = node_id
        self._clock = clock
        self._hold = hold

    async def acquire(self) -> bool:
        return await self._claims.claim(self._tenant_id, self._channel_id, self._node_id, self._clock(), self._hold)

    async def release(self) -> None:
        await self._claims.release(self._tenant_id, self._channel_id, self._node_id)
