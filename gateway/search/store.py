"""The search repository: `SearchRepository` and its SQL implementation `SearchStore`,
one engine per dialect (migration 0013: FTS5 tables on SQLite, GIN indexes on
PostgreSQL). Contract suite: tests/contract/test_search_repository.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.core.domain import AuthorType, Contact
from gateway.store.db import Database
from gateway.store.rows import Row, contact_from_row, member

Cursor = tuple[float, str]
"""A page's end: (created_at, id) of its last row; the next page is what sorts after it."""


@dataclass(frozen=True, slots=True)
class MessageHit:
    id: str
    conversation_id: str
    seq: int
    author_type: AuthorType
    author_id: str | None
    text: str
    created_at: float
    contact_id: str
    contact_name: str | None


class SearchRepository(Protocol):
    """Full-text search of one tenant's messages and contacts. `terms` are folded query
    terms (`gateway.search.fold.query_terms`, at least one): a row matches when its folded
    text has every term as a word, the last one as a word's prefix. Results are newest
    first (created_at, then id, descending); `after` is the previous page's last row. Rows
    of other tenants never match; a message without text (erased) never matches; what an
    edit, an erasure or a deletion changed is found as it is now, at once."""

    async def search_messages(self, tenant_id: str, terms: list[str], *, limit: int,
                              after: Cursor | None = None) -> list[MessageHit]: ...

    async def search_contacts(self, tenant_id: str, terms: list[str], *, limit: int,
                              after: Cursor | None = None) -> list[Contact]:
        """Matched against the contact's name, e-mail and phone (also the phone's digits
        alone: "0912 345" is found by 0912345)."""


def fts5_query(terms: list[str]) -> str:
    """The FTS5 query of folded terms (each quoted: terms are letters and digits only)."""
    phrases = [f'"{t}"' for t in terms]
    phrases[-1] += "*"
    return f"body : ({' AND '.join(phrases)})"


def tsquery(terms: list[str]) -> str:
    """The PostgreSQL tsquery text of folded terms."""
    return " & ".join([*terms[:-1], f"{terms[-1]}:*"])


def _hit(r: Row) -> MessageHit:
    return MessageHit(id=r["id"], conversation_id=r["conversation_id"], seq=int(r["seq"]),
                      author_type=member(AuthorType, r["author_type"]), author_id=r["author_id"],
                      text=r["text"], created_at=float(r["created_at"]), contact_id=r["contact_id"],
                      contact_name=r["contact_name"])


_MESSAGE_FIELDS = ("m.id, m.conversation_id, m.seq, m.author_type, m.author_id, m.text, m.created_at,"
                   " c.contact_id, k.name AS contact_name")
_MESSAGE_JOINS = (" JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id"
                  " LEFT JOIN contacts k ON k.tenant_id = c.tenant_id AND k.id = c.contact_id")


class SearchStore:
    """`SearchRepository` in SQL: FTS5 ``MATCH`` on SQLite (`sqlite=True`), ``@@`` over the
    GIN expression indexes on PostgreSQL."""

    def __init__(self, db: Database, *, sqlite: bool) -> None:
        self.db = db
        self.sqlite = sqlite

    async def search_messages(self, tenant_id: str, terms: list[str], *, limit: int,
                              after: Cursor | None = None) -> list[MessageHit]:
        rows = await self._search(
            tenant_id, terms, limit, after, "m",
            f"SELECT {_MESSAGE_FIELDS} FROM message_search s JOIN messages m ON m.id = s.row_ref{_MESSAGE_JOINS}"
            " WHERE s.message_search MATCH $2 AND m.tenant_id = $1",
            f"SELECT {_MESSAGE_FIELDS} FROM messages m{_MESSAGE_JOINS} WHERE m.tenant_id = $1"
            " AND to_tsvector('simple'::regconfig, izh_fold(m.text)) @@ to_tsquery('simple'::regconfig, $2)")
        return [_hit(r) for r in rows]

    async def search_contacts(self, tenant_id: str, terms: list[str], *, limit: int,
                              after: Cursor | None = None) -> list[Contact]:
        rows = await self._search(
            tenant_id, terms, limit, after, "k",
            "SELECT k.* FROM contact_search s JOIN contacts k ON k.id = s.row_ref"
            " WHERE s.contact_search MATCH $2 AND k.tenant_id = $1",
            "SELECT k.* FROM contacts k WHERE k.tenant_id = $1 AND to_tsvector('simple'::regconfig,"
            " izh_contact_doc(k.name, k.email, k.phone)) @@ to_tsquery('simple'::regconfig, $2)")
        return [contact_from_row(r) for r in rows]

    async def _search(self, tenant_id: str, terms: list[str], limit: int, after: Cursor | None, alias: str,
                      fts5_sql: str, pg_sql: str) -> Sequence[Row]:
        """The rows of `fts5_sql` (SQLite) or `pg_sql` ($1 the tenant, $2 the engine's query;
        `alias` the table paged on), newest first, after `after`."""
        if not terms or not tenant_id.isalnum():  # ids are hex: a tenant token of the FTS query
            return []
        at, row_id = f"{alias}.created_at", f"{alias}.id"
        page = "" if after is None else f" AND ({at} < $3 OR ({at} = $3 AND {row_id} < $4))"
        args = [] if after is None else [after[0], after[1]]
        if self.sqlite:
            match, sql = f'tenant_ref : "{tenant_id}" AND {fts5_query(terms)}', fts5_sql
        else:
            match, sql = tsquery(terms), pg_sql
        sql += f"{page} ORDER BY {at} DESC, {row_id} DESC LIMIT {int(limit)}"
        async with self.db.reader() as conn:
            return await conn.fetch(sql, tenant_id, match, *args)
