"""Where the connector finds connected Pages: a static list (standalone, tests) or the tenant inboxes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from connectors.channels import ChannelConfig, ChannelRepository
from connectors.facebook.config import DEFAULT_GRAPH_BASE_URL, DEFAULT_GRAPH_VERSION, FacebookPage
from gateway.core.domain import Channel

log = logging.getLogger(__name__)


class PageDirectory(Protocol):
    async def pages(self) -> Sequence[FacebookPage]:
        """Every enabled Page (webhook verification tries their app secrets / verify tokens)."""

    async def for_outbound(self, tenant_id: str, channel_id: str | None, page_id: str) -> FacebookPage | None:
        """The tenant's Page `page_id` (through inbox `channel_id` when given)."""


class StaticDirectory:
    def __init__(self, pages: Iterable[FacebookPage]) -> None:
        self._pages = tuple(pages)

    async def pages(self) -> Sequence[FacebookPage]:
        return self._pages

    async def for_outbound(self, tenant_id: str, channel_id: str | None, page_id: str) -> FacebookPage | None:
        for p in self._pages:
            if p.tenant_id == tenant_id and p.page_id == page_id and channel_id in (None, p.channel_id):
                return p
        return None


class ChannelDirectory:
    """Reads `facebook` inboxes from a `ChannelRepository` (credentials decrypted on demand, nothing cached)."""

    def __init__(self, channels: ChannelRepository) -> None:
        self._channels = channels

    async def pages(self) -> Sequence[FacebookPage]:
        out: list[FacebookPage] = []
        for ch in await self._channels.list_enabled(Channel.FACEBOOK):
            page = await self._page(ch)
            if page is not None:
                out.append(page)
        return out

    async def for_outbound(self, tenant_id: str, channel_id: str | None, page_id: str) -> FacebookPage | None:
        if channel_id is not None:
            ch = await self._channels.for_tenant(tenant_id, Channel.FACEBOOK, channel_id)
            page = None if ch is None else await self._page(ch)
            return page if page is not None and page.page_id == page_id else None
        ch = await self._channels.find_by_address(Channel.FACEBOOK, page_id)
        if ch is None or ch.tenant_id != tenant_id:
            return None
        return await self._page(ch)

    async def _page(self, ch: ChannelConfig) -> FacebookPage | None:
        try:
            creds = await self._channels.credentials(ch)
            return page_from_channel(ch, creds)
        except Exception:
            log.exception("facebook inbox %s of tenant %s is misconfigured; skipped", ch.id, ch.tenant_id)
            return None


def page_from_channel(ch: ChannelConfig, creds: dict[str, Any]) -> FacebookPage:
    if not ch.address:
        raise ValueError("a facebook inbox needs address = the Page id")
    return FacebookPage(
        page_id=ch.address,
        tenant_id=ch.tenant_id,
        channel_id=ch.id,
        access_token=str(creds.get("page_access_token") or creds.get("page_token") or ""),
        app_secret=str(creds.get("app_secret", "")),
        verify_token=str(creds.get("verify_token", "")),
        graph_base_url=str(ch.settings.get("api_base") or DEFAULT_GRAPH_BASE_URL),
        graph_version=str(ch.settings.get("graph_version") or DEFAULT_GRAPH_VERSION),
    )
