"""Data-subject requests about one contact: export (JSON or zip with attachments) and erase.

Erase removes the contact's identities and personal fields, destroys its uploads and call
recordings (files and rows), and per the tenant's `erase_mode` either anonymises the
contact's messages (text and attachments blanked, rows kept) or deletes its conversations
with everything that hangs off them. Every request is written to the audit trail.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.chat.wire import contact_dict, conversation_dict, message_dict
from gateway.privacy.store import PrivacyStore, _ident
from gateway.store.rows import contact_from_row, conversation_from_row, message_from_row
from gateway.store.sql import Conn, chunked

log = logging.getLogger(__name__)


class ContactNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class FileRef:
    archive_name: str
    path: Path


def _in(ids: Sequence[str], start: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + len(ids)))


class Dsr:
    def __init__(self, store: PrivacyStore, data_dir: str) -> None:
        self.store = store
        self.data_dir = Path(data_dir)

    async def _contact_row(self, conn: Conn, tenant_id: str, contact_id: str) -> Any:
        row = await conn.fetchrow("SELECT * FROM contacts WHERE tenant_id = $1 AND id = $2", tenant_id, contact_id)
        if row is None:
            raise ContactNotFound(contact_id)
        return row

    @staticmethod
    async def _conversation_ids(conn: Conn, tenant_id: str, contact_id: str) -> list[str]:
        rows = await conn.fetch("SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $2 ORDER BY "
                                "created_at", tenant_id, contact_id)
        return [str(r["id"]) for r in rows]

    async def _files(self, conn: Conn, tables: set[str], tenant_id: str, contact_id: str,
                     conv_ids: list[str]) -> tuple[list[dict[str, Any]], list[FileRef], list[str], list[str]]:
        """(upload metadata, files, upload ids, recording ids) of the contact."""
        uploads: list[dict[str, Any]] = []
        files: list[FileRef] = []
        upload_ids: list[str] = []
        rec_ids: list[str] = []
        for part in chunked(conv_ids):
            if "uploads" in tables:
                for r in await conn.fetch(f"SELECT id, name, mime_type, size, path, created_at FROM uploads "
                                          f"WHERE tenant_id = $1 AND conversation_id IN ({_in(part, 2)})",
                                          tenant_id, *part):
                    upload_ids.append(str(r["id"]))
                    uploads.append({"id": r["id"], "name": r["name"], "mime_type": r["mime_type"],
                                    "size": int(r["size"]), "created_at": float(r["created_at"])})
                    files.append(FileRef(f"attachments/{r['id']}-{Path(str(r['name'])).name}",
                                         self.data_dir / "uploads" / str(r["path"])))
        if "calls" in tables and "recordings" in tables:
            for r in await conn.fetch("SELECT r.id, r.blob_key FROM recordings r JOIN calls c ON c.tenant_id = "
                                      "r.tenant_id AND c.id = r.call_id WHERE c.tenant_id = $1 AND c.contact_id = $2",
                                      tenant_id, contact_id):
                rec_ids.append(str(r["id"]))
                files.append(FileRef(f"recordings/{r['id']}.age", self.data_dir / "recordings" / str(r["blob_key"])))
        return uploads, files, upload_ids, rec_ids

    # --- export -----------------------------------------------------------------------
    async def export(self, tenant_id: str, contact_id: str) -> tuple[dict[str, Any], list[FileRef]]:
        async with self.store.db.reader() as conn:
            contact = contact_from_row(await self._contact_row(conn, tenant_id, contact_id))
            tables = set(await self.store.tenant_tables(conn))
            identities = [{"kind": r["kind"], "value": r["value"]} for r in await conn.fetch(
                "SELECT kind, value FROM contact_identities WHERE tenant_id = $1 AND contact_id = $2 "
                "ORDER BY kind, value", tenant_id, contact_id)]
            convs = []
            for cid in await self._conversation_ids(conn, tenant_id, contact_id):
                crow = await conn.fetchrow("SELECT * FROM conversations WHERE tenant_id = $1 AND id = $2",
                                           tenant_id, cid)
                if crow is None:
                    continue
                conv = conversation_from_row(crow)
                msgs = [message_dict(message_from_row(m), conv.epoch) for m in await conn.fetch(
                    "SELECT * FROM messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq",
                    tenant_id, cid)]
                convs.append({**conversation_dict(conv), "messages": msgs})
            uploads, files, _, rec_ids = await self._files(conn, tables, tenant_id, contact_id,
                                                           [c["id"] for c in convs])
        data = {"contact": contact_dict(contact), "identities": identities, "conversations": convs,
                "uploads": uploads, "recordings": rec_ids}
        return data, files

    async def export_zip(self, tenant_id: str, contact_id: str) -> bytes:
        data, files = await self.export(tenant_id, contact_id)

        def build() -> bytes:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("contact.json", json.dumps(data, ensure_ascii=False, indent=2))
                for f in files:
                    if f.path.is_file():
                        z.write(f.path, f.archive_name)
            return buf.getvalue()

        return await asyncio.to_thread(build)

    # --- erase ------------------------------------------------------------------------
    async def erase(self, tenant_id: str, contact_id: str, *, actor: str) -> dict[str, int]:
        policy = await self.store.policy(tenant_id)
        counts: dict[str, int] = {}
        async with self.store.db.transaction() as conn:
            await self._contact_row(conn, tenant_id, contact_id)
            tables = set(await self.store.tenant_tables(conn))
            conv_ids = await self._conversation_ids(conn, tenant_id, contact_id)
            _, files, upload_ids, rec_ids = await self._files(conn, tables, tenant_id, contact_id, conv_ids)
            for part in chunked(rec_ids):
                await conn.execute(f"DELETE FROM recordings WHERE tenant_id = $1 AND id IN ({_in(part, 2)})",
                                   tenant_id, *part)
            for part in chunked(upload_ids):
                await conn.execute(f"DELETE FROM uploads WHERE tenant_id = $1 AND id IN ({_in(part, 2)})",
                                   tenant_id, *part)
            counts["recordings"], counts["uploads"] = len(rec_ids), len(upload_ids)
            rows = await conn.fetch("DELETE FROM contact_identities WHERE tenant_id = $1 AND contact_id = $2 "
                                    "RETURNING kind", tenant_id, contact_id)
            counts["identities"] = len(rows)
            if policy.erase_mode == "delete":
                counts["conversations"] = len(conv_ids)
                counts["messages"] = await self._delete_conversations(conn, tenant_id, conv_ids)
                for t in await self.store.tenant_tables(conn, with_column="contact_id"):
                    if t not in ("contacts", "conversations"):
                        await conn.execute(f"DELETE FROM {_ident(t)} WHERE tenant_id = $1 AND contact_id = $2",
                                           tenant_id, contact_id)
                await conn.execute("DELETE FROM contacts WHERE tenant_id = $1 AND id = $2", tenant_id, contact_id)
                counts["contact_deleted"] = 1
            else:
                n = 0
                for part in chunked(conv_ids):
                    rows = await conn.fetch(
                        f"UPDATE messages SET text = '', attachments = '[]' WHERE tenant_id = $1 AND author_type = "
                        f"'contact' AND conversation_id IN ({_in(part, 2)}) RETURNING id", tenant_id, *part)
                    n += len(rows)
                counts["messages_anonymised"] = n
                await conn.execute("UPDATE contacts SET name = NULL, email = NULL, phone = NULL, attributes = '{}' "
                                   "WHERE tenant_id = $1 AND id = $2", tenant_id, contact_id)
        removed = 0
        for f in files:
            try:
                await asyncio.to_thread(f.path.unlink)
                removed += 1
            except FileNotFoundError:
                pass
            except OSError:
                log.exception("erase: could not delete %s", f.path)
        counts["files"] = removed
        await self.store.audit(tenant_id, actor, "contact.erased", contact_id,
                               {**counts, "mode": policy.erase_mode})
        return counts

    async def _delete_conversations(self, conn: Conn, tenant_id: str, conv_ids: list[str]) -> int:
        """Delete the conversations and every row referring to them (tables with conversation_id)."""
        messages = 0
        tables = [t for t in await self.store.tenant_tables(conn, with_column="conversation_id")
                  if t not in ("conversations", "uploads")]
        for part in chunked(conv_ids):
            for t in tables:
                if t == "messages":
                    rows = await conn.fetch(f"DELETE FROM messages WHERE tenant_id = $1 AND conversation_id IN "
                                            f"({_in(part, 2)}) RETURNING id", tenant_id, *part)
                    messages += len(rows)
                else:
                    await conn.execute(f"DELETE FROM {_ident(t)} WHERE tenant_id = $1 AND conversation_id IN "
                                       f"({_in(part, 2)})", tenant_id, *part)
            await conn.execute(f"DELETE FROM conversations WHERE tenant_id = $1 AND id IN ({_in(part, 2)})",
                               tenant_id, *part)
        return messages
