"""Test-only channel: a connector that POSTs JSON to a local aiohttp "channel API"."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from connectors.base import InboundSink, OutboundMessage, PermanentError, SendResult, TransientError
from gateway.core.domain import Channel
from tests.support.server import serve_app


@dataclass
class FakeChannelApi:
    """Answers POST /send with the next scripted status (then 200); remembers accepted ids."""

    script: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    hang: asyncio.Event | None = None  # when set: requests block until the event is set
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.hang is not None:
            await self.hang.wait()
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            if body["message_id"] not in self.accepted:
                self.accepted.append(body["message_id"])
            return web.json_response({"id": f"ext-{body['message_id']}"})
        return web.json_response({"error": {"message": f"scripted {status}"}}, status=status)


@contextlib.asynccontextmanager
async def fake_channel_api(api: FakeChannelApi) -> AsyncIterator[FakeChannelApi]:
    app = web.Application()
    app.router.add_post("/send", api.handle)
    async with serve_app(app) as url:
        api.url = url
        yield api


class FakeHttpConnector:
    """5xx / 429 → TransientError, other 4xx → PermanentError, 2xx → sent."""

    def __init__(self, base_url: str, channel: Channel = Channel.YOUTUBE) -> None:
        self.channel = channel
        self._base = base_url
        self._http: aiohttp.ClientSession | None = None

    async def start(self, sink: InboundSink) -> None:
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    def routes(self) -> list[web.RouteDef]:
        return []

    async def send(self, msg: OutboundMessage) -> SendResult:
        assert self._http is not None
        try:
            async with self._http.post(f"{self._base}/send", json={"message_id": msg.message_id, "to": msg.recipient_id,
                                                                   "text": msg.text}) as r:
                body = await r.json()
        except aiohttp.ClientError as exc:
            raise TransientError(str(exc)) from None
        if r.status >= 500 or r.status == 429:
            raise TransientError(body["error"]["message"], retry_after=None)
        if r.status >= 400:
            raise PermanentError(body["error"]["message"])
        return SendResult(external_message_id=body["id"])
