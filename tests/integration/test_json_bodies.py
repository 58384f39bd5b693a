"""Every route that takes a JSON body answers hostile JSON (nested thousands deep) with 400
`bad_request` and logs no error. The routes come from the running app's router: a new
POST/PUT/PATCH route fails `test_every_body_route_is_covered` until tests/integration/edge_setup.py
lists it."""

from __future__ import annotations

import logging

import pytest

from tests.integration.edge_setup import JSON_ROUTES, NOT_JSON, Edge, body_routes

# hostile bodies: arrays / objects nested beyond any decoder's recursion limit, and a value
# nested 1,000 deep inside an otherwise plausible object (within orjson's own 1,024 limit)
HOSTILE = {
    "arrays 3000": b"[" * 3000 + b"]" * 3000,
    "objects 2000": b'{"a":' * 2000 + b"1" + b"}" * 2000,
    "field 1000": b'{"name":"x","text":"x","attributes":' + b"[" * 1000 + b"]" * 1000 + b"}",
}


async def test_every_body_route_is_covered(edge: Edge) -> None:
    routes = body_routes(edge.rg)
    assert routes == set(JSON_ROUTES) | set(NOT_JSON), (
        f"unlisted: {sorted(routes - set(JSON_ROUTES) - set(NOT_JSON))}, "
        f"gone: {sorted((set(JSON_ROUTES) | set(NOT_JSON)) - routes)}")


@pytest.mark.parametrize("route", sorted(JSON_ROUTES), ids=[f"{m} {p}" for m, p in sorted(JSON_ROUTES)])
async def test_deep_json_is_bad_request_without_error_log(
        edge: Edge, route: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for name, hostile in HOSTILE.items():
        path, body, headers = JSON_ROUTES[route](edge, hostile)
        async with edge.http.request(route[0], edge.rg.url + path, data=body, headers=headers) as r:
            doc = await r.json(content_type=None)
            assert r.status == 400, (name, r.status, doc)
            assert doc["ok"] is False and doc["error"]["code"] == "bad_request", (name, doc)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
