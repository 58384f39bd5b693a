"""`ZaloGatewayConnector`: the registry entry; feeds `ZaloConnector` from the tenants' inboxes.

A Zalo inbox (`connector_channels`, kind `zalo`):

* `settings`: `{"address": "<OA id>", "app_id": "<Zalo app id>"}` plus optional `api_base`
  / `oauth_base` (tests point them at a fake);
* `credentials` (sealed): `{"oa_secret_key", "app_secret_key", "access_token",
  "refresh_token", "expires_at"}` (`expires_at` epoch seconds; absent/0 = refresh first).

The inboxes are re-read on the first webhook or send for an OA not loaded (at most every
10 s) and every `INBOX_REFRESH` seconds regardless, so a disabled, removed or rotated inbox
(`channel disable|remove|rotate`) takes effect on every node within that time.

Rotated tokens are written back into the sealed credentials (`ZaloCredentialWriter`) before
the new access token is used, and one node at a time refreshes an inbox's tokens (its claim in
`connector_token_refreshes`, connectors/token_claims.py): the others wait for its pair.
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.base import InboundSink
from connectors.channels import ChannelConfig, ChannelRepository
from connectors.context import ConnectorContext
from connectors.token_claims import InboxRefreshClaim, SqlTokenRefreshClaims, TokenRefreshClaims
from connectors.zalo.config import DEFAULT_API_BASE, DEFAULT_OAUTH_BASE, ZaloAccount, ZaloTokens
from connectors.zalo.connector import ZaloConnector
from connectors.zalo.tokens import RefreshClaim
from gateway.aio.periodic import Periodic
from gateway.core.domain import Channel

log = logging.getLogger(__name__)

INBOX_REFRESH = 60.0  # s between forced reloads of the enabled Zalo inboxes

TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")


def account_from_channel(ch: ChannelConfig, creds: dict[str, Any]) -> ZaloAccount:
    """Raises KeyError / ValueError for an incomplete inbox."""
    oa_id = ch.address or str(ch.settings["oa_id"])
    app_id = str(ch.settings.get("app_id") or creds["app_id"])
    return ZaloAccount(
        tenant_id=ch.tenant_id,
        app_id=app_id,
        oa_id=oa_id,
        oa_secret_key=str(creds["oa_secret_key"]),
        app_secret_key=str(creds["app_secret_key"]),
        tokens=tokens_from(creds),
        channel_id=ch.id,
        api_base=str(ch.settings.get("api_base") or DEFAULT_API_BASE),
        oauth_base=str(ch.settings.get("oauth_base") or DEFAULT_OAUTH_BASE),
    )


def tokens_from(creds: dict[str, Any]) -> ZaloTokens:
    return ZaloTokens(
        access_token=str(creds.get("access_token") or ""),
        refresh_token=str(creds["refresh_token"]),
        expires_at=float(creds.get("expires_at") or 0.0),
    )


class ZaloCredentialWriter:
    """Writes a rotated token pair into an inbox's sealed credentials
    (`ChannelRepository.update_credentials`: merged atomically, the other credentials kept);
    `LookupError` when the inbox is gone."""

    def __init__(self, channels: ChannelRepository) -> None:
        self._channels = channels

    async def save(self, tenant_id: str, channel_id: str, tokens: ZaloTokens) -> None:
        await self._channels.update_credentials(tenant_id, channel_id, {
            "access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
        })


class ZaloGatewayConnector(ZaloConnector):
    """`refresh_interval`: seconds between forced reloads of the enabled inboxes."""

    def __init__(self, ctx: ConnectorContext, refresh_interval: float = INBOX_REFRESH) -> None:
        self._ctx = ctx
        self._writer = ZaloCredentialWriter(ctx.channels)
        self._claims: TokenRefreshClaims = SqlTokenRefreshClaims(ctx.db)
        super().__init__(
            [],
            self._persist_tokens,
            clock=ctx.clock,
            load_tokens=self._stored_tokens,
            load_accounts=self._enabled_accounts,
            claim_refresh=self._claim,
        )
        self._refresher = Periodic("zalo-inboxes", self._reload, refresh_interval, delay=refresh_interval)

    async def _reload(self) -> None:
        await self.reload_accounts(force=True)

    async def start(self, sink: InboundSink) -> None:
        await super().start(sink)
        self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()
        await super().stop()

    def _claim(self, account: ZaloAccount) -> RefreshClaim:
        return InboxRefreshClaim(self._claims, account.tenant_id, account.channel_id or "", self._ctx.node_id,
                                 self._ctx.clock)

    async def _enabled_accounts(self) -> list[ZaloAccount]:
        out: list[ZaloAccount] = []
        for ch in await self._ctx.channels.list_enabled(Channel.ZALO):
            try:
                out.append(account_from_channel(ch, await self._ctx.channels.credentials(ch)))
            except (KeyError, ValueError, TypeError) as e:
                log.error("zalo inbox %s (tenant %s) is incomplete: %s", ch.id, ch.tenant_id, e)
        return out

    async def _stored_tokens(self, account: ZaloAccount) -> ZaloTokens | None:
        if account.channel_id is None:
            return None
        ch = await self._ctx.channels.get(account.tenant_id, account.channel_id)
        if ch is None:
            return None
        try:
            return tokens_from(await self._ctx.channels.credentials(ch))
        except (KeyError, ValueError, TypeError):
            return None

    async def _persist_tokens(self, account: ZaloAccount, tokens: ZaloTokens) -> None:
        if account.channel_id is None:
            raise LookupError("zalo account without an inbox id: cannot persist tokens")
        await self._writer.save(account.tenant_id, account.channel_id, tokens)
