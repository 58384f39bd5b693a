"""The edge's dispatch budget: a storm of packets and closes (many clients
disconnecting at once) is spread over turns of the loop, each connection's packets still
handled in arrival order, nothing dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.edge import EngineServer, EngineSettings, Session, SocketServer
from gateway.edge.ws import WsConnection
from tests.support.waits import until
from tests.transport.rawws import RawClient, serve_sockets

BUDGET = 3
CLIENTS = 30
NS = "/t"


class TurnCounter:
    """Counts turns of the loop: a callback that schedules itself again for the next one."""

    def __init__(self) -> None:
        self.turn = 0
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.turn += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


@contextlib.asynccontextmanager
async def budget_server(log: list[tuple[str, Any]], settings: EngineSettings | None = None
                        ) -> AsyncIterator[tuple[str, EngineServer]]:
    # handlers log at their first step, in the task their packet started (tasks start in
    # the order they were made): the order they record is the order of dispatch
    sockets = SocketServer(settings or EngineSettings(dispatch_budget=BUDGET))

    class Ns:
        async def connect(self, sid: str, session: Session, auth: Any) -> None:
            if log:  # after the first storm began: a namespace joined again
                log.append((sid, "connected"))

        async def disconnect(self, sid: str) -> None:
            log.append((sid, "gone"))

        async def event(self, sid: str, event: str, args: list[Any]) -> Any:
            log.append((sid, args[0]))

    sockets.namespaces[NS] = Ns()
    async with serve_sockets(sockets) as url:
        yield url, sockets.engine


async def connected(url: str, n: int) -> tuple[list[RawClient], list[str]]:
    """`n` clients, each with the main namespace joined, and their Socket.IO sids."""
    clients = [await RawClient.connect(url) for _ in range(n)]
    sids: list[str] = []
    for c in clients:
        c.connect_ns(NS, {})
        kind, body = await c.recv_packet()
        assert kind == "connect"
        sids.append(body["sid"])
    return clients, sids


async def test_a_disconnect_storm_is_spread_over_turns_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    turns = TurnCounter()
    per_turn: dict[int, int] = {}  # leaving items (DISCONNECT packets, ends) dispatched per turn
    on_message, close = SocketServer.on_message, EngineServer.close

    def count(turn: int) -> None:
        per_turn[turn] = per_turn.get(turn, 0) + 1

    def spy_message(self: SocketServer, session: Session, text: str) -> None:
        if text.startswith("1"):
            count(turns.turn)
        on_message(self, session, text)

    def spy_close(self: EngineServer, session: Session, reason: str, **kw: Any) -> None:
        if not session.closed:
            count(turns.turn)
        close(self, session, reason, **kw)

    monkeypatch.setattr(SocketServer, "on_message", spy_message)
    monkeypatch.setattr(EngineServer, "close", spy_close)
    log: list[tuple[str, Any]] = []
    async with budget_server(log) as (url, hub):
        clients, sids = await connected(url, CLIENTS + 2)
        storm, (reopener, probe) = clients[:CLIENTS], clients[CLIENTS:]
        await asyncio.sleep(0.05)
        per_turn.clear()
        turns.start()
        try:
            # every client at once: two events, its namespace's DISCONNECT, then its end
            for c in storm:
                c.send_texts(['42/t,["ev",1]', '42/t,["ev",2]', "41/t,"])
                c.writer.close()
            # behind them: one client leaves its namespace and joins it again on the same
            # connection (its CONNECT must wait for its DISCONNECT), one just sends
            reopener.send_texts(["41/t,", "40/t,", '42/t,["ev","again"]'])
            probe.send_text('42/t,["ev","probe"]')
            # until everything is logged and the backlog is worked off: the ends of the storm's
            # connections can still wait there after their DISCONNECTs logged the last "gone"
            await until(lambda: (sum(1 for _, what in log if what == "gone") == CLIENTS + 1
                                 and len(log) >= 3 * CLIENTS + 4 and not hub.dispatch_backlog and not hub._held),
                        timeout=30)
        finally:
            turns.stop()
        for c in storm:
            with contextlib.suppress(ConnectionError, OSError):
                await c.writer.wait_closed()
        # nothing dropped, and each connection's packets handled in the order it sent them
        for sid in sids[:CLIENTS]:
            assert [what for s, what in log if s == sid] == [1, 2, "gone"]
        mine = [(s, what) for s, what in log if what in ("connected", "again") or s == sids[CLIENTS]]
        assert mine[0] == (sids[CLIENTS], "gone")
        assert [what for _, what in mine[1:]] == ["connected", "again"]
        assert mine[1][0] == mine[2][0] != sids[CLIENTS]  # the namespace's new session
        # the probe did not wait for the storm to be worked off
        kinds = [what for _, what in log]
        assert kinds.index("probe") < len(kinds) - 1 - kinds[::-1].index("gone")
        # the storm waited for later turns: at most a budget per turn from the sockets' reads
        # and a budget from the backlog
        assert hub.dispatch_backlog.deferred > 0
        assert hub.dispatch_backlog.longest > BUDGET
        assert max(per_turn.values()) <= 2 * BUDGET
        assert len(per_turn) >= 2 * CLIENTS // (2 * BUDGET)
        assert not hub.dispatch_backlog and not hub._held
        await reopener.close()
        await probe.close()


async def test_without_a_storm_nothing_waits() -> None:
    log: list[tuple[str, Any]] = []
    async with budget_server(log) as (url, hub):
        c = await RawClient.connect(url)
        c.connect_ns(NS, {})
        kind, body = await c.recv_packet()
        assert kind == "connect"
        for n in range(10):  # one packet per turn: never over the budget
            c.send_text(f'42/t,["ev",{n}]')
            await until(lambda: len(log) > n, interval=0.005)  # noqa: B023 - awaited in this iteration
        assert [what for _, what in log] == list(range(10))
        assert hub.dispatch_backlog.deferred == 0
        await c.close()


async def test_a_read_storm_is_parsed_over_turns_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads beyond the turn's read budget keep their bytes and are parsed in later turns:
    every connection's packets still in the order it sent them, its end after them, nothing
    dropped, at most a budget of parses from fresh reads and one from the backlog per turn."""
    turns = TurnCounter()
    per_turn: dict[int, int] = {}  # reads parsed per turn
    receive = WsConnection._receive

    def spy_receive(self: WsConnection, data: bytes) -> None:
        per_turn[turns.turn] = per_turn.get(turns.turn, 0) + 1
        receive(self, data)

    monkeypatch.setattr(WsConnection, "_receive", spy_receive)
    log: list[tuple[str, Any]] = []
    async with budget_server(log, EngineSettings(read_budget=BUDGET)) as (url, hub):
        clients, sids = await connected(url, CLIENTS)
        await asyncio.sleep(0.05)
        per_turn.clear()
        turns.start()
        try:
            for c in clients:  # every client at once: two events in two writes, then its end
                c.send_text('42/t,["ev",1]')
                c.send_text('42/t,["ev",2]')
                c.writer.close()
            await until(lambda: sum(1 for _, what in log if what == "gone") == CLIENTS, timeout=30)
        finally:
            turns.stop()
        for sid in sids:
            assert [what for s, what in log if s == sid] == [1, 2, "gone"]
        assert hub.read_backlog.deferred > 0 and hub.read_backlog.longest > BUDGET
        assert max(per_turn.values()) <= 2 * BUDGET
        assert not hub.read_backlog and not hub.sessions


