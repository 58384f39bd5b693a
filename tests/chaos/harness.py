"""Resilient chat participants for chaos and drain tests.

A `Participant` is a python-socketio client that behaves like a well-written widget or agent
app: on any disconnect (node killed, transport cut, `server:draining`) it reconnects to a live
node, resumes its conversations with (epoch, seq), and resends unacked messages with the
same client_id. It records every delivery so the test can compare streams with the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio


@dataclass
class Outgoing:
    conversation_id: str
    client_id: str
    text: str


@dataclass
class Participant:
    name: str
    namespace: str
    auth: dict[str, Any]
    urls: Callable[[], list[str]]  # live nodes, asked at every (re)connect
    epochs: dict[str, str] = field(default_factory=dict)
    received: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)  # conv → seq → message
    acked: dict[str, int] = field(default_factory=dict)  # client_id → seq
    sent: set[str] = field(default_factory=set)
    pending: list[Outgoing] = field(default_factory=list)
    dup_in_conn: int = 0
    out_of_order: int = 0
    reconnects: int = 0
    drained: int = 0
    sio: socketio.AsyncClient | None = None
    _conn_last: dict[str, int] = field(default_factory=dict)
    _lost_conn: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def seen(self, conv: str) -> int:
        """Highest seq with no gap below it."""
        got, n = self.received.get(conv, {}), 0
        while n + 1 in got:
            n += 1
        return n

    def add_conversation(self, conv: str, epoch: str) -> None:
        self.epochs[conv] = epoch
        self.received.setdefault(conv, {})

    async def _on_message(self, data: Any) -> None:
        conv, seq = data["conversation_id"], int(data["seq"])
        last = self._conn_last.get(conv)
        if last is not None:
            if seq <= last:
                self.dup_in_conn += 1
            elif seq != last + 1:
                self.out_of_order += 1
            self._conn_last[conv] = max(last, seq)
        self.received.setdefault(conv, {})[seq] = data

    async def connect(self, url: str | None = None, prefer: str | None = None) -> None:
        """(Re)connect to a live node, resume every conversation and resend what is unacked."""
        for attempt in range(60):
            if url is None:
                live = self.urls()
                target = random.choice([u for u in live if u != prefer] or live)
            else:
                target = url
            if await self._attempt(target):
                return
            url = None
            await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
        raise AssertionError(f"{self.name} could not reconnect")

    async def _attempt(self, target: str) -> bool:
        sio = socketio.AsyncClient(reconnection=False)
        lost = asyncio.Event()
        session: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def on_msg(data: Any) -> None:
            if sio is self.sio:
                await self._on_message(data)

        async def on_session(data: Any) -> None:
            if not session.done():
                session.set_result(data)

        async def on_drain(data: Any = None) -> None:
            self.drained += 1
            lost.set()

        async def on_disconnect(*_: Any) -> None:
            lost.set()

        sio.on("message:new", on_msg, namespace=self.namespace)
        sio.on("session", on_session, namespace=self.namespace)
        sio.on("server:draining", on_drain, namespace=self.namespace)
        sio.on("disconnect", on_disconnect, namespace=self.namespace)
        try:
            await sio.connect(target, namespaces=[self.namespace], auth=self.auth, transports=["websocket"],
                              wait_timeout=5)
            sess = await asyncio.wait_for(session, 5)
            if "visitor_token" in sess:
                self.auth = {**self.auth, "visitor_token": sess["visitor_token"]}
            self.sio, self._lost_conn, self.url = sio, lost, target
            self._conn_last = {}
            await self._resume()
            return True
        except Exception:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            return False

    async def _resume(self) -> None:
        assert self.sio is not None
        if self.received:
            convs = []
            for conv in self.received:
                seq = self.seen(conv)
                self._conn_last[conv] = seq
                convs.append({"conversation_id": conv, "epoch": self.epochs[conv], "seq": seq})
            res = await self.sio.call("resume", {"conversations": convs}, namespace=self.namespace, timeout=10)
            assert res["ok"], res
            for r in res["results"]:
                assert r["ok"], r
        for out in list(self.pending):
            await self._send_once(out)

    async def _send_once(self, out: Outgoing) -> None:
        assert self.sio is not None
        while True:
            res = await self.sio.call("message:send", {"conversation_id": out.conversation_id,
                                                       "client_id": out.client_id, "text": out.text},
                                      namespace=self.namespace, timeout=5)
            if res.get("ok"):
                self.acked[out.client_id] = int(res["message"]["seq"])
                with contextlib.suppress(ValueError):
                    self.pending.remove(out)
                return
            if res["error"]["code"] == "rate_limited":
                await asyncio.sleep(float(res["error"]["details"]["retry_after"]))
                continue
            raise AssertionError(f"{self.name}: send refused: {res}")

    async def send(self, conv: str, text: str) -> None:
        out = Outgoing(conv, str(uuid.uuid4()), text)
        self.sent.add(out.client_id)
        self.pending.append(out)
        await self.ensure_sent()

    async def ensure_sent(self, deadline: float = 30.0) -> None:
        """Keep trying (reconnecting as needed) until nothing is pending."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while self.pending:
            assert loop.time() < end, f"{self.name}: could not send for {deadline}s"
            if self.sio is None or self._lost_conn.is_set() or not self.sio.connected:
                await self.reconnect()
                continue
            try:
                await self._send_once(self.pending[0])
            except (TimeoutError, socketio.exceptions.SocketIOError, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                await self.reconnect()

    async def reconnect(self) -> None:
        old, prefer = self.sio, self.url
        self.sio = None
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.disconnect(), 2)
        self.reconnects += 1
        await self.connect(prefer=prefer)

    async def heal(self) -> None:
        """Reconnect if the connection was lost while idle."""
        if self.sio is None or self._lost_conn.is_set() or not self.sio.connected:
            await self.reconnect()

    async def cut(self) -> None:
        """Simulate a network cut: drop the transport without a Socket.IO disconnect."""
        if self.sio is not None:
            with contextlib.suppress(Exception):
                await self.sio.eio.disconnect(abort=True)
            self._lost_conn.set()

    async def close(self) -> None:
        if self.sio is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.sio.disconnect(), 2)
            self.sio = None


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    reconnects: int = 0
    details: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"sent={self.sent} acked={self.acked} delivered={self.delivered} lost={self.lost} "
                f"duplicated={self.duplicated} out_of_order={self.out_of_order} reconnects={self.reconnects}")


