"""Pure email helpers: Message-ID lists, reply addresses, quote stripping, body text.

Wire reference: /work/shared/channels/email.md (RFC 5322 §3.6.4 threading headers).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from email.message import EmailMessage, Message
from email.utils import getaddresses

_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_REPLY_RE = re.compile(r"^reply\+([0-9a-f]{32})\.([0-9a-f]{16})@([^@\s]+)$", re.IGNORECASE)
_SUBJECT_PREFIX_RE = re.compile(r"^\s*((re|aw|sv|tr|fw|fwd)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)

# Lines that start the quoted history of a reply (first match cuts everything after it).
_ATTRIBUTION_RES = (
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE | re.DOTALL),  # Gmail, Apple Mail, Thunderbird
    re.compile(r"^\s*Vào\b.{0,300}\bđã viết:\s*$", re.IGNORECASE | re.DOTALL),  # Gmail in Vietnamese
    re.compile(r"^\s*Le\b.{0,300}\ba écrit\s*:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*Am\b.{0,300}\bschrieb\b.{0,200}:\s*$", re.IGNORECASE | re.DOTALL),
)
_SEPARATOR_RES = (
    re.compile(r"^\s*-{2,}\s*(Original Message|Tin nhắn gốc|Thư gốc)\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above "From: ... Sent: ..."
    re.compile(r"^\s*(From|Từ):\s.+$"),  # Outlook header block without the rule (only after a blank line)
)
_SIGNATURE = "-- "


def message_ids(value: str | None) -> list[str]:
    """The `<id>` tokens of a Message-ID / In-Reply-To / References value, without brackets,
    in order, de-duplicated. (policy.default leaves the last two unstructured, gh-100991.)"""
    if not value:
        return []
    seen: dict[str, None] = {}
    for m in _MSGID_RE.finditer(str(value)):
        seen.setdefault(m.group(1), None)
    return list(seen)


def thread_ids(msg: Message) -> list[str]:
    """In-Reply-To first, then References from the newest to the oldest."""
    ids = message_ids(msg.get("In-Reply-To")) + list(reversed(message_ids(msg.get("References"))))
    return list(dict.fromkeys(ids))


def root_id(msg: Message) -> str | None:
    refs = message_ids(msg.get("References"))
    if refs:
        return refs[0]
    irt = message_ids(msg.get("In-Reply-To"))
    return irt[0] if irt else None


def reply_token(key: bytes, conversation_id: str) -> str:
    return hmac.new(key, conversation_id.encode(), hashlib.sha256).hexdigest()[:16]


def reply_address(key: bytes, conversation_id: str, domain: str) -> str:
    return f"reply+{conversation_id}.{reply_token(key, conversation_id)}@{domain}"


def parse_reply_address(key: bytes, address: str) -> str | None:
    """The conversation id of a valid `reply+<conversation_id>.<hmac>@domain`, else None."""
    m = _REPLY_RE.match(address.strip())
    if m is None:
        return None
    conv_id, mac = m.group(1).lower(), m.group(2).lower()
    return conv_id if hmac.compare_digest(mac, reply_token(key, conv_id)) else None


def normalize_subject(subject: str | None) -> str:
    return _SUBJECT_PREFIX_RE.sub("", subject or "").strip()


def reply_subject(subject: str | None) -> str:
    base = normalize_subject(subject)
    return f"Re: {base}" if base else "Re: your message"


def strip_quotes(text: str) -> str:
    """The new part of a plain-text reply: cut at the quoted history ("On … wrote:",
    "Vào … đã viết:", Outlook separators), drop `>` quoted lines and the signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        if not line or line.isspace():  # matches none of the patterns below (the text is stripped at the end)
            out.append(line)
            continue
        if line == _SIGNATURE or line.rstrip() == "--":
            break
        two = line + " " + lines[i + 1] if i + 1 < len(lines) else line
        if any(r.match(line) or r.match(two) for r in _ATTRIBUTION_RES):  # attribution may wrap once
            break
        if any(r.match(line) for r in _SEPARATOR_RES[:2]):
            break
        if _SEPARATOR_RES[2].match(line) and (not out or not out[-1].strip()) and _outlook_block(lines, i):
            break
        if line.lstrip().startswith(">"):
            continue
        out.append(line)
    return "\n".join(out).strip()


def _outlook_block(lines: list[str], i: int) -> bool:
    window = " ".join(lines[i : i + 5]).lower()
    return ("sent:" in window or "gửi:" in window or "date:" in window) and ("to:" in window or "đến:" in window)


def _drop_elements(s: str, name: str) -> str:
    """`s` without each `<name …>…</name>` (to the first closing tag after it; an element
    that is never closed is kept). Linear: every search starts where the last one ended."""
    start = re.compile(rf"<{name}\b", re.IGNORECASE)
    end = re.compile(rf"</{name}\s*>", re.IGNORECASE)
    out: list[str] = []
    pos = 0
    while (m := start.search(s, pos)) is not None:
        e = end.search(s, m.end())
        if e is None:  # no later element can be closed either
            break
        out.append(s[pos:m.start()])
        pos = e.end()
    out.append(s[pos:])
    return "".join(out)


