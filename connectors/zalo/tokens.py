"""Access-token lifecycle of one OA: refresh before expiry, on demand, once at a time.

Zalo refresh tokens are single-use and rotate, so a new pair is persisted (through the
injected `persist` callback: the channel's credential store) *before* the new access token
is used. If persisting fails the pair is kept in memory and persisting is retried before
the next use; the old refresh token is already dead, so it is never re-sent.

Across nodes, with a `claim` (`RefreshClaim`, connectors/token_claims.py): a refresh is made
only by the node holding the inbox's claim, and only when the stored pair is still the one
it holds; a node whose claim loses waits (polling the store every `CLAIM_POLL` s, at most
`claim_wait` s, then `TransientError`) and adopts the pair the holder stores. So two nodes
never spend the same refresh token, and no rotated pair is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from connectors.base import PermanentError, TransientError
from connectors.zalo.config import ZaloTokens

log = logging.getLogger(__name__)

Refresher = Callable[[str], Awaitable[ZaloTokens]]  # refresh_token -> new pair
Persist = Callable[[ZaloTokens], Awaitable[None]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# The pair as currently stored (another node may have rotated it).
Reload = Callable[[], Awaitable["ZaloTokens | None"]]
CLAIM_POLL = 0.2  # s between looks at the store while another node refreshes


class RefreshClaim(Protocol):
    """The inbox's refresh claim across nodes (bound to one inbox and this node)."""

    async def acquire(self) -> bool: ...

    async def release(self) -> None: ...


class TokenManager:
    def __init__(
        self,
        name: str,
        tokens: ZaloTokens,
        refresher: Refresher,
        persist: Persist,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        *,
        refresh_margin: float = 600.0,
        refresh_retry: float = 60.0,
        reload: Reload | None = None,
        claim: RefreshClaim | None = None,
        claim_wait: float = 45.0,
    ) -> None:
        self._reload = reload
        self._claim = claim
        self._claim_wait = claim_wait
        self._name = name
        self._margin = refresh_margin
        self._retry = refresh_retry
        self._tokens = tokens
        self._refresher = refresher
        self._persist = persist
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._unpersisted = False
        self.refresh_count = 0

    @property
    def tokens(self) -> ZaloTokens:
        return self._tokens

    def _due(self, margin: float) -> bool:
        return self._clock() >= self._tokens.expires_at - margin

    async def access_token(self) -> str:
        """A usable access token: refreshed first if it has expired (or will within 30 s)."""
        if not self._unpersisted and not self._due(30.0):
            return self._tokens.access_token
        async with self._lock:
            await self._flush()
            if self._due(30.0) and not (await self._adopt_stored() and not self._due(30.0)):
                await self._rotate()
            return self._tokens.access_token

    async def refresh(self, stale: str | None = None) -> str:
        """Refresh now. With `stale` (the token a caller saw rejected), a refresh already done by a
        concurrent caller (or another node) is reused instead of rotating the tokens again."""
        async with self._lock:
            await self._flush()
            if (stale is None or self._tokens.access_token == stale) and not await self._adopt_stored():
                await self._rotate()
            return self._tokens.access_token

    async def refresh_if_due(self) -> bool:
        async with self._lock:
            await self._flush()
            if not self._due(self._margin):
                return False
            if not (await self._adopt_stored() and not self._due(self._margin)):
                await self._rotate()
            return True

    async def _adopt_stored(self) -> bool:
        """Take the stored pair if it differs from ours: another node rotated it, and ours is spent."""
        if self._reload is None:
            return False
        stored = await self._reload()
        if stored is None or stored.refresh_token == self._tokens.refresh_token:
            return False
        log.info("zalo oa %s: adopting tokens rotated elsewhere", self._name)
        self._tokens = stored
        return True

    async def _rotate(self) -> None:
        claim = self._claim
        if claim is None:
            await self._refresh_now()
            return
        waited = 0.0
        while not await claim.acquire():
            if waited == 0.0:
                log.info("zalo oa %s: another node is refreshing the tokens; waiting for its pair", self._name)
            if waited >= self._claim_wait:
                raise TransientError("another node is refreshing the Zalo tokens", retry_after=5.0)
            await self._sleep(CLAIM_POLL)
            waited += CLAIM_POLL
            if await self._adopt_stored():
                return
        try:
            if not await self._adopt_stored():  # stored by a holder between our look and our claim
                await self._refresh_now()
        finally:
            if not self._unpersisted:  # a pair not stored yet keeps the claim until it runs out
                with contextlib.suppress(Exception):  # a claim not released runs out by itself
                    await claim.release()

    async def _refresh_now(self) -> None:
        try:
            new = await self._refresher(self._tokens.refresh_token)
        except PermanentError:
            if await self._adopt_stored():  # lost a race with another node: its pair is stored
                return
            raise
        self.refresh_count += 1
        self._tokens = new  # the old refresh token is spent: never fall back to it
        self._unpersisted = True
        await self._flush()

    async def _flush(self) -> None:
        if self._unpersisted:
            await self._save(self._tokens)

    async def _save(self, tokens: ZaloTokens) -> None:
        try:
            await self._persist(tokens)
        except Exception as e:
            log.error("zalo oa %s: could not persist rotated tokens: %s", self._name, e)
            raise TransientError("could not persist refreshed Zalo tokens", retry_after=10.0) from e
        self._unpersisted = False

    def next_refresh_delay(self) -> float:
        return max(0.0, self._tokens.expires_at - self._margin - self._clock())

    async def run(self) -> None:
        """Background loop: refresh `refresh_margin` seconds before expiry; retry after failures."""
        delay = self.next_refresh_delay()
        while True:
            await self._sleep(delay)
            try:
                await self.refresh_if_due()
                delay = self.next_refresh_delay()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("zalo oa %s: background token refresh failed: %s", self._name, e)
                delay = self._retry
