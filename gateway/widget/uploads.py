"""Stored files: widget and agent uploads and the files channels receive, kept in the blob
store (gateway/blobs) under `uploads/<tenant>/<id>`, listed in `uploads`; access rules,
signed URLs, the resolver that turns upload ids of `message:send` into attachment dicts, and
the sweep of uploads never attached to a message."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from gateway.blobs import BlobStore
from gateway.chat.principals import AgentPrincipal, Principal, VisitorPrincipal
from gateway.chat.service import ExportedFile
from gateway.core.domain import Conversation, Message
from gateway.core.errors import Code, GatewayError, bad_request, not_found
from gateway.store import NotFound, Store
from gateway.store.rows import new_id
from gateway.widget.store import Upload, UploadRepository

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 10
LINK_TTL = 300.0
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,99}$")
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class TooLarge(GatewayError):
    def __init__(self, limit: int) -> None:
        super().__init__(Code.PAYLOAD_TOO_LARGE, f"the file is larger than {limit} bytes", limit=limit)


def kind_of(mime_type: str) -> str:
    """The attachment kind the clients show: image, audio, video or file."""
    major = mime_type.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def clean_name(name: str | None) -> str:
    """A display file name: no path, no control characters, at most 200 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:200] or "file"


def clean_mime(value: str | None) -> str:
    mime = (value or "").split(";", 1)[0].strip().lower()
    return mime if _MIME_RE.match(mime) else "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Uploader:
    tenant_id: str
    type: str  # "contact" | "agent"
    id: str

    @staticmethod
    def of(p: Principal) -> Uploader:
        if isinstance(p, AgentPrincipal):
            return Uploader(p.tenant_id, "agent", p.agent_id)
        return Uploader(p.tenant_id, "contact", p.contact_id)


