"""Attachment files: inbound ones handed to chat's attachment keeper (the widget's uploads:
stored in the blob store with an id, served by the one authenticated download route);
outbound ones (an agent's uploads) read from the blob store through the outbox's export."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import aiohttp

from connectors.base import Attachment, PermanentError
from gateway.blobs import BlobNotFound, BlobUnavailable
from gateway.chat.service import ChatService

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def kind_of(mime_type: str) -> str:
    major = mime_type.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def safe_name(name: str | None) -> str:
    base = _SAFE.sub("_", (name or "attachment").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")
    return (base or "attachment")[:100]


async def read_outbound(a: Attachment) -> bytes:
    """The bytes of an outbound attachment's file; `PermanentError` when it has none or it
    cannot be read (the send fails for the agent to see, not without the file). The blob
    store being down raises its typed `unavailable` error: the outbox tries again later."""
    if a.read is not None:
        try:
            return await a.read()
        except BlobNotFound:
            raise PermanentError(f"attachment {a.name!r} cannot be read: it is gone") from None
    if a.path is None:
        raise PermanentError(f"attachment {a.name!r} has no file")
    try:
        return await asyncio.to_thread(Path(a.path).read_bytes)
    except OSError as exc:
        raise PermanentError(f"attachment {a.name!r} cannot be read: {exc.strerror}") from None


class AttachmentStore:
    """Keeps the files a channel receives through chat's attachment keeper."""

    def __init__(self, chat: ChatService, max_bytes: int) -> None:
        self._chat = chat
        self.max_bytes = max_bytes

    async def save(self, tenant_id: str, source: str, name: str | None, mime_type: str,
                   data: bytes) -> Attachment | None:
        """Store one file (`source`: e.g. `email:<channel id>`); None when it is over the
        size limit or no feature keeps attachments (the caller notes the drop). The blob
        store being down raises the typed `unavailable` error (the mail is taken again later)."""
        keeper = self._chat.attachments
        if len(data) > self.max_bytes or keeper is None or not data:
            return None
        d = await keeper.keep(tenant_id, source, name, mime_type, data)
        return Attachment(kind=str(d["kind"]), url=str(d["url"]), name=name or safe_name(name),
                          mime_type=str(d["mime_type"]), size=int(d["size"]), id=str(d["id"]))


class RemoteFiles:
    """Keeps the files a channel only links to (Messenger, Zalo: the platform's CDN address,
    which expires): each `http(s)` attachment without an id is downloaded (at most
    `max_bytes`, within `timeout` seconds) and stored through `AttachmentStore`, so it gets
    an id and the download route. One that cannot be fetched keeps its remote address (the
    message is never held back for a file). The URLs come from signed platform webhooks."""

    def __init__(self, files: AttachmentStore, timeout: float = 10.0) -> None:
        self.files = files
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def adopt(self, tenant_id: str, source: str, attachments: tuple[Attachment, ...]) -> tuple[Attachment, ...]:
        out = []
        for a in attachments:
            kept = None
            if a.id is None and a.url and a.url.startswith(("https://", "http://")):
                kept = await self._fetch(tenant_id, source, a)
            out.append(kept or a)
        return tuple(out)

    async def _fetch(self, tenant_id: str, source: str, a: Attachment) -> Attachment | None:
        assert a.url is not None
        limit = self.files.max_bytes
        try:
            async with self.session().get(a.url, allow_redirects=True) as r:
                if r.status != 200 or (r.content_length or 0) > limit:
                    log.info("inbound file not kept (HTTP %d, %s bytes): %s", r.status, r.content_length, a.kind)
                    return None
                data = bytearray()
                async for chunk in r.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > limit:
                        return None
                mime = (r.content_type or a.mime_type or "application/octet-stream").lower()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("inbound file not fetched (%s): keeping its link", type(exc).__name__)
            return None
        name = a.name or safe_name(a.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        try:
            kept = await self.files.save(tenant_id, source, name, mime, bytes(data))
        except BlobUnavailable:
            return None
        if kept is None:
            return None
        return Attachment(kind=a.kind if a.kind in ("image", "audio", "video", "file") else kept.kind, url=kept.url,
                          name=kept.name, mime_type=kept.mime_type, size=kept.size, id=kept.id)


__all__ = ["AttachmentStore", "RemoteFiles", "kind_of", "read_outbound", "safe_name"]
