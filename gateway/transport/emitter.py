"""The fan-out Emitter on the lean transport: one frame per event and namespace, queued to
every recipient's write buffer and written coalesced (connections on the stock path get the
packet through engineio as before)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gateway.realtime.context import Conn
from gateway.realtime.sio_emitter import SioEmitter
from gateway.transport.hub import LeanTransport
from gateway.transport.socket import LeanSocket, json_packet_frame


class LeanEmitter(SioEmitter):
    def __init__(self, sio: Any, hub: LeanTransport) -> None:
        super().__init__(sio)
        self._sio_server = sio
        self._hub = hub

    @staticmethod
    def _frame(namespace: str, event: str, data: dict[str, Any]) -> bytes | None:
        """The event as one websocket frame (None: a payload for the stock path)."""
        return json_packet_frame(b"42", namespace, [event, data])

    async def emit_many(self, conns: Sequence[Conn], event: str, data: dict[str, Any]) -> None:
        if not conns:
            return
        ns = conns[0].namespace
        groups: Iterable[tuple[str, Sequence[Conn]]]
        if len(conns) == 1 or all(c.namespace == ns for c in conns):  # the usual case: one namespace
            groups = ((ns, conns),)
        else:
            by_ns: dict[str, list[Conn]] = {}
            for c in conns:
                by_ns.setdefault(c.namespace, []).append(c)
            groups = by_ns.items()
        sockets = self._sio_server.eio.sockets
        for ns, group in groups:
            frame = self._frame(ns, event, data)
            if frame is None:
                await super().emit_many(group, event, data)
                continue
            for c in group:
                s = sockets.get(c.eio_sid)
                if type(s) is LeanSocket:
                    s.queue(frame)
                elif s is not None:
                    for p in self._encode(ns, event, data):
                        await self._send(c.eio_sid, p)
