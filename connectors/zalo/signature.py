"""Zalo OA webhook signature: `X-ZEvent-Signature: mac=<hex sha256(app_id + body + timestamp + oa_secret)>`.

A plain SHA-256 over the concatenation (not an HMAC). `timestamp` is the string in the JSON
body, so it is lifted from the raw bytes before anything is parsed: the first
`MAX_CANDIDATES` distinct `"timestamp":"<digits>"` are tried (a forger still needs the
secret; a Zalo event has one, at the top level), and the caller checks afterwards that the
parsed top-level `timestamp` is the one that verified. The work is one SHA-256 pass over
the body plus a few short hashes, whatever the body holds.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-ZEvent-Signature"
_PREFIX = "mac="
_TS_RE = re.compile(rb'"timestamp"\s*:\s*"?(\d{1,16})"?')
_HEX_RE = re.compile(r"[0-9a-f]{64}")
MAX_CANDIDATES = 16


def compute_mac(app_id: str, raw_body: bytes, timestamp: str, oa_secret_key: str) -> str:
    data = app_id.encode() + raw_body + timestamp.encode() + oa_secret_key.encode()
    return hashlib.sha256(data).hexdigest()


def signature_header(app_id: str, raw_body: bytes, timestamp: str, oa_secret_key: str) -> str:
    return _PREFIX + compute_mac(app_id, raw_body, timestamp, oa_secret_key)


def verify(raw_body: bytes, header: str | None, app_id: str, oa_secret_key: str) -> str | None:
    """Return the signed timestamp string if the header matches, else None."""
    if not header:
        return None
    got = header.strip()
    if got.lower().startswith(_PREFIX):
        got = got[len(_PREFIX) :]
    got = got.strip().lower()
    if not _HEX_RE.fullmatch(got):
        return None
    ok: str | None = None
    # app_id + body is hashed once; each candidate only adds its timestamp and the secret
    # (a body full of candidates costs linear, not quadratic, work)
    prefix = hashlib.sha256(app_id.encode())
    prefix.update(raw_body)
    candidates: list[str] = []
    for m in _TS_RE.finditer(raw_body):
        ts = m.group(1).decode()
        if ts not in candidates:
            candidates.append(ts)
        if len(candidates) == MAX_CANDIDATES:
            break
    for ts in candidates:
        h = prefix.copy()
        h.update(ts.encode() + oa_secret_key.encode())
        # no early exit: constant work per candidate
        if hmac.compare_digest(h.hexdigest(), got) and ok is None:
            ok = ts
    return ok
