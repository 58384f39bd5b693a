"""Schemathesis over docs/openapi.yaml against a live gateway on loopback: no 500s, typed
errors that match the schema, and a refused request never changes stored data."""

from __future__ import annotations

from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from gateway.core.errors import Code
from tests.reliability.threaded import ThreadedGateway

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
schema = schemathesis.openapi.from_path(str(SPEC))
CODES = {c.value for c in Code}


def _check_typed_error(resp: requests.Response) -> None:
    if resp.status_code >= 400:
        body = resp.json()
        assert body["ok"] is False and body["error"]["code"] in CODES, body
        assert body["error"]["code"] != "internal", body


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_rest_api_fuzz(case, threaded_gateway: ThreadedGateway) -> None:
    tg = threaded_gateway
    key = f"rest {case.method} {case.path}"
    tg.cases[key] = tg.cases.get(key, 0) + 1
    before = tg.snapshot()
    resp = case.call(base_url=tg.rg.url + "/api/v1", headers={"Authorization": f"Bearer {tg.a.admin_token}"})
    case.validate_response(resp, checks=[not_a_server_error, response_schema_conformance, status_code_conformance])
    _check_typed_error(resp)
    if resp.status_code >= 400:
        assert tg.snapshot() == before, f"{case.method} {case.path} changed data and answered {resp.status_code}"


def test_openapi_served_and_unauthenticated_requests_refused(threaded_gateway: ThreadedGateway) -> None:
    tg = threaded_gateway
    resp = requests.get(tg.rg.url + "/api/v1/openapi.yaml", timeout=5)
    assert resp.status_code == 200 and resp.text.startswith("openapi: 3")
    before = tg.snapshot()
    n = 0
    for op in schema.get_all_operations():
        o = op.ok()  # type: ignore[union-attr]
        path = o.path.replace("{id}", "0" * 32)
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"},
                        {"Authorization": "Bearer " + "x" * 5000}):
            r = requests.request(o.method.upper(), tg.rg.url + "/api/v1" + path, headers=headers, json={}, timeout=5)
            n += 1
            assert r.status_code in (401, 400, 431), (o.method, path, headers.keys(), r.status_code)
            if r.status_code == 401:
                _check_typed_error(r)
    # hostile bodies and paths with a valid token
    auth = {"Authorization": f"Bearer {tg.a.admin_token}"}
    bad_bodies: list[bytes] = [b"", b"null", b"[]", b"\xff\xfe", b"{" * 10000, b'{"text": "' + b"a" * 70000 + b'"}',
                               b'{"client_id": "../../etc", "text": null}', b'{"__proto__": {"x": 1}}']
    for body in bad_bodies:
        for method, path in (("POST", f"/conversations/{tg.b_conversation}/messages"),
                             ("PATCH", f"/conversations/{tg.b_conversation}"),
                             ("PATCH", "/contacts/" + "a" * 32), ("POST", "/agents"), ("PUT", "/privacy/policy"),
                             ("POST", f"/contacts/{'b' * 32}/erase"),
                             ("GET", "/conversations/..%2F..%2Fetc"), ("GET", "/contacts/%00")):
            r = requests.request(method, tg.rg.url + "/api/v1" + path, data=body, headers=auth, timeout=5)
            n += 1
            assert r.status_code < 500, (method, path, body[:40], r.status_code, r.text[:200])
            if r.status_code >= 400 and r.headers.get("Content-Type", "").startswith("application/json"):
                _check_typed_error(r)
    tg.cases["rest hostile"] = n
    assert tg.snapshot() == before
