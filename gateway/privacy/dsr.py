"""Data-subject requests about one contact: export (JSON or zip with every file) and erase.

Erase covers every channel (widget, calls, email, Messenger, Zalo, YouTube, IZIComment):
the contact's identities, personal fields and satisfaction ratings go, its files are deleted
from the blob store (uploads and the files channels received, `uploads/…`; connector
attachments stored before those had ids, `attachments/…`; call recordings, `recordings/…`)
with their rows, and per the tenant's `erase_mode` its conversations
are either anonymised (the contact's texts and attachments blanked, channel thread ids and
message ids cleared, the channel link's recipient cleared, the email Message-ID/subject index
rows deleted, pending outbound replies cancelled; the rows stay) or deleted with every row
that refers to them. An anonymised conversation is never sent to again: the outbox refuses
a reply in it (`ERASED_ERROR`). Every request is written to the audit trail (ids and counts).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gateway.blobs import BlobNotFound, BlobStore, BlobUnavailable, check_key
from gateway.chat.wire import contact_dict, conversation_dict, is_note, message_dict
from gateway.privacy.store import PrivacyRepository, quote_ident
from gateway.store.rows import contact_from_row, conversation_from_row, message_from_row
from gateway.store.sql import Conn, chunked

log = logging.getLogger(__name__)

# delivery error of an agent reply in the conversation of an erased contact (never sent)
ERASED_ERROR = "contact_erased: the contact was erased; nothing is sent to it"
# connector attachments (connectors/attachments.py) are stored as `attachments/<tenant>/…` urls
ATTACHMENTS = "attachments"
CALL_FIELDS = ("id", "conversation_id", "agent_id", "state", "started_at", "answered_at", "ended_at",
               "end_reason", "duration", "recording_id")
# satisfaction ratings (gateway/ratings, migration 0014): exported, and erased in either mode
RATINGS = "conversation_ratings"
RATING_FIELDS = ("conversation_id", "seq", "agent_id", "score", "comment", "created_at")


class ContactNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class FileRef:
    archive_name: str
    key: str  # in the blob store


def _in(ids: Sequence[str], start: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + len(ids)))


def _attachment_list(raw: Any) -> list[dict[str, Any]]:
    try:
        items = json.loads(str(raw or "[]"))
    except ValueError:
        return []
    return [a for a in items if isinstance(a, dict)] if isinstance(items, list) else []


@runtime_checkable
class ForgetsHistory(Protocol):
    """A database that can drop the earlier versions of rows it keeps in its files (SQLite's
    WAL); a data-subject erasure calls it so that no erased row survives there."""

    async def forget_history(self) -> None: ...


class Dsr:
    def __init__(self, store: PrivacyRepository, blobs: BlobStore,
                 forget_history: Callable[[], Awaitable[None]] | None = None) -> None:
        """`forget_history`: run after each erasure, so that no earlier version of an erased
        row survives in the database's files (SQLite: its WAL truncated)."""
        self.store = store
        self.blobs = blobs
        self.forget_history = forget_history

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

    @staticmethod
    def attachment_key(tenant_id: str, url: Any) -> str | None:
        """The blob key of a connector attachment stored before attachments had ids (its url
        is `attachments/<tenant>/…`), or None when the url is not one of the tenant's."""
        if not isinstance(url, str) or not url.startswith(f"{ATTACHMENTS}/{tenant_id}/"):
            return None
        try:
            return check_key(url)
        except ValueError:
            return None

    async def _message_files(self, conn: Conn, tenant_id: str, conv_ids: list[str]) -> list[FileRef]:
        """The connector attachment files of the contact's messages in `conv_ids`."""
        files: list[FileRef] = []
        for part in chunked(conv_ids):
            for r in await conn.fetch(f"SELECT id, attachments FROM messages WHERE tenant_id = $1 AND author_type = "
                                      f"'contact' AND conversation_id IN ({_in(part, 2)}) AND attachments <> '[]' "
                                      "ORDER BY conversation_id, seq", tenant_id, *part):
                for a in _attachment_list(r["attachments"]):
                    key = self.attachment_key(tenant_id, a.get("url"))
                    if key is not None:
                        files.append(FileRef(f"attachments/{r['id']}-{key.rsplit('/', 1)[-1]}", key))
        return files

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
                                         f"uploads/{r['path']}"))
        files += await self._message_files(conn, tenant_id, conv_ids)
        if "calls" in tables and "recordings" in tables:
            for r in await conn.fetch("SELECT r.id, r.blob_key FROM recordings r JOIN calls c ON c.tenant_id = "
                                      "r.tenant_id AND c.id = r.call_id WHERE c.tenant_id = $1 AND c.contact_id = $2",
                                      tenant_id, contact_id):
                rec_ids.append(str(r["id"]))
                files.append(FileRef(f"recordings/{r['id']}.age", f"recordings/{r['blob_key']}"))
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
                for m in msgs:  # agents' private notes about the contact: labelled as such
                    m["private_note"] = is_note(m)
                convs.append({**conversation_dict(conv), "messages": msgs})
            uploads, files, _, rec_ids = await self._files(conn, tables, tenant_id, contact_id,
                                                           [c["id"] for c in convs])
            calls: list[dict[str, Any]] = []
            if "calls" in tables:
                for r in await conn.fetch(f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE tenant_id = $1 AND "
                                          "contact_id = $2 ORDER BY started_at, id", tenant_id, contact_id):
                    calls.append({k: r[k] for k in CALL_FIELDS})
            ratings: list[dict[str, Any]] = []
            if RATINGS in tables:
                for r in await conn.fetch(f"SELECT {', '.join(RATING_FIELDS)} FROM {RATINGS} WHERE tenant_id = $1"
                                          " AND contact_id = $2 ORDER BY created_at, conversation_id, seq",
                                          tenant_id, contact_id):
                    ratings.append({k: r[k] for k in RATING_FIELDS})
        data = {"contact": contact_dict(contact), "identities": identities, "conversations": convs,
                "uploads": uploads, "calls": calls, "recordings": rec_ids, "ratings": ratings}
        return data, files

    async def export_zip(self, tenant_id: str, contact_id: str) -> bytes:
        data, files = await self.export(tenant_id, contact_id)

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            await asyncio.to_thread(z.writestr, "contact.json", json.dumps(data, ensure_ascii=False, indent=2))
            for f in files:  # read from the blob store (any node's files), one at a time
                try:
                    content = await self.blobs.get(f.key)
                except (BlobNotFound, ValueError):
                    continue
                await asyncio.to_thread(z.writestr, f.archive_name, content)
        return buf.getvalue()

    # --- erase ------------------------------------------------------------------------
    async def erase(self, tenant_id: str, contact_id: str, *, actor: str) -> dict[str, int]:
        policy = await self.store.policy(tenant_id)
        counts: dict[str, int] = {}
        async with self.store.db.transaction() as conn:
            await self._contact_row(conn, tenant_id, contact_id)
            tables = set(await self.store.tenant_tables(conn))
            conv_ids = await self._conversation_ids(conn, tenant_id, contact_id)
            _, files, upload_ids, rec_ids = await self._files(conn, tables, tenant_id, contact_id, conv_ids)
            if "youtube_checkpoints" in tables:
                counts["checkpoint_ids"] = await self._forget_in_checkpoints(conn, tenant_id, conv_ids)
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
            if RATINGS in tables:  # scores and comments go in either mode
                rows = await conn.fetch(f"DELETE FROM {RATINGS} WHERE tenant_id = $1 AND contact_id = $2 "
                                        "RETURNING seq", tenant_id, contact_id)
                counts["ratings"] = len(rows)
            if policy.erase_mode == "delete":
                counts["conversations"] = len(conv_ids)
                counts["messages"] = await self._delete_conversations(conn, tenant_id, conv_ids)
                for t in await self.store.tenant_tables(conn, with_column="contact_id"):
                    if t not in ("contacts", "conversations"):
                        await conn.execute(f"DELETE FROM {quote_ident(t)} WHERE tenant_id = $1 AND contact_id = $2",
                                           tenant_id, contact_id)
                await conn.execute("DELETE FROM contacts WHERE tenant_id = $1 AND id = $2", tenant_id, contact_id)
                counts["contact_deleted"] = 1
            else:
                counts.update(await self._anonymise(conn, tables, tenant_id, conv_ids))
                await conn.execute("UPDATE contacts SET name = NULL, email = NULL, phone = NULL, attributes = '{}' "
                                   "WHERE tenant_id = $1 AND id = $2", tenant_id, contact_id)
        removed = 0
        for f in files:
            try:
                if await self.blobs.stat(f.key) is not None:
                    await self.blobs.delete(f.key)
                    removed += 1
            except (BlobUnavailable, ValueError):
                log.exception("erase: could not delete %s", f.key)
        counts["files"] = removed
        await self.store.audit(tenant_id, actor, "contact.erased", contact_id,
                               {**counts, "mode": policy.erase_mode})
        if self.forget_history is not None:
            await self.forget_history()
        return counts

    async def _anonymise(self, conn: Conn, tables: set[str], tenant_id: str, conv_ids: list[str]) -> dict[str, int]:
        """Blank what the contact left in its conversations, keeping the rows: its messages'
        texts and channel message ids; every message's delivery error (it may name the
        address) and attachments (the conversations' files are deleted); the conversations'
        channel thread ids and subjects; the channel links' recipient (so nothing is sent again: see
        `ERASED_ERROR`); the email Message-ID and subject index; pending outbound replies
        (cancelled, their messages `failed`)."""
        counts = {"messages_anonymised": 0, "thread_ids": 0, "links": 0, "outbox_cancelled": 0}
        for part in chunked(conv_ids):
            args = (tenant_id, *part)
            ids = _in(part, 2)
            rows = await conn.fetch(
                f"UPDATE messages SET text = '', attachments = '[]', external_id = NULL WHERE tenant_id = $1 AND "
                f"author_type IN ('contact', 'note') AND conversation_id IN ({ids}) RETURNING id", *args)
            counts["messages_anonymised"] += len(rows)
            await conn.execute(f"UPDATE messages SET delivery_error = NULL WHERE tenant_id = $1 AND conversation_id "
                               f"IN ({ids}) AND delivery_error IS NOT NULL", *args)
            # the conversations' uploads (agents' files too) are deleted: no message refers to them any more
            await conn.execute(f"UPDATE messages SET attachments = '[]' WHERE tenant_id = $1 AND conversation_id "
                               f"IN ({ids}) AND attachments <> '[]'", *args)
            await conn.execute(f"UPDATE conversations SET external_thread_id = NULL, subject = NULL"
                               f" WHERE tenant_id = $1 AND id IN ({ids})", *args)
            if "calls" in tables:
                await conn.execute(f"UPDATE calls SET recording_id = NULL WHERE tenant_id = $1 AND conversation_id "
                                   f"IN ({ids})", *args)
            if "connector_links" in tables:
                rows = await conn.fetch(
                    f"UPDATE connector_links SET recipient_id = '', meta = '{{}}' WHERE tenant_id = $1 AND "
                    f"conversation_id IN ({ids}) RETURNING conversation_id", *args)
                counts["links"] += len(rows)
            if "email_message_ids" in tables:
                rows = await conn.fetch(f"DELETE FROM email_message_ids WHERE tenant_id = $1 AND conversation_id IN "
                                        f"({ids}) RETURNING message_id", *args)
                counts["thread_ids"] += len(rows)
            if "connector_outbox" in tables:
                pending = await conn.fetch(
                    f"UPDATE connector_outbox SET state = 'failed', lease_until = NULL, last_error = $2 "
                    f"WHERE tenant_id = $1 AND state IN ('queued', 'sending') AND conversation_id IN "
                    f"({_in(part, 3)}) RETURNING message_id", tenant_id, ERASED_ERROR, *part)
                counts["outbox_cancelled"] += len(pending)
                for r in pending:
                    await conn.execute("UPDATE messages SET delivery_state = 'failed', delivery_error = $3 "
                                       "WHERE tenant_id = $1 AND id = $2", tenant_id, r["message_id"], ERASED_ERROR)
                await conn.execute(
                    f"UPDATE connector_outbox SET external_id = NULL, last_error = CASE WHEN state = 'failed' "
                    f"AND last_error = $2 THEN last_error ELSE NULL END WHERE tenant_id = $1 AND conversation_id IN "
                    f"({_in(part, 3)})", tenant_id, ERASED_ERROR, *part)
        return counts

    async def _forget_in_checkpoints(self, conn: Conn, tenant_id: str, conv_ids: list[str]) -> int:
        """Remove the contact's comment and thread ids from the tenant's YouTube polling
        checkpoints (tracked threads are polled no more); how many ids went."""
        ids: set[str] = set()
        for part in chunked(conv_ids):
            for r in await conn.fetch(f"SELECT external_thread_id FROM conversations WHERE tenant_id = $1 AND "
                                      f"channel = 'youtube' AND id IN ({_in(part, 2)}) AND external_thread_id IS NOT "
                                      "NULL", tenant_id, *part):
                ids.add(str(r["external_thread_id"]))
            for r in await conn.fetch(f"SELECT m.external_id FROM messages m JOIN conversations c ON c.tenant_id = "
                                      f"m.tenant_id AND c.id = m.conversation_id WHERE m.tenant_id = $1 AND "
                                      f"c.channel = 'youtube' AND m.conversation_id IN ({_in(part, 2)}) AND "
                                      "m.external_id IS NOT NULL", tenant_id, *part):
                ids.add(str(r["external_id"]))
        if not ids:
            return 0
        removed = 0
        for r in await conn.fetch("SELECT source, state FROM youtube_checkpoints WHERE tenant_id = $1", tenant_id):
            try:
                state = json.loads(str(r["state"]))
            except ValueError:
                continue
            if not isinstance(state, dict):
                continue
            seen = state.get("seen")
            threads = state.get("threads")
            n = 0
            if isinstance(seen, list):
                kept = [s for s in seen if s not in ids]
                n += len(seen) - len(kept)
                state["seen"] = kept
            if isinstance(threads, dict):
                kept_threads = {k: v for k, v in threads.items() if k not in ids}
                n += len(threads) - len(kept_threads)
                state["threads"] = kept_threads
            if n:
                removed += n
                await conn.execute("UPDATE youtube_checkpoints SET state = $3 WHERE tenant_id = $1 AND source = $2",
                                   tenant_id, r["source"], json.dumps(state, separators=(",", ":")))
        return removed

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
                    await conn.execute(f"DELETE FROM {quote_ident(t)} WHERE tenant_id = $1 AND conversation_id IN "
                                       f"({_in(part, 2)})", tenant_id, *part)
            await conn.execute(f"DELETE FROM conversations WHERE tenant_id = $1 AND id IN ({_in(part, 2)})",
                               tenant_id, *part)
        return messages
