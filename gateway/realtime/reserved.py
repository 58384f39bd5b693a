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
from typing import Any

import socketio

from gateway.transport.manager import LeanManager

log = logging.getLogger(__name__)

MALFORMED = (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError)
RESERVED = frozenset({"connect", "disconnect", "connect_error", "__disconnect_final"})


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

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        await super()._handle_event(eio_sid, namespace, id, safe_event(data))

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except MALFORMED as exc:
            log.debug("dropped a malformed Socket.IO packet from %s: %s", eio_sid, type(exc).__name__)
