"""Search use case: validate a query, run it on the repository, shape the page.

`Search.run(tenant_id, payload)` serves both the `/agent` namespace's `search` event and
`GET /api/v1/search` (the same payload keys: `q`, `kind`, `limit`, `cursor`), so their
validation and answers are one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.chat.wire import contact_dict
from gateway.core.errors import bad_request
from gateway.core.validation import opt_int, opt_str, req_str
from gateway.search.fold import highlight, query_terms
from gateway.search.store import Cursor, SearchRepository

KINDS = ("messages", "contacts")
MAX_QUERY_CHARS = 200
MAX_LIMIT = 50
DEFAULT_LIMIT = 20


def encode_cursor(created_at: float, row_id: str) -> str:
    return f"{created_at!r}~{row_id}"


def decode_cursor(raw: str) -> Cursor:
    """The (created_at, id) of a `next_cursor`; `bad_request` for anything else."""
    at, sep, row_id = raw.partition("~")
    try:
        when = float(at)
    except ValueError:
        when = math.nan
    if not sep or not math.isfinite(when) or not row_id.isalnum() or len(row_id) > 64:
        raise bad_request("'cursor' is not a cursor of this search", field="cursor")
    return when, row_id


class Search:
    """Agent-only search over a tenant's messages and contacts (`SearchRepository`)."""

    def __init__(self, repo: SearchRepository) -> None:
        self.repo = repo

    async def run(self, tenant_id: str, p: Mapping[str, Any]) -> dict[str, Any]:
        """The page `{"ok", "kind", "results", "next_cursor"}` of the query in payload `p`.
        A query without a letter or digit answers an empty page."""
        query = req_str(p, "q", max_len=MAX_QUERY_CHARS)
        kind = opt_str(p, "kind", max_len=16) or "messages"
        if kind not in KINDS:
            raise bad_request(f"'kind' must be one of {', '.join(KINDS)}", field="kind")
        limit = opt_int(p, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)
        raw_cursor = opt_str(p, "cursor", max_len=100)
        after = None if raw_cursor is None else decode_cursor(raw_cursor)
        terms = query_terms(query)
        results: list[dict[str, Any]] = []
        last: Cursor | None = None
        if kind == "messages":
            hits = await self.repo.search_messages(tenant_id, terms, limit=limit, after=after)
            for h in hits:
                results.append({"id": h.id, "conversation_id": h.conversation_id, "seq": h.seq,
                                "author_type": h.author_type.value, "author_id": h.author_id,
                                "created_at": h.created_at, "contact_id": h.contact_id,
                                "contact_name": h.contact_name, "snippet": highlight(h.text, terms)})
            last = (hits[-1].created_at, hits[-1].id) if hits else None
        else:
            contacts = await self.repo.search_contacts(tenant_id, terms, limit=limit, after=after)
            for c in contacts:
                marked = {k: highlight(v, terms) for k, v in (("name", c.name), ("email", c.email),
                                                              ("phone", c.phone)) if v}
                results.append({**contact_dict(c), "highlight": marked})
            last = (contacts[-1].created_at, contacts[-1].id) if contacts else None
        full = len(results) == limit and last is not None
        return {"ok": True, "kind": kind, "results": results,
                "next_cursor": encode_cursor(*last) if full and last else None}
