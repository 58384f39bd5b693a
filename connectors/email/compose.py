"""The HTML part of an outbound mail, made from the agent's plain text.

An agent writes plain text; the reply goes out as `multipart/alternative`: that text as
`text/plain` (what text-only clients and the quoting of replies use) and the same text as
`text/html`, so that mail clients which render HTML show it in a proportional font,
wrapped to the window, with its links clickable — not as a preformatted block.

The HTML carries nothing the text does not: every character of the text is escaped, a
blank line starts a paragraph, a single line break is `<br>`, and `http(s)://` URLs become
links (`rel="noopener noreferrer"`). Trailing punctuation stays outside a link ("see
https://shop.vn/a." links `https://shop.vn/a`), and a closing parenthesis only when the URL
opened one.
"""

from __future__ import annotations

import html
import re

# a URL runs to whitespace, a quote or an angle bracket
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"\u00bb\u201d\u2019"  # and closing guillemet, double and single quotes
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")

_STYLE_BODY = "font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.5;color:#1f2328"
_STYLE_P = "margin:0 0 1em 0"


def _split_url(raw: str) -> tuple[str, str]:
    """(the link, what follows it) for a URL match: trailing punctuation and an unbalanced
    closing parenthesis are text, not part of the link."""
    end = len(raw)
    while end > 0:
        ch = raw[end - 1]
        unbalanced = ch == ")" and raw.count("(", 0, end) < raw.count(")", 0, end)
        if ch not in _TRAILING and not unbalanced:
            break
        end -= 1
    return raw[:end], raw[end:]


def _line_html(line: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(line):
        url, rest = _split_url(m.group(0))
        out.append(html.escape(line[pos:m.start()]))
        if url.rstrip("/").lower() in ("http:", "https:"):  # a bare scheme is no link
            out.append(html.escape(url))
        else:
            href = html.escape(url, quote=True)
            out.append(f'<a href="{href}" rel="noopener noreferrer">{href}</a>')
        out.append(html.escape(rest))
        pos = m.end()
    out.append(html.escape(line[pos:]))
    return "".join(out)


def text_to_html(text: str) -> str:
    """A complete HTML document showing `text` (see the module's docstring)."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(normalized) if p.strip()]
    body = "".join(
        f'<p style="{_STYLE_P}">' + "<br>\n".join(_line_html(line) for line in p.split("\n")) + "</p>\n"
        for p in paragraphs
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width\"></head>\n"
        f"<body><div dir=\"auto\" style=\"{_STYLE_BODY}\">\n{body}</div></body></html>\n"
    )
