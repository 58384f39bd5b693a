from __future__ import annotations

from connectors.zalo import signature
from tests.connectors.zalo import fake_zalo as fz

# The composed test vector of ../shared/channels/zalo.md section 2 (first example event).
VECTOR_BODY = (
    b'{"app_id":"1234567890123456789","user_id_by_app":"5000000000000000001","event_name":"user_send_text",'
    b'"timestamp":"1751272409784","sender":{"id":"8000000000000000001"},"recipient":{"id":"4000000000000000001"},'
    b'"message":{"msg_id":"a1b2c3d4e5f6a7b8c9d0","text":"xin chao"}}'
)
VECTOR_MAC = "mac=0b079cb516c573cfcb4103a8206d6b92b32b768f285bed0ee65890affea743f8"


def test_vector_matches_spec() -> None:
    assert len(VECTOR_BODY) == 270
    assert signature.signature_header(fz.APP_ID, VECTOR_BODY, "1751272409784", "test-oa-secret") == VECTOR_MAC
    assert fz.sign(VECTOR_BODY, "1751272409784", fz.APP_ID, "test-oa-secret") == VECTOR_MAC
    assert signature.verify(VECTOR_BODY, VECTOR_MAC, fz.APP_ID, "test-oa-secret") == "1751272409784"
    # upper-case hex and no prefix are tolerated
    assert signature.verify(VECTOR_BODY, VECTOR_MAC[4:].upper(), fz.APP_ID, "test-oa-secret") == "1751272409784"


def test_verify_rejects() -> None:
    good = VECTOR_MAC
    assert signature.verify(VECTOR_BODY, None, fz.APP_ID, "test-oa-secret") is None
    assert signature.verify(VECTOR_BODY, "", fz.APP_ID, "test-oa-secret") is None
    assert signature.verify(VECTOR_BODY, "mac=xyz", fz.APP_ID, "test-oa-secret") is None
    assert signature.verify(VECTOR_BODY, good, fz.APP_ID, "other-secret") is None
    assert signature.verify(VECTOR_BODY, good, "999", "test-oa-secret") is None
    assert signature.verify(VECTOR_BODY + b" ", good, fz.APP_ID, "test-oa-secret") is None
    tampered = VECTOR_BODY.replace(b"xin chao", b"xin chal")
    assert signature.verify(tampered, good, fz.APP_ID, "test-oa-secret") is None
    # an HMAC (what some integrations wrongly use) is not accepted
    import hashlib
    import hmac

    h = hmac.new(b"test-oa-secret", fz.APP_ID.encode() + VECTOR_BODY + b"1751272409784", hashlib.sha256).hexdigest()
    assert signature.verify(VECTOR_BODY, "mac=" + h, fz.APP_ID, "test-oa-secret") is None


def test_signed_timestamp_found_among_other_candidates() -> None:
    ts = fz.now_ms()
    raw = (b'{"app_id":"' + fz.APP_ID.encode() + b'","user":{"timestamp":"1"},"timestamp":"' + ts.encode()
           + b'","message":{"text":"x"}}')
    assert signature.verify(raw, fz.sign(raw, ts), fz.APP_ID, fz.OA_SECRET) == ts
    # a body whose candidates exceed the bound is refused, not hashed candidate by candidate
    flood = b"{" + b"".join(b'"timestamp":"%d",' % i for i in range(signature.MAX_CANDIDATES)) \
        + b'"timestamp":"' + ts.encode() + b'"}'
    assert signature.verify(flood, fz.sign(flood, ts), fz.APP_ID, fz.OA_SECRET) is None