class Uploads:
    def __init__(self, store: UploadRepository, core: Store, blobs: BlobStore, *, max_bytes: int, secret: str,
                 clock: Callable[[], float], public_url: str | None = None) -> None:
        self.store = store
        self.core = core
        self.blobs = blobs
        self.max_bytes = max_bytes
        self._key = hashlib.sha256(b"izh-upload-url:" + secret.encode()).digest()
        self.clock = clock
        self.public_url = (public_url or "").rstrip("/")

    def url(self, upload_id: str) -> str:
        return f"{self.public_url}/api/v1/uploads/{upload_id}"

    def view(self, u: Upload) -> dict[str, Any]:
        return {"id": u.id, "name": u.name, "mime_type": u.mime_type, "size": u.size, "url": self.url(u.id)}

    @staticmethod
    def key(u: Upload) -> str:
        """The upload's blob key (`Upload.path` is `<tenant>/<id>`)."""
        return f"uploads/{u.path}"

    # --- saving ----------------------------------------------------------
    async def save(self, p: Principal, name: str | None, mime: str | None, declared: int | None,
                   chunks: AsyncIterator[bytes]) -> Upload:
        """Store an upload of `p` read from `chunks`; `TooLarge` past `max_bytes`, the typed
        `unavailable` error (with `retry_after`) when the blob store is down."""
        if declared is not None and declared > self.max_bytes:
            raise TooLarge(self.max_bytes)
        who = Uploader.of(p)
        limit = self.max_bytes

        async def limited() -> AsyncIterator[bytes]:
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(limit)
                yield chunk

        return await self._store(who.tenant_id, who.type, who.id, name, mime, limited())

    async def _store(self, tenant_id: str, uploader_type: str, uploader_id: str, name: str | None,
                     mime: str | None, data: bytes | AsyncIterator[bytes]) -> Upload:
        upload_id = new_id()
        rel = f"{tenant_id}/{upload_id}"
        key = f"uploads/{rel}"
        mime_type = clean_mime(mime)
        size = await self.blobs.put(key, data, content_type=mime_type)
        if size == 0:
            await self.blobs.delete(key)
            raise bad_request("the file is empty")
        u = Upload(upload_id, tenant_id, uploader_type, uploader_id, None, clean_name(name), mime_type, size,
                   rel, self.clock())
        try:
            await self.store.add_upload(u)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.blobs.delete(key)
            raise
        return u

    async def keep(self, tenant_id: str, source: str, name: str | None, mime: str, data: bytes) -> dict[str, Any]:
        """A file a channel received (`source`: e.g. `email:<channel id>`), stored like an
        upload: its attachment dict, served by the download route. (chat's `AttachmentKeeper`)"""
        u = await self._store(tenant_id, "channel", source, name, mime, data)
        return {**self.view(u), "kind": kind_of(u.mime_type)}

    # --- reading ---------------------------------------------------------
    async def readable(self, p: Principal, upload_id: str) -> Upload:
        """The upload if `p` may read it: any agent of its tenant, the visitor who uploaded
        it, or the visitor whose conversation it was attached to."""
        if not _ID_RE.match(upload_id):
            raise not_found("upload")
        u = await self.store.get_upload(p.tenant_id, upload_id)
        if u is None:
            raise not_found("upload")
        if isinstance(p, AgentPrincipal):
            return u
        assert isinstance(p, VisitorPrincipal)
        if u.uploader_type == "contact" and u.uploader_id == p.contact_id:
            return u
        if u.conversation_id is not None:
            try:
                conv = await self.core.get_conversation(p.tenant_id, u.conversation_id)
            except NotFound:
                raise not_found("upload") from None
            if conv.contact_id == p.contact_id:
                return u
        raise not_found("upload")

    def sign(self, tenant_id: str, upload_id: str, exp: int) -> str:
        msg = f"{tenant_id}:{upload_id}:{exp}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def signed_url(self, u: Upload) -> tuple[str, int]:
        exp = int(self.clock() + LINK_TTL)
        return f"{self.url(u.id)}?t={u.tenant_id}&exp={exp}&sig={self.sign(u.tenant_id, u.id, exp)}", exp

    async def by_signature(self, upload_id: str, tenant_id: str, exp: str, sig: str) -> Upload:
        try:
            exp_i = int(exp)
        except ValueError:
            raise GatewayError(Code.UNAUTHORIZED, "invalid link") from None
        if (not _ID_RE.match(upload_id) or not _ID_RE.match(tenant_id) or exp_i < self.clock()
                or not hmac.compare_digest(self.sign(tenant_id, upload_id, exp_i), sig)):
            raise GatewayError(Code.UNAUTHORIZED, "invalid or expired link")
        u = await self.store.get_upload(tenant_id, upload_id)
        if u is None:
            raise not_found("upload")
        return u

    async def export(self, tenant_id: str, attachment: dict[str, Any]) -> ExportedFile | None:
        """A message's upload attachment for a channel connector (outbound): a signed link
        and the file; None for what is not one of this tenant's uploads any more."""
        upload_id = attachment.get("id")
        if not isinstance(upload_id, str) or not _ID_RE.match(upload_id):
            return None
        u = await self.store.get_upload(tenant_id, upload_id)
        if u is None:
            return None
        url, _ = self.signed_url(u)
        key = self.key(u)

        async def read() -> bytes:
            return await self.blobs.get(key)

        return ExportedFile(url=url, read=read, name=u.name, mime_type=u.mime_type, size=u.size)

    # --- attaching (message:send) -----------------------------------------
    async def resolve(self, p: Principal, conv: Conversation, upload_ids: list[str]) -> list[dict[str, Any]]:
        """Upload ids → attachment dicts; each must be the sender's own upload, not yet
        attached to another conversation. Binds them to `conv`."""
        if len(upload_ids) > MAX_ATTACHMENTS:
            raise GatewayError(Code.LIMIT_REACHED, "too many attachments", limit=MAX_ATTACHMENTS)
        who = Uploader.of(p)
        out: list[dict[str, Any]] = []
        for uid in upload_ids:
            u = await self.store.get_upload(p.tenant_id, uid)
            if (u is None or u.uploader_type != who.type or u.uploader_id != who.id
                    or u.conversation_id not in (None, conv.id)):
                raise GatewayError(Code.NOT_FOUND, "upload not found", field="attachments", id=uid)
            out.append(self.view(u))
        await self.store.bind_uploads(p.tenant_id, upload_ids, conv.id)
        return out

    async def bind_stored(self, msg: Message, conv: Conversation) -> None:
        """A message listener: the files of a new message (a channel's inbound ones) are
        bound to its conversation, so they are no orphans and go with it when erased."""
        ids = [a["id"] for a in msg.attachments if isinstance(a.get("id"), str) and _ID_RE.match(a["id"])]
        if ids:
            await self.store.bind_uploads(conv.tenant_id, ids, conv.id)

    # --- orphans -----------------------------------------------------------
    async def sweep_orphans(self, ttl: float) -> int:
        """Delete the uploads never attached to a message within `ttl` seconds of their
        creation (file, then row): how many."""
        n = 0
        for u in await self.store.unbound_uploads(self.clock() - ttl):
            await self.blobs.delete(self.key(u))
            await self.store.delete_upload(u.tenant_id, u.id)
            n += 1
        if n:
            log.info("uploads: deleted %d never attached", n)
        return n
