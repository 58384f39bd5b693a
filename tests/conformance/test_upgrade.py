"""Engine.IO v4 upgrade from HTTP long-polling to websocket.

Spec: engine.io-protocol README "Upgrade"; test-suite/test-suite.js "upgrade"; engine.io
socket.ts `_maybeUpgrade` and server.ts `verify` / `onWebSocket` for the reference's answers.
"""

from __future__ import annotations

import aiohttp

from tests.conformance.conftest import Gateway
from tests.conformance.wire import PollingSession, WsSession, join_visitor, parse_sio


async def upgrade(gw: Gateway, s: PollingSession) -> WsSession:
    """The client's side of a complete upgrade: probe, the noop on the pending GET, `5`."""
    pending = await s.pending_get()
    ws = WsSession(await WsSession.connect(gw.http, gw.url, sid=s.sid), s.handshake)
    await ws.send("2probe")
    probe = await ws.frame()
    assert probe == "3probe", f"expected '3probe' (and no OPEN packet on an upgrade), got {probe!r}"
    got = await pending
    assert (got.status, got.body) == (200, "6"), (
        f"pending GET during the upgrade: expected (200, '6'), got {got.shape()}")
    await ws.send("5")
    return ws


async def test_upgrade_probe_noop_and_upgrade_packet(gateway: Gateway) -> None:
    """polling → websocket: the client opens a websocket with the session's sid and sends
    `2probe`; the server answers `3probe` on the websocket and a noop `6` to the pending GET;
    after the client's `5` the session continues on the websocket (a Socket.IO CONNECT sent
    there is answered there).
    Spec: engine.io-protocol "Upgrade"; test-suite "successfully upgrades from HTTP
    long-polling to WebSocket"; socket.io-protocol "Sample session" request n°6."""
    s = await PollingSession.open(gateway.http, gateway.url)
    ws = await upgrade(gateway, s)
    joined = await join_visitor(ws, gateway.visitor_auth())
    assert (joined.type, joined.nsp, set(joined.data)) == (0, "/visitor", {"sid"}), joined
    await ws.close()


async def test_polling_requests_after_the_upgrade_are_400(gateway: Gateway) -> None:
    """Once upgraded, HTTP long-polling requests with the session's sid are refused with
    400 (`{"code": 3, "message": "Bad request"}`, the reference's TRANSPORT_MISMATCH) and
    the websocket goes on working.
    Spec: engine.io-protocol "Upgrade"; test-suite "ignores HTTP requests with same sid after
    upgrade"."""
    s = await PollingSession.open(gateway.http, gateway.url)
    ws = await upgrade(gateway, s)
    joined = await join_visitor(ws, gateway.visitor_auth())  # the server has handled `5`
    assert joined.type == 0, joined
    a = await s.get()
    want = (400, "application/json", {"code": 3, "message": "Bad request"})
    assert a.shape() == want, f"GET after the upgrade: expected {want}, got {a.shape()}"
    await ws.send('42/visitor,1["session:get"]')
    ack = parse_sio(await ws.recv())
    assert (ack.type, ack.nsp, ack.ack) == (3, "/visitor", 1), ack
    await ws.close()


async def test_a_second_websocket_for_an_upgraded_session_is_closed(gateway: Gateway) -> None:
    """A client MUST NOT open more than one websocket per session: a second websocket with
    the sid of an upgraded session is refused (HTTP 400) or closed without any packet, and
    the first one goes on working.
    Spec: engine.io-protocol "WebSocket" (more than one websocket → the server MUST close
    it); test-suite "ignores WebSocket connection with same sid after upgrade"."""
    s = await PollingSession.open(gateway.http, gateway.url)
    ws = await upgrade(gateway, s)
    joined = await join_visitor(ws, gateway.visitor_auth())
    assert joined.type == 0, joined
    try:
        second = WsSession(await WsSession.connect(gateway.http, gateway.url, sid=s.sid), s.handshake)
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 400, f"second websocket: expected 400 or a close, got {refused.status}"
    else:
        await second.send("2probe")
        seen = await second.wait_closed()
        assert seen == [], f"second websocket: expected a close without packets, got {seen!r}"
    await ws.send('42/visitor,1["session:get"]')
    ack = parse_sio(await ws.recv())
    assert (ack.type, ack.ack) == (3, 1), ack
    await ws.close()


async def test_a_second_websocket_for_a_websocket_session_is_closed(gateway: Gateway) -> None:
    """A session opened on the websocket transport has nothing to upgrade to (upgrades []):
    another websocket with its sid is refused (HTTP 400) or closed without any packet.
    Spec: engine.io-protocol "WebSocket" (one websocket per session), "Handshake"
    (`upgrades`)."""
    ws = await WsSession.open(gateway.http, gateway.url)
    try:
        second = WsSession(await WsSession.connect(gateway.http, gateway.url, sid=ws.sid), ws.handshake)
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 400, f"second websocket: expected 400 or a close, got {refused.status}"
    else:
        await second.send("2probe")
        seen = await second.wait_closed()
        assert seen == [], f"second websocket: expected a close without packets, got {seen!r}"
    joined = await join_visitor(ws, gateway.visitor_auth())
    assert joined.type == 0, joined
    await ws.close()


async def test_an_upgrade_for_an_ended_session_is_refused(gateway: Gateway) -> None:
    """An upgrade attempt for a session that has ended (closed by the client's `1`) is
    refused: HTTP 400 `{"code": 1, ...}` before the upgrade, or a websocket closed without
    answering the probe.
    Spec: engine.io-protocol "Upgrade" (open a websocket with the same session ID); the
    reference refuses an unknown sid in `verify` (UNKNOWN_SID)."""
    s = await PollingSession.open(gateway.http, gateway.url)
    await s.send("1")
    try:
        ws = WsSession(await WsSession.connect(gateway.http, gateway.url, sid=s.sid), s.handshake)
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 400, f"expected 400, got {refused.status}"
        return
    await ws.send("2probe")
    seen = await ws.wait_closed()
    assert seen == [], f"expected a close without packets, got {seen!r}"
