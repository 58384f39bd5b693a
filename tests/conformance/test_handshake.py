"""Engine.IO v4 handshake: the OPEN packet, and the requests a server must refuse.

Spec: engine.io-protocol README "Handshake", "Transports / HTTP long-polling / Query
parameters", "Transports / WebSocket"; test-suite/test-suite.js "handshake". The refusal
bodies are the reference server's (engine.io `Server.errors` / `abortRequest`):
HTTP 400, `Content-Type: application/json`, `{"code": N, "message": "..."}` with
0 "Transport unknown", 1 "Session ID unknown", 2 "Bad handshake method", 3 "Bad request",
4 "Forbidden" (HTTP 403), 5 "Unsupported protocol version".
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.conformance.conftest import Gateway
from tests.conformance.wire import PollingSession, WsSession, eio_url, parse_open, request, ws_base

OPEN_KEYS = {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}


def check_open(value: dict[str, object], gw: Gateway, upgrades: list[str]) -> None:
    assert set(value) == OPEN_KEYS, value
    assert isinstance(value["sid"], str) and value["sid"], value
    # pingInterval / pingTimeout in milliseconds, exactly as configured (0.3 s -> 300)
    expected = {"upgrades": upgrades, "pingInterval": round(gw.config.server.ping_interval * 1000),
                "pingTimeout": round(gw.config.server.ping_timeout * 1000)}
    got = {k: value[k] for k in expected}
    assert got == expected, f"OPEN packet {value}: expected {expected}"
    max_payload = value["maxPayload"]
    assert isinstance(max_payload, int) and not isinstance(max_payload, bool), value
    assert max_payload >= gw.config.limits.max_event_bytes, value


async def test_polling_open_packet(short_gateway: Gateway) -> None:
    """Handshake (HTTP long-polling): `GET ?EIO=4&transport=polling` → 200, body `0{json}`
    with exactly sid, upgrades ["websocket"], pingInterval and pingTimeout in ms as
    configured (300 and 200 here: sub-second values), maxPayload.
    Spec: engine.io-protocol "Handshake"; test-suite "successfully opens a session" (polling)."""
    gw = short_gateway
    a = await request(gw.http, "GET", eio_url(gw.url, EIO="4", transport="polling"))
    assert a.status == 200, a
    assert a.content_type.startswith("text/plain"), a.content_type
    assert a.body.startswith("0"), a.body
    check_open(parse_open(a.body), gw, ["websocket"])


async def test_websocket_open_packet(short_gateway: Gateway) -> None:
    """Handshake (websocket only): `GET ?EIO=4&transport=websocket` upgraded → first frame
    `0{json}` with upgrades [] (nothing to upgrade to) and the same fields as over polling.
    Spec: engine.io-protocol "Handshake"; test-suite "successfully opens a session" (WebSocket)."""
    gw = short_gateway
    s = await WsSession.open(gw.http, gw.url)
    check_open(s.handshake, gw, [])
    await s.close()


async def test_every_handshake_has_its_own_sid(gateway: Gateway) -> None:
    """Handshake: each accepted handshake opens a new session with its own `sid`.
    Spec: engine.io-protocol "Handshake" ("The session ID")."""
    sids = {(await PollingSession.open(gateway.http, gateway.url)).sid for _ in range(3)}
    ws = await WsSession.open(gateway.http, gateway.url)
    sids.add(ws.sid)
    await ws.close()
    assert len(sids) == 4


# (method, query, expected code, expected message) — one fault per request
POLLING_REFUSALS = [
    pytest.param("GET", {"transport": "polling"}, 5, "Unsupported protocol version", id="no-EIO"),
    pytest.param("GET", {"EIO": "abc", "transport": "polling"}, 5, "Unsupported protocol version", id="EIO-abc"),
    pytest.param("GET", {"EIO": "3", "transport": "polling"}, 5, "Unsupported protocol version", id="EIO-3"),
    pytest.param("GET", {"EIO": "5", "transport": "polling"}, 5, "Unsupported protocol version", id="EIO-5"),
    pytest.param("GET", {"EIO": "4"}, 0, "Transport unknown", id="no-transport"),
    pytest.param("GET", {"EIO": "4", "transport": "abc"}, 0, "Transport unknown", id="transport-abc"),
    pytest.param("POST", {"EIO": "4", "transport": "polling"}, 2, "Bad handshake method", id="POST-handshake"),
    pytest.param("PUT", {"EIO": "4", "transport": "polling"}, 2, "Bad handshake method", id="PUT-handshake"),
    pytest.param("GET", {"EIO": "4", "transport": "websocket"}, 3, "Bad request", id="websocket-without-upgrade"),
    pytest.param("GET", {"EIO": "4", "transport": "polling", "sid": "nope"}, 1, "Session ID unknown",
                 id="GET-unknown-sid"),
    pytest.param("POST", {"EIO": "4", "transport": "polling", "sid": "nope"}, 1, "Session ID unknown",
                 id="POST-unknown-sid"),
]


@pytest.mark.parametrize(("method", "query", "code", "message"), POLLING_REFUSALS)
async def test_polling_refusals(gateway: Gateway, method: str, query: dict[str, str], code: int,
                                message: str) -> None:
    """Invalid handshake / unknown session over HTTP → 400 and the reference server's JSON
    body `{"code": N, "message": "..."}`.
    Spec: engine.io-protocol "Query parameters" (a missing mandatory parameter → HTTP 400),
    "Sending data" / "Receiving data" (unknown sid → HTTP 400); test-suite "fails with an
    invalid 'EIO' / 'transport' query parameter", "fails with an invalid request method";
    codes and messages: engine.io server.ts `Server.errors`, `abortRequest`."""
    a = await request(gateway.http, method, eio_url(gateway.url, **query), b"40" if method != "GET" else None)
    want = (400, "application/json", {"code": code, "message": message})
    assert a.shape() == want, f"expected {want}, got {a.shape()}"


async def test_put_on_a_session_is_400(gateway: Gateway) -> None:
    """A long-polling session takes GET (receive) and POST (send) only: PUT → 400.
    Spec: engine.io-protocol "HTTP long-polling" (long-running GET, short-running POST);
    the reference answers 500 here (polling.ts `onRequest`), we answer 400."""
    s = await PollingSession.open(gateway.http, gateway.url)
    a = await request(gateway.http, "PUT", s.url, b"40")
    assert a.status == 400, f"expected 400, got {a.shape()}"


async def test_a_polling_request_for_a_websocket_session_is_400(gateway: Gateway) -> None:
    """A session on the websocket transport does not take HTTP long-polling requests → 400
    `{"code": 3, "message": "Bad request"}` (reference: TRANSPORT_MISMATCH).
    Spec: engine.io-protocol "Upgrade" (no downgrade); engine.io server.ts `verify`."""
    ws = await WsSession.open(gateway.http, gateway.url)
    a = await request(gateway.http, "GET", eio_url(gateway.url, EIO="4", transport="polling", sid=ws.sid))
    want = (400, "application/json", {"code": 3, "message": "Bad request"})
    assert a.shape() == want, f"expected {want}, got {a.shape()}"
    await ws.close()


WS_REFUSALS = [
    pytest.param({"transport": "websocket"}, id="no-EIO"),
    pytest.param({"EIO": "abc", "transport": "websocket"}, id="EIO-abc"),
    pytest.param({"EIO": "3", "transport": "websocket"}, id="EIO-3"),
    pytest.param({"EIO": "4"}, id="no-transport"),
    pytest.param({"EIO": "4", "transport": "abc"}, id="transport-abc"),
    pytest.param({"EIO": "4", "transport": "websocket", "sid": "nope"}, id="unknown-sid"),
]


@pytest.mark.parametrize("query", WS_REFUSALS)
async def test_websocket_refusals(gateway: Gateway, query: dict[str, str]) -> None:
    """An invalid websocket handshake (EIO missing / not 4, transport missing / unknown,
    unknown sid) is refused with HTTP 400 instead of 101: no session, no OPEN packet.
    Spec: engine.io-protocol "WebSocket" (a missing mandatory parameter → the server MUST
    close the connection); test-suite "fails with an invalid 'EIO' / 'transport' query
    parameter" (WebSocket). The reference refuses transport/sid faults with 400 before the
    upgrade and closes right after the upgrade for a bad EIO; we refuse all with 400."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        ws = await gateway.http.ws_connect(eio_url(ws_base(gateway.url), **query))
        await ws.close()
    assert refused.value.status == 400, f"expected 400, got {refused.value.status} {refused.value.message!r}"
