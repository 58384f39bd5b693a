from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.security.auth import (
    VisitorClaims,
    VisitorTokens,
    hash_token,
    identity_hash,
    new_agent_token,
    verify_identity,
)


def test_visitor_token_round_trip_and_tamper() -> None:
    tokens = VisitorTokens("s3cret", ttl=100)
    claims = VisitorClaims("t1", "v1", "c1", 1000.0)
    tok = tokens.issue(claims)
    assert tokens.verify(tok, "t1", 1050.0) == claims
    assert tokens.verify(tok, "t2", 1050.0) is None  # another tenant
    assert tokens.verify(tok, "t1", 1101.0) is None  # expired
    assert VisitorTokens("other", ttl=100).verify(tok, "t1", 1050.0) is None  # other key
    payload, sig = tok.split(".")
    assert tokens.verify(payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + sig, "t1", 1050.0) is None


@given(st.text(max_size=300))
def test_visitor_token_garbage_never_raises(garbage: str) -> None:
    assert VisitorTokens("k", ttl=10).verify(garbage, "t", 0.0) is None


def test_identity_hash_is_hmac_sha256_hex() -> None:
    import hashlib
    import hmac

    assert identity_hash("sec", "user-1") == hmac.new(b"sec", b"user-1", hashlib.sha256).hexdigest()
    assert verify_identity("sec", "user-1", identity_hash("sec", "user-1").upper())
    assert not verify_identity("sec", "user-2", identity_hash("sec", "user-1"))


def test_agent_tokens_are_random_and_hashed() -> None:
    a, b = new_agent_token(), new_agent_token()
    assert a != b and a.startswith("izh_at_")
    assert hash_token(a) != a and len(hash_token(a)) == 64


def test_a_token_issued_before_the_orjson_encoder_still_verifies() -> None:
    """Tokens in visitors' browsers were signed over `json.dumps(..., separators=(",", ":"))`;
    the signature covers the payload bytes as sent, so they verify unchanged, and a new token's
    payload is byte-identical to what the old encoder made."""
    import base64
    import hashlib
    import hmac
    import json

    tokens = VisitorTokens("s3cret", ttl=3600)
    claims = VisitorClaims("t" * 32, "v" * 32, "c" * 32, 1765100000.25)
    payload = json.dumps({"t": claims.tenant_id, "v": claims.visitor_id, "c": claims.contact_id,
                          "i": claims.issued_at}, separators=(",", ":")).encode()
    key = hashlib.sha256(b"izh-visitor-token:" + b"s3cret").digest()
    sig = hmac.new(key, payload, hashlib.sha256).digest()

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    old = f"{b64(payload)}.{b64(sig)}"
    assert tokens.verify(old, claims.tenant_id, 1765100001.0) == claims
    assert tokens.issue(claims) == old