class _TextExtractor:
    """HTML → text in one pass over the tags, with patterns whose work is linear in the
    markup's size (hostile mail reaches this before anyone is authenticated): a tag
    pattern stops at the next `<`, so no failed match rescans the rest of the markup.

    Block elements (paragraphs, divisions, headings, list items, table rows, line breaks)
    end a line, list items start with "- ", table cells are separated by a tab, and a link
    whose text is not its target keeps the target: `text (https://…)`.
    """

    _GMAIL_QUOTE = re.compile(r"<div[^<>]*class=\"?gmail_quote.*", re.IGNORECASE | re.DOTALL)
    _TAG = re.compile(r"<[^<>]+>")
    _NAME = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9]*)")
    _HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)
    _PARAGRAPHS = frozenset({"p", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr",
                             "section", "article", "header", "footer", "address", "center"})
    _LINES = frozenset({"div", "br", "tr"})
    _CELLS = frozenset({"td", "th"})
    _LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")

    @classmethod
    def text(cls, markup: str) -> str:
        s = markup
        for name in ("script", "style", "head"):
            s = _drop_elements(s, name)
        s = cls._GMAIL_QUOTE.sub("", s, count=1)
        s = _drop_elements(s, "blockquote")
        out = _Out()
        pos = 0
        href: str | None = None  # the target of the link being read
        link_start = 0  # where its text begins in `out.parts`
        for m in cls._TAG.finditer(s):
            out.text(html.unescape(s[pos:m.start()]))
            pos = m.end()
            tag = m.group(0)
            n = cls._NAME.match(tag)
            if n is None:
                continue
            closing, name = n.group(1) == "/", n.group(2).lower()
            if name in cls._PARAGRAPHS:
                out.end_line(2)
            elif name == "br":
                out.line_break()
            elif name in cls._LINES:
                out.end_line(1)
            elif name == "li":
                out.end_line(1)
                if not closing:
                    out.text("- ")
            elif name in cls._CELLS and closing:
                out.text("\t")
            elif name == "a" and not closing:
                h = cls._HREF.search(tag)
                target = html.unescape(next((g for g in h.groups() if g is not None), "")).strip() if h else ""
                href = target if target.lower().startswith(cls._LINK_SCHEMES) else None
                link_start = len(out.parts)
            elif name == "a" and href is not None:
                shown = "".join(out.parts[link_start:]).strip()
                bare = href[len("mailto:"):] if href.lower().startswith("mailto:") else href
                if shown and shown not in (href, bare):
                    out.text(f" ({href})")
                elif not shown:
                    out.text(bare)
                href = None
        out.text(html.unescape(s[pos:]))
        text = "\n".join(line.strip(" \t") for line in "".join(out.parts).split("\n"))
        return re.sub(r"\n{3,}", "\n\n", text).strip()


class _Out:
    """The text being written, and how many newlines it ends with (-1: nothing yet)."""

    __slots__ = ("nl", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.nl = -1

    def text(self, t: str) -> None:
        if not t:
            return
        self.parts.append(t)
        body = t.rstrip(" \t")
        if body:
            self.nl = len(body) - len(body.rstrip("\n"))

    def end_line(self, n: int) -> None:
        """End with at least `n` newlines (a line, or a blank line); nothing at the start."""
        if 0 <= self.nl < n:
            self.parts.append("\n" * (n - self.nl))
            self.nl = n

    def line_break(self) -> None:
        self.parts.append("\n")
        self.nl = max(self.nl, 0) + 1


def html_to_text(markup: str) -> str:
    return _TextExtractor.text(markup)


def body_text(msg: EmailMessage, limit: int | None = None) -> str:
    """The plain text of the mail (HTML converted when there is no text/plain part); with
    `limit`, of its first `limit` characters only."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None or not isinstance(part, EmailMessage):
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeDecodeError):
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
    text = str(content)[:limit]
    return html_to_text(text) if part.get_content_type() == "text/html" else text


def is_automatic(msg: Message) -> bool:
    """RFC 3834 auto-replies, bounces and list traffic (stored, never auto-answered)."""
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return True
    if (msg.get("X-Autoreply") or "").strip().lower() == "yes":
        return True
    if (msg.get("Precedence") or "").strip().lower() in ("bulk", "list", "junk", "auto_reply"):
        return True
    if msg.get("X-Failed-Recipients") or msg.get("List-Id"):
        return True
    return msg.get_content_type() == "multipart/report"


def first_address(value: str | None) -> tuple[str, str] | None:
    """(display name, lower-cased address) of the first address of a header value."""
    if not value:
        return None
    for name, addr in getaddresses([str(value)]):
        if addr and "@" in addr:
            return name, addr.strip().lower()
    return None
