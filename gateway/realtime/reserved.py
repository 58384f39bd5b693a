"""A Socket.IO server that never lets a client event masquerade as a lifecycle call.

python-socketio routes a client's `42/ns,["connect", …]` or `["disconnect", …]` event to the
namespace's `trigger_event("connect" | "disconnect", …)`, exactly like the real handshake
and disconnect, and an event name that is not a string (or an empty event array) reaches
the handlers as is. Such events are renamed here, so the dispatcher answers them like any
unknown event (`unknown_event`), or `bad_request` for a malformed event array.

A Socket.IO packet that does not even decode (bad type digit, broken JSON, nesting deep
enough to exhaust the decoder's recursion, a binary frame nobody announced) is dropped
with a debug log line: it must not cost an ERROR traceback per frame (a log-flooding
vector) nor reach any handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import socketio
from socketio import packet as sio_packet

from gateway.realtime.packets import decode_event
from gateway.tasks import TaskSet
from gateway.transport.manager import LeanManager

log = logging.getLogger(__name__)

MALFORMED = (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError)
RESERVED = frozenset({"connect", "disconnect", "connect_error", "__disconnect_final"})


@dataclass(slots=True)
class QueuedEvent:
    """A client event waiting in a batch (`SafeAsyncServer.batch_handlers`)."""

    namespace: str
    sid: str
    args: list[Any]  # the event's arguments (its payload)
    eio_sid: str
    ack_id: int | None


Reply = Callable[[QueuedEvent, Any], None]
"""Sends a queued event's handler result as its ACK (nothing when the client asked none)."""

BatchHandler = Callable[[str, list[QueuedEvent], Reply], Awaitable[None]]
"""(namespace, the events queued in one turn of the loop, reply): handles them all and
replies to each (in any order); must not raise."""


def safe_event(data: Any) -> list[Any]:
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        return ["invalid:event"]
    if data[0] in RESERVED:
        return [f"reserved:{data[0]}", *data[1:]]
    return data


class SafeAsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, client_manager: Any = None, **kwargs: Any) -> None:
        # no stored room per sid (see gateway/transport/manager.py)
        super().__init__(client_manager=client_manager if client_manager is not None else LeanManager(), **kwargs)
        # set with the lean transport: queues an ACK (eio_sid, namespace, id, data) as a
        # ready frame; False leaves it to the stock path (LeanTransport.send_ack)
        self.ack_sink: Callable[[str, str, int, list[Any]], bool] | None = None
        # (namespace, event) → a handler of all such events that arrive in one turn of the
        # loop, run as one task (instead of one task per event) on the lean transport's path
        self.batch_handlers: dict[tuple[str, str], BatchHandler] = {}
        self._queued: dict[tuple[str, str], list[QueuedEvent]] = {}
        self._batches = TaskSet()
        self.batched_events = 0

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        await super()._handle_event(eio_sid, namespace, id, safe_event(data))

    def event_task(self, eio_sid: str, data: str) -> Awaitable[None] | Literal[True] | None:
        """The lean transport's fast path for a text EVENT packet (`2…`): decode it and return
        the handler's coroutine (the caller runs it as a task), or None to take the stock
        path (`_handle_eio_message`) for anything else. The stock path runs one task to
        decode the packet, which starts a second for the handler; this is one task, with
        the same checks: a malformed packet is dropped, an event on a namespace the client
        has not joined is ignored, a reserved event name is renamed (`safe_event`). An event
        with a batch handler is queued instead (True: nothing to run): the first of a turn
        of the loop starts the task that takes all of them."""
        if not data.startswith("2") or eio_sid in self._binary_packet:
            return None
        try:
            decoded = decode_event(data)
            if decoded is None:
                pkt = self.packet_class(encoded_packet=data)
                if pkt.packet_type != sio_packet.EVENT:
                    return None
                decoded = pkt.namespace, pkt.id, pkt.data
        except MALFORMED as exc:
            log.debug("dropped a malformed Socket.IO packet from %s: %s", eio_sid, type(exc).__name__)
            return _nothing()
        namespace = decoded[0] or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            return _nothing()
        event = safe_event(decoded[2])
        if self.batch_handlers:
            key = (namespace, event[0])
            handler = self.batch_handlers.get(key)
            if handler is not None:
                queued = self._queued.get(key)
                if queued is None:
                    queued = self._queued[key] = []
                    self._batches.spawn(self._batch(key, handler))
                queued.append(QueuedEvent(namespace, sid, event[1:], eio_sid, decoded[1]))
                self.batched_events += 1
                return True
        return self._event(sid, eio_sid, event, namespace, decoded[1])

    async def _batch(self, key: tuple[str, str], handler: BatchHandler) -> None:
        events = self._queued.pop(key)
        try:
            await handler(key[0], events, self._reply)
        except Exception:
            log.exception("batch handler of %s %s failed", *key)

    def _reply(self, ev: QueuedEvent, result: Any) -> None:
        if ev.ack_id is not None:
            stock = self._ack(ev.eio_sid, ev.namespace, ev.ack_id, result)
            if stock is not None:
                self._batches.spawn(stock)

    async def _event(self, sid: str, eio_sid: str, data: list[Any], namespace: str, ack_id: int | None) -> None:
        """`_handle_event_internal`, with the ACK handed to `ack_sink` when there is one."""
        r = await self._trigger_event(data[0], namespace, sid, *data[1:])
        if r == self.not_handled or ack_id is None:
            return
        stock = self._ack(eio_sid, namespace, ack_id, r)
        if stock is not None:
            await stock

    def _ack(self, eio_sid: str, namespace: str, ack_id: int, result: Any) -> Awaitable[None] | None:
        """Hand a handler's result as its ACK to `ack_sink`; when there is none or it does
        not take it, the stock send to run instead."""
        payload = [] if result is None else list(result) if isinstance(result, tuple) else [result]
        sink = self.ack_sink
        if sink is not None and sink(eio_sid, namespace, ack_id, payload):
            return None
        send: Awaitable[None] = self._send_packet(eio_sid, self.packet_class(
            sio_packet.ACK, namespace=namespace, id=ack_id, data=payload))
        return send

    async def _trigger_event(self, event: str, namespace: str, *args: Any) -> Any:
        """Straight to the namespace's handler object when no handler function is registered
        for the namespace (python-socketio resolves handler functions first, then namespace
        objects; with none of the first the result is the same)."""
        if namespace not in self.handlers and "*" not in self.handlers:
            handler = self.namespace_handlers.get(namespace)
            if handler is not None:
                return await handler.trigger_event(event, *args)
        return await super()._trigger_event(event, namespace, *args)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except MALFORMED as exc:
            log.debug("dropped a malformed Socket.IO packet from %s: %s", eio_sid, type(exc).__name__)


async def _nothing() -> None:
    return None
