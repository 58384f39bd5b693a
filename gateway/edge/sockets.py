"""A Socket.IO v5 server on the Engine.IO server of `gateway.edge.engine`.

It multiplexes namespaces over an Engine.IO session
(https://socket.io/docs/v4/socket-io-protocol/): a client joins a namespace with CONNECT
(answered CONNECT with the namespace's sid, or CONNECT_ERROR), sends EVENTs (answered with
an ACK when it asked for one) and leaves with DISCONNECT. Namespaces are objects given to
`SocketServer` (`NamespaceHandler`); a namespace nobody registered, the main namespace `/`
included, is refused with CONNECT_ERROR `{"message": "Invalid namespace"}`. A packet that
does not decode, an event or ack on a namespace not joined and a second CONNECT to a
joined namespace close the session, as the reference server does; binary packets
(attachments) are not accepted. Events sent on a namespace whose CONNECT is still being
handled are kept (up to `MAX_EARLY`) and handled once it is joined.

Events named like lifecycle calls (`connect`, `disconnect`, …) or without a string name
never reach a handler as such: they are renamed so that the handler answers them as an
unknown event. A `(namespace, event)` can have a batch handler: the events of that kind
that arrive in one turn of the loop are handled by one task (`BatchHandler`).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.aio.tasks import TaskSet
from gateway.edge.engine import Admission, EngineServer, EngineSettings, Session
from gateway.edge.wire import (
    ACK,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
    PacketError,
    SioPacket,
    decode_sio,
    encode_sio,
)

log = logging.getLogger(__name__)

RESERVED = frozenset({"connect", "disconnect", "connect_error", "disconnecting", "newListener", "removeListener"})
PENDING = ""  # a namespace's sid while its CONNECT is being handled
MAX_EARLY = 16  # events kept for a namespace while its CONNECT is handled; later ones are dropped


class ConnectRefused(Exception):
    """A namespace's refusal of a CONNECT: sent as CONNECT_ERROR `{"message", "data"}`."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class NamespaceHandler(Protocol):
    async def connect(self, sid: str, session: Session, auth: Any) -> Callable[[], None] | None:
        """Admit the connection or raise `ConnectRefused`. What it returns, if anything, is
        called once the CONNECT packet is queued and before the client's early events are
        handled: the place for what a client must receive first after joining (no task of
        its own, and nothing can come between)."""

    async def disconnect(self, sid: str) -> None:
        """The connection `connect` admitted has left (called once)."""

    async def event(self, sid: str, event: str, args: list[Any]) -> Any:
        """Handle an event; the result is the ACK's payload (None: an empty ACK)."""


@dataclass(slots=True)
class QueuedEvent:
    """A client event waiting in a batch."""

    namespace: str
    sid: str
    args: list[Any]
    session: Session
    ack_id: int | None


Reply = Callable[[QueuedEvent, Any], None]
"""Sends a queued event's result as its ACK (nothing when the client asked none)."""

BatchHandler = Callable[[str, list[QueuedEvent], Reply], Awaitable[None]]
"""(namespace, the events queued in one turn of the loop, reply): handles them all and
replies to each, in any order; must not raise."""


def safe_event(data: list[Any]) -> list[Any]:
    """The event array with a reserved name renamed (`reserved:connect`)."""
    if data[0] in RESERVED:
        return [f"reserved:{data[0]}", *data[1:]]
    return data


