"""The two Graph API calls the connector makes: Send API and comment replies."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from connectors.base import PermanentError, TransientError
from connectors.facebook.config import FacebookOptions, FacebookPage
from connectors.facebook.errors import classify, parse_graph_error

MAX_TEXT_CHARS = 2000  # Send API: text must be UTF-8 and < 2000 characters


class GraphClient:
    """Stateless apart from the shared session it is given (owned by the connector)."""

    def __init__(self, options: FacebookOptions, session: aiohttp.ClientSession) -> None:
        self._config = options
        self._session = session

    async def send_message(self, page: FacebookPage, psid: str, message: dict[str, Any]) -> str:
        """`POST /{version}/me/messages` — returns the new `message_id`."""
        body = {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": message}
        doc = await self._post(page, "me/messages", body)
        mid = doc.get("message_id")
        if not isinstance(mid, str) or not mid:
            raise PermanentError("Send API answered 200 without a message_id")
        return mid

    async def reply_comment(self, page: FacebookPage, comment_id: str, text: str) -> str:
        """`POST /{version}/{comment-id}/comments` — returns the new comment `id`."""
        doc = await self._post(page, f"{comment_id}/comments", {"message": text})
        cid = doc.get("id")
        if not isinstance(cid, str) or not cid:
            raise PermanentError("comment reply answered 200 without an id")
        return cid

    async def _post(self, page: FacebookPage, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{page.graph_root}/{path}"
        try:
            async with self._session.post(url, params={"access_token": page.access_token}, json=body) as resp:
                raw = await resp.read()
                if 200 <= resp.status < 300:
                    try:
                        doc = json.loads(raw)
                    except ValueError as exc:
                        raise PermanentError(f"Graph API answered {resp.status} with non-JSON body") from exc
                    if not isinstance(doc, dict):
                        raise PermanentError(f"Graph API answered {resp.status} with a non-object body")
                    return doc
                err = parse_graph_error(resp.status, raw)
                raise classify(
                    err,
                    resp.headers,
                    rate_limit_retry_after=self._config.rate_limit_retry_after,
                    server_error_retry_after=self._config.server_error_retry_after,
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            # never include the URL: it carries the access token
            raise TransientError(
                f"Graph API unreachable: {type(exc).__name__}", retry_after=self._config.server_error_retry_after
            ) from None
