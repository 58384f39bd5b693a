"""The slimmed per-connection state: the client manager without stored sid rooms, the
small environ, lazily made Conn fields, the frame parser dropped between frames, and
principals shared by one agent's connections."""

from __future__ import annotations

import sys
from typing import Any, cast

import pytest
import socketio

from gateway.chat.principals import AgentPrincipal, VisitorPrincipal
from gateway.domain import AgentRole
from gateway.realtime.context import Conn
from gateway.realtime.handshake import Handshake
from gateway.realtime.reserved import SafeAsyncServer
from gateway.transport.frames import OP_TEXT, FrameParser
from gateway.transport.hub import LeanEnviron
from gateway.transport.manager import LeanManager

NS = "/agent"


async def _connected(mgr: LeanManager, eio_sid: str) -> str:
    sid = await mgr.pre_connect(eio_sid, NS)
    assert sid is not None
    await mgr.connect(sid, NS)
    return cast(str, sid)


async def test_manager_keeps_no_room_per_sid() -> None:
    sio = SafeAsyncServer(async_mode="aiohttp")
    mgr = sio.manager
    assert isinstance(mgr, LeanManager)
    a = await _connected(mgr, "eio-a")
    b = await _connected(mgr, "eio-b")
    assert set(mgr.rooms[NS]) == {None}  # only the namespace's sid -> eio sid map
    assert mgr.is_connected(a, NS) and mgr.is_sid_room(NS, a)
    assert mgr.sid_from_eio_sid("eio-a", NS) == a and mgr.eio_sid_from_sid(b, NS) == "eio-b"

    assert list(mgr.get_participants(NS, a)) == [(a, "eio-a")]
    assert dict(mgr.get_participants(NS, None)) == {a: "eio-a", b: "eio-b"}
    assert list(mgr.get_participants(NS, "nobody")) == []

    await mgr.enter_room(b, NS, "lobby")
    assert mgr.get_rooms(b, NS) == [b, "lobby"]
    assert mgr.get_rooms(a, NS) == [a]
    assert dict(mgr.get_participants(NS, [a, "lobby"])) == {a: "eio-a", b: "eio-b"}
    with pytest.raises(ValueError):
        await mgr.enter_room(a, NS, b)  # cannot enter another sid's room
    with pytest.raises(ValueError):
        await mgr.close_room(a, NS)
    await mgr.leave_room(a, NS, a)  # a no-op, as before
    assert mgr.is_connected(a, NS)

    await mgr.disconnect(b, NS)
    assert not mgr.is_connected(b, NS)
    assert "lobby" not in mgr.rooms[NS]
    assert list(mgr.get_participants(NS, b)) == []
    await mgr.disconnect(a, NS)
    assert NS not in mgr.rooms


class _CountingSid(str):
    """A sid that counts the equality tests made against it."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _CountingSid.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


async def test_pending_connects_and_disconnects_are_hash_sets() -> None:
    """While many handshakes or disconnect handlers are in flight, each check of one sid
    finds it by hash, not by comparing it with every other pending sid."""
    sio = SafeAsyncServer(async_mode="aiohttp")
    mgr = sio.manager
    pending = [cast(str, await mgr.pre_connect(f"eio-{i}", NS)) for i in range(2000)]
    assert not mgr.is_connected(pending[-1], NS) and mgr.is_pre_connected(pending[-1], NS)
    for sid in pending:
        await mgr.connect(sid, NS)
    assert NS not in mgr.pending_connect and all(mgr.is_connected(sid, NS) for sid in pending)

    for sid in pending:
        mgr.pre_disconnect(sid, NS)  # every client drops at once
    last = _CountingSid(pending[-1])
    _CountingSid.compared = 0
    assert not mgr.is_connected(last, NS)
    assert _CountingSid.compared <= 2  # a list would compare it with the 1,999 before it
    for sid in pending:
        await mgr.disconnect(sid, NS)
    assert NS not in mgr.pending_disconnect and NS not in mgr.rooms


async def test_manager_emit_to_a_sid() -> None:
    sent: list[tuple[str, Any]] = []
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=LeanManager())

    async def send_eio(eio_sid: str, pkt: Any) -> None:
        sent.append((eio_sid, pkt.data))

    sio._send_eio_packet = send_eio
    a = await _connected(sio.manager, "eio-a")
    await _connected(sio.manager, "eio-b")
    await sio.emit("session", {"x": 1}, to=a, namespace=NS)
    assert sent == [("eio-a", '2/agent,["session",{"x":1}]')]


def test_lean_environ_is_a_small_mapping() -> None:
    env = LeanEnviron("10.0.0.1", None)
    assert env["REMOTE_ADDR"] == "10.0.0.1" and env["REQUEST_METHOD"] == "GET"
    assert env.get("HTTP_USER_AGENT", "") == "" and env.get("aiohttp.request") is None
    assert dict(env) == {"REQUEST_METHOD": "GET", "REMOTE_ADDR": "10.0.0.1"}
    with pytest.raises(KeyError):
        env["HTTP_ORIGIN"]
    env = LeanEnviron("10.0.0.1", ("ua/1", "https://site", None, None, None))
    assert env["HTTP_USER_AGENT"] == "ua/1" and env["HTTP_ORIGIN"] == "https://site"
    assert "HTTP_X_REAL_IP" not in env and len(env) == 4


def test_conn_fields_made_on_first_use() -> None:
    agent = AgentPrincipal("t", "a1", AgentRole.AGENT, "A")
    c = Conn("s", "e", NS, "t", agent, "")
    assert c._watching is None and c.groups == ()
    assert "x" not in c.watching
    c.watching.add("x")
    assert c.watching == {"x"}
    assert c.session == {"agent_id": "a1", "tenant_id": "t"} and c._session is None
    c.session = {"k": 1}
    assert c.session == {"k": 1}
    v = Conn("s2", "e2", "/visitor", "t", VisitorPrincipal("t", "v", "c"), "")
    v.session["visitor_id"] = "v"
    assert v.session == {"visitor_id": "v"}


def test_frame_parser_idle_between_frames() -> None:
    p = FrameParser(1024)
    assert p.idle
    frame = bytes((0x81, 0x80 | 2)) + b"\0\0\0\0" + b"40"
    assert p.feed(frame[:3]) == [] and not p.idle
    assert p.feed(frame[3:]) == [(OP_TEXT, b"40")] and p.idle
    first = bytes((0x01, 0x80 | 1)) + b"\0\0\0\0" + b"4"
    assert p.feed(first) == [] and not p.idle  # a fragmented message in progress


def test_principals_shared_per_agent() -> None:
    hs = Handshake(cast(Any, None), cast(Any, None), lambda: 0.0)
    tenant = "".join(["ten", "ant"])
    p1 = hs._agent_principal(tenant, "".join(["ag", "1"]), AgentRole.ADMIN, "Ann")
    p2 = hs._agent_principal("".join(["tena", "nt"]), "".join(["a", "g1"]), AgentRole.ADMIN, "Ann")
    assert p1 is p2 and p1.tenant_id is sys.intern("tenant")
    assert hs._agent_principal(tenant, "ag1", AgentRole.AGENT, "Ann") is not p1  # a role change
