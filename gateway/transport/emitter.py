"""The fan-out Emitter on the lean transport: one frame per event and namespace, queued to
every recipient's write buffer and written coalesced (connections on the stock path get the
packet through engineio as before)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from gateway.realtime.context import Conn
from gateway.realtime.sio_emitter import SioEmitter
from gateway.transport.hub import LeanTransport
from gateway.transport.socket import LeanSocket, packet_frame


class LeanEmitter(SioEmitter):
    def __init__(self, sio: Any, hub: LeanTransport) -> None:
        super().__init__(sio)
        self._sio_server = sio
        self._hub = hub

    def _frames(self, namespace: str, event: str, data: dict[str, Any]) -> list[bytes] | None:
        pkt = self._sio_server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, data])
        encoded = pkt.encode()
        if isinstance(encoded, list):
            return None  # binary attachments: several engine.io packets, take the stock path
        return [packet_frame(eio_packet.Packet(eio_packet.MESSAGE, encoded))]

    async def emit_many(self, conns: Sequence[Conn], event: str, data: dict[str, Any]) -> None:
        by_ns: dict[str, list[Conn]] = {}
        for c in conns:
            by_ns.setdefault(c.namespace, []).append(c)
        sockets = self._sio_server.eio.sockets
        for ns, group in by_ns.items():
            frames = self._frames(ns, event, data)
            if frames is None:
                await super().emit_many(group, event, data)
                continue
            frame = frames[0]
            for c in group:
                s = sockets.get(c.eio_sid)
                if type(s) is LeanSocket:
                    s.queue(frame)
                elif s is not None:
                    for p in self._encode(ns, event, data):
                        await self._send(c.eio_sid, p)
