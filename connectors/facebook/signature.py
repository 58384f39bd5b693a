"""`X-Hub-Signature-256` verification: HMAC-SHA256 of the raw body bytes with the App Secret."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def expected_signature(app_secret: str, body: bytes) -> str:
    return _PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of the header against the raw body (exactly as received, never re-serialised)."""
    if not header or not header.startswith(_PREFIX):
        return False
    given = header[len(_PREFIX) :].strip().lower()
    want = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode("ascii", "replace"), want.encode("ascii"))
