"""`FacebookConnector`: Messenger + Page comments behind the `Connector` interface."""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from connectors.base import (
    TEXT_PART,
    InboundSink,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
    attachment_part,
    send_parts,
)
from connectors.facebook.config import FacebookOptions, FacebookPage
from connectors.facebook.directory import ChannelDirectory, PageDirectory
from connectors.facebook.graph import MAX_TEXT_CHARS, GraphClient
from connectors.facebook.parse import MalformedPayload, parse_delivery
from connectors.facebook.signature import SIGNATURE_HEADER, signature_valid
from connectors.facebook.threads import CommentThread, MessengerThread, decode_thread
from gateway.core.domain import Channel
from gateway.core.errors import GatewayError
from gateway.http.body import parse_json, read_body
from gateway.http.middleware import error_response

if TYPE_CHECKING:
    from connectors.context import ConnectorContext

log = logging.getLogger(__name__)

OUTBOUND_ATTACHMENT_KINDS = frozenset({"image", "audio", "video", "file"})
MAX_CHALLENGE_CHARS = 256


class FacebookConnector:
    """Built by the registry as ``FacebookConnector(ctx)`` (Pages = the tenants' `facebook` inboxes), or
    standalone as ``FacebookConnector(directory=StaticDirectory([...]))``."""

    channel = Channel.FACEBOOK

    def __init__(
        self,
        ctx: ConnectorContext | None = None,
        *,
        directory: PageDirectory | None = None,
        options: FacebookOptions | None = None,
    ) -> None:
        if directory is None:
            if ctx is None:
                raise ValueError("FacebookConnector needs a ConnectorContext or a PageDirectory")
            directory = ChannelDirectory(ctx.channels)
        self._directory = directory
        self._options = options or FacebookOptions()
        self._sink: InboundSink | None = None
        self._session: aiohttp.ClientSession | None = None
        self._graph: GraphClient | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, sink: InboundSink) -> None:
        self._sink = sink
        if self._session is None:
            o = self._options
            timeout = aiohttp.ClientTimeout(total=o.total_timeout, connect=o.connect_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._graph = GraphClient(o, self._session)

    async def stop(self) -> None:
        self._sink = None
        session, self._session, self._graph = self._session, None, None
        if session is not None:
            await session.close()

    def routes(self) -> list[web.RouteDef]:
        path = self._options.webhook_path
        return [web.get(path, self._verify), web.post(path, self._receive)]

    # -- webhooks ----------------------------------------------------------------------------------

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        challenge = q.get("hub.challenge", "")
        token = q.get("hub.verify_token", "")
        if q.get("hub.mode") == "subscribe" and challenge and len(challenge) <= MAX_CHALLENGE_CHARS and token:
            matches = [_same(token, p.verify_token) for p in await self._directory.pages()]
            if any(matches):
                return web.Response(text=challenge, content_type="text/plain")
        return web.Response(status=403, text="verification failed")

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(request, self._options.max_body_bytes)
        except GatewayError as exc:
            return error_response(exc)
        header = request.headers.get(SIGNATURE_HEADER)
        pages = await self._directory.pages() if header else []
        # The Pages this delivery may speak for: those of the app whose secret signed it.
        secrets = {p.app_secret for p in pages}
        good = {s for s in secrets if signature_valid(s, body, header)}
        if not good:
            return _error(401, "bad_signature", f"missing or invalid {SIGNATURE_HEADER}")
        sink = self._sink
        if sink is None:
            return _error(503, "not_ready", "connector not started")  # Meta retries
        allowed = {p.page_id: p for p in pages if p.app_secret in good}
        try:
            result = parse_delivery(parse_json(body), allowed)
        except GatewayError as exc:
            return error_response(exc)
        except MalformedPayload as exc:
            return _error(400, "malformed", str(exc)[:200])
        if result.skipped:
            log.debug("facebook webhook: skipped %s", dict(result.skipped))
        for msg in result.messages:
            # Durable before acknowledged: if the sink fails we answer 500, Meta retries, dedup by external id.
            await sink(msg)
        return web.json_response({"ok": True, "received": len(result.messages)})

    # -- outbound ----------------------------------------------------------------------------------

    async def send(self, msg: OutboundMessage) -> SendResult:
        graph = self._graph
        if graph is None:
            raise TransientError("facebook connector not started", retry_after=self._options.server_error_retry_after)
        try:
            thread = decode_thread(msg.external_thread_id)
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        page = await self._directory.for_outbound(msg.tenant_id, msg.channel_id, thread.page_id)
        if page is None:
            raise PermanentError(f"Page {thread.page_id} is not connected (or disabled) for this tenant")
        if isinstance(thread, CommentThread):
            if msg.attachments:
                raise PermanentError("attachments are not supported in comment replies")
            if not msg.text.strip():
                raise PermanentError("nothing to send")
            cid = await graph.reply_comment(page, thread.comment_id, msg.text)
            meta = {"fb_kind": "comment_reply", "replied_to": thread.comment_id}
            return SendResult(external_message_id=cid, meta=meta)
        return await self._send_messenger(graph, page, thread, msg)

    async def _send_messenger(
        self, graph: GraphClient, page: FacebookPage, thread: MessengerThread, msg: OutboundMessage
    ) -> SendResult:
        if len(msg.text) >= MAX_TEXT_CHARS:
            raise PermanentError(f"Messenger text must be shorter than {MAX_TEXT_CHARS} characters")
        bad = [a.kind for a in msg.attachments if a.kind not in OUTBOUND_ATTACHMENT_KINDS or not a.url]
        if bad:
            raise PermanentError(f"unsupported attachments for Messenger: {bad}")
        if any(not (a.url or "").startswith(("https://", "http://")) for a in msg.attachments):
            # Meta fetches the file from its URL: a link relative to this gateway reaches nothing
            raise PermanentError("Messenger attachments need PUBLIC_URL (Meta downloads the file from it)")
        if not msg.text and not msg.attachments:
            raise PermanentError("nothing to send")
        def message(body: dict[str, Any]) -> Callable[[], Awaitable[str]]:
            return functools.partial(graph.send_message, page, thread.psid, body)

        parts = [(TEXT_PART, message({"text": msg.text}))] if msg.text else []
        for i, att in enumerate(msg.attachments):
            payload: dict[str, Any] = {"url": att.url, "is_reusable": False}
            parts.append((attachment_part(i), message({"attachment": {"type": att.kind, "payload": payload}})))
        # each part accepted is recorded: a retry after a failed file sends only what is missing
        mids = await send_parts(msg, parts)
        return SendResult(external_message_id=mids[0], meta={"fb_kind": "message", "message_ids": mids})


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": {"code": code, "message": message}}, status=status)
