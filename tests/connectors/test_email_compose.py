"""The HTML part of outbound mail (connectors/email/compose.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from connectors.email.compose import text_to_html


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self._href = dict(attrs)["href"]
        if tag == "br":
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.text.append("\n\n")

    def handle_data(self, data: str) -> None:
        data = data.replace("\n", "")  # the markup's own line breaks; the text's are <br> and <p>
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None
        self.text.append(data)


def parse(markup: str) -> _Collect:
    p = _Collect()
    p.feed(markup)
    return p


def body_text(markup: str) -> str:
    return re.sub(r"\n*$", "", "".join(parse(markup).text))


def test_text_is_escaped_not_interpreted() -> None:
    markup = text_to_html('Giá <b>rẻ</b> & "tốt" <script>alert(1)</script>')
    p = parse(markup)
    assert "script" not in p.tags and "b" not in p.tags
    assert 'Giá <b>rẻ</b> & "tốt" <script>alert(1)</script>' in body_text(markup)
    assert "&lt;script&gt;" in markup


def test_paragraphs_and_line_breaks_follow_the_text() -> None:
    text = "Chào anh,\r\nđơn hàng đã gửi.\n\n\nCảm ơn anh!\n  \nShop"
    markup = text_to_html(text)
    assert parse(markup).tags.count("p") == 3
    assert body_text(markup).split("\n\n") == ["Chào anh,\nđơn hàng đã gửi.", "Cảm ơn anh!", "Shop"]


def test_http_urls_become_links_without_trailing_punctuation() -> None:
    markup = text_to_html("Xem https://shop.vn/don-hang?id=1&k=2. Hoặc (http://vi.wikipedia.org/wiki/Huế_(định_hướng)),"
                          " hay https://a.vn/x).")
    p = parse(markup)
    assert p.links == [
        ("https://shop.vn/don-hang?id=1&k=2", "https://shop.vn/don-hang?id=1&k=2"),
        ("http://vi.wikipedia.org/wiki/Huế_(định_hướng)", "http://vi.wikipedia.org/wiki/Huế_(định_hướng)"),
        ("https://a.vn/x", "https://a.vn/x"),
    ]
    assert 'href="https://shop.vn/don-hang?id=1&amp;k=2"' in markup
    assert 'rel="noopener noreferrer"' in markup
    # the text around the links is kept whole
    assert body_text(markup) == ("Xem https://shop.vn/don-hang?id=1&k=2. Hoặc (http://vi.wikipedia.org/wiki/"
                                 "Huế_(định_hướng)), hay https://a.vn/x).")


def test_a_quoted_url_leaves_its_closing_quote_outside() -> None:
    markup = text_to_html("Link: \u201chttps://a.vn/y\u201d, \u00abhttps://a.vn/z\u00bb")
    assert [href for href, _ in parse(markup).links] == ["https://a.vn/y", "https://a.vn/z"]


def test_only_http_and_https_are_linked() -> None:
    markup = text_to_html('javascript:alert(1) ftp://x.vn mailto:a@b.vn https://"x http://')
    assert parse(markup).links == []


def test_a_complete_utf8_document() -> None:
    markup = text_to_html("Xin chào")
    assert markup.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in markup
    assert markup.rstrip().endswith("</html>")
