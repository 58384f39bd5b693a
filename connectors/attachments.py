"""Attachment files: inbound ones stored under DATA_DIR/attachments/<tenant>/<xx>/<uuid>-<safe
name>; outbound ones (an agent's uploads) read from where the outbox found them."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from pathlib import Path

from connectors.base import Attachment, PermanentError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def kind_of(mime_type: str) -> str:
    major = mime_type.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def safe_name(name: str | None) -> str:
    base = _SAFE.sub("_", (name or "attachment").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")
    return (base or "attachment")[:100]


async def read_outbound(a: Attachment) -> bytes:
    """The bytes of an outbound attachment's file; `PermanentError` when it has none or it
    cannot be read (the send fails for the agent to see, not without the file)."""
    if a.path is None:
        raise PermanentError(f"attachment {a.name!r} has no file on this node")
    try:
        return await asyncio.to_thread(Path(a.path).read_bytes)
    except OSError as exc:
        raise PermanentError(f"attachment {a.name!r} cannot be read: {exc.strerror}") from None


class AttachmentStore:
    def __init__(self, data_dir: str, max_bytes: int) -> None:
        self._root = Path(data_dir) / "attachments"
        self.max_bytes = max_bytes

    async def save(self, tenant_id: str, name: str | None, mime_type: str, data: bytes) -> Attachment | None:
        """Store one file; None when it is over the size limit (the caller notes the drop)."""
        if len(data) > self.max_bytes:
            return None
        digest = hashlib.sha256(data).hexdigest()
        rel = Path(_SAFE.sub("_", tenant_id)) / digest[:2] / f"{uuid.uuid4().hex}-{safe_name(name)}"
        path = self._root / rel
        await asyncio.to_thread(_write, path, data)
        return Attachment(kind=kind_of(mime_type), url=f"attachments/{rel.as_posix()}", name=name or safe_name(name),
                          mime_type=mime_type, size=len(data))

    def path_of(self, url: str) -> Path:
        return self._root.parent / url


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
