"""Threading headers, reply addresses, quote stripping, body extraction."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from connectors.email.parse import (
    body_text,
    first_address,
    html_to_text,
    is_automatic,
    message_ids,
    parse_reply_address,
    reply_address,
    reply_subject,
    root_id,
    strip_quotes,
    thread_ids,
)

KEY = b"k" * 32
CONV = "0123456789abcdef0123456789abcdef"


def parse(raw: str) -> EmailMessage:
    m = BytesParser(policy=policy.default).parsebytes(raw.encode())
    assert isinstance(m, EmailMessage)
    return m


def test_message_ids_unfold_and_dedup() -> None:
    assert message_ids("<a@x>\r\n <b@y>  <a@x>") == ["a@x", "b@y"]
    assert message_ids(None) == [] and message_ids("garbage") == []


def test_thread_ids_in_reply_to_first_then_references_newest_first() -> None:
    m = parse("From: a@b.c\nIn-Reply-To: <p@x>\nReferences: <r1@x>\n <r2@x> <p@x>\nMessage-ID: <me@x>\n\nhi\n")
    assert thread_ids(m) == ["p@x", "r2@x", "r1@x"]
    assert root_id(m) == "r1@x"
    assert root_id(parse("From: a@b.c\n\nhi\n")) is None


def test_reply_address_round_trip_and_tampering() -> None:
    addr = reply_address(KEY, CONV, "help.example")
    assert addr.startswith(f"reply+{CONV}.") and addr.endswith("@help.example")
    assert parse_reply_address(KEY, addr) == CONV
    assert parse_reply_address(KEY, addr.upper()) == CONV  # mail systems may change case
    assert parse_reply_address(b"x" * 32, addr) is None  # another key
    other = "f" * 32
    forged = addr.replace(CONV, other)
    assert parse_reply_address(KEY, forged) is None
    assert parse_reply_address(KEY, "support@help.example") is None


@pytest.mark.parametrize("subject,expected", [
    ("Hỏi về đơn hàng", "Re: Hỏi về đơn hàng"),
    ("Re: RE: Aw: Hỏi", "Re: Hỏi"),
    ("Re[5]: Fwd: x", "Re: x"),
    ("", "Re: your message"),
])
def test_reply_subject_prefixes_once(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


@pytest.mark.parametrize("body,expected", [
    ("Thanks!\n\nOn Mon, Jan 1, 2024 at 10:00 AM Shop <s@shop.vn> wrote:\n> old\n> older\n", "Thanks!"),
    ("Thanks!\n\nOn Mon, Jan 1, 2024 at 10:00 AM Shop Support\n<s@shop.vn> wrote:\n> old\n", "Thanks!"),
    ("Cảm ơn!\n\nVào Th 2, 1 thg 1, 2024 lúc 10:00 Shop <s@shop.vn> đã viết:\n> cũ\n", "Cảm ơn!"),
    ("Cảm ơn!\nVào lúc 10:00 ngày 01/01/2024, Shop\n<s@shop.vn> đã viết:\n> cũ\n", "Cảm ơn!"),
    ("ok\n> quoted\nmore\n", "ok\nmore"),
    ("Yes.\n\n-----Original Message-----\nFrom: x\n", "Yes."),
    ("Yes.\n\n________________________________\nFrom: Shop\nSent: Monday\nTo: me\n", "Yes."),
    ("Yes.\n\nFrom: Shop <s@shop.vn>\nSent: Monday, 1 January 2024\nTo: Lan\nSubject: x\n\nold", "Yes."),
    ("Body\n-- \nLan\n0901234567\n", "Body"),
    ("On the other hand, I want two.\nThanks", "On the other hand, I want two.\nThanks"),
    ("From: is a word I like\nto start with", "From: is a word I like\nto start with"),
])
def test_strip_quotes(body: str, expected: str) -> None:
    assert strip_quotes(body) == expected


def test_body_text_prefers_plain_and_converts_html() -> None:
    m = EmailMessage()
    m.set_content("plain ✓")
    m.add_alternative("<p>html</p>", subtype="html")
    assert body_text(m).strip() == "plain ✓"
    h = EmailMessage()
    h.set_content("<div>Xin ch&agrave;o<br>b&#7841;n</div><div class=\"gmail_quote\">old</div>", subtype="html")
    assert body_text(h) == "Xin chào\nbạn"


def test_automatic_mail_detection_and_addresses() -> None:
    assert is_automatic(parse("From: a@b.c\nAuto-Submitted: auto-replied\n\nx"))
    assert not is_automatic(parse("From: a@b.c\nAuto-Submitted: no\n\nx"))
    assert is_automatic(parse("From: a@b.c\nPrecedence: bulk\n\nx"))
    assert first_address("=?UTF-8?B?Tmd1eeG7hW4gVsSDbiBB?= <Khach@Example.VN>") == ("=?UTF-8?B?Tmd1eeG7hW4gVsSDbiBB?=",
                                                                                    "khach@example.vn")
    assert first_address("not an address") is None


def test_html_to_text_drops_quotes_and_scripts_and_keeps_unclosed_markup_linear() -> None:
    html = ('<html><head><title>t</title></head><body><p>Xin chào<br>shop</p><script>alert(1)</script>'
            '<blockquote>old</blockquote><style>p{}</style><div class="gmail_quote">On … wrote: q</div></body></html>')
    assert html_to_text(html) == "Xin chào\nshop"
    # an element never closed is kept as text; unclosed tags leave what is between them
    assert html_to_text("<blockquote>a<blockquote>b") == "ab"
    assert html_to_text("a < b and c > d") == "a  d"  # as a tag, as before
    assert html_to_text("<div<div<div>x") == "<div<div\nx"  # a tag never spans another `<`


def test_html_to_text_keeps_the_structure_and_link_targets() -> None:
    """HTML-only mail: block elements end lines (paragraphs with a blank line), list items
    and table cells stay apart, and a link keeps its target unless its text is the target."""
    html = ('<div>Chào anh</div><div>Đơn hàng <a href="https://shop.vn/o/1?a=1&amp;b=2">số 1</a> đã gửi</div>'
            '<ul><li>áo</li><li>quần</li></ul><table><tr><td>Mã</td><td>Giá</td></tr><tr><td>A1</td><td>100</td>'
            '</tr></table><p>Liên hệ <a href="mailto:cskh@shop.vn">cskh@shop.vn</a> hoặc '
            '<a href="https://shop.vn">https://shop.vn</a></p><p>Một<br>Hai<br><br>Ba</p>'
            '<a href="javascript:alert(1)">bấm</a>')
    assert html_to_text(html) == (
        "Chào anh\nĐơn hàng số 1 (https://shop.vn/o/1?a=1&b=2) đã gửi\n\n- áo\n- quần\n\n"
        "Mã\tGiá\nA1\t100\n\nLiên hệ cskh@shop.vn hoặc https://shop.vn\n\nMột\nHai\n\nBa\n\nbấm")


def test_body_text_limit() -> None:
    m = EmailMessage()
    m.set_content("a" * 1000)
    assert body_text(m, 10) == "a" * 10
