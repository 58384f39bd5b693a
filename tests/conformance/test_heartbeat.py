"""Engine.IO v4 heartbeat at sub-second settings: the server pings every pingInterval and
ends a session whose ping goes unanswered for pingTimeout.

Spec: engine.io-protocol README "Heartbeat"; test-suite/test-suite.js "heartbeat" (run
there against pingInterval 300 ms, pingTimeout 200 ms). The reference schedules the next
ping pingInterval after the pong (socket.ts `schedulePing`, `pingIntervalTimer.refresh`)
and ends the session pingTimeout after a ping (`resetPingTimeout`).

These two tests measure time, because the schedule is what they check, as a client sees
it on a machine that may be loaded: a delay only ever makes a packet late. So each bound
below that says "not before" is exact — a ping comes no sooner than pingInterval after the
client sent the pong before it, the close no sooner than pingInterval + pingTimeout after
the last pong — and each "not after" is generous (`SLACK`). How precisely the server keeps
its deadlines (within one tick of its timer wheel, never before) is checked on an injected
clock in tests/transport/test_heartbeat.py. pingTimeout is 1 s here, not the reference
suite's 200 ms, so that a slow client still answers every ping in time.
"""

from __future__ import annotations

from tests.conformance.conftest import SHORT_PING_INTERVAL, StartGateway
from tests.conformance.wire import PollingSession, WsSession, now

PING_TIMEOUT = 1.0  # seconds the client has to answer a ping: ample on a loaded machine
SLACK = 1.0  # seconds a loaded machine may add to what the client sees (an upper bound only)
PINGS = 3


def check_timing(pongs: list[float], pings: list[float], closed: float) -> None:
    """`pongs[k]`: when the client sent its answer to `pings[k]` (the last ping has none)."""
    gaps = [round(ping - pong, 3) for pong, ping in zip(pongs, pings[1:], strict=True)]
    assert all(SHORT_PING_INTERVAL <= g <= SHORT_PING_INTERVAL + SLACK for g in gaps), (
        f"pings {gaps} s after the pong before them: expected {SHORT_PING_INTERVAL} s, at most {SLACK} s later")
    late = round(closed - pongs[-1], 3)
    expected = SHORT_PING_INTERVAL + PING_TIMEOUT
    assert expected <= late <= expected + SLACK, (
        f"closed {late} s after the last pong: expected pingInterval + pingTimeout = {expected} s,"
        f" at most {SLACK} s later")


async def test_websocket_heartbeat(start_gateway: StartGateway) -> None:
    """websocket: a ping `2` pingInterval after each pong `3`; after an unanswered ping the
    connection is closed pingTimeout later.
    Spec: engine.io-protocol "Heartbeat"; test-suite "sends ping/pong packets" and "closes
    the session upon ping timeout" (WebSocket)."""
    gw = await start_gateway(ping_interval=SHORT_PING_INTERVAL, ping_timeout=PING_TIMEOUT)
    s = await WsSession.open(gw.http, gw.url)
    pings: list[float] = []
    pongs: list[float] = []
    while len(pings) < PINGS:
        p = await s.frame()
        pings.append(now())
        assert p == "2", f"expected a ping, got {p!r}"
        if len(pings) < PINGS:
            pongs.append(now())
            await s.send("3")
    seen = await s.wait_closed()  # the last ping goes unanswered
    closed = now()
    assert seen == [], f"expected the close, got {seen!r}"
    check_timing(pongs, pings, closed)


async def test_polling_heartbeat(start_gateway: StartGateway) -> None:
    """HTTP long-polling: each long-poll GET is answered with a ping `2` pingInterval after
    the previous pong (a POST `3`); after an unanswered ping the pending GET is answered
    with a close packet `1` pingTimeout later and the session is gone (GET → 400).
    Spec: engine.io-protocol "Heartbeat"; test-suite "sends ping/pong packets" and "closes
    the session upon ping timeout" (HTTP long-polling)."""
    gw = await start_gateway(ping_interval=SHORT_PING_INTERVAL, ping_timeout=PING_TIMEOUT)
    s = await PollingSession.open(gw.http, gw.url)
    pings: list[float] = []
    pongs: list[float] = []
    while len(pings) < PINGS:
        a = await s.get()
        pings.append(now())
        assert (a.status, a.body) == (200, "2"), f"expected a ping, got {a.shape()}"
        if len(pings) < PINGS:
            pongs.append(now())
            pong = await s.post("3")
            assert pong.status == 200, pong.shape()
    a = await s.get()  # pending while the last ping goes unanswered
    closed = now()
    assert (a.status, a.body) == (200, "1"), f"expected the close packet, got {a.shape()}"
    after = await s.get()
    assert after.status == 400, f"GET after the ping timeout: expected 400, got {after.shape()}"
    check_timing(pongs, pings, closed)
