"""Socket.IO v5 over both Engine.IO transports: namespace CONNECT (accepted, refused),
EVENT with an ack id, and the packets that must close the connection.

Spec: socket.io-protocol README "Connection to a namespace", "Sending and receiving data",
"Acknowledgement", "Packet encoding"; test-suite/test-suite.js "Socket.IO protocol";
socket.io client.ts (`connect`, `ondecoded`, `onerror`) and socket.io-parser `Decoder`
for the reference's answers.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Gateway
from tests.conformance.wire import Session, join_visitor, open_session, parse_sio

INVALID_NAMESPACE = '{"message":"Invalid namespace"}'


async def test_connect_to_visitor(gateway: Gateway, transport: str) -> None:
    """CONNECT `40/visitor,{auth}` → `40/visitor,{"sid":"..."}` (the payload holds the
    Socket.IO sid only), then the application's first event.
    Spec: socket.io-protocol "Connection to a namespace" (with a custom namespace, with an
    additional payload), "Difference between v5 and v4" (CONNECT payload, sid in the answer);
    test-suite "should allow connection to a custom namespace with a payload"."""
    s = await open_session(gateway.http, gateway.url, transport)
    answer = await join_visitor(s, gateway.visitor_auth())
    assert (answer.type, answer.nsp, answer.ack) == (0, "/visitor", None), answer
    assert set(answer.data) == {"sid"} and isinstance(answer.data["sid"], str), answer


@pytest.mark.parametrize(("connect", "refusal"), [
    pytest.param("40", "44" + INVALID_NAMESPACE, id="main-namespace"),
    pytest.param('40{"widget_key":"x"}', "44" + INVALID_NAMESPACE, id="main-namespace-with-auth"),
    pytest.param("40/nope,", "44/nope," + INVALID_NAMESPACE, id="unknown-namespace"),
    pytest.param("40/nope", "44/nope," + INVALID_NAMESPACE, id="unknown-namespace-no-comma"),
    pytest.param('40/nope,{"widget_key":"x"}', "44/nope," + INVALID_NAMESPACE, id="unknown-namespace-with-auth"),
])
async def test_a_namespace_the_server_does_not_serve_is_refused(gateway: Gateway, transport: str, connect: str,
                                                               refusal: str) -> None:
    """CONNECT to a namespace the server does not serve — the main namespace `/` (we serve
    only /visitor and /agent) or `/nope` — is answered CONNECT_ERROR exactly as the
    reference server answers it: `44{"message":"Invalid namespace"}` for `/` (the main
    namespace is not written), `44/nope,{"message":"Invalid namespace"}` otherwise. The
    Engine.IO session stays open: the client may then join a namespace that exists.
    Spec: socket.io-protocol "Connection to a namespace" (CONNECT_ERROR when the connection
    is not allowed), "Packet encoding" (the namespace is only included if it is not `/`);
    test-suite "should disallow connection to an unknown namespace" (`40/random` →
    `44/random,{"message":"Invalid namespace"}`); socket.io client.ts `connect`."""
    s = await open_session(gateway.http, gateway.url, transport)
    await s.send(connect)
    got = await s.recv()
    assert got == refusal, f"expected {refusal!r}, got {got!r}"
    answer = await join_visitor(s, gateway.visitor_auth())
    assert (answer.type, answer.nsp) == (0, "/visitor"), answer


async def test_an_event_with_an_ack_id_is_acknowledged(gateway: Gateway, transport: str) -> None:
    """EVENT with an ack id `42/visitor,4567["session:get"]` → ACK with the same id in the
    same namespace `43/visitor,4567[...]`, its payload an array.
    Spec: socket.io-protocol "Acknowledgement" (the receiver MUST respond with an ACK packet
    with the same event ID; the payload MUST be an array), "Packet encoding" (`3/admin,13["bar"]`);
    test-suite "should send a plain-text packet with an ack"."""
    s = await open_session(gateway.http, gateway.url, transport)
    assert (await join_visitor(s, gateway.visitor_auth())).type == 0
    await s.send('42/visitor,4567["session:get"]')
    raw = await s.recv()
    ack = parse_sio(raw)
    assert (ack.type, ack.nsp, ack.ack) == (3, "/visitor", 4567), raw
    assert isinstance(ack.data, list) and ack.data[0]["ok"] is True, raw


async def expect_closed(s: Session) -> None:
    seen = await s.wait_closed()
    answers = [p for p in seen if p.startswith(("43", "42", "44"))]
    assert answers == [], f"expected the connection closed without an answer, got {answers!r}"


@pytest.mark.parametrize("packets", [
    pytest.param(["4abc"], id="unknown-packet-type"),
    pytest.param(['40/visitor,"x"'], id="connect-payload-not-an-object"),
    pytest.param(['42/visitor,["session:get"]'], id="event-before-connect"),
])
async def test_an_invalid_first_packet_closes_the_connection(gateway: Gateway, transport: str,
                                                             packets: list[str]) -> None:
    """Before any namespace is joined, a packet that does not decode (unknown type `4abc`,
    a CONNECT whose payload is not an object) or that is not a CONNECT
    closes the connection, unanswered.
    Spec: socket.io-protocol "Connection to a namespace" (if the server does not receive a
    CONNECT packet first, it MUST close the connection immediately); test-suite "should
    disallow connection with an invalid handshake" (`4abc` → close)."""
    s = await open_session(gateway.http, gateway.url, transport)
    await s.send(*packets)
    await expect_closed(s)


@pytest.mark.parametrize("packets", [
    pytest.param(["4abc"], id="unknown-packet-type"),
    pytest.param(["42/visitor,{}"], id="event-payload-not-an-array"),
    pytest.param(["42/visitor,[]"], id="event-payload-empty-array"),
    pytest.param(['42/visitor,["session:get"'], id="event-payload-not-json"),
    pytest.param(['42/visitor,abc["session:get"]'], id="invalid-ack-id"),
    pytest.param(['42/agent,1["session:get"]'], id="event-to-a-namespace-not-joined"),
    pytest.param(['421["session:get"]'], id="event-to-the-main-namespace"),
    pytest.param(["40/visitor,{}"], id="second-connect-to-a-joined-namespace"),
])
async def test_an_invalid_packet_closes_the_connection(gateway: Gateway, transport: str,
                                                       packets: list[str]) -> None:
    """After joining /visitor, a packet that does not decode (unknown type, an EVENT whose
    payload is not a non-empty array or not JSON, an ack id that is not a number) or that
    is not valid in the connection's state (an EVENT for a namespace not joined,
    a second CONNECT to a joined namespace) closes the connection, unanswered.
    Spec: socket.io-protocol "Sending and receiving data" (the payload MUST be a non-empty
    array; if not, the receiver MUST close the connection); test-suite "should close the
    connection upon invalid format (unknown packet type / invalid payload format / invalid
    ack id)"; socket.io client.ts `ondecoded` ("invalid state" → close)."""
    s = await open_session(gateway.http, gateway.url, transport)
    assert (await join_visitor(s, gateway.visitor_auth())).type == 0
    await s.send(*packets)
    await expect_closed(s)
