"""Per-connection order on the edge under mixed broadcast, ack and private traffic.

A bare Socket.IO server of the edge: each `go` request interleaves coalesced fan-out
frames (EdgeEmitter.emit_many to every connection), private events via the server's own
emit and private events via the Emitter, then acks. Every client must see its packets
exactly in the order the server issued them, the ack last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

from gateway.edge import EngineSettings, Session, SocketServer
from gateway.realtime.context import Conn
from gateway.realtime.emitter import EdgeEmitter
from tests.transport.rawws import RawClient, serve_sockets

NS = "/t"


@contextlib.asynccontextmanager
async def bare_server(**settings: Any) -> AsyncIterator[tuple[str, SocketServer]]:
    sockets = SocketServer(EngineSettings(**settings))
    emitter = EdgeEmitter(sockets)
    conns: dict[str, Conn] = {}

    class Ns:
        async def connect(self, sid: str, session: Session, auth: Any) -> None:
            conns[sid] = Conn(sid, session.sid, NS, "t", cast(Any, None), "")

        async def disconnect(self, sid: str) -> None:
            conns.pop(sid, None)

        async def event(self, sid: str, event: str, args: list[Any]) -> Any:
            data = args[0]
            me = conns[sid]
            tag = data["tag"]
            pad = "x" * data.get("pad", 0)
            for i in range(data["n"]):
                if i % 3 == 0:
                    await emitter.emit_many(list(conns.values()), "b", {"tag": tag, "i": i, "pad": pad})
                elif i % 3 == 1:
                    sockets.emit(me.eio_sid, NS, "p", {"tag": tag, "i": i, "pad": pad})
                else:
                    await emitter.emit(me, "q", {"tag": tag, "i": i, "pad": pad})
                if i % 7 == 0:
                    await asyncio.sleep(0)  # let other requests interleave
            return {"tag": tag, "n": data["n"]}

    sockets.namespaces[NS] = Ns()
    async with serve_sockets(sockets) as url:
        yield url, sockets


async def test_order_holds_under_mixed_traffic() -> None:
    async with bare_server() as (url, sockets):
        clients = [await RawClient.connect(url) for _ in range(4)]
        for c in clients:
            c.connect_ns(NS, {})
            kind, _ = await c.recv_packet()
            assert kind == "connect"
        assert all(sockets.engine.sessions[c.eio_sid].transport == "websocket" for c in clients)
        n = 60
        for k, c in enumerate(clients):
            c.emit(NS, "go", {"tag": k, "n": n})
        # each client: its own p/q events and the broadcasts of every request, per tag in
        # issue order; its own ack after all of its own events.
        per_kind = [sum(1 for i in range(n) if i % 3 == r) for r in range(3)]
        expected_total = len(clients) * per_kind[0] + per_kind[1] + per_kind[2] + 1  # b from all, own p/q, ack
        for k, c in enumerate(clients):
            last: dict[int, int] = {}
            own_done = False
            got = 0
            while got < expected_total:
                kind, body = await asyncio.wait_for(c.recv_packet(), 20)
                got += 1
                if kind == "ack":
                    assert body[1] == [{"tag": k, "n": n}]
                    assert last.get(k) == n - 1, f"ack overtook events: {last}"
                    own_done = True
                    continue
                event, data = body
                tag, i = data["tag"], data["i"]
                if event in ("p", "q"):
                    assert tag == k and not own_done
                assert i > last.get(tag, -1), f"client {k}: {event} {i} after {last.get(tag)}"
                last[tag] = i
            assert own_done
            for tag in range(len(clients)):
                assert last[tag] >= n - 3  # every request's broadcasts got through
        for c in clients:
            await c.close()


async def test_private_packets_and_acks_share_the_coalescing_buffer() -> None:
    """Fan-out frames, private packets and the ack of one request leave in order, in one write."""
    async with bare_server(flush_delay=0.2) as (url, sockets):
        c = await RawClient.connect(url)
        c.connect_ns(NS, {})
        assert (await c.recv_packet())[0] == "connect"
        engine = sockets.engine
        frames0, writes0 = engine.frames_coalesced, engine.writes_coalesced
        c.emit(NS, "go", {"tag": 0, "n": 2})
        seen = [await asyncio.wait_for(c.recv_packet(), 5) for _ in range(3)]
        assert [s[1][0] if s[0] == "event" else "ack" for s in seen] == ["b", "p", "ack"]
        assert (engine.frames_coalesced - frames0, engine.writes_coalesced - writes0) == (3, 1)
        await c.close()
