"""Folding, query terms and highlighted snippets for search, the same on both stores.

A text is *folded* by lower-casing it and taking every letter to its base without
diacritics (NFD, combining marks dropped), and ``đ``/``Đ`` (which Unicode does not
decompose) to ``d``: "Hà Nội" and "ha noi" fold alike. A *term* is a run of letters and
digits of the folded query; everything else separates terms. The engines fold stored
text the same way: SQLite's FTS5 tokenizer ``unicode61 remove_diacritics 2`` (fed ``d``
for ``đ``), PostgreSQL's ``izh_fold`` (migration 0013: ``unaccent``, and the punctuation
its parser keeps inside words as spaces). Both agree with `fold` on every Vietnamese
letter (tests/contract/test_search_repository.py); ``unaccent`` also expands a few
letters `fold` keeps (æ, ß, ø).
"""

from __future__ import annotations

import html
import re
import unicodedata

MAX_TERMS = 8
MAX_TERM_CHARS = 64
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """`text` lower-cased, without diacritics, đ/Đ as d."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def query_terms(query: str) -> list[str]:
    """The folded terms of a search query (at most `MAX_TERMS`, each cut to `MAX_TERM_CHARS`)."""
    return [t[:MAX_TERM_CHARS] for t in _WORD.findall(fold(query))[:MAX_TERMS]]


def matches(word: str, terms: list[str]) -> bool:
    """Whether a word of a stored text matches the query: equal to a term once folded, or
    starting with the last term (a prefix: the query is typed as it is searched)."""
    folded = fold(word)
    return bool(terms) and (folded in terms or folded.startswith(terms[-1]))


def highlight(text: str, terms: list[str], *, width: int = 160) -> str:
    """A snippet of `text` around its first matching word, at most about `width`
    characters, HTML-escaped, each matching word wrapped in ``<mark>…</mark>``; cut ends
    shown as ``…``. The whole text (escaped, marked) when no word matches within it."""
    words = [m for m in _WORD.finditer(text) if matches(m.group(), terms)]
    start, end = 0, len(text)
    if len(text) > width:
        first = words[0].start() if words else 0
        start = max(0, min(first - width // 4, len(text) - width))
        end = start + width
    out: list[str] = ["…"] if start > 0 else []
    pos = start
    for m in words:
        if m.start() < start or m.end() > end:
            continue
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<mark>{html.escape(m.group())}</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:end]))
    if end < len(text):
        out.append("…")
    return "".join(out)

