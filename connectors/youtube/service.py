"""`YouTubeChannelConnector`: the registry's YouTube connector — one instance for all tenants.

Every enabled YouTube inbox (`connectors.channels.ChannelConfig`, kind ``youtube``) gets
its own `YouTubeConnector` poller. Inbox fields:

* ``settings``: ``address`` = the YouTube channel id (``UC…``, polled with
  allThreadsRelatedToChannelId; optional when ``video_ids`` is given), ``video_ids`` (list),
  ``own_channel_id``, ``api_base``, ``token_url``, ``poll_interval``, ``max_results``,
  ``initial_lookback``, ``overlap``, ``quota_backoff``, ``reply_sweep_every``;
* ``credentials``: ``client_id``, ``client_secret``, ``refresh_token``.

The set of inboxes is re-read every `refresh_interval` seconds: new inboxes start polling,
disabled or deleted ones stop. `send` routes by the message's inbox (``channel_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import web

from connectors.base import InboundSink, OutboundMessage, PermanentError, SendResult
from connectors.channels import ChannelConfig
from connectors.context import ConnectorContext
from connectors.youtube.checkpoint import CheckpointRepository, SqlCheckpointStore
from connectors.youtube.config import YouTubeConfig
from connectors.youtube.connector import YouTubeConnector
from gateway.core.domain import Channel

_log = logging.getLogger(__name__)

_FLOAT_SETTINGS = ("poll_interval", "initial_lookback", "overlap", "quota_backoff", "source_recheck")
_INT_SETTINGS = ("max_results", "max_pages_per_poll", "reply_sweep_every", "max_tracked_threads")
_STR_SETTINGS = ("own_channel_id", "api_base", "token_url")


def config_from_inbox(ch: ChannelConfig, credentials: dict[str, Any]) -> YouTubeConfig:
    """A `YouTubeConfig` from an inbox's public settings and decrypted credentials."""
    s = ch.settings
    kw: dict[str, Any] = {
        "tenant_id": ch.tenant_id,
        "inbox_id": ch.id,
        "client_id": str(credentials.get("client_id") or ""),
        "client_secret": str(credentials.get("client_secret") or ""),
        "refresh_token": str(credentials.get("refresh_token") or ""),
        "channel_id": ch.address or s.get("channel_id") or None,
        "video_ids": tuple(str(v) for v in s.get("video_ids") or ()),
    }
    if not (kw["client_id"] and kw["client_secret"] and kw["refresh_token"]):
        raise ValueError("youtube credentials need client_id, client_secret and refresh_token")
    for key in _FLOAT_SETTINGS:
        if s.get(key) is not None:
            kw[key] = float(s[key])
    for key in _INT_SETTINGS:
        if s.get(key) is not None:
            kw[key] = int(s[key])
    for key in _STR_SETTINGS:
        if s.get(key):
            kw[key] = str(s[key])
    return YouTubeConfig(**kw)


class YouTubeChannelConnector:
    channel = Channel.YOUTUBE

    def __init__(self, ctx: ConnectorContext, refresh_interval: float = 60.0) -> None:
        self._ctx = ctx
        self._refresh_interval = refresh_interval
        self._checkpoints: CheckpointRepository = SqlCheckpointStore(ctx.db, ctx.clock)
        self._pollers: dict[str, tuple[YouTubeConfig, YouTubeConnector]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._sink: InboundSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    def routes(self) -> list[web.RouteDef]:
        return []

    async def start(self, sink: InboundSink) -> None:
        self._sink = sink
        self._stopping.clear()
        self._session = aiohttp.ClientSession()
        await self.refresh()
        self._task = asyncio.create_task(self._supervise(), name="youtube-inboxes")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()  # the supervisor ends between refreshes (no mid-transaction cancel)
            await task
        async with self._lock:
            pollers, self._pollers = self._pollers, {}
        for _, poller in pollers.values():
            await poller.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def poller(self, inbox_id: str) -> YouTubeConnector | None:
        entry = self._pollers.get(inbox_id)
        return entry[1] if entry else None

    async def refresh(self) -> None:
        """Start pollers for new / changed enabled inboxes, stop the others."""
        async with self._lock:
            wanted: dict[str, YouTubeConfig] = {}
            for ch in await self._ctx.channels.list_enabled(Channel.YOUTUBE):
                try:
                    wanted[ch.id] = config_from_inbox(ch, await self._ctx.channels.credentials(ch))
                except Exception as exc:
                    _log.error("youtube inbox %s (tenant %s) not polled: %s", ch.id, ch.tenant_id, exc)
            for inbox_id, (cfg, poller) in list(self._pollers.items()):
                if wanted.get(inbox_id) != cfg:
                    del self._pollers[inbox_id]
                    await poller.stop()
            for inbox_id, cfg in wanted.items():
                if inbox_id not in self._pollers and self._sink is not None:
                    poller = YouTubeConnector(cfg, self._checkpoints, session=self._session, clock=self._ctx.clock)
                    self._pollers[inbox_id] = (cfg, poller)
                    await poller.start(self._sink)

    async def _supervise(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._refresh_interval)
            if self._stopping.is_set():
                return
            try:
                await self.refresh()
            except Exception:
                _log.exception("youtube inbox refresh failed")

    async def send(self, msg: OutboundMessage) -> SendResult:
        ch = await self._ctx.channels.for_tenant(msg.tenant_id, Channel.YOUTUBE, msg.channel_id)
        if ch is None:
            raise PermanentError("no enabled YouTube inbox for this conversation")
        poller = self.poller(ch.id)
        if poller is not None:
            return await poller.send(msg)
        try:
            cfg = config_from_inbox(ch, await self._ctx.channels.credentials(ch))
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        one_off = YouTubeConnector(cfg, self._checkpoints, clock=self._ctx.clock)
        try:
            return await one_off.send(msg)
        finally:
            await one_off.stop()
