"""The widget's localized error sentences name real error codes (gateway.core.errors.Code),
in English and Vietnamese (widget/src/i18n.js; errorText there falls back to a generic
sentence for any other code)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.core.errors import Code

I18N = Path(__file__).resolve().parents[2] / "widget" / "src" / "i18n.js"
# what a visitor's message:send / conversation:start / conversation:rate may be refused with
# (docs/protocol.md)
VISITOR_CODES = {Code.TEXT_TOO_LONG, Code.PAYLOAD_TOO_LARGE, Code.RATE_LIMITED, Code.LIMIT_REACHED,
                 Code.CONVERSATION_CLOSED, Code.CONTACT_ERASED, Code.NOT_FOUND, Code.UNAUTHORIZED,
                 Code.FORBIDDEN, Code.UNAVAILABLE, Code.CONFLICT}


def test_each_visitor_error_code_has_an_english_and_a_vietnamese_sentence() -> None:
    keys = re.findall(r"\berr_(\w+):", I18N.read_text(encoding="utf-8"))
    codes = {c.value for c in Code}
    named = {k for k in keys if k != "generic"}
    assert named <= codes, named - codes  # no sentence for a code that does not exist
    for code in VISITOR_CODES:
        assert keys.count(code.value) == 2, code  # en and vi
