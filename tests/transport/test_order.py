"""Per-connection order on the lean transport under mixed broadcast, ack and private traffic.

A bare python-socketio AsyncServer on the lean transport: each `go` request interleaves
coalesced fan-out frames (LeanEmitter.emit_many to every connection), private events via
python-socketio's own emit and private events via the Emitter, then acks. Every client
must see its packets exactly in the order the server issued them, the ack last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import socketio

from gateway.realtime.context import Conn
from gateway.realtime.reserved import SafeAsyncServer
from gateway.transport import LeanEmitter, LeanSocket, LeanTransport
from gateway.transport.hub import LeanSettings
from tests.transport.rawws import RawClient, serve_lean

NS = "/t"


@contextlib.asynccontextmanager
async def bare_server(**settings: Any) -> AsyncIterator[tuple[str, socketio.AsyncServer, LeanTransport]]:
    sio = SafeAsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    hub = LeanTransport(sio.eio, LeanSettings(**settings))
    hub.event_task = sio.event_task  # as gateway.app wires it: events take the one-task path …
    sio.ack_sink = hub.send_ack  # … and acks go straight to frames
    hub.install()
    emitter = LeanEmitter(sio, hub)
    conns: dict[str, Conn] = {}

    class Ns(socketio.AsyncNamespace):  # type: ignore[misc]
        async def on_connect(self, sid: str, environ: dict[str, Any]) -> None:
            eio_sid = sio.manager.eio_sid_from_sid(sid, NS)
            conns[sid] = Conn(sid, eio_sid, NS, "t", cast(Any, None), "")

        async def on_disconnect(self, sid: str, reason: Any = None) -> None:
            conns.pop(sid, None)

        async def on_go(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
            me = conns[sid]
            tag = data["tag"]
            pad = "x" * data.get("pad", 0)
            for i in range(data["n"]):
                if i % 3 == 0:
                    await emitter.emit_many(list(conns.values()), "b", {"tag": tag, "i": i, "pad": pad})
                elif i % 3 == 1:
                    await sio.emit("p", {"tag": tag, "i": i, "pad": pad}, to=sid, namespace=NS)
                else:
                    await emitter.emit(me, "q", {"tag": tag, "i": i, "pad": pad})
                if i % 7 == 0:
                    await asyncio.sleep(0)  # let other requests interleave
            return {"tag": tag, "n": data["n"]}

    sio.register_namespace(Ns(NS))
    async with serve_lean(sio, hub) as url:
        yield url, sio, hub


@pytest.mark.parametrize("send_thread", [False, True], ids=["loop-writes", "send-thread"])
async def test_order_holds_under_mixed_traffic(send_thread: bool) -> None:
    async with bare_server(send_thread=send_thread) as (url, sio, hub):
        clients = [await RawClient.connect(url) for _ in range(4)]
        for c in clients:
            c.connect_ns(NS, {})
            kind, _ = await c.recv_packet()
            assert kind == "connect"
        assert all(type(sio.eio.sockets[c.eio_sid]) is LeanSocket for c in clients)
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
        assert (hub.sender is not None and hub.sender.jobs > 0) == send_thread
        for c in clients:
            await c.close()


async def test_order_holds_when_the_send_thread_diverts_to_the_transport() -> None:
    """A client that reads late (a tiny receive buffer, nothing read while the server
    sends): the send thread's writes would block, so they and every later one of that
    connection go back to the transport, in order; the client then gets every packet in
    issue order, and the connection goes back to the thread once the transport drained."""
    async with bare_server(send_thread=True, high_water=64 * 1024 * 1024) as (url, sio, hub):
        c = await RawClient.connect(url, rcvbuf=4096)
        c.connect_ns(NS, {})
        assert (await c.recv_packet())[0] == "connect"
        assert hub.sender is not None
        n = 90
        c.emit(NS, "go", {"tag": 0, "n": n, "pad": 80_000})  # 7 MB: more than the kernel takes
        await asyncio.sleep(0.5)  # the server writes all of it while the client reads nothing
        assert hub.sender.diverted > 0
        seen = [await asyncio.wait_for(c.recv_packet(), 10) for _ in range(n + 1)]
        assert [body[1]["i"] for kind, body in seen[:n]] == list(range(n))
        assert seen[n][0] == "ack"
        jobs = hub.sender.jobs
        c.emit(NS, "go", {"tag": 1, "n": 3})
        seen = [await asyncio.wait_for(c.recv_packet(), 10) for _ in range(4)]
        assert [body[1]["i"] for kind, body in seen[:3]] == [0, 1, 2] and seen[3][0] == "ack"
        assert hub.sender.jobs > jobs  # back on the thread
        await c.close()


async def test_private_packets_and_acks_share_the_coalescing_buffer() -> None:
    """Fan-out frames, private packets and the ack of one request leave in order, in one write."""
    async with bare_server(flush_delay=0.2) as (url, sio, hub):
        c = await RawClient.connect(url)
        c.connect_ns(NS, {})
        assert (await c.recv_packet())[0] == "connect"
        frames0, writes0 = hub.frames_coalesced, hub.writes_coalesced
        c.emit(NS, "go", {"tag": 0, "n": 2})
        seen = [await asyncio.wait_for(c.recv_packet(), 5) for _ in range(3)]
        assert [s[1][0] if s[0] == "event" else "ack" for s in seen] == ["b", "p", "ack"]
        assert (hub.frames_coalesced - frames0, hub.writes_coalesced - writes0) == (3, 1)
        await c.close()
