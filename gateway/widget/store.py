"""The widget feature's own tables (migration 0002_widget.sql): the `UploadRepository` and
`WidgetSettingsRepository` protocols and their SQL implementation `WidgetStore` (contract
suite: tests/contract/test_uploads_repository.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.db import Database
from gateway.store.rows import dump_json


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    tenant_id: str
    uploader_type: str  # "contact" | "agent"
    uploader_id: str
    conversation_id: str | None
    name: str
    mime_type: str
    size: int
    path: str  # relative to the uploads root
    created_at: float


def _upload(row: Any) -> Upload:
    return Upload(
        id=row["id"], tenant_id=row["tenant_id"], uploader_type=row["uploader_type"],
        uploader_id=row["uploader_id"], conversation_id=row["conversation_id"], name=row["name"],
        mime_type=row["mime_type"], size=int(row["size"]), path=row["path"], created_at=float(row["created_at"]),
    )


class UploadRepository(Protocol):
    """Where stored files are listed (the bytes are in the blob store, key `uploads/<Upload.path>`). Scoped
    to the tenant: another tenant's upload is not found and not changed."""

    async def add_upload(self, u: Upload) -> None:
        """Store a new upload, not bound to any conversation yet (`u.conversation_id` is
        ignored); `gateway.store.sql.Conflict` when its id is taken."""

    async def get_upload(self, tenant_id: str, upload_id: str) -> Upload | None:
        """The tenant's upload, or None."""

    async def bind_uploads(self, tenant_id: str, upload_ids: list[str], conversation_id: str) -> None:
        """Tie the tenant's not-yet-bound uploads among `upload_ids` to `conversation_id`. An
        upload already bound keeps its conversation (the first binding wins); unknown ids and
        other tenants' uploads are left alone."""

    async def unbound_uploads(self, created_before: float, limit: int = 500) -> list[Upload]:
        """Uploads of every tenant never bound to a conversation and created before
        `created_before`, oldest first, at most `limit`."""

    async def delete_upload(self, tenant_id: str, upload_id: str) -> None:
        """Remove the tenant's upload row (nothing happens when there is none)."""


class WidgetSettingsRepository(Protocol):
    """A tenant's widget settings (one JSON object per tenant)."""

    async def get_settings(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant's settings as last put, or None when never put."""

    async def put_settings(self, tenant_id: str, settings: dict[str, Any], *, now: float) -> None:
        """Replace the tenant's settings (an upsert: the last put wins)."""


class WidgetStore:
    """`UploadRepository` and `WidgetSettingsRepository` on the SQL `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- settings --------------------------------------------------------
    async def get_settings(self, tenant_id: str) -> dict[str, Any] | None:
        async with self.db.reader() as conn:
            row = await conn.fetchrow("SELECT settings FROM widget_settings WHERE tenant_id = $1", tenant_id)
        if row is None:
            return None
        value = json.loads(row["settings"])
        return value if isinstance(value, dict) else None

    async def put_settings(self, tenant_id: str, settings: dict[str, Any], *, now: float) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO widget_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings,"
                " updated_at = excluded.updated_at",
                tenant_id, dump_json(settings), now,
            )

    # --- uploads ---------------------------------------------------------
    async def add_upload(self, u: Upload) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO uploads (id, tenant_id, uploader_type, uploader_id, conversation_id, name,"
                " mime_type, size, path, created_at) VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9)",
                u.id, u.tenant_id, u.uploader_type, u.uploader_id, u.name, u.mime_type, u.size, u.path,
                u.created_at,
            )

    async def get_upload(self, tenant_id: str, upload_id: str) -> Upload | None:
        async with self.db.reader() as conn:
            row = await conn.fetchrow("SELECT * FROM uploads WHERE tenant_id = $1 AND id = $2", tenant_id, upload_id)
        return None if row is None else _upload(row)

    async def bind_uploads(self, tenant_id: str, upload_ids: list[str], conversation_id: str) -> None:
        """Tie not-yet-attached uploads to `conversation_id` (already-bound ones are unchanged)."""
        async with self.db.transaction() as conn:
            for uid in upload_ids:
                await conn.execute(
                    "UPDATE uploads SET conversation_id = $3 WHERE tenant_id = $1 AND id = $2"
                    " AND conversation_id IS NULL",
                    tenant_id, uid, conversation_id,
                )

    async def unbound_uploads(self, created_before: float, limit: int = 500) -> list[Upload]:
        async with self.db.reader() as conn:
            rows = await conn.fetch("SELECT * FROM uploads WHERE conversation_id IS NULL AND created_at < $1"
                                    " ORDER BY created_at LIMIT $2", created_before, limit)
        return [_upload(r) for r in rows]

    async def delete_upload(self, tenant_id: str, upload_id: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM uploads WHERE tenant_id = $1 AND id = $2", tenant_id, upload_id)
