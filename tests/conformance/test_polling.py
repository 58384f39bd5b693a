"""Engine.IO v4 HTTP long-polling: sending (POST), receiving (GET), one request of each
kind at a time, the close packet.

Spec: engine.io-protocol README "HTTP long-polling" ("Sending data", "Receiving data"),
"Packet encoding / HTTP long-polling"; test-suite/test-suite.js "message" (polling),
"close" (polling); engine.io transports/polling.ts for the reference's answers.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.conftest import Gateway
from tests.conformance.wire import SEP, PollingSession, join_visitor, parse_sio


async def test_post_answers_ok_and_a_pending_get_returns_the_queued_packet(gateway: Gateway) -> None:
    """A POST is answered 200 with the body `ok`; a long-poll GET waits until the server has
    a packet for the session and returns it (here the Socket.IO CONNECT answer).
    Spec: engine.io-protocol "Sending data" (200, `ok`), "Receiving data" (the server MAY
    not respond right away ... once there are packets, sends them)."""
    s = await PollingSession.open(gateway.http, gateway.url)
    pending = await s.pending_get()
    a = await s.post(f"40/visitor,{gateway.visitor_auth()}")
    got = await pending
    assert got.status == 200, got
    first = parse_sio(got.body.split(SEP)[0])
    assert (first.type, first.nsp, set(first.data)) == (0, "/visitor", {"sid"}), got.body
    assert (a.status, a.body) == (200, "ok"), f"POST: expected (200, 'ok'), got {a.shape()}"


async def test_a_post_with_several_packets(gateway: Gateway) -> None:
    """A POST body holds several packets separated by the record separator \\x1e; each is
    handled (two EVENTs with ack ids → two ACKs), and GET bodies are \\x1e-separated payloads.
    Spec: engine.io-protocol "Packet encoding / HTTP long-polling"; socket.io-protocol
    "Sample session" request n°5."""
    s = await PollingSession.open(gateway.http, gateway.url)
    joined = await join_visitor(s, gateway.visitor_auth())
    assert joined.type == 0, joined
    await s.send('42/visitor,1["session:get"]', '42/visitor,2["conversation:list"]')
    acks: dict[int | None, Any] = {}
    while len(acks) < 2:
        p = parse_sio(await s.recv())
        if p.type == 3:
            acks[p.ack] = p.data
    assert set(acks) == {1, 2}, acks
    assert all(d[0]["ok"] is True for d in acks.values()), acks


async def test_a_second_concurrent_get_is_400_and_closes_the_session(gateway: Gateway) -> None:
    """A client MUST NOT have more than one active GET: the second is answered 400, the
    session is closed (the pending GET gets the close packet `1`), later requests get 400.
    Spec: engine.io-protocol "Receiving data"; test-suite "closes the session upon duplicate
    poll requests" (first GET → 200 `1`, second → 400)."""
    s = await PollingSession.open(gateway.http, gateway.url)
    first = await s.pending_get()
    second = await s.get()
    assert second.status == 400, f"second GET: expected 400, got {second.shape()}"
    got = await first
    assert (got.status, got.body) == (200, "1"), f"first GET: expected (200, '1'), got {got.shape()}"
    after = await s.get()
    assert after.status == 400, f"GET after the close: expected 400, got {after.shape()}"


async def test_a_close_packet_from_the_client_ends_the_session(gateway: Gateway) -> None:
    """The client POSTs a close packet `1`: the POST is answered `ok`, the pending GET is
    answered with a noop `6` (the transport closes cleanly), and the session is gone:
    later GET and POST get 400.
    Spec: engine.io-protocol "Protocol" (close: the transport can be closed); test-suite
    "forcefully closes the session" (polling: pending GET → `6`, next GET → 400)."""
    s = await PollingSession.open(gateway.http, gateway.url)
    pending = await s.pending_get()
    a = await s.post("1")
    assert (a.status, a.body) == (200, "ok"), a.shape()
    got = await pending
    assert (got.status, got.body) == (200, "6"), f"pending GET: expected (200, '6'), got {got.shape()}"
    after_get, after_post = await s.get(), await s.post("3")
    assert (after_get.status, after_post.status) == (400, 400), (after_get.shape(), after_post.shape())


@pytest.mark.parametrize("body", [
    pytest.param(b"abc", id="unknown-packet-type"),
    pytest.param(b"\x1e\x1e", id="empty-packets"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
])
async def test_an_invalid_payload_is_400_and_closes_the_session(gateway: Gateway, body: bytes) -> None:
    """A POST whose payload does not decode as Engine.IO packets is answered 400 and
    closes the session: the next GET gets 400.
    Spec: engine.io-protocol "Packet encoding"; test-suite "closes the session upon invalid
    packet format" (polling: POST `abc` → 400, then GET → 400). The reference answers that
    POST `ok` (its test accepts it): we answer 400 as the test-suite intends."""
    s = await PollingSession.open(gateway.http, gateway.url)
    a = await s.post(body)
    after = await s.get()
    assert (a.status, after.status) == (400, 400), f"POST {body!r} → {a.shape()}, then GET → {after.shape()}"

