"""Emitter on python-socketio: each event is encoded once per namespace and written
straight to every recipient's engine.io socket, in call order (no task per recipient)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from gateway.realtime.context import Conn


class SioEmitter:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    def _encode(self, namespace: str, event: str, data: dict[str, Any]) -> list[Any]:
        pkt = self._sio.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, data])
        encoded = pkt.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, p) for p in parts]

    async def emit(self, conn: Conn, event: str, data: dict[str, Any]) -> None:
        for p in self._encode(conn.namespace, event, data):
            await self._send(conn.eio_sid, p)

    async def emit_many(self, conns: Sequence[Conn], event: str, data: dict[str, Any]) -> None:
        by_ns: dict[str, list[Conn]] = {}
        for c in conns:
            by_ns.setdefault(c.namespace, []).append(c)
        for ns, group in by_ns.items():
            pkts = self._encode(ns, event, data)
            for c in group:
                for p in pkts:
                    await self._send(c.eio_sid, p)

    async def _send(self, eio_sid: str, pkt: Any) -> None:
        # engineio drops packets for sockets that are gone; nothing to do here
        await self._sio.eio.send_packet(eio_sid, pkt)

    async def disconnect(self, conn: Conn) -> None:
        await self._sio.disconnect(conn.sid, namespace=conn.namespace)
