"""The `channel test` checks of every kind, put together (connectors/probe.py)."""

from __future__ import annotations

from collections.abc import Callable

from connectors.channels import ChannelConfig, ChannelRepository
from connectors.email.probe import EmailProbe
from connectors.facebook.probe import FacebookProbe
from connectors.probe import ChannelProbe
from connectors.token_claims import SqlTokenRefreshClaims
from connectors.youtube.probe import YouTubeProbe
from connectors.zalo.probe import ZaloProbe
from gateway.core.domain import Channel
from gateway.store.db import Database


def channel_probe(channels: ChannelRepository, db: Database, node_id: str, clock: Callable[[], float]) -> ChannelProbe:
    """`node_id`: this process (a node's id, or ``cli``); its refresh claims are ``<node_id>:test``."""
    async def store_refresh_token(ch: ChannelConfig, refresh_token: str) -> None:
        await channels.update_credentials(ch.tenant_id, ch.id, {"oauth2_refresh_token": refresh_token})

    return ChannelProbe({
        Channel.FACEBOOK.value: FacebookProbe(),
        Channel.ZALO.value: ZaloProbe(channels, SqlTokenRefreshClaims(db), f"{node_id}:test", clock),
        Channel.YOUTUBE.value: YouTubeProbe(clock),
        Channel.EMAIL.value: EmailProbe(clock, store_refresh_token),
    }, channels.credentials)
