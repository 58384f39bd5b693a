"""`ZaloConnector`: Zalo Official Account webhooks in, OA customer-service messages out.

One connector serves every connected OA (`ZaloAccount`, one per tenant inbox). Webhooks of a
Zalo app arrive at `<webhook_base>/<app_id>`: the app's OA secret verifies the raw body, then
the event is routed to its OA (`recipient.id` of `user_*` events). Outbound messages are
routed by their thread id `<oa_id>:<user_id>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from connectors.attachments import read_outbound
from connectors.base import (
    TEXT_PART,
    Attachment,
    InboundSink,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
    attachment_part,
    send_parts,
)
from connectors.zalo import api, errors, events, signature
from connectors.zalo.config import ZaloAccount, ZaloSettings, ZaloTokens
from connectors.zalo.tokens import Clock, RefreshClaim, Sleep, TokenManager
from gateway.core.domain import Channel
from gateway.core.errors import GatewayError
from gateway.http.body import parse_json, read_body
from gateway.http.middleware import error_response

log = logging.getLogger(__name__)
# What the OA upload API takes (confirmed in several open-source integrations, not tried live):
# images through upload/image (sent as a media template), at most 1 MB; documents through
# upload/file, PDF/DOC/DOCX only (Zalo drops other types without an error), at most 5 MB.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
FILE_TYPES = frozenset({"application/pdf", "application/msword",
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"})
MAX_IMAGE_BYTES = 1024 * 1024
MAX_FILE_BYTES = 5 * 1024 * 1024

# Called with the account and its new token pair *before* the new access token is used;
# it must store both tokens durably (the channel's encrypted credentials).
PersistTokens = Callable[[ZaloAccount, ZaloTokens], Awaitable[None]]
# The account's token pair as stored now (None: unknown); lets a node adopt a pair another node rotated.
LoadTokens = Callable[[ZaloAccount], Awaitable[ZaloTokens | None]]
# Every enabled account (from the channel store); called on start and, throttled, on a routing miss.
LoadAccounts = Callable[[], Awaitable[list[ZaloAccount]]]
# The account's refresh claim across nodes (connectors/token_claims.py): one refresh at a time.
ClaimRefresh = Callable[[ZaloAccount], RefreshClaim]


@dataclass(slots=True)
class _Oa:
    account: ZaloAccount
    tokens: TokenManager
    task: asyncio.Task[None] | None = None


class ZaloConnector:
    channel = Channel.ZALO

    def __init__(
        self,
        accounts: Iterable[ZaloAccount],
        persist_tokens: PersistTokens,
        *,
        settings: ZaloSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        background_refresh: bool = True,
        load_tokens: LoadTokens | None = None,
        load_accounts: LoadAccounts | None = None,
        reload_interval: float = 10.0,
        claim_refresh: ClaimRefresh | None = None,
    ) -> None:
        self._claim_refresh = claim_refresh
        self.settings = settings or ZaloSettings()
        self._persist = persist_tokens
        self._load_tokens = load_tokens
        self._load_accounts = load_accounts
        self._reload_interval = reload_interval
        self._last_reload = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._http = session
        self._own_session = session is None
        self._background_refresh = background_refresh
        self._sink: InboundSink | None = None
        self._oas: dict[str, _Oa] = {}
        for a in accounts:
            self.add_account(a)

    # accounts -----------------------------------------------------------------------------
    def add_account(self, account: ZaloAccount) -> None:
        """Connect (or replace) an OA; its background refresh starts now if the connector runs."""
        self.remove_account(account.oa_id)

        async def refresher(refresh_token: str) -> ZaloTokens:
            return await api.refresh_tokens(
                self._session(), account, refresh_token, self._clock(), self.settings.request_timeout
            )

        async def persist(tokens: ZaloTokens) -> None:
            await self._persist(account, tokens)

        async def reload() -> ZaloTokens | None:
            return None if self._load_tokens is None else await self._load_tokens(account)

        manager = TokenManager(
            f"{account.tenant_id}/{account.oa_id}",
            account.tokens,
            refresher,
            persist,
            self._clock,
            self._sleep,
            refresh_margin=self.settings.refresh_margin,
            refresh_retry=self.settings.refresh_retry,
            reload=reload if self._load_tokens is not None else None,
            claim=None if self._claim_refresh is None else self._claim_refresh(account),
        )
        oa = _Oa(account, manager)
        self._oas[account.oa_id] = oa
        if self._sink is not None:
            self._start_refresh(oa)

    def remove_account(self, oa_id: str) -> None:
        oa = self._oas.pop(oa_id, None)
        if oa is not None and oa.task is not None:
            oa.task.cancel()

    async def reload_accounts(self, *, force: bool = False) -> None:
        """Pick up OAs connected or disabled since the last load (throttled unless `force`)."""
        if self._load_accounts is None:
            return
        now = self._clock()
        if not force and now - self._last_reload < self._reload_interval:
            return
        self._last_reload = now
        fresh = {a.oa_id: a for a in await self._load_accounts()}
        for oa_id in [k for k in self._oas if k not in fresh]:
            self.remove_account(oa_id)
        for oa_id, a in fresh.items():
            current = self._oas.get(oa_id)
            if current is None or _static(current.account) != _static(a):
                self.add_account(a)

    def token_manager(self, oa_id: str) -> TokenManager:
        return self._oas[oa_id].tokens

    def _start_refresh(self, oa: _Oa) -> None:
        if self._background_refresh and oa.task is None:
            oa.task = asyncio.create_task(oa.tokens.run(), name=f"zalo-refresh-{oa.account.oa_id}")

    # lifecycle ----------------------------------------------------------------------------
    async def start(self, sink: InboundSink) -> None:
        await self.reload_accounts(force=True)
        self._sink = sink
        for oa in self._oas.values():
            self._start_refresh(oa)

    async def stop(self) -> None:
        self._sink = None
        tasks = [oa.task for oa in self._oas.values() if oa.task is not None]
        for oa in self._oas.values():
            oa.task = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._own_session and self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
            self._own_session = True
        return self._http

    # inbound ------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.settings.webhook_base.rstrip("/") + "/{app_id}", self.handle_webhook)]

    def _verify(self, app_id: str, raw: bytes, header: str | None) -> str | None:
        secrets = {oa.account.oa_secret_key for oa in self._oas.values() if oa.account.app_id == app_id}
        for secret in sorted(secrets):
            if (ts := signature.verify(raw, header, app_id, secret)) is not None:
                return ts
        return None

    async def handle_webhook(self, request: web.Request) -> web.Response:
        try:
            raw = await read_body(request, self.settings.max_body_bytes)
        except GatewayError as exc:
            return error_response(exc)
        app_id = request.match_info["app_id"]
        if not any(oa.account.app_id == app_id for oa in self._oas.values()):
            await self.reload_accounts()
        ts = self._verify(app_id, raw, request.headers.get(signature.SIGNATURE_HEADER))
        if ts is None:
            return _error(401, "bad_signature", f"missing or invalid {signature.SIGNATURE_HEADER}")
        age = self._clock() - int(ts) / 1000.0
        if age > self.settings.max_event_age or age < -self.settings.max_clock_skew:
            return _error(403, "stale_timestamp", "event timestamp outside the accepted window")
        try:
            event = parse_json(raw)
        except GatewayError as exc:
            return error_response(exc)
        if not isinstance(event, dict) or str(event.get("timestamp")) != ts:
            return _error(400, "malformed", "not a Zalo event object")
        if str(event.get("app_id", app_id)) != app_id:
            return _error(403, "wrong_app", "app_id does not match the webhook URL")
        name = str(event.get("event_name"))
        oa_id = events.account_oa_id(event) or ""
        if oa_id not in self._oas and name in events.MESSAGE_EVENTS:
            await self.reload_accounts()
        oa = self._oas.get(oa_id)
        if oa is None or oa.account.app_id != app_id or name not in events.MESSAGE_EVENTS:
            return web.json_response({"ok": True, "ignored": name})
        try:
            msg = events.to_inbound(event, oa.account)
        except events.EventError as e:
            return _error(400, "malformed", str(e))
        sink = self._sink
        if msg is None:
            return web.json_response({"ok": True, "ignored": name})
        if sink is None:
            return _error(503, "not_ready", "connector not started")  # Zalo retries
        # Durable before acknowledged: the sink stores (deduped by msg_id) before Zalo gets its 200.
        await sink(msg)
        return web.json_response({"ok": True})

    # outbound -----------------------------------------------------------------------------
    async def _route(self, msg: OutboundMessage) -> tuple[_Oa, str]:
        oa_id, _, user_id = msg.external_thread_id.partition(":")
        if oa_id not in self._oas:
            await self.reload_accounts()
        oa = self._oas.get(oa_id)
        if oa is None or oa.account.tenant_id != msg.tenant_id:
            raise PermanentError(f"zalo OA {oa_id!r} is not connected for this tenant")
        recipient = msg.recipient_id or user_id
        if not recipient:
            raise PermanentError("zalo: no recipient user id")
        return oa, recipient

    @staticmethod
    def _text_message(msg: OutboundMessage) -> dict[str, Any] | None:
        if not msg.text.strip():
            if not msg.attachments:
                raise PermanentError("zalo: empty message")
            return None
        if len(msg.text) > api.MAX_TEXT:
            raise PermanentError(f"zalo: text longer than {api.MAX_TEXT} characters")
        message: dict[str, Any] = {"text": msg.text}
        quote = msg.meta.get("quote_message_id")
        if isinstance(quote, str) and quote:
            message["quote_message_id"] = quote
        return message

    async def send(self, msg: OutboundMessage) -> SendResult:
        """The text as one message, then each attachment as one more (uploaded first: an
        image to `upload/image` → a media template, anything else to `upload/file` → a
        file message). Each part Zalo accepted is recorded (`send_parts`): a retry after a
        partial success sends only the parts not accepted yet (as Messenger)."""
        oa, recipient = await self._route(msg)
        text = self._text_message(msg)
        kinds = [_upload_kind(a) for a in msg.attachments]  # all checked, and read, before anything is sent
        files = [(a, kind, await read_outbound(a)) for a, kind in zip(msg.attachments, kinds, strict=True)]
        answered: list[Any] = [None]  # the user id Zalo answered with the last part sent

        async def post(body: dict[str, Any]) -> str:
            mid, answered[0] = await self._post(oa, {"recipient": {"user_id": recipient}, "message": body})
            return mid

        async def send_file(att: Attachment, kind: str, data: bytes) -> str:
            up = await self._call(oa, f"zalo upload {kind}", functools.partial(
                self._upload, oa, kind, att.name or "file", att.mime_type or "application/octet-stream", data))
            if kind == "image":
                ref = up.get("attachment_id")
                attachment: dict[str, Any] = {"type": "template", "payload": {
                    "template_type": "media", "elements": [{"media_type": "image", "attachment_id": ref}]}}
            else:
                ref = up.get("token")
                attachment = {"type": "file", "payload": {"token": ref}}
            if not isinstance(ref, str) or not ref:
                raise TransientError(f"zalo upload {kind}: success without an id")
            return await post({"attachment": attachment})

        parts: list[tuple[str, Callable[[], Awaitable[str]]]] = []
        if text is not None:
            parts.append((TEXT_PART, functools.partial(post, text)))
        for i, (att, kind, data) in enumerate(files):
            parts.append((attachment_part(i), functools.partial(send_file, att, kind, data)))
        # each part accepted is recorded: a retry after a failed file sends only what is missing
        mids = await send_parts(msg, parts)
        meta: dict[str, Any] = {"zalo_user_id": answered[0]}
        if len(mids) > 1:
            meta["message_ids"] = mids
        return SendResult(external_message_id=mids[0], meta=meta)

    async def _upload(self, oa: _Oa, kind: str, name: str, mime_type: str, data: bytes,
                      token: str) -> dict[str, Any]:
        return await api.upload(self._session(), oa.account, token, kind, name, mime_type, data,
                                self.settings.request_timeout)

    async def _post(self, oa: _Oa, body: dict[str, Any]) -> tuple[str, Any]:
        """One customer-service message: its message_id and the user id Zalo answered."""
        data = await self._call(oa, "zalo send", lambda t: api.post_cs_message(
            self._session(), oa.account, t, body, self.settings.request_timeout))
        mid = data.get("message_id")
        if not isinstance(mid, str) or not mid:
            raise TransientError("zalo send: success without data.message_id")
        return mid, data.get("user_id")

    async def _call(self, oa: _Oa, what: str,
                    request: Callable[[str], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """`request(access_token)` → its `data` on success; a rejected token is refreshed
        once, other codes become Transient/PermanentError (errors.classify)."""
        token = await oa.tokens.access_token()
        for attempt in (1, 2):
            resp = await request(token)
            code = _error_code(resp)
            if code == 0:
                data = resp.get("data")
                return data if isinstance(data, dict) else {}
            detail = f"{what} failed: {code} {resp.get('message', '')}".strip()
            kind = errors.classify(code)
            if kind is errors.ErrorKind.TOKEN and attempt == 1:
                log.info("zalo oa %s: access token rejected (%s), refreshing", oa.account.oa_id, code)
                token = await oa.tokens.refresh(stale=token)
                continue
            if kind is errors.ErrorKind.TRANSIENT:
                raise TransientError(detail, retry_after=errors.retry_after(code))
            raise PermanentError(detail)
        raise AssertionError("unreachable")


def _upload_kind(a: Attachment) -> str:
    """Which upload API takes `a` ("image" or "file"); `PermanentError` for what neither takes."""
    mime = a.mime_type or ""
    kind, limit = ("image", MAX_IMAGE_BYTES) if mime in IMAGE_TYPES else ("file", MAX_FILE_BYTES)
    if kind == "file" and mime not in FILE_TYPES:
        raise PermanentError(f"zalo: cannot send {a.name!r} ({mime or 'unknown type'}): Zalo takes JPEG/PNG "
                             "images and PDF/DOC/DOCX files")
    if (a.size or 0) > limit:
        raise PermanentError(f"zalo: {a.name!r} is {a.size} bytes, over Zalo's {limit} for this type")
    return kind


def _static(a: ZaloAccount) -> tuple[str, ...]:
    """What, when changed in the store, replaces an account (tokens excepted: they live in memory)."""
    return (a.tenant_id, a.app_id, a.oa_secret_key, a.app_secret_key, a.channel_id or "", a.api_base, a.oauth_base)


def _error_code(resp: dict[str, Any]) -> int:
    raw = resp.get("error", 0)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw)
    return int(text) if text.lstrip("-").isdigit() else -1


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": {"code": code, "message": message}}, status=status)
