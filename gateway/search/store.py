"""The search repository: `SearchRepository` and its SQL implementation `SearchStore`,
one engine per dialect (migration 0013: FTS5 tables on SQLite, GIN indexes on
PostgreSQL; 0019: SQLite indexes messages off the append transaction, from a queue).
Contract suite: tests/contract/test_search_repository.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.core.domain import AuthorType, Contact
from gateway.store.db import Database
from gateway.store.rows import Row, contact_from_row, member

INDEX_BATCH = 100
"""SQLite: queued messages indexed per transaction by `SearchStore.catch_up` (~1.5 ms of
the loop each; the loop turns between two)."""
RECENT_WINDOW = 50_000
"""PostgreSQL: how many of a tenant's newest messages a search tests one by one before it
asks the GIN index (docs/performance.md, "Search")."""
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

    async def catch_up(self) -> int:
        """Index what was stored since the last call, in transactions of a bounded size;
        returns how many stored messages it took up (an erased one is taken up and left
        out; 0 where the engine indexes within the write, as PostgreSQL does). A search
        catches up first by itself; calling this in the background keeps that step short."""


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
    GIN expression indexes on PostgreSQL. On SQLite a stored message waits in
    ``message_search_queue`` until `catch_up` indexes it (every search does first)."""

    def __init__(self, db: Database, *, sqlite: bool, recent_window: int = RECENT_WINDOW,
                 index_batch: int = INDEX_BATCH) -> None:
        self.db = db
        self.sqlite = sqlite
        self.recent_window = recent_window
        self.index_batch = index_batch

    async def catch_up(self) -> int:
        done = 0
        while self.sqlite:
            n = await self._index_batch()
            done += n
            if n < self.index_batch:
                break
            await asyncio.sleep(0)  # one transaction a turn: the loop serves others between
        return done

    async def _index_batch(self) -> int:
        """One transaction: the first `index_batch` queued messages (by id) into the FTS5
        table (those with text: an erased one is left out), then off the queue."""
        batch = f"SELECT message_id FROM message_search_queue ORDER BY message_id LIMIT {int(self.index_batch)}"
        async with self.db.transaction() as conn:
            n = len(await conn.fetch(batch))
            if n:
                await conn.execute(
                    "INSERT INTO message_search (body, tenant_ref, row_ref)"
                    " SELECT replace(replace(m.text, 'đ', 'd'), 'Đ', 'D'), m.tenant_id, m.id"
                    f" FROM ({batch}) q JOIN messages m ON m.id = q.message_id WHERE m.text <> ''")
                await conn.execute(f"DELETE FROM message_search_queue WHERE message_id IN ({batch})")
        return n

    async def search_messages(self, tenant_id: str, terms: list[str], *, limit: int,
                              after: Cursor | None = None) -> list[MessageHit]:
        await self.catch_up()  # SQLite: what is still queued (nothing on PostgreSQL)
        if not self.sqlite and terms and tenant_id.isalnum():
            # the tenant's newest `recent_window` messages first, each tested on its stored
            # words: the page of common words (and of words that come together, which the
            # planner takes for rare) is found there at once; only when they hold fewer than
            # `limit` hits is the query asked of the whole table
            recent = await self._search(
                tenant_id, terms, limit, after, "m",
                "", f"SELECT {_MESSAGE_FIELDS} FROM (SELECT m.id, m.tenant_id, m.conversation_id, m.seq,"
                " m.author_type, m.author_id, m.text, m.created_at, m.search_tsv FROM messages m"
                " WHERE m.tenant_id = $1{page}"
                f" ORDER BY m.created_at DESC, m.id DESC LIMIT {int(self.recent_window)}) m{_MESSAGE_JOINS}"
                " WHERE m.search_tsv @@ to_tsquery('simple'::regconfig, $2)")
            if len(recent) >= limit:
                return [_hit(r) for r in recent]
        rows = await self._search(
            tenant_id, terms, limit, after, "m",
            f"SELECT {_MESSAGE_FIELDS} FROM message_search s JOIN messages m ON m.id = s.row_ref{_MESSAGE_JOINS}"
            " WHERE s.message_search MATCH $2 AND m.tenant_id = $1{page}",
            # the planner's choice: the GIN index's matches sorted, or (words it believes
            # common) a walk of the tenant's messages from the newest
            f"SELECT {_MESSAGE_FIELDS} FROM messages m{_MESSAGE_JOINS} WHERE m.tenant_id = $1"
            " AND m.search_tsv @@ to_tsquery('simple'::regconfig, $2){page}")
        return [_hit(r) for r in rows]

    async def search_contacts(self, tenant_id: str, terms: list[str], *, limit: int,
                              after: Cursor | None = None) -> list[Contact]:
        rows = await self._search(
            tenant_id, terms, limit, after, "k",
            "SELECT k.* FROM contact_search s JOIN contacts k ON k.id = s.row_ref"
            " WHERE s.contact_search MATCH $2 AND k.tenant_id = $1{page}",
            "SELECT k.* FROM contacts k WHERE k.tenant_id = $1 AND to_tsvector('simple'::regconfig,"
            " izh_contact_doc(k.name, k.email, k.phone)) @@ to_tsquery('simple'::regconfig, $2){page}")
        return [contact_from_row(r) for r in rows]

    async def _search(self, tenant_id: str, terms: list[str], limit: int, after: Cursor | None, alias: str,
                      fts5_sql: str, pg_sql: str) -> Sequence[Row]:
        """The rows of `fts5_sql` (SQLite) or `pg_sql` ($1 the tenant, $2 the engine's query,
        ``{page}`` where the condition after `after` goes; `alias` the table paged on),
        newest first, after `after`."""
        if not terms or not tenant_id.isalnum():  # ids are hex: a tenant token of the FTS query
            return []
        at, row_id = f"{alias}.created_at", f"{alias}.id"
        page = "" if after is None else f" AND ({at} < $3 OR ({at} = $3 AND {row_id} < $4))"
        args = [] if after is None else [after[0], after[1]]
        if self.sqlite:
            match, sql = f'tenant_ref : "{tenant_id}" AND {fts5_query(terms)}', fts5_sql
        else:
            match, sql = tsquery(terms), pg_sql
        sql = sql.replace("{page}", page) + f" ORDER BY {at} DESC, {row_id} DESC LIMIT {int(limit)}"
        async with self.db.reader() as conn:
            return await conn.fetch(sql, tenant_id, match, *args)