class SocketServer:
    def __init__(self, settings: EngineSettings, *, generate_id: Callable[[], str] | None = None,
                 admission: Iterable[Admission] = ()) -> None:
        self.engine = EngineServer(settings, self, generate_id=generate_id, admission=admission)
        self.namespaces: dict[str, NamespaceHandler] = {}
        self.batch_handlers: dict[tuple[str, str], BatchHandler] = {}
        self._queued: dict[tuple[str, str], list[QueuedEvent]] = {}
        # events sent on a namespace whose CONNECT is being handled
        self._early: dict[tuple[Session, str], list[SioPacket]] = {}
        self._tasks = TaskSet()
        self.batched_events = 0
        self.malformed = 0

    # --- from the engine ------------------------------------------------------------
    def on_message(self, session: Session, text: str) -> None:
        try:
            pkt = decode_sio(text)
        except PacketError as exc:
            self._refuse(session, f"malformed Socket.IO packet ({exc})")
            return
        ns = pkt.namespace
        if pkt.type == EVENT:
            sid = session.ns_get(ns)
            if sid is None:  # not joined: the client broke the protocol
                self._refuse(session, "an event on a namespace not joined")
                return
            if sid == PENDING:  # sent before its CONNECT was answered: handled once it is
                early = self._early.setdefault((session, ns), [])
                if len(early) < MAX_EARLY:
                    early.append(pkt)
                return
            self._on_event(session, ns, sid, pkt)
        elif pkt.type == CONNECT:
            self._on_connect(session, ns, pkt.data)
        elif pkt.type == DISCONNECT:
            sid = session.ns_pop(ns)
            self._early.pop((session, ns), None)
            if sid:
                handler_ = self.namespaces[ns]
                self._tasks.spawn(handler_.disconnect(sid))
        elif pkt.type == ACK and not session.ns_get(ns):
            self._refuse(session, "an ack on a namespace not joined")
        # other ACKs: the server asks clients for none; DISCONNECT of a namespace not joined: nothing to do

    def _refuse(self, session: Session, why: str) -> None:
        self.malformed += 1
        log.debug("session %s: %s; closing it", session.sid, why)
        self.engine.close(session, "transport")

    def _on_event(self, session: Session, ns: str, sid: str, pkt: SioPacket) -> None:
        event = safe_event(pkt.data)
        handler = self.batch_handlers.get((ns, event[0])) if self.batch_handlers else None
        if handler is not None:
            key = (ns, event[0])
            queued = self._queued.get(key)
            if queued is None:
                queued = self._queued[key] = []
                self._tasks.spawn(self._batch(key, handler))
            queued.append(QueuedEvent(ns, sid, event[1:], session, pkt.id))
            self.batched_events += 1
            return
        self._tasks.spawn(self._event(session, ns, sid, event, pkt.id))

    def on_close(self, session: Session, reason: str) -> None:
        left = [(ns, sid) for ns, sid in session.ns_take_all() if sid]
        if left:
            self._tasks.spawn(self._left(left))

    async def _left(self, left: list[tuple[str, str]]) -> None:
        for ns, sid in left:
            try:
                await self.namespaces[ns].disconnect(sid)
            except Exception:
                log.exception("disconnect handler of %s failed", ns)

    # --- namespaces -------------------------------------------------------------------
    def _on_connect(self, session: Session, ns: str, auth: Any) -> None:
        handler = self.namespaces.get(ns)
        if handler is None:
            self._send(session, encode_sio(CONNECT_ERROR, ns, {"message": "Invalid namespace"}))
            return
        if session.ns_get(ns) is not None:
            self._refuse(session, "a second CONNECT to a joined namespace")
            return
        session.ns_set(ns, PENDING)  # now: the packets behind this one see the namespace joining
        self._tasks.spawn(self._connect(session, ns, handler, auth))

    async def _connect(self, session: Session, ns: str, handler: NamespaceHandler, auth: Any) -> None:
        sid = _new_sid()
        try:
            after = await handler.connect(sid, session, auth)
        except ConnectRefused as exc:
            self._early.pop((session, ns), None)
            self._forget_pending(session, ns)
            body: dict[str, Any] = {"message": exc.message}
            if exc.data is not None:
                body["data"] = exc.data
            self._send(session, encode_sio(CONNECT_ERROR, ns, body))
            return
        except Exception:
            self._early.pop((session, ns), None)
            self._forget_pending(session, ns)
            log.exception("connect handler of %s failed", ns)
            self._send(session, encode_sio(CONNECT_ERROR, ns, {"message": "internal error",
                                                                 "data": {"code": "internal"}}))
            return
        early = self._early.pop((session, ns), ())
        if session.closed or session.ns_get(ns) != PENDING:
            await handler.disconnect(sid)  # the session ended, or the client left meanwhile
            return
        session.ns_set(ns, sid)
        session.joined()
        self._send(session, encode_sio(CONNECT, ns, {"sid": sid}))
        if after is not None:
            try:
                after()
            except Exception:
                log.exception("after-connect of %s failed", ns)
        for pkt in early:
            self._on_event(session, ns, sid, pkt)

    @staticmethod
    def _forget_pending(session: Session, ns: str) -> None:
        if session.ns_get(ns) == PENDING:
            session.ns_pop(ns)

    async def disconnect(self, eio_sid: str, ns: str) -> None:
        """Make the connection leave `ns`: the client gets DISCONNECT, the handler is called."""
        session = self.engine.sessions.get(eio_sid)
        if session is None or session.closed:
            return
        sid = session.ns_pop(ns)
        if not sid:
            return
        self._send(session, encode_sio(DISCONNECT, ns))
        await self.namespaces[ns].disconnect(sid)

    # --- events -----------------------------------------------------------------------
    async def _event(self, session: Session, ns: str, sid: str, event: list[Any], ack_id: int | None) -> None:
        try:
            result = await self.namespaces[ns].event(sid, event[0], event[1:])
        except Exception:
            log.exception("event handler of %s %s failed", ns, event[0])
            return
        if ack_id is not None:
            self._ack(session, ns, ack_id, result)

    async def _batch(self, key: tuple[str, str], handler: BatchHandler) -> None:
        events = self._queued.pop(key)
        try:
            await handler(key[0], events, self._reply)
        except Exception:
            log.exception("batch handler of %s %s failed", *key)

    def _reply(self, ev: QueuedEvent, result: Any) -> None:
        if ev.ack_id is not None:
            self._ack(ev.session, ev.namespace, ev.ack_id, result)

    def _ack(self, session: Session, ns: str, ack_id: int, result: Any) -> None:
        payload = [] if result is None else list(result) if isinstance(result, tuple) else [result]
        try:
            packet = encode_sio(ACK, ns, payload, ack_id)
        except TypeError:
            log.error("the ack of an event on %s is not JSON", ns)
            return
        self._send(session, packet)

    @staticmethod
    def _send(session: Session, packet: bytes) -> None:
        if not session.closed:
            session.send(packet)

    def emit(self, eio_sid: str, ns: str, event: str, data: Any) -> bool:
        """Queue an event to one connection; False when its session is gone."""
        session = self.engine.sessions.get(eio_sid)
        if session is None or session.closed:
            return False
        session.send(encode_sio(EVENT, ns, [event, data]))
        return True

    async def close(self) -> None:
        await self.engine.shutdown()
        await self._tasks.close()


def _new_sid() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode()
