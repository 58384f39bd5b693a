"""Thin client for the three Data API v3 calls the connector uses.

* ``GET commentThreads?part=snippet,replies&(allThreadsRelatedToChannelId|videoId|id)=…``
* ``GET comments?part=snippet&parentId=…`` (replies beyond those embedded in a thread)
* ``POST comments?part=snippet`` with ``{"snippet": {"parentId", "textOriginal"}}``

Every call sends ``Authorization: Bearer``; a 401 invalidates the token and the call is
retried once with a fresh one. Other non-2xx answers raise `ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from connectors.oauth import TokenProvider
from connectors.youtube.errors import ApiError, parse_error, parse_retry_after

JsonObj = dict[str, Any]


class YouTubeApi:
    def __init__(
        self,
        *,
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
        tokens: TokenProvider,
        api_base: str,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._tokens = tokens
        self._base = api_base.rstrip("/")
        self._timeout = timeout

    async def list_threads(
        self, *, source: str, page_token: str | None = None, max_results: int = 100
    ) -> JsonObj:
        """One page of threads of `source` (``channel:UC…`` / ``video:ID``), newest first."""
        kind, _, value = source.partition(":")
        params = {
            "part": "snippet,replies",
            "order": "time",
            "textFormat": "plainText",
            "maxResults": str(max_results),
        }
        if kind == "channel":
            params["allThreadsRelatedToChannelId"] = value
        elif kind == "video":
            params["videoId"] = value
        else:
            raise ValueError(f"unknown source {source!r}")
        if page_token:
            params["pageToken"] = page_token
        return await self._call("GET", "commentThreads", params)

    async def get_threads(self, thread_ids: list[str]) -> JsonObj:
        """Threads by id (``id=a,b,c``; no paging, maxResults or order allowed with `id`)."""
        params = {"part": "snippet,replies", "textFormat": "plainText", "id": ",".join(thread_ids)}
        return await self._call("GET", "commentThreads", params)

    async def list_replies(self, *, parent_id: str, page_token: str | None = None) -> JsonObj:
        params = {"part": "snippet", "parentId": parent_id, "maxResults": "100", "textFormat": "plainText"}
        if page_token:
            params["pageToken"] = page_token
        return await self._call("GET", "comments", params)

    async def insert_reply(self, *, parent_id: str, text: str) -> JsonObj:
        body = {"snippet": {"parentId": parent_id, "textOriginal": text}}
        return await self._call("POST", "comments", {"part": "snippet"}, body)

    async def _call(
        self, method: str, path: str, params: Mapping[str, str], body: JsonObj | None = None
    ) -> JsonObj:
        for attempt in (1, 2):
            token = await self._tokens.token()
            try:
                return await self._request(method, path, params, body, token)
            except ApiError as exc:
                if exc.status == 401 and attempt == 1:
                    self._tokens.invalidate(token)
                    continue
                raise
        raise AssertionError("unreachable")

    async def _request(
        self, method: str, path: str, params: Mapping[str, str], body: JsonObj | None, token: str
    ) -> JsonObj:
        session = await self._session()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        async with session.request(
            method,
            f"{self._base}/{path}",
            params=dict(params),
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        ) as resp:
            text = await resp.text()
            status = resp.status
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        try:
            decoded: Any = json.loads(text) if text else {}
        except ValueError:
            decoded = text
        if status >= 300:
            raise parse_error(status, decoded, retry_after)
        if not isinstance(decoded, dict):
            raise ApiError(status, "badResponse", "expected a JSON object")
        return decoded
