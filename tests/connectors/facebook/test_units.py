"""Pure pieces: thread ids, Graph error classification, and the fake Graph API's own wire behaviour."""

from __future__ import annotations

import json

import aiohttp
import pytest

from connectors.base import PermanentError, TransientError
from connectors.facebook.errors import classify, parse_graph_error
from connectors.facebook.signature import signature_valid
from connectors.facebook.threads import CommentThread, MessengerThread, decode_thread
from tests.connectors.facebook.conftest import PAGE_TOKEN
from tests.connectors.facebook.fake_graph import encode_payload, sign
from tests.connectors.facebook.payloads import PAGE_ID, PSID


def test_thread_ids_round_trip():
    for t in (MessengerThread(PAGE_ID, PSID), CommentThread(PAGE_ID, "712750021053074_1063824911537852")):
        assert decode_thread(t.encode()) == t
    for bad in ("", "x", "a:b:c", "a:comment:", ":b", "a:b:c:d"):
        with pytest.raises(ValueError):
            decode_thread(bad)


def test_signature_helper_matches_connector_check():
    body = encode_payload({"object": "page", "entry": [{"id": PAGE_ID, "text": "Tiếng Việt / ok"}]})
    assert signature_valid("s", body, sign("s", body))
    assert signature_valid("s", body, sign("s", body).upper().replace("SHA256=", "sha256="))  # hex case
    assert not signature_valid("s", body, None)
    assert not signature_valid("s", body, "sha1=" + sign("s", body)[7:])


def _classify(status: int, error: dict[str, object] | None, headers: dict[str, str] | None = None):
    body = json.dumps({"error": error}).encode() if error is not None else b"<html>oops</html>"
    return classify(parse_graph_error(status, body), headers or {}, rate_limit_retry_after=60.0,
                    server_error_retry_after=5.0)


@pytest.mark.parametrize("code", [4, 17, 32, 341, 613, 80006])
def test_rate_limit_codes_are_transient(code):
    exc = _classify(400, {"message": "limit", "type": "OAuthException", "code": code, "fbtrace_id": "x"})
    assert isinstance(exc, TransientError) and exc.retry_after == 60.0


def test_retry_hints_from_headers():
    err = {"message": "limit", "code": 32}
    assert _classify(400, err, {"Retry-After": "7"}).retry_after == 7.0
    usage = json.dumps({PAGE_ID: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 5}]})
    assert _classify(400, err, {"X-Business-Use-Case-Usage": usage}).retry_after == 300.0
    assert _classify(400, err, {"X-Business-Use-Case-Usage": "not json"}).retry_after == 60.0


@pytest.mark.parametrize("status,error", [
    (500, {"message": "unexpected", "code": 2, "is_transient": True}),
    (400, {"message": "unknown", "code": 1, "error_subcode": 99}),
    (400, {"message": "Temporary send message failure", "code": 1200}),
    (400, {"message": "odd", "code": 9999, "is_transient": True}),
    (503, None),
    (502, None),
    (429, None),
])
def test_transient(status, error):
    assert isinstance(_classify(status, error), TransientError)


@pytest.mark.parametrize("status,error", [
    (400, {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}),
    (400, {"message": "expired", "code": 190, "error_subcode": 463}),
    (400, {"message": "(#10) outside window", "code": 10, "error_subcode": 2018278}),
    (403, {"message": "(#200) permissions", "code": 200, "error_subcode": 2018028}),
    (400, {"message": "(#100) No matching user found", "code": 100, "error_subcode": 2018001}),
    (400, {"message": "(#551) This person isn't available right now.", "code": 551, "error_subcode": 1545041}),
    (400, {"message": "(#368) blocked", "code": 368}),
    (400, {"message": "(#230) pages_messaging", "code": 230}),
    (404, None),
])
def test_permanent(status, error):
    exc = _classify(status, error)
    assert isinstance(exc, PermanentError)
    if error is not None:
        assert str(error["code"]) in str(exc)


async def test_fake_graph_token_and_body_forms(graph):
    base = f"{graph.url}/v23.0"
    payload = {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "hi"}}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/me/messages", json=payload) as r:  # no token at all
            assert r.status == 400 and (await r.json())["error"]["code"] == 2500
        async with s.post(f"{base}/{PAGE_ID}/messages", json=payload,
                          headers={"Authorization": f"Bearer {PAGE_TOKEN}"}) as r:
            assert r.status == 200 and (await r.json())["recipient_id"] == PSID
        form = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in payload.items()}
        async with s.post(f"{base}/me/messages", data={**form, "access_token": PAGE_TOKEN}) as r:
            assert r.status == 200
        async with s.post(f"{base}/me/messages", params={"access_token": PAGE_TOKEN},
                          json={**payload, "messaging_type": "NOPE"}) as r:
            err = (await r.json())["error"]
            assert (r.status, err["code"], err["type"]) == (400, 100, "OAuthException") and err["fbtrace_id"]
        async with s.post(f"{base}/me/messages", params={"access_token": PAGE_TOKEN},
                          json={**payload, "message": {"text": "x" * 2000}}) as r:
            assert (await r.json())["error"]["code"] == 100
        async with s.post(f"{base}/123/likes", params={"access_token": PAGE_TOKEN}) as r:
            err = (await r.json())["error"]
            assert (err["code"], err["error_subcode"], err["type"]) == (100, 33, "GraphMethodException")
    assert [c.status for c in graph.calls] == [400, 200, 200, 400, 400, 400]
