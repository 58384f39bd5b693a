"""Socket.IO connect timeout: an Engine.IO session that has joined no namespace within
CONNECT_TIMEOUT is closed, on both transports.

Spec: socket.io-protocol README "Connection to a namespace" (the client MUST send a
CONNECT first); test-suite "should close the connection if no handshake is received"
(run there with connectTimeout 1000 ms); socket.io client.ts `setup` (`connectTimeout`:
the engine connection is closed when no namespace was joined in time). Issue 29 asks the
same of namespace `/` and unknown namespaces, which are refused and so join nothing.

Each test waits for the close itself; the 0.5 s setting only keeps the suite short.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import SHORT_CONNECT_TIMEOUT, StartGateway
from tests.conformance.wire import WsSession, join_visitor, now, open_session, parse_sio


@pytest.mark.parametrize("first", [
    pytest.param(None, id="nothing-sent"),
    pytest.param("40", id="refused-main-namespace"),
    pytest.param("40/nope,", id="refused-unknown-namespace"),
])
async def test_a_session_that_joins_no_namespace_is_closed(start_gateway: StartGateway, transport: str,
                                                           first: str | None) -> None:
    """A session that sends no CONNECT — or only CONNECTs the server refuses (`/`, `/nope`) —
    is closed CONNECT_TIMEOUT after its handshake: the websocket is closed, or the pending
    long-poll GET is answered with a close packet `1` and the next GET with 400.
    Spec: socket.io-protocol "Connection to a namespace"; test-suite "should close the
    connection if no handshake is received"."""
    gw = await start_gateway(connect_timeout=SHORT_CONNECT_TIMEOUT)
    opened = now()
    s = await open_session(gw.http, gw.url, transport)
    if first is not None:
        await s.send(first)
        refusal = parse_sio(await s.recv())
        assert refusal.type == 4, refusal  # CONNECT_ERROR: nothing joined
    seen = await s.wait_closed()
    assert now() - opened >= SHORT_CONNECT_TIMEOUT, "closed before CONNECT_TIMEOUT"
    assert not [p for p in seen if p.startswith("4")], seen


async def test_a_session_that_joined_stays_open(start_gateway: StartGateway, transport: str) -> None:
    """A session that joined /visitor is not closed by the connect timeout: once a session
    opened after it (and joining nothing) has been closed for the timeout, the joined one
    still answers requests.
    Spec: socket.io client.ts `doConnect` (joining a namespace clears the connect timer)."""
    gw = await start_gateway(connect_timeout=SHORT_CONNECT_TIMEOUT)
    joined = await open_session(gw.http, gw.url, transport)
    assert (await join_visitor(joined, gw.visitor_auth())).type == 0
    idle = await WsSession.open(gw.http, gw.url)
    await idle.wait_closed()  # CONNECT_TIMEOUT has passed for `joined` too
    await joined.send('42/visitor,1["session:get"]')
    ack = parse_sio(await joined.recv())
    assert (ack.type, ack.nsp, ack.ack) == (3, "/visitor", 1), ack
