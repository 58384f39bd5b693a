"""Hand-off of a connection between two aiohttp servers in one process (the same code the
workers run; tests/workers/test_workers.py runs real worker processes)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.cluster.handoff import HandoffReceiver, HandoffSender, encode_request, handoff_middleware, message_size
from gateway.cluster.sids import WorkerSids
from tests.support.waits import until

MAX_BODY = 64 * 1024


def _app(name: str, middlewares: list[Any]) -> web.Application:
    async def eio(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"served_by": name, "method": request.method, "sid": request.query.get("sid"),
                                  "body": len(body), "peer": request.remote, "pid": os.getpid(),
                                  "x": request.headers.get("X-Test")})

    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app.router.add_route("*", "/socket.io/", eio)
    return app


class Pair:
    def __init__(self, a_url: str, receiver: HandoffReceiver, sender: HandoffSender, b_sids: WorkerSids,
                 a_sids: WorkerSids) -> None:
        self.a_url, self.receiver, self.sender, self.b_sids, self.a_sids = a_url, receiver, sender, b_sids, a_sids


@pytest.fixture
async def pair(tmp_path: Any) -> AsyncIterator[Pair]:
    """Worker 0 (A) listens on TCP; worker 1 (B) only adopts what A hands over."""
    paths = [str(tmp_path / "w0.sock"), str(tmp_path / "w1.sock")]
    size = message_size(MAX_BODY)
    a_sids, b_sids = WorkerSids(0, 2), WorkerSids(1, 2)
    sender = HandoffSender(paths, size)
    a_runner = web.AppRunner(_app("A", [handoff_middleware("/socket.io/", a_sids, sender)]))
    b_runner = web.AppRunner(_app("B", []))
    await a_runner.setup()
    await b_runner.setup()
    assert b_runner.server is not None
    receiver = HandoffReceiver(paths[1], b_runner.server, size)
    receiver.start()
    site = web.TCPSite(a_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Pair(f"http://127.0.0.1:{port}", receiver, sender, b_sids, a_sids)
    finally:
        sender.close()
        receiver.close()
        await a_runner.cleanup()
        await b_runner.cleanup()


async def test_requests_for_the_siblings_sessions_are_served_by_the_sibling(pair: Pair) -> None:
    b_sid, a_sid = pair.b_sids.generate(), pair.a_sids.generate()
    async with aiohttp.ClientSession() as http:  # one keep-alive connection
        async with http.get(pair.a_url + "/socket.io/", params={"EIO": "4", "transport": "polling",
                                                                "sid": a_sid}) as r:
            assert (await r.json())["served_by"] == "A"
        body = b"4" + os.urandom(20_000).hex().encode()  # 40 KB, more than one socket read
        async with http.post(pair.a_url + "/socket.io/", params={"EIO": "4", "sid": b_sid}, data=body,
                             headers={"X-Test": "kept"}) as r:
            got = await r.json()
        assert got["served_by"] == "B" and got["body"] == len(body) and got["x"] == "kept"
        assert got["peer"] == "127.0.0.1"  # the client's own address, not the unix socket's
        # the connection itself moved: the next request on it reaches B whatever its sid
        async with http.get(pair.a_url + "/socket.io/", params={"sid": a_sid}) as r:
            assert (await r.json())["served_by"] == "B"
    assert pair.sender.sent == 1 and pair.receiver.adopted == 1


async def test_chunked_bodies_are_handed_over_whole(pair: Pair) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield str(i).encode() * 1000
            await asyncio.sleep(0)

    async with aiohttp.ClientSession() as http, http.post(
            pair.a_url + "/socket.io/", params={"sid": pair.b_sids.generate()}, data=chunks()) as r:
        got = await r.json()
    assert got == {**got, "served_by": "B", "method": "POST", "body": 5000}


async def test_an_unreachable_sibling_answers_invalid_session_and_keeps_the_connection(pair: Pair) -> None:
    pair.receiver.close()
    pair.sender.close()
    async with aiohttp.ClientSession() as http:
        async with http.get(pair.a_url + "/socket.io/", params={"sid": pair.b_sids.generate()}) as r:
            assert r.status == 400 and (await r.json()) == {"code": 1, "message": "Session ID unknown"}
        async with http.get(pair.a_url + "/socket.io/", params={"sid": pair.a_sids.generate()}) as r:
            assert (await r.json())["served_by"] == "A"
    assert pair.sender.failed == 1


async def test_unknown_and_foreign_ids_stay_where_they_land(pair: Pair) -> None:
    async with aiohttp.ClientSession() as http:
        for sid in ("", "zzzz", "9abc"):  # no worker of two made these
            async with http.get(pair.a_url + "/socket.io/", params={"sid": sid}) as r:
                assert (await r.json())["served_by"] == "A"
        async with http.get(pair.a_url + "/other", params={"sid": pair.b_sids.generate()}) as r:
            assert r.status == 404
    assert pair.sender.sent == 0


async def test_a_truncated_or_fdless_message_is_refused_and_closes_nothing_else(pair: Pair, tmp_path: Any) -> None:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.connect(pair.receiver.path)
    c.send(b"GET / HTTP/1.1\r\n\r\n")  # no descriptor
    await until(lambda: pair.receiver.refused)
    c.close()
    assert pair.receiver.refused == 1 and pair.receiver.adopted == 0
    async with aiohttp.ClientSession() as http, http.get(
            pair.a_url + "/socket.io/", params={"sid": pair.b_sids.generate()}) as r:
        assert (await r.json())["served_by"] == "B"


def test_encode_request_keeps_the_head_and_re_frames_the_body() -> None:
    raw = encode_request("POST", "/socket.io/?EIO=4&sid=x", (1, 1),
                         [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked"), (b"X-A", b"1")], b"abc")
    assert raw == (b"POST /socket.io/?EIO=4&sid=x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc")
    assert encode_request("GET", "/p", (1, 0), [(b"Content-Length", b"0")], b"") == b"GET /p HTTP/1.0\r\n\r\n"


def test_sids_name_their_worker() -> None:
    sids = [WorkerSids(i, 5) for i in range(5)]
    for s in sids:
        made = {s.generate() for _ in range(50)}
        assert len(made) == 50
        assert all(len(x) == 21 and sids[0].owner(x) == s.index for x in made)
    assert sids[0].owner("") is None and WorkerSids(0, 2).owner(sids[4].generate()) is None
    with pytest.raises(ValueError):
        WorkerSids(2, 2)
    with pytest.raises(ValueError):
        WorkerSids(0, 33)