async def test_a_waiting_socket_buffers_its_bytes_with_reading_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket whose bytes wait for a later turn keeps what else it reads behind them,
    stops reading past INBOX_PAUSE (its memory stays bounded), and resumes once parsed."""
    from gateway.edge import ws as ws_mod

    monkeypatch.setattr(ws_mod, "INBOX_PAUSE", 64)
    log: list[tuple[str, Any]] = []
    async with budget_server(log, EngineSettings()) as (url, hub):
        c = await RawClient.connect(url)
        c.connect_ns(NS, {})
        kind, _ = await c.recv_packet()
        assert kind == "connect"
        (session,) = list(hub.sessions.values())
        sock = session.ws
        assert sock is not None
        admitted = hub.read_admitted
        monkeypatch.setattr(hub, "read_admitted", lambda: False)  # every read over the budget
        drain = hub.read_backlog._drain
        monkeypatch.setattr(hub.read_backlog, "_drain", lambda: None)  # and no later turn comes yet
        for n in range(200):
            c.send_text(f'42/t,["ev",{n}]')
        await until(lambda: sock._inbox is not None and not sock.transport.is_reading())
        assert sock._inbox is not None
        held = len(sock._inbox)
        # a negative check: reading stays paused; the pause lets more bytes show if it did not
        # (a correct server passes whatever its length)
        await asyncio.sleep(0.05)
        assert len(sock._inbox) < held + 64 * 1024  # paused: at most what was in flight
        assert log == []
        monkeypatch.setattr(hub, "read_admitted", admitted)
        monkeypatch.setattr(hub.read_backlog, "_drain", drain)
        hub.read_backlog._handle = None
        hub.read_backlog._drain()
        await until(lambda: len(log) == 200)
        assert [what for _, what in log] == list(range(200))
        assert sock._inbox is None and sock.transport.is_reading()
        await c.close()
