"""The fan-out Emitter on the lean transport: one frame per event and namespace, queued to
every recipient's write buffer and written coalesced (connections on the stock path get the
packet through engineio as before)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.realtime.context import Conn
from gateway.realtime.sio_emitter import SioEmitter
from gateway.transport.frames import encode_frame
from gateway.transport.hub import LeanTransport
from gateway.transport.socket import LeanSocket


class LeanEmitter(SioEmitter):
    def __init__(self, sio: Any, hub: LeanTransport) -> None:
        super().__init__(sio)
        self._sio_server = sio
        self._hub = hub

    @staticmethod
    def _frame(namespace: str, event: str, data: dict[str, Any]) -> bytes | None:
        """The event as one websocket frame: engine.io MESSAGE `4`, Socket.IO EVENT `2`, the
        namespace unless it is `/`, the JSON (what `JsonOncePacket` writes, without building
        the two packet objects). None for a payload JSON cannot carry (bytes: the stock
        path sends it as a binary event with attachments)."""
        try:
            body = orjson.dumps([event, data])
        except TypeError:
            return None
        head = b"42" if namespace == "/" else b"42" + namespace.encode() + b","
        return encode_frame(head + body)

    async def emit_many(self, conns: Sequence[Conn], event: str, data: dict[str, Any]) -> None:
        by_ns: dict[str, list[Conn]] = {}
        for c in conns:
            by_ns.setdefault(c.namespace, []).append(c)
        sockets = self._sio_server.eio.sockets
        for ns, group in by_ns.items():
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
