"""The desk's tables (migration 0016_desk.sql): the `CannedResponseRepository` and
`LabelRepository` protocols and their SQL implementation `DeskStore` (contract suite:
tests/contract/test_desk_repository.py). Every method is scoped to the tenant: another
tenant's rows are neither seen nor changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.db import Database
from gateway.store.rows import Params
from gateway.store.sql import chunked


@dataclass(frozen=True, slots=True)
class CannedResponse:
    id: str
    tenant_id: str
    shortcut: str  # typed as "/shortcut" in the composer; unique per tenant
    text: str
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "shortcut": self.shortcut, "text": self.text,
                "created_at": self.created_at, "updated_at": self.updated_at}


def _canned(row: Any) -> CannedResponse:
    return CannedResponse(id=row["id"], tenant_id=row["tenant_id"], shortcut=row["shortcut"], text=row["text"],
                          created_at=float(row["created_at"]), updated_at=float(row["updated_at"]))


class CannedResponseRepository(Protocol):
    """A tenant's canned responses."""

    async def add_canned(self, c: CannedResponse) -> None:
        """Store a new one; `gateway.store.sql.Conflict` when its id or its tenant's shortcut is taken."""

    async def list_canned(self, tenant_id: str) -> list[CannedResponse]:
        """The tenant's canned responses, by shortcut."""

    async def get_canned(self, tenant_id: str, canned_id: str) -> CannedResponse | None:
        """The tenant's canned response, or None."""

    async def update_canned(self, tenant_id: str, canned_id: str, *, shortcut: str | None, text: str | None,
                            now: float) -> CannedResponse | None:
        """Change the given fields (None: unchanged) and `updated_at`; the updated row, or
        None when the tenant has no such response. `Conflict` when the shortcut is taken."""

    async def delete_canned(self, tenant_id: str, canned_id: str) -> bool:
        """Delete it; False when the tenant had no such response."""


class LabelRepository(Protocol):
    """Labels on a tenant's conversations: names, each at most once per conversation."""

    async def add_label(self, tenant_id: str, conversation_id: str, label: str, *, now: float) -> bool:
        """Put `label` on the tenant's conversation; False when the conversation is not the
        tenant's (nothing stored). Adding a label it already has changes nothing (True)."""

    async def remove_label(self, tenant_id: str, conversation_id: str, label: str) -> None:
        """Take `label` off the conversation (nothing when it does not have it)."""

    async def labels_of(self, tenant_id: str, conversation_ids: Sequence[str]) -> dict[str, list[str]]:
        """conversation id → its labels, sorted by code point; every requested id is present ([] when none)."""

    async def tenant_labels(self, tenant_id: str) -> list[str]:
        """Every label in use on the tenant's conversations, sorted by code point, once each."""

    async def labelled(self, tenant_id: str, label: str, *, limit: int) -> list[str]:
        """Ids of the tenant's conversations carrying `label`, the most recently updated first."""


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    kind: str  # "visitor", "external" (a verified widget identity) or a channel: "email", "zalo", …
    value: str


class ContactIdentities(Protocol):
    """The channel identities by which a tenant's contact is known (the core's
    `contact_identities`, written when a visitor or a channel's author is first seen)."""

    async def identities_of(self, tenant_id: str, contact_id: str) -> list[Identity]:
        """The contact's identities, by kind then value; [] for another tenant's or an unknown contact."""


class DeskStore:
    """`CannedResponseRepository`, `LabelRepository` and `ContactIdentities` on the SQL `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- canned responses --------------------------------------------------
    async def add_canned(self, c: CannedResponse) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO canned_responses (id, tenant_id, shortcut, text, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                c.id, c.tenant_id, c.shortcut, c.text, c.created_at, c.updated_at,
            )

    async def list_canned(self, tenant_id: str) -> list[CannedResponse]:
        async with self.db.reader() as conn:
            rows = await conn.fetch("SELECT * FROM canned_responses WHERE tenant_id = $1 ORDER BY shortcut",
                                    tenant_id)
        return [_canned(r) for r in rows]

    async def get_canned(self, tenant_id: str, canned_id: str) -> CannedResponse | None:
        async with self.db.reader() as conn:
            row = await conn.fetchrow("SELECT * FROM canned_responses WHERE tenant_id = $1 AND id = $2",
                                      tenant_id, canned_id)
        return None if row is None else _canned(row)

    async def update_canned(self, tenant_id: str, canned_id: str, *, shortcut: str | None, text: str | None,
                            now: float) -> CannedResponse | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE canned_responses SET shortcut = COALESCE($3, shortcut), text = COALESCE($4, text),"
                " updated_at = $5 WHERE tenant_id = $1 AND id = $2 RETURNING *",
                tenant_id, canned_id, shortcut, text, now,
            )
        return None if row is None else _canned(row)

    async def delete_canned(self, tenant_id: str, canned_id: str) -> bool:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow("DELETE FROM canned_responses WHERE tenant_id = $1 AND id = $2 RETURNING id",
                                      tenant_id, canned_id)
        return row is not None

    # --- labels ------------------------------------------------------------
    async def add_label(self, tenant_id: str, conversation_id: str, label: str, *, now: float) -> bool:
        async with self.db.transaction() as conn:
            found = await conn.fetchrow("SELECT id FROM conversations WHERE tenant_id = $1 AND id = $2",
                                        tenant_id, conversation_id)
            if found is None:
                return False
            await conn.execute(
                "INSERT INTO conversation_labels (tenant_id, conversation_id, label, created_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, conversation_id, label) DO NOTHING",
                tenant_id, conversation_id, label, now,
            )
        return True

    async def remove_label(self, tenant_id: str, conversation_id: str, label: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM conversation_labels WHERE tenant_id = $1 AND conversation_id = $2 AND label = $3",
                tenant_id, conversation_id, label,
            )

    async def labels_of(self, tenant_id: str, conversation_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c: [] for c in conversation_ids}
        async with self.db.reader() as conn:
            for ids in chunked(sorted(set(conversation_ids))):
                p = Params(tenant_id)
                rows = await conn.fetch(
                    "SELECT conversation_id, label FROM conversation_labels WHERE tenant_id = $1"
                    f" AND conversation_id IN ({p.add_all(ids)})",
                    *p.values,
                )
                for r in rows:
                    out[str(r["conversation_id"])].append(str(r["label"]))
        return {c: sorted(labels) for c, labels in out.items()}  # code point order, whatever the collation

    async def tenant_labels(self, tenant_id: str) -> list[str]:
        async with self.db.reader() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT label FROM conversation_labels WHERE tenant_id = $1", tenant_id)
        return sorted(str(r["label"]) for r in rows)

    async def labelled(self, tenant_id: str, label: str, *, limit: int) -> list[str]:
        async with self.db.reader() as conn:
            rows = await conn.fetch(
                "SELECT c.id FROM conversation_labels l JOIN conversations c"
                " ON c.tenant_id = l.tenant_id AND c.id = l.conversation_id"
                " WHERE l.tenant_id = $1 AND l.label = $2 ORDER BY c.updated_at DESC, c.id LIMIT $3",
                tenant_id, label, limit,
            )
        return [str(r["id"]) for r in rows]

    # --- contact identities ------------------------------------------------
    async def identities_of(self, tenant_id: str, contact_id: str) -> list[Identity]:
        async with self.db.reader() as conn:
            rows = await conn.fetch("SELECT kind, value FROM contact_identities WHERE tenant_id = $1"
                                    " AND contact_id = $2", tenant_id, contact_id)
        return sorted(Identity(str(r["kind"]), str(r["value"])) for r in rows)
