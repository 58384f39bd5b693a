"""MAX_CONNECTIONS_PER_IP counts every Engine.IO session of an address from its handshake,
on both transports, whether or not it joined a namespace (issue 29, "Connection
accounting"); a session frees its place when it ends.

The Engine.IO specification has no such cap; the reference server's way to refuse a
handshake is `allowRequest` → HTTP 403 `{"code": 4, "message": "Forbidden"}` over polling,
HTTP 400 before the upgrade over websocket (engine.io server.ts `verify`, `abortRequest`,
`abortUpgrade`). These tests ask for a refused handshake (a 4xx or 503 status instead of
the OPEN packet) and leave the exact status to the implementation.
"""

from __future__ import annotations

import aiohttp

from tests.conformance.conftest import Gateway, StartGateway
from tests.conformance.wire import (
    PollingSession,
    Session,
    WsSession,
    eio_url,
    join_visitor,
    open_session,
    parse_open,
    request,
    ws_base,
)

CAP = 3


async def attempt(gw: Gateway, transport: str) -> str:
    """A new session joining /visitor: `joined`, or how it was refused
    (`handshake <status>`, `connect <code>`)."""
    s: Session
    if transport == "polling":
        a = await request(gw.http, "GET", eio_url(gw.url, EIO="4", transport="polling"))
        if a.status != 200:
            return f"handshake {a.status}"
        s = PollingSession(gw.http, gw.url, parse_open(a.body))
    else:
        try:
            ws = await gw.http.ws_connect(eio_url(ws_base(gw.url), EIO="4", transport="websocket"))
        except aiohttp.WSServerHandshakeError as refused:
            return f"handshake {refused.status}"
        s = WsSession(ws, {})
        s.handshake = parse_open(await s.frame())
    answer = await join_visitor(s, gw.visitor_auth())
    if answer.type == 0:
        return "joined"
    return f"connect {answer.data.get('data', {}).get('code')}"


def refused_at_handshake(outcome: str) -> bool:
    status = outcome.removeprefix("handshake ")
    return status != outcome and (status.startswith("4") or status == "503")


async def test_sessions_that_joined_nothing_count_from_their_handshake(start_gateway: StartGateway,
                                                                       transport: str) -> None:
    """With MAX_CONNECTIONS_PER_IP sessions open from an address — two long-polling, one
    websocket, none of them joined to a namespace — the address's next handshake is
    refused; once one of them has ended, a new session can join /visitor.
    Issue 29 "Connection accounting"; docs/operations.md MAX_CONNECTIONS_PER_IP."""
    gw = await start_gateway(max_connections_per_ip=CAP)
    first = await PollingSession.open(gw.http, gw.url)
    # kept referenced: a dropped websocket client is closed when collected, ending its session
    kept = [await PollingSession.open(gw.http, gw.url), await WsSession.open(gw.http, gw.url)]
    outcome = await attempt(gw, transport)
    assert refused_at_handshake(outcome), f"a fourth session: expected its handshake refused, got {outcome!r}"
    await first.send("1")
    gone = await first.get()
    assert gone.status == 400, gone.shape()
    outcome = await attempt(gw, transport)
    assert outcome == "joined", f"after one session ended: expected to join, got {outcome!r}"
    assert len(kept) == 2


async def test_a_joined_session_counts_once(start_gateway: StartGateway, transport: str) -> None:
    """MAX_CONNECTIONS_PER_IP sessions may all join /visitor (a session and its namespace
    are one connection); the next handshake from the address is refused.
    Issue 29 "Connection accounting"; docs/operations.md MAX_CONNECTIONS_PER_IP."""
    gw = await start_gateway(max_connections_per_ip=CAP)
    kept = []  # referenced: a dropped websocket client is closed when collected, ending its session
    for i in range(CAP):
        kept.append(s := await open_session(gw.http, gw.url, transport))
        answer = await join_visitor(s, gw.visitor_auth())
        assert answer.type == 0, f"session {i + 1} of {CAP}: expected to join, got {answer}"
    outcome = await attempt(gw, transport)
    assert refused_at_handshake(outcome), f"session {CAP + 1}: expected its handshake refused, got {outcome!r}"
    assert len(kept) == CAP
