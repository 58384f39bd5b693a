"""Attachment files: inbound ones handed to chat's attachment keeper (the widget's uploads:
stored in the blob store with an id, served by the one authenticated download route);
outbound ones (an agent's uploads) read from the blob store through the outbox's export."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from connectors.base import Attachment, PermanentError
from gateway.blobs import BlobNotFound
from gateway.chat.service import ChatService

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


__all__ = ["AttachmentStore", "kind_of", "read_outbound", "safe_name"]
