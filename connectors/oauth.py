"""OAuth 2.0 access tokens from a refresh token (Google's and Microsoft's token endpoints;
used by the YouTube connector and by IMAP's XOAUTH2 login).

``POST token_url`` form ``grant_type=refresh_token&client_id&client_secret&refresh_token`` →
``{"access_token", "expires_in", "token_type": "Bearer", …}``. The refresh token is kept
unless the answer carries a new one. ``400 invalid_grant`` / ``invalid_client`` (and any
other 4xx) are permanent: an operator must re-consent or fix the client credentials.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp

RETRYABLE_OAUTH_ERRORS = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})


class AuthError(Exception):
    """The access token could not be obtained (token endpoint failure)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class TokenProvider:
    def __init__(
        self,
        *,
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        clock: Callable[[], float],
        margin: float = 120.0,
        timeout: float = 30.0,
        on_rotate: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._session = session
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._clock = clock
        self._margin = margin
        self._timeout = timeout
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._on_rotate = on_rotate  # stores a refresh token the endpoint rotated (before it is used)
        self.refreshes = 0

    async def token(self) -> str:
        """A valid access token, refreshed when missing or about to expire."""
        async with self._lock:
            if self._access_token is None or self._clock() >= self._expires_at - self._margin:
                await self._refresh()
            assert self._access_token is not None
            return self._access_token

    def invalidate(self, token: str) -> None:
        """The API refused `token` (401): the next `token()` refreshes (once per bad token)."""
        if token == self._access_token:
            self._access_token = None

    async def _refresh(self) -> None:
        session = await self._session()
        form = {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }
        try:
            async with session.post(
                self._token_url, data=form, timeout=aiohttp.ClientTimeout(total=self._timeout)
            ) as resp:
                status = resp.status
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthError(f"token endpoint unreachable: {exc!r}", permanent=False) from exc
        try:
            body = json.loads(text)
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if status != 200:
            error = str(body.get("error") or "")
            permanent = 400 <= status < 500 and error not in RETRYABLE_OAUTH_ERRORS and status != 429
            desc = str(body.get("error_description") or "")
            raise AuthError(f"token refresh failed: HTTP {status} {error} {desc}".strip(), permanent=permanent)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("token endpoint answered without access_token", permanent=False)
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        self._access_token = token
        self._expires_at = self._clock() + lifetime
        new_refresh = body.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh and new_refresh != self._refresh_token:
            if self._on_rotate is not None:
                await self._on_rotate(new_refresh)
            self._refresh_token = new_refresh
        self.refreshes += 1

    @property
    def refresh_token(self) -> str:
        """The refresh token in use (the last one the endpoint rotated to)."""
        return self._refresh_token
