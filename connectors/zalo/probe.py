"""`channel test` of a Zalo OA inbox (connectors/probe.py).

`oauth_refresh`: a real OAuth v4 refresh (`POST <oauth_base>/v4/oa/access_token` with the
app id, the App Secret and the refresh token): the one call that proves the long-lived
credentials work. Zalo rotates the pair at every refresh, so the test goes through the same
`TokenManager` as the connector: the new pair is stored in the inbox's sealed credentials
before anything else, under the inbox's refresh claim (one refresh at a time across nodes
and CLI runs; a node holding the old pair adopts the stored one). Then `oa_profile`:
`GET <api_base>/v2.0/oa/getoa` with the new access token, whose `data.oa_id` must be the
inbox address. The OA Secret Key (webhook signatures) is not something Zalo can be asked
about: a webhook signed with it is the test of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp

from connectors.base import ConnectorError
from connectors.channels import ChannelConfig, ChannelRepository
from connectors.probe import CHECK_TIMEOUT, CheckResult
from connectors.token_claims import InboxRefreshClaim, TokenRefreshClaims
from connectors.zalo import api
from connectors.zalo.config import ZaloTokens
from connectors.zalo.gateway import ZaloCredentialWriter, account_from_channel, tokens_from
from connectors.zalo.tokens import TokenManager

GETOA_PATH = "/v2.0/oa/getoa"


class ZaloProbe:
    """`node_id`: who holds the refresh claim while the test refreshes (``<node>:test``)."""

    def __init__(self, channels: ChannelRepository, claims: TokenRefreshClaims, node_id: str,
                 clock: Callable[[], float]) -> None:
        self._channels = channels
        self._claims = claims
        self._node_id = node_id
        self._clock = clock

    async def run(self, ch: ChannelConfig, creds: dict[str, Any]) -> list[CheckResult]:
        try:
            account = account_from_channel(ch, creds)
        except (KeyError, ValueError, TypeError) as exc:
            return [CheckResult("oauth_refresh", False, f"incomplete inbox: missing {exc}")]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT)) as http:
            async def refresher(refresh_token: str) -> ZaloTokens:
                return await api.refresh_tokens(http, account, refresh_token, self._clock(), CHECK_TIMEOUT)

            async def persist(tokens: ZaloTokens) -> None:
                await ZaloCredentialWriter(self._channels).save(ch.tenant_id, ch.id, tokens)

            async def stored() -> ZaloTokens | None:
                return tokens_from(await self._channels.credentials(ch))

            manager = TokenManager(f"{ch.tenant_id}/{account.oa_id} (test)", account.tokens, refresher, persist,
                                   self._clock, reload=stored,
                                   claim=InboxRefreshClaim(self._claims, ch.tenant_id, ch.id, self._node_id,
                                                           self._clock))
            try:
                token = await manager.refresh()
            except ConnectorError as exc:
                text = str(exc)
                field = ("credentials.app_secret_key" if "secret" in text.lower()
                         else "credentials.refresh_token" if "refresh token" in text.lower() else None)
                return [CheckResult("oauth_refresh", False, text, field),
                        CheckResult("oa_profile", False, "not checked: no access token")]
            first = CheckResult("oauth_refresh", True, "Zalo issued a new token pair (stored)")
            return [first, await self._profile(http, account.api_base, token, account.oa_id)]

    @staticmethod
    async def _profile(http: aiohttp.ClientSession, api_base: str, token: str, oa_id: str) -> CheckResult:
        try:
            async with http.get(api_base.rstrip("/") + GETOA_PATH, headers={"access_token": token}) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return CheckResult("oa_profile", False, f"Zalo API unreachable: {type(exc).__name__}")
        try:
            body = json.loads(raw) if status == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return CheckResult("oa_profile", False, f"getoa: HTTP {status}")
        if body.get("error") not in (0, "0"):
            return CheckResult("oa_profile", False, f"getoa: {body.get('error')} {body.get('message', '')}".strip())
        data = body.get("data")
        if not isinstance(data, dict):
            data = {}
        got = str(data.get("oa_id", ""))
        if got != oa_id:
            return CheckResult("oa_profile", False, f"the token is OA {got}'s, the inbox address is {oa_id}",
                               "settings.address")
        return CheckResult("oa_profile", True, f"OA {got} ({data.get('name', '')})")