def tally(participants: list[Participant], store: dict[str, list[dict[str, Any]]]) -> Tally:
    """Compare every participant's received stream with the stored messages (conv → ordered list)."""
    t = Tally()
    by_client: dict[str, list[tuple[str, int]]] = {}
    for conv, msgs in store.items():
        seqs = [m["seq"] for m in msgs]
        if seqs != list(range(1, len(seqs) + 1)):
            t.details.append(f"store stream of {conv} has holes or repeats: {seqs}")
            t.duplicated += len(seqs) - len(set(seqs))
        for m in msgs:
            if m.get("client_id"):
                by_client.setdefault(m["client_id"], []).append((conv, m["seq"]))
    for p in participants:
        t.sent += len(p.sent)
        t.acked += len(p.acked)
        t.duplicated += p.dup_in_conn
        t.out_of_order += p.out_of_order
        t.reconnects += p.reconnects
        for cid, seq in p.acked.items():
            found = by_client.get(cid, [])
            if len(found) != 1 or found[0][1] != seq:
                t.lost += len(found) == 0
                t.duplicated += max(0, len(found) - 1)
                t.details.append(f"{p.name}: acked {cid} seq {seq} stored as {found}")
        for conv, got in p.received.items():
            stored = store.get(conv, [])
            t.delivered += len(got)
            for m in stored:
                r = got.get(m["seq"])
                if r is None:
                    t.lost += 1
                    t.details.append(f"{p.name}: missing {conv}#{m['seq']}")
                elif r["id"] != m["id"]:
                    t.duplicated += 1
                    t.details.append(f"{p.name}: {conv}#{m['seq']} is {r['id']}, stored {m['id']}")
    return t
